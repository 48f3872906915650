"""BertEmbedder: layer combinations against the encoder's own hidden states, saving, use in a model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfpretrain.models.bert import BERT_PRESETS, BertEncoder
from tfpretrain.models.bert.embedder import BertEmbedder
from tfpretrain.text.packing import pack_words


def _encoder(num_layers=4):
    config = dict(BERT_PRESETS["tiny"], num_layers=num_layers)
    return BertEncoder(vocabulary_size=50, **config)


def _inputs():
    pieces = tf.ragged.constant([[[10], [11, 12], [13]], [[14, 15, 16], [17]]], dtype=tf.int32)
    return pack_words(pieces, 8, cls_token_id=2, sep_token_id=3, pad_token_id=0)


@pytest.mark.parametrize("combination", ["last", "second_to_last", "sum_last_four", "concat_last_four"])
def test_word_vectors_are_the_combined_hidden_states_at_first_pieces(combination):
    encoder = _encoder()
    inputs = _inputs()
    outputs = BertEmbedder(encoder, combination=combination)(inputs)
    hidden = [h.numpy() for h in encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})
              ["hidden_states"]]
    combined = {"last": hidden[-1], "second_to_last": hidden[-2], "sum_last_four": sum(hidden[-4:]),
                "concat_last_four": np.concatenate(hidden[-4:], axis=-1)}[combination]
    positions, mask = inputs["word_positions"].numpy(), inputs["word_mask"].numpy()
    for b in range(2):
        for w in range(positions.shape[1]):
            expected = combined[b, positions[b, w]] if mask[b, w] else np.zeros(combined.shape[-1])
            np.testing.assert_allclose(outputs["word_vectors"][b, w], expected, atol=1e-5)
    assert outputs["word_vectors"].shape[-1] == encoder.hidden_dim * (4 if combination == "concat_last_four" else 1)


def test_sentence_vector_mean_pools_real_tokens_only():
    encoder = _encoder(2)
    inputs = _inputs()
    sentence = BertEmbedder(encoder)(inputs)["sentence_vector"].numpy()
    last = encoder({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"].numpy()
    mask = inputs["padding_mask"].numpy()
    for b in range(2):
        np.testing.assert_allclose(sentence[b], last[b][mask[b]].mean(axis=0), atol=1e-5)


def test_four_layer_combinations_need_four_layers():
    with pytest.raises(ValueError, match="at least 4 layers"):
        BertEmbedder(_encoder(2), combination="sum_last_four")
    with pytest.raises(ValueError, match="unknown layer combination"):
        BertEmbedder(_encoder(2), combination="first")


def test_usable_as_a_frozen_layer_in_a_functional_model(tmp_path):
    """A word-level classifier on top of frozen BERT features trains, saves and reloads."""
    encoder = _encoder(2)
    inputs = {name: keras.Input((None,), dtype=dtype, name=name) for name, dtype in (
        ("token_ids", "int32"), ("segment_ids", "int32"), ("padding_mask", "bool"),
        ("word_positions", "int32"), ("word_mask", "bool"))}
    features = BertEmbedder(encoder, combination="scalar_mix")(inputs)["word_vectors"]
    model = keras.Model(inputs, keras.layers.Dense(3)(features))
    frozen = {id(v) for v in encoder.weights}
    trainable = model.trainable_weights
    assert trainable and not any(id(v) in frozen for v in trainable)  # the scalar mix and the dense layer only
    x = {k: v for k, v in _inputs().items() if k != "num_words_truncated"}
    y = np.zeros(x["word_positions"].shape, "int32")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.numpy().copy() for w in encoder.weights]
    model.fit(x, y, epochs=1, verbose=0)
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, encoder.weights))
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert len(reloaded.trainable_weights) == len(trainable)  # the encoder reloads frozen
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
