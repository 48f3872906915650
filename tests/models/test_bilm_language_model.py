"""The bidirectional LM trains on real text: held-out perplexity falls, reloads with equal outputs."""

import keras
import numpy as np
import pytest

from tfpretrain.models import BiLMLanguageModel
from tfpretrain.models.bilm import BILM_PRESETS
from tfpretrain.models.bilm import LANGUAGE_MODEL_RESERVED, count_tokens, language_model_dataset, word_lookup
from tfpretrain.text import build_vocabulary

pytestmark = pytest.mark.slow  # trains on real text (about 30 s each)


def _ewt_corpus(shared_data, tmp_path, num_lines):
    """The first ``num_lines`` sentences of EWT's training text, and their vocabulary."""
    corpus = tmp_path / "ewt.txt"
    with open(shared_data / "ud_english_ewt" / "train.conllu", encoding="utf-8") as f:
        texts = [line[len("# text = "):] for line in f if line.startswith("# text = ")][:num_lines]
    corpus.write_text("".join(texts), encoding="utf-8")
    vocabulary = build_vocabulary(
        count_tokens([str(corpus)]), min_count=2, reserved=LANGUAGE_MODEL_RESERVED,
    )
    return corpus, vocabulary


def test_language_model_learns_and_reloads(shared_data, tmp_path):
    corpus, vocabulary = _ewt_corpus(shared_data, tmp_path, 600)
    lookup = word_lookup(vocabulary)
    train = language_model_dataset([str(corpus)], lookup, batch_size=32, heldout_every=10, seed=0)
    heldout = language_model_dataset([str(corpus)], lookup, batch_size=32, heldout_every=10, heldout=True,
                                      shuffle_buffer=0)
    keras.utils.set_random_seed(0)
    lm = BiLMLanguageModel(len(vocabulary) + 2, **BILM_PRESETS["tiny"])
    lm.compile(optimizer=keras.optimizers.Adam(5e-3))
    before = lm.evaluate(heldout, verbose=0, return_dict=True)["perplexity"]
    history = lm.fit(train, validation_data=heldout, epochs=3, verbose=0)
    after = history.history["val_perplexity"][-1]
    # A uniform guess over the vocabulary has perplexity = vocabulary size.
    assert before > 0.5 * len(vocabulary)
    assert after < 0.5 * before, (before, after)
    assert "perplexity" not in history.history  # only measured with the full softmax

    path = str(tmp_path / "lm.keras")
    lm.save(path)
    reloaded = keras.saving.load_model(path)
    char_ids, _ = next(iter(heldout))
    np.testing.assert_allclose(lm(char_ids), reloaded(char_ids), atol=1e-5)
    assert abs(reloaded.evaluate(heldout, verbose=0, return_dict=True)["perplexity"]
               - lm.evaluate(heldout, verbose=0, return_dict=True)["perplexity"]) < 1e-2


def test_language_model_trains_under_xla(shared_data, tmp_path):
    # The sampled softmax and the loss compile with XLA (no LogUniformCandidateSampler, no boolean_mask).
    corpus, vocabulary = _ewt_corpus(shared_data, tmp_path, 400)
    lookup = word_lookup(vocabulary)
    # One bucket of static shape: one compiled train step and one evaluation step.
    options = dict(batch_size=32, sequence_length=32, bucket_boundaries=(), static_shapes=True, heldout_every=10)
    train = language_model_dataset([str(corpus)], lookup, seed=0, **options)
    heldout = language_model_dataset([str(corpus)], lookup, heldout=True, shuffle_buffer=0, **options)
    keras.utils.set_random_seed(0)
    lm = BiLMLanguageModel(len(vocabulary) + 2, **BILM_PRESETS["tiny"])
    assert lm.num_sampled < lm.vocabulary_size  # training uses the sampled softmax
    lm.compile(optimizer=keras.optimizers.Adam(5e-3), jit_compile=True)
    before = lm.evaluate(heldout, verbose=0, return_dict=True)["perplexity"]
    history = lm.fit(train, validation_data=heldout, epochs=1, verbose=0)
    assert lm.jit_compile
    assert np.isfinite(history.history["loss"][-1])
    assert history.history["val_perplexity"][-1] < 0.5 * before, (before, history.history)
