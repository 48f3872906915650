"""BERT's masked-language-model pretraining head on a `BertEncoder`."""

import warnings

import keras
import tensorflow as tf
from keras import ops

from tfpretrain.layers.transformer_encoder_block import bert_kernel_initializer
from tfpretrain.models.bert.encoder import ENCODER_INPUTS
from tfpretrain.training.perplexity import LanguageModelTraining, Perplexity


@keras.saving.register_keras_serializable(package="tfpretrain")
class BertMaskedLM(LanguageModelTraining, keras.Model):
    """Predicts the original word pieces at the masked positions of a sequence.

    ``encoder`` -> gather the last hidden states at ``mask_positions`` ->
    ``Dense(hidden_dim, gelu)`` -> ``LayerNorm`` -> a projection onto the
    vocabulary tied to the encoder's token embedding matrix, plus an output
    bias. The hidden states are gathered *before* the projection, so only
    ``max_selections`` rows per sequence (not every position) are multiplied
    by the ``(hidden_dim, vocabulary_size)`` matrix. The logits are float32
    even under ``mixed_float16``.

    `compile` defaults to what pretraining needs: a sparse categorical
    cross-entropy from the logits averaged over the real selections (the
    ``sample_weight`` is the masker's ``mask_weights``, 0 for padding
    selections), metrics ``accuracy`` (weighted masked-token accuracy) and
    ``perplexity`` (exp of the weighted mean negative log-likelihood), and
    ``jit_compile=True``: the whole train step has static shapes and no string
    ops, so XLA compiles it, also on a CPU (except under a multi-replica
    strategy over logical CPUs, which XLA cannot compile: there `compile`
    warns and runs without XLA).

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder`. Its weights are shared.
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: a dict of ``token_ids``, ``segment_ids``, ``padding_mask``
    (batch, sequence_length) and ``mask_positions`` (batch, max_selections)
    int32, as `tfpretrain.models.bert.masked_lm_dataset` yields them
    (with targets ``mask_ids`` and sample weights ``mask_weights``).

    Outputs: logits (batch, max_selections, vocabulary_size), float32.

    Example:

    >>> encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **BERT_PRESETS["mini"])
    >>> model = BertMaskedLM(encoder)
    >>> model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    >>> model.fit(masked_lm_dataset(paths, tokenizer, masker), steps_per_epoch=1000)
    """

    def __init__(self, encoder, **kwargs):
        kwargs.setdefault("dtype", encoder.dtype_policy)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.mlm_dense = keras.layers.Dense(
            encoder.hidden_dim, activation="gelu", kernel_initializer=bert_kernel_initializer(),
            dtype=self.dtype_policy, name="mlm_dense",
        )
        self.mlm_layer_norm = keras.layers.LayerNormalization(
            epsilon=encoder.layer_norm_epsilon, dtype=self.dtype_policy, name="mlm_layer_norm",
        )
        self.output_bias = self.add_weight(
            name="output_bias", shape=(encoder.vocabulary_size,), initializer="zeros", dtype="float32",
            autocast=False,  # added to the float32 logits as it is, under a mixed policy too
        )
        self.perplexity = Perplexity(name="perplexity")

    @property
    def trainable_weights(self):
        # Masked LM alone gives the pooler no gradient (BERT trained it with next-sentence prediction).
        pooler = {id(v) for v in self.encoder.pooler.weights}
        return [v for v in super().trainable_weights if id(v) not in pooler]

    def build(self, input_shape):
        hidden = (None, None, self.encoder.hidden_dim)
        self.mlm_dense.build(hidden)
        self.mlm_layer_norm.build(hidden)
        self.built = True

    def call(self, inputs, training=None):
        outputs = self.encoder({key: inputs[key] for key in ENCODER_INPUTS}, training=training)
        return self.masked_logits(outputs["sequence_output"], inputs["mask_positions"])

    def masked_logits(self, sequence_output, mask_positions):
        """Logits (batch, max_selections, vocabulary_size) at ``mask_positions`` of ``sequence_output``."""
        positions = ops.expand_dims(ops.cast(mask_positions, "int32"), -1)  # (batch, max_selections, 1)
        x = ops.take_along_axis(sequence_output, positions, axis=1)  # (batch, max_selections, hidden)
        x = self.mlm_layer_norm(self.mlm_dense(x))
        logits = self.encoder.token_embedding(x, reverse=True)  # (batch, max_selections, vocabulary)
        return ops.cast(logits, "float32") + self.output_bias

    def compile(self, optimizer="adam", jit_compile=True, **kwargs):
        """`keras.Model.compile` with the masked-LM loss, ``accuracy`` and XLA by default (see the class docstring)."""
        replicas = self.distribute_strategy.num_replicas_in_sync
        if jit_compile and replicas > 1 and not tf.config.list_logical_devices("GPU"):
            # XLA cannot compile a step whose replicas' variables live on different logical CPUs
            # (https://www.tensorflow.org/xla/known_issues#tfvariable_on_a_different_device).
            warnings.warn("BertMaskedLM: jit_compile=True does not work with a multi-replica strategy on CPUs; "
                          "compiling without XLA", stacklevel=2)
            jit_compile = False
        super().compile(optimizer=optimizer, jit_compile=jit_compile, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
