"""GPT transfer heads: the [EXTRACT] state, both orders for similarity, a softmax over answers, the auxiliary LM loss."""

import keras
import numpy as np
import pytest
from keras import ops

from tfpretrain.models.gpt import GptDecoder, tied_logits
from tfpretrain.models.gpt.transfer import GptTransferModel, causal_lm_loss

VOCABULARY_SIZE, LENGTH = 50, 10


@pytest.fixture(scope="module")
def decoder():
    keras.utils.set_random_seed(0)
    return GptDecoder(VOCABULARY_SIZE, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                      max_sequence_length=LENGTH, dropout=0.0)


def random_inputs(batch, sequences, seed=0):
    """Right-padded sequences of random length whose last real token is "[EXTRACT]" (id 7)."""
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((batch, sequences, LENGTH), "int32")
    mask = np.zeros_like(token_ids)
    for b in range(batch):
        for s in range(sequences):
            n = rng.integers(2, LENGTH + 1)
            token_ids[b, s, :n] = np.concatenate([[5], rng.integers(10, VOCABULARY_SIZE, n - 2), [7]])
            mask[b, s, :n] = 1
    return {"token_ids": token_ids, "padding_mask": mask}


def extract_states(decoder, inputs):
    """Oracle: run the decoder on each sequence alone, unpadded, and take its last state."""
    batch, sequences, _ = inputs["token_ids"].shape
    states = np.zeros((batch, sequences, decoder.hidden_dim), "float32")
    for b in range(batch):
        for s in range(sequences):
            n = int(inputs["padding_mask"][b, s].sum())
            ids = inputs["token_ids"][b, s, :n][None]
            hidden = decoder({"token_ids": ids, "padding_mask": np.ones_like(ids)})
            states[b, s] = ops.convert_to_numpy(hidden)[0, -1]
    return states


@pytest.mark.parametrize("task,sequences", [("classify", 1), ("pair", 1), ("similarity", 2), ("choice", 4)])
def test_head_reads_the_extract_state(decoder, task, sequences):
    model = GptTransferModel(decoder, task, num_labels=3)
    inputs = random_inputs(3, sequences, seed=sequences)
    logits = ops.convert_to_numpy(model(inputs))
    states = extract_states(decoder, inputs)
    kernel, bias = (ops.convert_to_numpy(w) for w in model.head.weights)
    if task == "choice":
        expected = (states @ kernel)[..., 0] + bias  # one score per answer
        assert logits.shape == (3, sequences)
    else:
        expected = states.sum(axis=1) @ kernel + bias  # similarity: the two orders added
        assert logits.shape == (3, 3)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_similarity_is_symmetric_and_choice_is_permutation_equivariant(decoder):
    similarity = GptTransferModel(decoder, "similarity", num_labels=2)
    inputs = random_inputs(4, 2, seed=3)
    swapped = {name: value[:, ::-1] for name, value in inputs.items()}
    np.testing.assert_allclose(ops.convert_to_numpy(similarity(inputs)), ops.convert_to_numpy(similarity(swapped)),
                               atol=1e-5)
    choice = GptTransferModel(decoder, "choice")
    inputs = random_inputs(2, 4, seed=4)
    order = [2, 0, 3, 1]
    permuted = {name: value[:, order] for name, value in inputs.items()}
    np.testing.assert_allclose(ops.convert_to_numpy(choice(inputs))[:, order],
                               ops.convert_to_numpy(choice(permuted)), atol=1e-5)


def test_auxiliary_lm_loss_in_training_only(decoder):
    inputs = random_inputs(2, 1, seed=5)
    model = GptTransferModel(decoder, "classify", num_labels=2, lm_loss_weight=0.25, dropout=0.0)
    model(inputs, training=True)
    assert len(model.losses) == 1
    flat = {name: value[:, 0] for name, value in inputs.items()}
    logits = ops.convert_to_numpy(tied_logits(decoder, decoder(flat)))
    # Oracle in numpy: log-softmax cross-entropy of each real next token.
    losses = []
    for b in range(2):
        n = int(flat["padding_mask"][b].sum())
        for t in range(n - 1):
            row = logits[b, t].astype("float64")
            losses.append(np.log(np.exp(row - row.max()).sum()) + row.max() - row[flat["token_ids"][b, t + 1]])
    np.testing.assert_allclose(float(model.losses[0]), 0.25 * np.mean(losses), rtol=1e-4)
    np.testing.assert_allclose(float(causal_lm_loss(logits, flat["token_ids"], flat["padding_mask"])),
                               np.mean(losses), rtol=1e-4)
    model(inputs, training=False)
    assert not model.losses
    assert not GptTransferModel(decoder, "classify", lm_loss_weight=0.0)(inputs, training=True) is None


def test_fit_lowers_the_loss_with_the_auxiliary_loss(decoder):
    keras.utils.set_random_seed(1)
    inputs = random_inputs(16, 2, seed=6)
    labels = (inputs["padding_mask"].sum(axis=(1, 2)) > LENGTH).astype("int32")  # learnable from lengths
    model = GptTransferModel(decoder, "similarity", num_labels=2, lm_loss_weight=0.5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(inputs, labels, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown GPT transfer task"):
        GptTransferModel(None, "tag")
