"""Perplexity: exp of the mean negative log-likelihood per token, and the language models' shared training defaults."""

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="tfpretrain")
class Perplexity(keras.metrics.Metric):
    """Accumulates summed token NLL and token counts; ``result() = exp(sum / count)``.

    Example:

    >>> p = tfpretrain.training.Perplexity()
    >>> p.update_state(nll_sum=2.0 * 10, num_tokens=10)
    >>> float(p.result())  # exp(2)
    7.389...
    """

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float32", name="count")

    def update_state(self, nll_sum, num_tokens):
        self.total.assign_add(ops.cast(nll_sum, "float32"))
        self.count.assign_add(ops.cast(num_tokens, "float32"))

    def result(self):
        return ops.exp(ops.divide_no_nan(self.total, self.count))


class LanguageModelTraining:
    """Mixin for `keras.Model` language models: loss and ``accuracy`` defaults, ``perplexity`` from the loss.

    ``compile()`` defaults to sparse cross-entropy from logits averaged over
    the sample weights (the real targets) and a weighted ``accuracy``;
    ``compute_loss`` feeds the model's ``self.perplexity`` (a `Perplexity`)
    from that mean negative log-likelihood rather than a second log-softmax
    over the (batch, positions, vocabulary) logits. Losses the model adds in
    ``call`` (``self.losses``, e.g. activation regularisation) count in the
    training loss but not in the perplexity. Keras divides each replica's
    compiled loss by the number of replicas (their gradients are summed), so
    the replica's own mean is restored first.

    Used by `BertMaskedLM`, `GptCausalLM` and `AwdLstmLanguageModel`; the
    model sets ``self.perplexity = Perplexity()`` in its constructor.
    """

    def compile(self, optimizer="adam", loss="auto", weighted_metrics="auto", **kwargs):
        """`keras.Model.compile` with the language-model loss and ``accuracy`` by default."""
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        nll = ops.cast(loss, "float32")
        if self.losses:
            nll = nll - ops.sum([ops.cast(extra, "float32") for extra in self.losses])
        nll = nll * tf.distribute.get_strategy().num_replicas_in_sync
        weights = ops.ones(ops.shape(y), "float32") if sample_weight is None else ops.cast(sample_weight, "float32")
        total = ops.sum(weights)
        self.perplexity.update_state(nll * total, total)
        return loss
