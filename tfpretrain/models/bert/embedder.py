"""Contextual word and sentence vectors from a BERT encoder (the feature-based approach).

`BertEmbedder` is the Keras layer; `load_embedder` builds one from a BERT
directory and `embed_batch` runs raw strings through it in the graph (words
and byte offsets of `tfpretrain.text.tokenize_with_offsets`, one slot per
word): ``tfpretrain embed`` and the exported `tfpretrain.export.EmbeddingModule`
both call it.

Example:

>>> embedder, tokenizer = load_embedder("runs/minilm")
>>> embed_batch(embedder, tokenizer, tf.constant(["Hello world"]))["word_vectors"].shape
TensorShape([1, 2, 384])
"""

import keras
from keras import ops

LAYER_COMBINATIONS = ("last", "sum_last_four", "concat_last_four", "second_to_last", "scalar_mix")
SEQUENCE_LENGTH = 128  # word pieces per text, [CLS] and [SEP] included (the default of `embed_batch`)


@keras.saving.register_keras_serializable(package="tfpretrain")
class BertEmbedder(keras.layers.Layer):
    """Per-word vectors from a chosen combination of an encoder's layers, and a sentence vector.

    A word's vector is taken at its first word piece (as BERT's feature-based
    NER does); the sentence vector is the mean of the last layer over the
    non-padding pieces (the pooling sentence-transformers models such as
    all-MiniLM-L6-v2 are trained with) or the ``[CLS]`` vector.

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder`.
        combination: str, default "last". Which layers make a word vector: "last", "second_to_last",
            "sum_last_four", "concat_last_four" (the BERT paper's best
            feature-based NER combination, 4 x hidden_dim wide) or
            "scalar_mix" (a learned softmax-weighted sum of every layer,
            ELMo-style).
        sentence_pooling: str, default "mean". "mean" or "cls".
        train_encoder: bool, default False. Whether the encoder is fine-tuned
            when the embedder is part of a trained model (the feature-based
            approach keeps it frozen; the scalar mix weights always train).

    Inputs: a dict with ``token_ids``, ``segment_ids``, ``padding_mask`` (batch,
    sequence_length), ``word_positions`` and ``word_mask`` (batch, words), as
    `tfpretrain.text.pack_words` returns.

    Outputs: a dict with ``word_vectors`` (batch, words, output_dim), zero where
    ``word_mask`` is False, and ``sentence_vector`` (batch, hidden_dim).

    Example:

    >>> encoder, tokenizer = tfpretrain.models.bert.load_bert("runs/minilm")
    >>> embedder = BertEmbedder(encoder, combination="concat_last_four")
    >>> packed = tfpretrain.text.pack_words(
    ...     tokenizer.tokenize_words(tf.ragged.constant([["Hello", "world"]])), 32,
    ...     tokenizer.cls_token_id, tokenizer.sep_token_id)
    >>> embedder(packed)["word_vectors"].shape
    TensorShape([1, 2, 1536])
    """

    def __init__(self, encoder, combination="last", sentence_pooling="mean", train_encoder=False, **kwargs):
        super().__init__(**kwargs)
        if combination not in LAYER_COMBINATIONS:
            raise ValueError(f"unknown layer combination {combination!r}; choose one of {', '.join(LAYER_COMBINATIONS)}")
        if sentence_pooling not in ("mean", "cls"):
            raise ValueError(f"unknown sentence_pooling {sentence_pooling!r}; choose 'mean' or 'cls'")
        if combination in ("sum_last_four", "concat_last_four") and encoder.num_layers < 4:
            raise ValueError(f"{combination!r} needs an encoder with at least 4 layers; this one has {encoder.num_layers}")
        self.encoder = encoder
        self.combination = combination
        self.sentence_pooling = sentence_pooling
        self.train_encoder = train_encoder
        encoder.trainable = train_encoder
        self.output_dim = encoder.hidden_dim * (4 if combination == "concat_last_four" else 1)
        if combination == "scalar_mix":
            from tfpretrain.layers import ScalarMix

            self.scalar_mix = ScalarMix(encoder.num_layers + 1, dtype=self.dtype_policy, name="scalar_mix")

    def build(self, input_shape):
        if self.combination == "scalar_mix":
            self.scalar_mix.build((None, self.encoder.num_layers + 1, None, self.encoder.hidden_dim))
        self.built = True

    def _combine(self, hidden_states):
        if self.combination == "last":
            return hidden_states[-1]
        if self.combination == "second_to_last":
            return hidden_states[-2]
        if self.combination == "sum_last_four":
            return ops.sum(ops.stack(hidden_states[-4:], axis=0), axis=0)
        if self.combination == "concat_last_four":
            return ops.concatenate(hidden_states[-4:], axis=-1)
        return self.scalar_mix(ops.stack(hidden_states, axis=1))  # (batch, layers + 1, seq, hidden) -> mix

    def call(self, inputs, training=None):
        outputs = self.encoder(
            {k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")},
            training=training if self.train_encoder else False,
        )
        combined = self._combine(list(outputs["hidden_states"]))  # (batch, seq, output_dim)
        word_vectors = ops.take_along_axis(combined, ops.expand_dims(inputs["word_positions"], -1), axis=1)
        word_mask = ops.cast(ops.expand_dims(inputs["word_mask"], -1), word_vectors.dtype)
        word_vectors = word_vectors * word_mask  # (batch, words, output_dim)
        last = outputs["sequence_output"]
        if self.sentence_pooling == "cls":
            sentence = last[:, 0, :]
        else:
            weights = ops.cast(ops.expand_dims(inputs["padding_mask"], -1), last.dtype)
            sentence = ops.sum(last * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return {"word_vectors": word_vectors, "sentence_vector": sentence}

    def compute_output_spec(self, inputs, training=None):
        batch, words = inputs["word_positions"].shape
        return {
            "word_vectors": keras.KerasTensor((batch, words, self.output_dim), dtype=self.compute_dtype),
            "sentence_vector": keras.KerasTensor((batch, self.encoder.hidden_dim), dtype=self.compute_dtype),
        }

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "combination": self.combination,
            "sentence_pooling": self.sentence_pooling,
            "train_encoder": self.train_encoder,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return from_encoder_config(cls, config)


def from_encoder_config(cls, config):
    """``cls(**config)`` with ``config["encoder"]`` deserialised: ``from_config`` of a layer that wraps an encoder."""
    config = dict(config)
    config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
    return cls(**config)


def load_embedder(model_dir, combination="last", sentence_pooling="mean", sequence_length=SEQUENCE_LENGTH):
    """The `BertEmbedder` and tokenizer of a BERT directory, checked against ``sequence_length``.

    Args:
        model_dir: a BERT directory (`tfpretrain.models.bert.load_bert`).
        combination, sentence_pooling: see `BertEmbedder`.
        sequence_length: int, default 128. Word pieces per text; at most the
            encoder's ``max_sequence_length``.

    Returns:
        ``(embedder, tokenizer)``.
    """
    from tfpretrain.models.bert.saving import load_bert

    encoder, tokenizer = load_bert(model_dir)
    if sequence_length > encoder.max_sequence_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds the encoder's maximum "
                         f"({encoder.max_sequence_length})")
    return BertEmbedder(encoder, combination=combination, sentence_pooling=sentence_pooling), tokenizer


def embed_batch(embedder, tokenizer, texts, sequence_length=SEQUENCE_LENGTH):
    """Embeds a batch of raw strings ``(batch,)`` in the graph (``tfpretrain embed`` and the exported embedder).

    Args:
        embedder: a `BertEmbedder`.
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        texts: string tensor (batch,).
        sequence_length: int, default 128. Word pieces per text, ``[CLS]`` and ``[SEP]`` included.

    Returns:
        dict of ``words``, ``starts``, ``ends`` (ragged ``(batch, words)``: the
        words of `tfpretrain.text.tokenize_with_offsets` and their byte
        offsets), ``word_vectors`` (batch, kept words, dim: as many columns as
        the batch's most words that fit in ``sequence_length``, at least 1;
        zero beyond a text's kept words), ``sentence_vector`` (batch, hidden)
        and ``num_words_truncated`` (batch,): the words of each text cut by
        truncation, its last ones. The encoder runs on the batch's longest
        text (`tfpretrain.models.bert.preprocessor.cut_padding`).
    """
    from tfpretrain.models.bert.preprocessor import cut_padding, encode_words
    from tfpretrain.text.tokenizer import word_offsets, words_at

    starts, ends = word_offsets(texts)  # (batch, words)
    words = words_at(texts, starts, ends)
    packed, num_words_truncated = encode_words(tokenizer, words, sequence_length)
    outputs = embedder(cut_padding(packed, sequence_length))
    return {"words": words, "starts": starts, "ends": ends, "word_vectors": outputs["word_vectors"],
            "sentence_vector": outputs["sentence_vector"], "num_words_truncated": num_words_truncated}
