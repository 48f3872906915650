"""Perplexity: exp of the mean negative log-likelihood per token."""

import keras
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
