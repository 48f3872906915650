"""The TagLM / ELMo sequence tagger: CharCNN + word embedding -> BiLSTMs (+ frozen BiLM) -> CRF."""

import keras
from keras import ops

from tfpretrain.layers.char_cnn import CharCNN
from tfpretrain.layers.crf import CRF
from tfpretrain.layers.scalar_mix import ScalarMix
from tfpretrain.text.characters import NUM_CHARS

LANGUAGE_MODEL_MODES = ("top", "scalar_mix")
INJECTIONS = ("input", "top")  # where encoder features join: ELMo (the token representation) or TagLM (after birnn_1)


def _crf_layers(model):
    """The `CRF` layers of ``model``, those of nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True) if isinstance(layer, CRF)]


@keras.saving.register_keras_serializable(package="tfpretrain")
class CRFTagger(keras.Model):
    """A functional model whose outputs are ``{"tag_ids", "potentials"}`` from a `CRF` layer.

    Training minimises the CRF's negative log-likelihood of the gold tag ids
    (``y``: int ``(batch, time)``, -1 at padded steps), averaged over the rows
    that have a gold tag; compiled metrics see the
    Viterbi-decoded ``tag_ids``. Use it for any functional graph that ends in a
    CRF; `build_tagger` builds the standard one.

    Example:

    >>> word_ids = keras.Input((None,), dtype="int32", name="word_ids")
    >>> x = keras.layers.Embedding(100, 16, mask_zero=True)(word_ids)
    >>> potentials = keras.layers.Dense(5)(x)
    >>> tags = tfpretrain.layers.CRF(5)(potentials)
    >>> model = tfpretrain.models.CRFTagger(word_ids, {"tag_ids": tags, "potentials": potentials})
    >>> model.compile(optimizer="adam")
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        super().__init__(inputs, outputs, name=name, **kwargs)
        crf_layers = _crf_layers(self)
        if len(crf_layers) != 1 or not isinstance(self.output, dict):
            raise ValueError(
                "CRFTagger needs exactly one CRF layer and dict outputs {'tag_ids', 'potentials'}; "
                f"got {len(crf_layers)} CRF layers and outputs of type {type(self.output).__name__}."
            )
        self.crf = crf_layers[0]

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        tag_ids = ops.cast(y, "int32")
        mask = ops.greater_equal(tag_ids, 0)
        nll = -self.crf.log_likelihood(y_pred["potentials"], tag_ids, mask)  # (batch,), 0 for an empty row
        if sample_weight is not None:
            nll = nll * ops.cast(sample_weight, nll.dtype)
        # The mean over the sentences: rows without a gold tag (those that fill a static-shape batch) don't count.
        sentences = ops.sum(ops.cast(ops.any(mask, axis=1), nll.dtype))
        loss = ops.sum(nll) / ops.maximum(sentences, 1.0)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred["tag_ids"], sample_weight)


def build_tagger(
    word_vocabulary_size,
    tags,
    word_embedding_dim=64,
    char_embedding_dim=16,
    char_filters=((1, 16), (2, 32), (3, 64), (4, 64)),
    char_output_dim=64,
    rnn_units=64,
    dropout=0.25,
    language_model=None,
    language_model_mode="top",
    constraint=None,
    features=None,
    inject="input",
    use_words=True,
    use_chars=True,
    features_dim=256,
    name="tagger",
):
    """Builds the tagger of Peters et al. (2017, TagLM) as a `CRFTagger`.

    Token representation = `CharCNN` (+) word embedding -> first BiLSTM ->
    concatenate the frozen language model's top layer (``"top"``, TagLM) ->
    second BiLSTM -> Dense -> `CRF`. With ``language_model_mode="scalar_mix"``
    a learned `ScalarMix` of all LM layers joins the token representation at
    the input instead (ELMo). Without ``language_model`` it is the baseline.

    Args:
        word_vocabulary_size: int. Word ids, padding (0) and OOV (1) included.
        tags: list of str. The tag set.
        language_model: a trained `tfpretrain.models.BiLMLanguageModel` or None.
            Its layers are frozen and shared with the tagger.
        language_model_mode: "top" or "scalar_mix".
        constraint: None, "BIO" or "IOBES": forbid invalid tag transitions.
        features: None, or ``(num_stacked, dim, combination)`` of a pretrained
            encoder's word features (`tfpretrain.models.tagger.features.EncoderFeatures`):
            the model takes them as a third input ``"features"`` (batch, time,
            num_stacked, dim) and combines them (`combine_layers`: concatenated,
            or a learned scalar mix). `attach_encoder` puts the encoder in front.
        inject: "input" (the features join the token representation, as ELMo
            and flair do) or "top" (after the first BiLSTM, as TagLM).
        features_dim: int or None, default 256. The combined features are
            projected to this many dimensions (one linear layer over every word
            at once) before they join; None keeps them whole. Four MiniLM
            layers are 1,536 wide, and an LSTM reads its input at every step,
            so this makes training several times faster.
        use_words, use_chars: bool. Whether the token representation has the
            word embedding and the `CharCNN` (at least one of them, or features
            at the input, must remain).

    Inputs: ``{"word_ids": (batch, time), "char_ids": (batch, time, chars)}``
    from a `tfpretrain.models.tagger.TaggingPreprocessor` (word id 0 marks
    padding, whatever the model reads), plus ``"features"`` with ``features``.

    Example:

    >>> model = build_tagger(preprocessor.word_vocabulary_size, preprocessor.tags)
    >>> model.compile(optimizer="adam", metrics=[tfpretrain.training.TokenAccuracy()])
    >>> model.fit(tfpretrain.models.tagger.tagging_dataset(train, preprocessor), epochs=5)

    References:
        Peters et al. (2017). Semi-supervised sequence tagging with bidirectional language models.
        Peters et al. (2018). Deep contextualized word representations.
    """
    if language_model is not None and language_model_mode not in LANGUAGE_MODEL_MODES:
        raise ValueError(
            f"language_model_mode must be one of {LANGUAGE_MODEL_MODES}, got {language_model_mode!r}"
        )
    if inject not in INJECTIONS:
        raise ValueError(f"inject must be one of {INJECTIONS}, got {inject!r}")
    if features is not None and language_model is not None:
        raise ValueError("give a tagger either a BiLM (language_model) or encoder features, not both")
    if not (use_words or use_chars or (features is not None and inject == "input")):
        raise ValueError("the tagger needs a token representation: word embeddings, the character CNN or "
                         "encoder features at the input")
    word_ids = keras.Input((None,), dtype="int32", name="word_ids")
    char_ids = keras.Input((None, None), dtype="int32", name="char_ids")
    inputs = {"word_ids": word_ids, "char_ids": char_ids}
    token_parts = []
    if use_words:
        token_parts.append(keras.layers.Embedding(
            word_vocabulary_size, word_embedding_dim, mask_zero=True, name="word_embedding"
        )(word_ids))  # (batch, time, word_embedding_dim)
    if use_chars:
        token_parts.append(CharCNN(
            num_chars=NUM_CHARS, char_embedding_dim=char_embedding_dim, filters=char_filters,
            num_highway=1, output_dim=char_output_dim, name="char_cnn",
        )(char_ids))  # (batch, time, char_output_dim)
    encoded = None
    if features is not None:
        from tfpretrain.models.tagger.features import combine_layers

        num_stacked, dim, combination = features
        inputs["features"] = keras.Input((None, int(num_stacked), int(dim)), dtype="float32", name="features")
        encoded = combine_layers(inputs["features"], combination)  # (batch, time, K * dim)
        if features_dim:
            encoded = keras.layers.Dense(int(features_dim), name="features_projection")(encoded)
        if inject == "input":
            token_parts.append(encoded)
    lm_states = None
    if language_model is not None:
        lm_states = language_model.bilm(language_model.char_cnn(char_ids))  # (batch, L+1, time, 2H)
        language_model.trainable = False  # frozen once built, so that every variable exists
        if language_model_mode == "scalar_mix":
            token_parts.append(ScalarMix(language_model.num_layers + 1, name="scalar_mix")(lm_states))
    x = (keras.layers.Concatenate(name="token_representation")(token_parts) if len(token_parts) > 1
         else token_parts[0])
    x = keras.layers.Dropout(dropout)(x)
    # The padding mask is passed explicitly: Concatenate ORs its inputs' masks, and the language
    # model's states carry none, so an implicit mask would be all True and the backward LSTMs
    # would read the padding (answers would then depend on what else is in the batch).
    mask = ops.not_equal(word_ids, 0)  # (batch, time)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(rnn_units, return_sequences=True), name="birnn_1"
    )(x, mask=mask)  # (batch, time, 2 * rnn_units)
    if lm_states is not None and language_model_mode == "top":
        x = keras.layers.Concatenate(name="with_language_model")([x, lm_states[:, -1]])
    if encoded is not None and inject == "top":
        x = keras.layers.Concatenate(name="with_encoder")([x, encoded])
    x = keras.layers.Dropout(dropout)(x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(rnn_units, return_sequences=True), name="birnn_2"
    )(x, mask=mask)
    potentials = keras.layers.Dense(len(tags), name="potentials")(x)  # (batch, time, num_tags)
    tag_ids = CRF(len(tags), tags=list(tags), constraint=constraint, name="crf")(potentials)
    return CRFTagger(inputs=inputs, outputs={"tag_ids": tag_ids, "potentials": potentials}, name=name)


def attach_encoder(head, encoder_features, name="feature_tagger"):
    """The whole feature tagger: ``encoder_features`` in front of ``head`` (a `build_tagger` model with ``features``).

    The result reads what an `EncoderTaggingPreprocessor` gives (word and
    character ids plus the encoder's packed pieces), runs the encoder and
    ``head`` (whose layers it shares: training the head on cached features
    trains this model) and is saved, evaluated and exported like any
    `CRFTagger`.

    Args:
        head: a `CRFTagger` with a ``"features"`` input.
        encoder_features: a `tfpretrain.models.tagger.features.EncoderFeatures`.

    Example:

    >>> head = build_tagger(pre.word_vocabulary_size, pre.tags, features=(4, 384, "concat_last_four"))
    >>> model = attach_encoder(head, EncoderFeatures(encoder, "concat_last_four"))
    """
    from tfpretrain.models.bert.preprocessor import PIECE_INPUTS, WORD_INPUTS

    if "features" not in head.input:
        raise ValueError("attach_encoder needs a head built with build_tagger(..., features=...)")
    inputs = {"word_ids": keras.Input((None,), dtype="int32", name="word_ids"),
              "char_ids": keras.Input((None, None), dtype="int32", name="char_ids")}
    for key in PIECE_INPUTS + WORD_INPUTS:
        inputs[key] = keras.Input((None,), dtype="int32", name=key)
    features = encoder_features({key: value for key, value in inputs.items() if key != "char_ids"})
    outputs = head({"word_ids": inputs["word_ids"], "char_ids": inputs["char_ids"], "features": features})
    return CRFTagger(inputs=inputs, outputs=outputs, name=name)
