"""An LSTM with DropConnect on its recurrent kernel (AWD-LSTM's weight dropping)."""

import contextlib

import keras
from keras import ops

from tfpretrain.layers.hash_dropout import check_rate, scaled_keep_mask


@contextlib.contextmanager
def _recurrent_kernel_replaced(cell, kernel):
    """Makes ``cell.recurrent_kernel`` read ``kernel`` inside the block, then restores the variable.

    ``object.__setattr__`` bypasses Keras' and TensorFlow's attribute tracking:
    the variable stays the cell's tracked weight throughout (saving, optimiser
    and ``trainable_weights`` never see the tensor). The variable put back is
    taken from the cell's weights, not from the attribute, so the attribute
    always ends up holding the variable.
    """
    variable = next(v for v in cell.weights if v.name == "recurrent_kernel")
    object.__setattr__(cell, "recurrent_kernel", kernel)
    try:
        yield
    finally:
        object.__setattr__(cell, "recurrent_kernel", variable)


@keras.saving.register_keras_serializable(package="tfpretrain")
class WeightDropLSTM(keras.layers.LSTM):
    """`keras.layers.LSTM` whose hidden-to-hidden weights are dropped (DropConnect) in training.

    On every training call one mask is drawn over the recurrent kernel
    ``(units, 4 * units)`` and the dropped, rescaled kernel ``U * m / (1 -
    weight_dropout)`` is used at every time step of every sequence of the
    batch; the input kernel and bias are not dropped. Gradients flow to the
    kept entries of ``U``. At inference the layer is a plain LSTM.

    The dropped kernel is computed once per call and handed to Keras' own LSTM
    loop, so the layer keeps whatever implementation `keras.layers.LSTM`
    picks: the fused cuDNN kernel on a GPU (with the default activations and
    ``use_cudnn="auto"``), the while-loop (XLA-compilable) on a CPU. Unlike
    the LSTM's ``recurrent_dropout`` (which masks the hidden state and rules
    out cuDNN), weight dropping costs one elementwise product per batch.

    Args:
        units: int. Hidden size.
        weight_dropout: float in [0, 1), default 0. Fraction of the recurrent
            kernel's entries dropped per training call.
        seed: int or None. Seed of the DropConnect masks (and of the LSTM's
            own ``dropout``, if used).
        **kwargs: any other `keras.layers.LSTM` argument (``return_sequences``,
            ``dtype``, ``name``, initialisers, ...).

    Masking: as `keras.layers.LSTM` (masked steps keep the previous state).

    Example:

    >>> lstm = tfpretrain.layers.WeightDropLSTM(64, weight_dropout=0.5, return_sequences=True)
    >>> lstm(np.random.rand(2, 7, 32).astype("float32"), training=True).shape  # (batch, time, units)
    TensorShape([2, 7, 64])

    References:
        Wan et al. (2013). Regularization of Neural Networks using DropConnect.
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models.
    """

    def __init__(self, units, weight_dropout=0.0, seed=None, **kwargs):
        super().__init__(units, seed=seed, **kwargs)
        self.weight_dropout = check_rate("WeightDropLSTM", "weight_dropout", weight_dropout)
        self.seed = seed
        self.weight_seed_generator = keras.random.SeedGenerator(seed) if self.weight_dropout > 0 else None

    def dropped_recurrent_kernel(self):
        """The recurrent kernel with a fresh DropConnect mask, in the compute dtype: ``(units, 4 * units)``."""
        kernel = ops.convert_to_tensor(self.cell.recurrent_kernel)  # (units, 4 * units)
        if self.weight_dropout == 0.0:
            return ops.cast(kernel, self.compute_dtype)
        mask = scaled_keep_mask(ops.shape(kernel), self.weight_dropout, self.weight_seed_generator.next(), kernel.dtype)
        return ops.cast(kernel * mask, self.compute_dtype)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if not training or self.weight_dropout == 0.0:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        with _recurrent_kernel_replaced(self.cell, self.dropped_recurrent_kernel()):
            return super().inner_loop(sequences, initial_state, mask, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(weight_dropout=self.weight_dropout, seed=self.seed)
        return config
