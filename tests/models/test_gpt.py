"""GPT decoder and causal LM: presets, causal masking, loss against numpy, cached vs uncached generation, saving."""

import json
import os

import keras
import numpy as np
import pytest

from tfpretrain.models.gpt import (
    GPT_PRESETS,
    GPT_RESERVED_TOKENS,
    GptCausalLM,
    GptDecoder,
    causal_lm_dataset,
    is_gpt_dir,
    load_gpt,
    save_gpt,
    tied_logits,
)
from tfpretrain.text import WordPieceTokenizer, learn_wordpiece_vocabulary

RNG = np.random.default_rng(0)
SMALL = {"num_layers": 2, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32, "max_sequence_length": 24,
         "dropout": 0.0}


def inputs(token_ids):
    token_ids = np.asarray(token_ids, "int32")
    return {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}


def expected_parameters(vocabulary_size, num_layers, hidden_dim, intermediate_dim, max_sequence_length, **_):
    """Counted by hand: embeddings, per block 4 attention denses + 2 feed-forward denses + 2 layer norms, final norm."""
    block = 4 * (hidden_dim * hidden_dim + hidden_dim) + 2 * hidden_dim * intermediate_dim + intermediate_dim
    block += hidden_dim + 2 * 2 * hidden_dim
    return (vocabulary_size + max_sequence_length) * hidden_dim + num_layers * block + 2 * hidden_dim


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(GPT_PRESETS))
def test_presets_build_with_the_expected_sizes(preset):
    decoder = GptDecoder(vocabulary_size=1000, **GPT_PRESETS[preset])
    assert decoder.count_params() == expected_parameters(1000, **GPT_PRESETS[preset])
    hidden = decoder(inputs(np.ones((1, 3))))
    assert tuple(hidden.shape) == (1, 3, GPT_PRESETS[preset]["hidden_dim"])
    if preset == "base":  # OpenAI GPT: 12 x 768, 12 heads, 3072, 512 positions (~85M + embeddings)
        assert (decoder.num_layers, decoder.hidden_dim, decoder.num_heads, decoder.max_sequence_length) == (
            12, 768, 12, 512)


def test_changing_a_later_token_never_changes_earlier_logits():
    decoder = GptDecoder(vocabulary_size=50, **SMALL)
    ids = RNG.integers(1, 50, size=(1, 10))
    base = np.asarray(tied_logits(decoder, decoder(inputs(ids))))
    for t in range(10):
        changed = ids.copy()
        changed[0, t] = (changed[0, t] + 7) % 49 + 1
        logits = np.asarray(tied_logits(decoder, decoder(inputs(changed))))
        np.testing.assert_allclose(logits[:, :t], base[:, :t], atol=1e-5, err_msg=f"token {t} leaks backwards")
        assert not np.allclose(logits[:, t], base[:, t], atol=1e-4)


def test_right_padding_does_not_change_real_positions():
    decoder = GptDecoder(vocabulary_size=50, **SMALL)
    ids = RNG.integers(1, 50, size=(1, 6))
    padded = np.concatenate([ids, np.zeros((1, 4), int)], axis=1)
    mask = np.array([[1] * 6 + [0] * 4], "int32")
    short = np.asarray(decoder(inputs(ids)))
    long = np.asarray(decoder({"token_ids": padded.astype("int32"), "padding_mask": mask}))
    np.testing.assert_allclose(long[:, :6], short, atol=1e-5)


def test_tied_logits_are_the_hidden_states_times_the_embedding_matrix():
    decoder = GptDecoder(vocabulary_size=50, **SMALL, dtype="mixed_float16")
    hidden = decoder(inputs(RNG.integers(1, 50, size=(2, 5))))
    logits = tied_logits(decoder, hidden)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    embeddings = np.asarray(decoder.token_embedding.embeddings)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(hidden, "float32") @ embeddings.T, atol=2e-2)


def test_loss_and_perplexity_against_numpy():
    decoder = GptDecoder(vocabulary_size=30, **SMALL)
    model = GptCausalLM(decoder)
    model.compile()
    ids = RNG.integers(1, 30, size=(4, 9)).astype("int32")
    x, y = inputs(ids[:, :-1]), ids[:, 1:]
    weights = np.ones(y.shape, "float32")
    weights[1, 5:] = 0  # a padded tail
    logits = np.asarray(model(x), "float64")
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]
    expected = (nll * weights).sum() / weights.sum()
    accuracy = ((logits.argmax(-1) == y) * weights).sum() / weights.sum()
    scores = model.evaluate(x, y, sample_weight=weights, batch_size=4, verbose=0, return_dict=True)
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)
    assert scores["perplexity"] == pytest.approx(np.exp(expected), rel=1e-5)
    assert scores["accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_decoder_config_round_trip_and_bad_arguments():
    decoder = GptDecoder(vocabulary_size=50, **SMALL, norm_first=False, name="gpt")
    config = decoder.get_config()
    revived = GptDecoder.from_config(config)
    assert revived.get_config() == config and revived.final_layer_norm is None
    assert json.loads(json.dumps(decoder.constructor_config()))["norm_first"] is False
    frozen = GptDecoder.from_config({**config, "trainable": False})
    assert not frozen.trainable_weights
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        GptDecoder(vocabulary_size=50, **{**SMALL, "num_heads": 3})
    with pytest.raises(ValueError, match="unknown activation"):
        GptDecoder(vocabulary_size=50, **SMALL, activation="relu6")


def test_call_with_cache_equals_the_full_pass():
    decoder = GptDecoder(vocabulary_size=50, **SMALL)
    ids = RNG.integers(1, 50, size=(2, 8)).astype("int32")
    full = np.asarray(decoder(inputs(ids)))
    cache = decoder.empty_cache(2, 12)
    hidden, cache = decoder.call_with_cache(ids[:, :5], cache, 0)
    steps = [np.asarray(hidden)]
    for t in range(5, 8):
        hidden, cache = decoder.call_with_cache(ids[:, t:t + 1], cache, t)
        steps.append(np.asarray(hidden))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    assert tuple(cache.shape) == (2, 2, 2, 12, 2, 8)  # (batch, layers, 2, max_length, heads, head_dim)


def test_mixed_precision_training_step_and_cached_generation():
    decoder = GptDecoder(vocabulary_size=40, **SMALL, dtype="mixed_float16")
    model = GptCausalLM(decoder)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    ids = RNG.integers(1, 40, size=(4, 9)).astype("int32")
    history = model.fit(inputs(ids[:, :-1]), ids[:, 1:], batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["perplexity"][0])
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in decoder.weights)
    assert keras.backend.standardize_dtype(decoder.empty_cache(1, 4).dtype) == "float16"
    assert GptDecoder.from_config(decoder.get_config()).token_embedding.compute_dtype == "float16"
    prompts = [[3, 5], [3, 6, 7, 8]]
    assert model.generate(prompts, max_new_tokens=6) == model.generate(prompts, max_new_tokens=6, use_cache=False)


def keras_hub_gpt2_twin(decoder, seed=0):
    """keras-hub's GPT2CausalLM of the same size, with random weights that are copied into ``decoder``.

    keras-hub's GPT-2 is the independent oracle: the same architecture (pre-LN
    blocks, tanh GELU, learned positions, final layer norm, tied output
    embedding), written separately. Its variables come in the same order;
    only the attention kernels are (hidden, heads, head_dim) instead of
    (hidden, hidden).
    """
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=decoder.vocabulary_size, num_layers=decoder.num_layers, num_heads=decoder.num_heads,
        hidden_dim=decoder.hidden_dim, intermediate_dim=decoder.intermediate_dim, dropout=0.0,
        max_sequence_length=decoder.max_sequence_length)
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=w.shape).astype("float32") * (0.3 if w.ndim > 1 else 0.1) + (w.ndim == 1)
               * np.asarray(w) for w in backbone.weights]  # random kernels, biases and norms off their init
    backbone.set_weights(weights)
    decoder.set_weights([w.reshape(ours.shape) for w, ours in zip(weights, decoder.weights)])
    return keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)


def test_matches_keras_hub_gpt2_logits_and_greedy_generation():
    decoder = GptDecoder(vocabulary_size=40, **SMALL)
    twin = keras_hub_gpt2_twin(decoder)
    ids = RNG.integers(1, 40, size=(2, 12)).astype("int32")
    expected = np.asarray(twin(inputs(ids)))
    np.testing.assert_allclose(np.asarray(tied_logits(decoder, decoder(inputs(ids)))), expected, atol=1e-4)
    # Greedy generation, ours (cached and not) against keras-hub's generate, from prompts of different lengths.
    prompts = [[3, 7, 9], [3], [3, 11, 12, 13, 14, 15]]
    token_ids = np.zeros((3, 20), "int32")
    padding_mask = np.zeros((3, 20), "int32")
    for row, prompt in enumerate(prompts):
        token_ids[row, : len(prompt)], padding_mask[row, : len(prompt)] = prompt, 1
    twin.compile(sampler="greedy")
    reference = twin.generate({"token_ids": token_ids, "padding_mask": padding_mask}, stop_token_ids=None)
    reference = np.asarray(reference["token_ids"]).tolist()
    model = GptCausalLM(decoder)  # no tokenizer: no stop token
    for use_cache in (True, False):
        generated = model.generate(prompts, max_new_tokens=14, use_cache=use_cache)
        assert generated == [row[: len(prompt) + 14] for row, prompt in zip(reference, prompts)]


# --- A tiny GPT trained briefly on real text: generation, stopping, saving. ---

@pytest.fixture(scope="module")
def trained(shared_data):
    """A 2 x 64 GPT trained for 300 steps on EWT train text, a 600-piece vocabulary (about 15 s)."""
    from tfpretrain.text.readers import read_text

    lines = list(read_text(str(shared_data / "ud_english_ewt" / "train.conllu")))[:1500]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(lines, 600, reserved_tokens=GPT_RESERVED_TOKENS))
    keras.utils.set_random_seed(0)
    decoder = GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2, hidden_dim=64,
                         intermediate_dim=128, max_sequence_length=64, dropout=0.0)
    model = GptCausalLM(decoder, tokenizer)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    path = shared_data / "ud_english_ewt" / "train.conllu"
    history = model.fit(causal_lm_dataset([path], tokenizer, sequence_length=32, batch_size=16), steps_per_epoch=50,
                        epochs=6, verbose=0)
    return model, history.history


@pytest.mark.slow
def test_training_lowers_perplexity(trained):
    _, history = trained
    assert history["perplexity"][-1] < 0.6 * history["perplexity"][0], history
    assert history["perplexity"][-1] < 200  # the vocabulary has about 600 pieces


@pytest.mark.slow
def test_cached_greedy_generation_equals_uncached_token_for_token(trained):
    model, _ = trained
    prompts = ["the", "i would like to", "", "we went to the store and bought some"]
    cached = model.generate(prompts, max_new_tokens=16, sampler="greedy")
    uncached = model.generate(prompts, max_new_tokens=16, sampler="greedy", use_cache=False)
    assert cached == uncached
    assert all(text.startswith(prompt) for text, prompt in zip(cached, prompts))
    sampled = model.generate(prompts, max_new_tokens=16, sampler="top_k", k=20, seed=3)
    assert sampled == model.generate(prompts, max_new_tokens=16, sampler="top_k", k=20, seed=3, use_cache=False)


@pytest.mark.slow
def test_sampling_is_reproducible_by_seed(trained):
    model, _ = trained
    prompt = ["the"] * 4
    a = model.generate(prompt, max_new_tokens=12, sampler="top_p", p=0.95, temperature=1.5, seed=1)
    assert a == model.generate(prompt, max_new_tokens=12, sampler="top_p", p=0.95, temperature=1.5, seed=1)
    assert len(set(a)) > 1  # rows of one batch draw different samples
    assert a != model.generate(prompt, max_new_tokens=12, sampler="top_p", p=0.95, temperature=1.5, seed=2)


def test_generation_stops_at_the_end_of_text_token():
    """A decoder made to always predict [SEP] generates nothing after any prompt."""
    sep = 3
    decoder = GptDecoder(vocabulary_size=50, **SMALL)
    decoder(inputs(np.ones((1, 2))))
    embeddings = RNG.normal(size=(50, 16)).astype("float32") * 0.02
    embeddings[sep] = 1.0
    decoder.token_embedding.embeddings.assign(embeddings)
    gamma, beta = decoder.final_layer_norm.weights
    gamma.assign(np.zeros(16, "float32"))  # every hidden state becomes beta, whose best match is [SEP]
    beta.assign(np.ones(16, "float32"))
    tokenizer = WordPieceTokenizer(GPT_RESERVED_TOKENS + [f"w{i}" for i in range(42)])
    model = GptCausalLM(decoder, tokenizer)
    assert model.end_token_id == sep == tokenizer.sep_token_id
    prompts = [[sep, 7, 8], [sep], [sep, 9, 10, 11, 12]]
    for use_cache in (True, False):
        assert model.generate(prompts, max_new_tokens=10, use_cache=use_cache) == prompts


def test_split_generated_cuts_at_the_stop_token_and_the_budget():
    from tfpretrain.models.gpt.generation import split_generated

    token_ids = np.array([[3, 7, 8, 9, 3, 5, 5], [3, 4, 4, 4, 4, 4, 4], [3, 5, 3, 6, 6, 6, 6]])
    assert split_generated(token_ids, [2, 1, 3], 4, stop_token_id=3) == [[8, 9], [4, 4, 4, 4], [6, 6, 6, 6]]
    assert split_generated(token_ids, [2, 1, 3], 2) == [[8, 9], [4, 4], [6, 6]]


@pytest.mark.slow
def test_empty_and_too_long_prompts(trained):
    model, _ = trained
    text = model.generate("", max_new_tokens=5)
    assert isinstance(text, str)  # an empty prompt starts a new document
    too_long = " ".join(["the"] * 64)
    with pytest.raises(ValueError, match="max_sequence_length"):
        model.generate(too_long, max_new_tokens=5)
    with pytest.warns(UserWarning, match="max_sequence_length"):
        (text,) = model.generate([" ".join(["the"] * 60)], max_new_tokens=10)  # 61 + 10 > 64: capped
    assert len(model.tokenizer(np.array([text], object)).to_list()[0]) <= 63
    with pytest.raises(ValueError, match="no token ids"):
        model.generate([[]])
    with pytest.raises(ValueError, match="unknown sampler"):
        model.generate("the", sampler="beam")
    with pytest.raises(ValueError, match="no tokenizer"):
        GptCausalLM(model.decoder).generate("the")


@pytest.mark.slow
def test_save_and_load_round_trip(trained, tmp_path):
    model, _ = trained
    save_gpt(tmp_path / "gpt", model.decoder, model.tokenizer)
    assert is_gpt_dir(tmp_path / "gpt") and not is_gpt_dir(tmp_path)
    for name in ("decoder.json", "decoder.weights.h5", "vocab.txt", "tokenizer.json"):
        assert (tmp_path / "gpt" / name).exists()
    decoder, tokenizer = load_gpt(tmp_path / "gpt")
    assert tokenizer.vocabulary == model.tokenizer.vocabulary
    assert decoder.constructor_config() == model.decoder.constructor_config()
    ids = inputs(RNG.integers(1, 600, size=(2, 10)))
    np.testing.assert_allclose(np.asarray(decoder(ids)), np.asarray(model.decoder(ids)), atol=1e-6)
    assert GptCausalLM(decoder, tokenizer).generate("the", max_new_tokens=8) == model.generate("the", max_new_tokens=8)


@pytest.mark.slow
def test_load_errors_name_the_problem(trained, tmp_path):
    model, _ = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_gpt(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a GPT directory: missing decoder.json"):
        load_gpt(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "encoder.json").write_text("{}")
    with pytest.raises(ValueError, match="holds a BERT encoder"):
        load_gpt(tmp_path / "bert")
    save_gpt(tmp_path / "gpt", model.decoder, model.tokenizer)
    config = json.loads((tmp_path / "gpt" / "decoder.json").read_text())
    (tmp_path / "gpt" / "decoder.json").write_text(json.dumps({**config, "hidden_dim": 32}))
    with pytest.raises(ValueError, match="decoder.weights.h5 does not match"):
        load_gpt(tmp_path / "gpt")
    assert os.path.exists(tmp_path / "gpt" / "vocab.txt")
