"""The AWD-LSTM encoder and its language model with a tied output embedding."""

import keras
from keras import ops

from tfpretrain.layers.locked_dropout import LockedDropout
from tfpretrain.layers.weight_drop_lstm import WeightDropLSTM
from tfpretrain.layers.word_dropout_embedding import WordDropoutEmbedding
from tfpretrain.training.perplexity import LanguageModelTraining, Perplexity
from tfpretrain.models.backbone_config import BackboneConfig

ENCODER_DROPOUTS = ("embedding_dropout", "input_dropout", "hidden_dropout", "weight_dropout")


@keras.saving.register_keras_serializable(package="tfpretrain")
class AwdLstmEncoder(BackboneConfig, keras.Model):
    """The AWD-LSTM as a functional `keras.Model`: word ids -> the top LSTM layer's states.

    ``token_ids`` -> `tfpretrain.layers.WordDropoutEmbedding` (embedding
    dropout: whole words dropped) -> `tfpretrain.layers.LockedDropout`
    (``input_dropout``) -> ``num_layers`` `tfpretrain.layers.WeightDropLSTM`
    (DropConnect on the recurrent kernels) with locked dropout
    (``hidden_dropout``) between them. The last LSTM has ``embedding_dim``
    units so that a language model can tie its output projection to the
    embedding. All dropouts are active only in training.

    Args:
        vocabulary_size: int. Number of word ids (padding 0 and ``[UNK]`` 1
            included: ``WordTokenizer.vocabulary_size()``).
        embedding_dim: int, default 400. Embedding size, and size of the last LSTM.
        hidden_dim: int, default 1150. Size of the other LSTMs.
        num_layers: int, default 3. Number of LSTM layers (at least 1).
        embedding_dropout: float, default 0.02. Fraction of word types dropped per batch.
        input_dropout: float, default 0.25. Locked dropout on the embeddings.
        hidden_dropout: float, default 0.15. Locked dropout between LSTM layers.
        weight_dropout: float, default 0.2. DropConnect on each LSTM's recurrent kernel.
        dtype: optional dtype policy, e.g. "mixed_float16"; defaults to the
            global policy. The weights are float32 either way.
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: ``token_ids`` (batch, time) int32, 0 = padding (right-padded or not:
    masked steps keep the LSTM states).

    Outputs: (batch, time, embedding_dim), carrying the mask ``token_ids != 0``.

    Example:

    >>> encoder = tfpretrain.models.ulmfit.AwdLstmEncoder(
    ...     vocabulary_size=1000, **tfpretrain.models.ulmfit.AWD_LSTM_PRESETS["tiny"])
    >>> encoder(np.array([[5, 6, 7, 0]], "int32")).shape  # (batch, time, embedding_dim)
    TensorShape([1, 4, 32])

    References:
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models.
        Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
        Classification.
    """

    CONSTRUCTOR_ARGUMENTS = (
        "vocabulary_size",
        "embedding_dim",
        "hidden_dim",
        "num_layers",
        "embedding_dropout",
        "input_dropout",
        "hidden_dropout",
        "weight_dropout",
    )

    def __init__(
        self,
        vocabulary_size,
        embedding_dim=400,
        hidden_dim=1150,
        num_layers=3,
        embedding_dropout=0.02,
        input_dropout=0.25,
        hidden_dropout=0.15,
        weight_dropout=0.2,
        dtype=None,
        **kwargs,
    ):
        if int(num_layers) < 1:
            raise ValueError(f"AwdLstmEncoder needs num_layers >= 1, got {num_layers}")
        if int(vocabulary_size) < 3:
            raise ValueError(f"vocabulary_size {vocabulary_size} leaves no word besides padding and [UNK]; "
                             "pass WordTokenizer.vocabulary_size()")
        # Layers (built in the functional graph below).
        token_embedding = WordDropoutEmbedding(
            vocabulary_size, embedding_dim, dropout=embedding_dropout, mask_zero=True,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1), dtype=dtype, name="token_embedding",
        )
        input_locked_dropout = LockedDropout(input_dropout, dtype=dtype, name="input_dropout")
        lstm_layers = [
            WeightDropLSTM(
                embedding_dim if i == num_layers - 1 else hidden_dim, weight_dropout=weight_dropout,
                return_sequences=True, dtype=dtype, name=f"lstm_{i}",
            )
            for i in range(num_layers)
        ]
        hidden_locked_dropouts = [
            LockedDropout(hidden_dropout, dtype=dtype, name=f"hidden_dropout_{i}") for i in range(num_layers - 1)
        ]

        # Functional graph.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        x = input_locked_dropout(token_embedding(token_ids))  # (batch, time, embedding_dim)
        for i, lstm in enumerate(lstm_layers):
            x = lstm(x)  # (batch, time, hidden_dim), embedding_dim for the last layer
            if i < num_layers - 1:
                x = hidden_locked_dropouts[i](x)
        super().__init__(inputs=token_ids, outputs=x, dtype=dtype, **kwargs)

        self.keep_constructor_arguments(locals())
        self.token_embedding = token_embedding
        self.input_locked_dropout = input_locked_dropout
        self.lstm_layers = lstm_layers
        self.hidden_locked_dropouts = hidden_locked_dropouts


@keras.saving.register_keras_serializable(package="tfpretrain")
class OutputBias(keras.layers.Layer):
    """Adds a float32 bias ``(units,)`` to logits cast to float32 (under any policy): the language model's decoder bias.

    Its own layer so that `tfpretrain.models.ulmfit.layer_groups` can hand it
    to the head's group (the decoder matrix is the tied embedding).

    Args:
        units: int. Size of the last axis (the vocabulary).
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> bias = OutputBias(100)
    >>> bias(np.zeros((2, 5, 100), "float32")).shape
    TensorShape([2, 5, 100])
    """

    def __init__(self, units, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer="zeros", dtype="float32", autocast=False,
        )  # float32 even under a mixed policy

    def call(self, logits):
        return ops.cast(logits, "float32") + self.bias

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


@keras.saving.register_keras_serializable(package="tfpretrain")
class AwdLstmLanguageModel(LanguageModelTraining, keras.Model):
    """Next-word prediction on an `AwdLstmEncoder`, with the output projection tied to its embedding.

    encoder states -> locked dropout (``output_dropout``) -> ``states @
    embeddings^T + bias`` (Press & Wolf 2017 tying; the bias is an
    `OutputBias`) -> float32 logits (batch, time, vocabulary_size). In training
    AWD-LSTM's activation regularisation (AR, ``activation_regularization *
    mean(dropped_states^2)``) and temporal activation regularisation (TAR,
    ``temporal_activation_regularization * mean((h_t - h_{t-1})^2)`` on the
    undropped states) are added to the loss.

    `compile` defaults to what pretraining needs: sparse categorical
    cross-entropy from the logits averaged over the weighted words, metrics
    ``accuracy`` (weighted next-word accuracy) and ``perplexity`` (exp of the
    mean next-word negative log-likelihood, AR/TAR excluded; ``val_perplexity``
    in validation).

    Args:
        encoder: an `AwdLstmEncoder` (its weights are shared).
        output_dropout: float, default 0.1. Locked dropout on the top states.
        activation_regularization: float, default 2.0 (Merity et al.'s alpha).
        temporal_activation_regularization: float, default 1.0 (their beta).
        **kwargs: `keras.Model` arguments (``name``, ``trainable``).

    Inputs: ``token_ids`` (batch, time) int32 (or a dict holding them), as
    `tfpretrain.models.ulmfit.word_lm_dataset` yields with targets ``next_ids`` and
    sample weights.

    Example:

    >>> encoder = AwdLstmEncoder(tokenizer.vocabulary_size(), **AWD_LSTM_PRESETS["small"])
    >>> lm = AwdLstmLanguageModel(encoder)
    >>> lm.compile(optimizer=keras.optimizers.Adam(1e-3))
    >>> lm.fit(word_lm_dataset(paths, tokenizer), steps_per_epoch=500, epochs=3)

    References:
        Merity, Keskar & Socher (2018). Regularizing and Optimizing LSTM
        Language Models.
        Press & Wolf (2017). Using the Output Embedding to Improve Language Models.
    """

    def __init__(self, encoder, output_dropout=0.1, activation_regularization=2.0,
                 temporal_activation_regularization=1.0, **kwargs):
        kwargs.setdefault("dtype", encoder.dtype_policy)
        super().__init__(**kwargs)
        self.encoder = encoder
        self.output_dropout = float(output_dropout)
        self.activation_regularization = float(activation_regularization)
        self.temporal_activation_regularization = float(temporal_activation_regularization)
        self.output_locked_dropout = LockedDropout(output_dropout, dtype=self.dtype_policy, name="output_dropout")
        self.output_bias = OutputBias(encoder.vocabulary_size, name="output_bias")
        self.perplexity = Perplexity(name="perplexity")

    def build(self, input_shape=None):
        self.output_bias.build((None, None, self.encoder.vocabulary_size))
        self.built = True

    def call(self, token_ids, training=None):
        if isinstance(token_ids, dict):
            token_ids = token_ids["token_ids"]
        states = self.encoder(token_ids, training=training)  # (batch, time, embedding_dim)
        dropped = self.output_locked_dropout(states, training=training)
        if training:
            self._add_activation_regularization(states, dropped)
        logits = self.encoder.token_embedding(dropped, reverse=True)  # (batch, time, vocabulary)
        return self.output_bias(logits)  # float32

    def _add_activation_regularization(self, states, dropped):
        if self.activation_regularization:
            self.add_loss(self.activation_regularization * ops.mean(ops.square(ops.cast(dropped, "float32"))))
        if self.temporal_activation_regularization:
            states = ops.cast(states, "float32")
            steps = states[:, 1:] - states[:, :-1]  # (batch, time - 1, embedding_dim)
            self.add_loss(self.temporal_activation_regularization * ops.mean(ops.square(steps)))

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "output_dropout": self.output_dropout,
            "activation_regularization": self.activation_regularization,
            "temporal_activation_regularization": self.temporal_activation_regularization,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)

    def head_config(self):
        """The arguments besides the encoder (what a saved AWD-LSTM directory holds for the LM)."""
        return {
            "output_dropout": self.output_dropout,
            "activation_regularization": self.activation_regularization,
            "temporal_activation_regularization": self.temporal_activation_regularization,
        }
