"""AWD-LSTM and ULMFiT classifier directories on disk, and carrying weights over to a new vocabulary.

Files: ``awd_lstm.json`` (``{"encoder": AwdLstmEncoder arguments,
"language_model": AwdLstmLanguageModel arguments or null}``),
``awd_lstm.weights.h5`` (the language model's weights, or the encoder's),
``vocab.txt`` (the `tfpretrain.models.ulmfit.WordTokenizer` vocabulary, one
word per line, word i = id i + 2) and ``config.json`` (``lowercase`` and
whatever the caller adds: corpus, training settings, results). A classifier
directory (`save_classifier`) adds ``head.weights.npz`` (the head's weights,
shape-checked on loading) and holds ``labels``, ``head_hidden_dim``,
``head_dropout`` and ``sequence_length`` in its ``config.json``.

Example:

>>> model, tokenizer, config = load_classifier("runs/ulmfit/classifier")
>>> config["labels"]
['0', '1']
"""

import os

import numpy as np

from tfpretrain.models.model_dir import AWD_LSTM_CONFIG_FILE as MODEL_CONFIG_FILE
from tfpretrain.models.model_dir import (
    AWD_LSTM_FILES,
    CONFIG_FILE,
    HEAD_WEIGHTS_FILE,
    VOCABULARY_FILE,
    load_head_weights,
    read_json,
    save_head_weights,
    write_json,
)
from tfpretrain.models.model_dir import AWD_LSTM_WEIGHTS_FILE as WEIGHTS_FILE
from tfpretrain.models.ulmfit.awd_lstm import ENCODER_DROPOUTS, AwdLstmEncoder, AwdLstmLanguageModel
from tfpretrain.models.ulmfit.classifier import build_ulmfit_classifier, layer_groups

_NUM_SPECIAL_IDS = 2  # 0 padding, 1 [UNK]: rows that precede the vocabulary's words


def _vocabulary_list(vocabulary):
    return list(vocabulary.vocabulary) if hasattr(vocabulary, "vocabulary") else list(vocabulary)


def _build(model):
    """Creates a subclassed language model's variables (a functional encoder has them already)."""
    if isinstance(model, AwdLstmLanguageModel) and not model.output_bias.built:
        model(np.ones((1, 1), "int32"))
    return model


def is_awd_lstm_dir(directory):
    """Whether ``directory`` holds an AWD-LSTM written by `save_awd_lstm` (its ``awd_lstm.json``)."""
    return os.path.isfile(os.path.join(directory, MODEL_CONFIG_FILE))


def save_awd_lstm(directory, model, vocabulary, config=None):
    """Writes an `AwdLstmLanguageModel` or `AwdLstmEncoder` with its vocabulary as an AWD-LSTM directory.

    Args:
        directory: str. Created if missing; existing AWD-LSTM files are overwritten.
        model: an `AwdLstmLanguageModel` (encoder, output bias and head
            settings are saved) or an `AwdLstmEncoder`.
        vocabulary: a `tfpretrain.models.ulmfit.WordTokenizer` (its ``lowercase`` is
            saved too) or its list of words.
        config: optional JSON-serialisable dict stored as ``config.json``
            (e.g. the corpus and training settings). ``lowercase`` defaults to
            the tokenizer's, else True.

    Example:

    >>> save_awd_lstm("runs/general_lm", lm, tokenizer, {"corpus": "ewt train"})
    >>> lm, tokenizer, config = load_awd_lstm("runs/general_lm")
    """
    from tfpretrain.text.vocabulary import save_vocabulary

    if isinstance(model, AwdLstmLanguageModel):
        encoder, head = model.encoder, model.head_config()
    elif isinstance(model, AwdLstmEncoder):
        encoder, head = model, None
    else:
        raise TypeError(f"save_awd_lstm saves an AwdLstmLanguageModel or AwdLstmEncoder, got {type(model).__name__}")
    words = _vocabulary_list(vocabulary)
    if len(words) + _NUM_SPECIAL_IDS != encoder.vocabulary_size:
        raise ValueError(
            f"the vocabulary has {len(words)} words (+ padding and [UNK] = {len(words) + _NUM_SPECIAL_IDS} ids) "
            f"but the encoder embeds {encoder.vocabulary_size}; save the vocabulary the model was built for"
        )
    config = dict(config or {})
    config.setdefault("lowercase", bool(getattr(vocabulary, "lowercase", True)))
    write_json(directory, MODEL_CONFIG_FILE, {"encoder": encoder.constructor_config(), "language_model": head})
    _build(model).save_weights(os.path.join(directory, WEIGHTS_FILE))
    save_vocabulary(words, os.path.join(directory, VOCABULARY_FILE))
    write_json(directory, CONFIG_FILE, config)


def load_awd_lstm(directory, dtype=None, **overrides):
    """Reads an AWD-LSTM directory written by `save_awd_lstm`.

    Args:
        directory: str.
        dtype: optional dtype policy, e.g. "mixed_float16"; defaults to the
            global policy. The weights are float32 either way.
        **overrides: new dropout settings, e.g. ``**CLASSIFIER_DROPOUTS`` or
            ``output_dropout=0.2``: the encoder's four dropouts and the
            language model's arguments (only for a saved language model).

    Returns:
        ``(model, tokenizer, config)``: the `AwdLstmLanguageModel` (or
        `AwdLstmEncoder`, as saved) with its weights, a
        `tfpretrain.models.ulmfit.WordTokenizer` over the saved vocabulary with the
        saved ``lowercase``, and the ``config.json`` dict. Call it under a
        ``tf.distribute`` strategy's scope to place the variables there.

    Raises:
        FileNotFoundError: a missing directory or file. ValueError: files
            that do not fit together, or an unknown override.
    """
    from tfpretrain.models.ulmfit.preprocessor import WordTokenizer

    if not os.path.isdir(directory):
        raise FileNotFoundError(f"AWD-LSTM directory {directory} does not exist")
    missing = [name for name in AWD_LSTM_FILES if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not an AWD-LSTM directory: missing {', '.join(missing)} (expected "
            f"{', '.join(AWD_LSTM_FILES)}; write one with save_awd_lstm)"
        )
    saved = read_json(directory, MODEL_CONFIG_FILE)
    head = saved.get("language_model")
    allowed = set(ENCODER_DROPOUTS) | (set(head) if head else set())
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(f"load_awd_lstm cannot override {unknown}; it changes only {sorted(allowed)}")
    try:
        encoder = AwdLstmEncoder(
            **{**saved["encoder"], **{k: v for k, v in overrides.items() if k in ENCODER_DROPOUTS}}, dtype=dtype,
        )
        model = encoder
        if head is not None:
            model = AwdLstmLanguageModel(encoder, **{**head, **{k: v for k, v in overrides.items() if k in head}})
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{os.path.join(directory, MODEL_CONFIG_FILE)} does not hold AWD-LSTM arguments ({error!r})"
        ) from None
    weights_path = os.path.join(directory, WEIGHTS_FILE)
    try:
        _build(model).load_weights(weights_path)
    except ValueError as error:
        raise ValueError(f"{weights_path} does not match the model {MODEL_CONFIG_FILE} describes: {error}") from None
    config = read_json(directory, CONFIG_FILE)
    tokenizer = WordTokenizer(os.path.join(directory, VOCABULARY_FILE), lowercase=config.get("lowercase", True))
    if tokenizer.vocabulary_size() != encoder.vocabulary_size:
        raise ValueError(
            f"{os.path.join(directory, VOCABULARY_FILE)} has {len(tokenizer.vocabulary)} words "
            f"({tokenizer.vocabulary_size()} ids) but the encoder embeds {encoder.vocabulary_size} "
            f"({MODEL_CONFIG_FILE}: vocabulary_size)"
        )
    return model, tokenizer, config


def read_config(directory):
    """The ``config.json`` of an AWD-LSTM or classifier directory, or None where there is none."""
    return read_json(directory, CONFIG_FILE) if os.path.isfile(os.path.join(directory, CONFIG_FILE)) else None


def _head_layers(classifier):
    """The classifier head's layers that hold weights (the top `layer_groups` group)."""
    return [layer for layer in layer_groups(classifier)[-1] if layer.weights]


def is_classifier_dir(directory):
    """Whether ``directory`` holds a ULMFiT classifier (`save_classifier`: config.json with labels, head weights)."""
    config = read_config(directory) if os.path.isdir(directory) else None
    return bool(config) and "labels" in config and os.path.exists(os.path.join(directory, HEAD_WEIGHTS_FILE))


def save_classifier(directory, classifier, encoder, tokenizer, config):
    """Writes a ULMFiT classifier: its encoder as an AWD-LSTM directory plus ``head.weights.npz``.

    Args:
        directory: str. Created if missing.
        classifier: the `build_ulmfit_classifier` model.
        encoder: its `AwdLstmEncoder`.
        tokenizer: its `tfpretrain.models.ulmfit.WordTokenizer`.
        config: dict for ``config.json``, with ``labels``, ``head_hidden_dim``,
            ``head_dropout`` and ``sequence_length`` (`load_classifier` reads
            them); written last, so that a directory with it is finished.
    """
    save_head_weights(directory, _head_layers(classifier))
    save_awd_lstm(directory, encoder, tokenizer, config)  # config.json last: the stage is finished


def load_classifier(directory):
    """Reads a classifier directory written by `save_classifier` -> ``(model, tokenizer, config)``.

    The head's weights are checked against the model that config.json
    describes, name by name and shape by shape
    (`tfpretrain.models.model_dir.load_head_weights`).

    Example:

    >>> model, tokenizer, config = load_classifier("runs/ulmfit/classifier")
    """
    if not is_classifier_dir(directory):
        raise FileNotFoundError(f"{directory} is not a ULMFiT classifier directory (no config.json with labels); "
                                "train one with train_classifier or `tfpretrain ulmfit --stage classifier`")
    encoder, tokenizer, config = load_awd_lstm(directory)
    model = build_ulmfit_classifier(encoder, len(config["labels"]), head_hidden_dim=config["head_hidden_dim"],
                                    head_dropout=config["head_dropout"])
    load_head_weights(directory, _head_layers(model), described_by=CONFIG_FILE)
    return model, tokenizer, config


def _expand_rows(rows, old_words, new_words):
    """``rows`` (old ids, ...) -> (new ids, ...): kept words keep their row, new words get the mean row."""
    rows = np.asarray(rows)
    expected = len(old_words) + _NUM_SPECIAL_IDS
    if rows.shape[0] != expected:
        raise ValueError(
            f"the weights have {rows.shape[0]} rows but the old vocabulary has {expected} ids "
            f"({len(old_words)} words + padding and [UNK])"
        )
    old_ids = {word: i + _NUM_SPECIAL_IDS for i, word in enumerate(old_words)}
    source = np.array(
        list(range(_NUM_SPECIAL_IDS)) + [old_ids.get(word, -1) for word in new_words], dtype=np.int64
    )  # (new ids,): the old row of each new id, -1 for a word the old vocabulary lacks
    expanded = rows[np.maximum(source, 0)].copy()
    expanded[source < 0] = rows.mean(axis=0)
    return expanded


def expand_vocabulary(model_or_weights, old_vocabulary, new_vocabulary):
    """Moves embedding rows (and the LM's tied output bias) from one vocabulary to another.

    A word in both vocabularies keeps its row (at its new id); a new word
    gets the mean of all old rows (ULMFiT's choice for target-task words the
    general corpus lacked); words only in the old vocabulary are dropped.
    Padding (id 0) and ``[UNK]`` (id 1) keep their rows. The LSTM weights are
    copied unchanged.

    Args:
        model_or_weights: an `AwdLstmLanguageModel` or `AwdLstmEncoder`
            (a new one is returned, same settings, new vocabulary size), a
            numpy array with one row per old id, or a dict of such arrays.
        old_vocabulary: the model's `WordTokenizer`, or its list of words.
        new_vocabulary: the new `WordTokenizer` or list of words.

    Returns:
        the same kind of object, over ``len(new_vocabulary) + 2`` ids.

    Example:

    >>> domain = build_word_vocabulary(["sst2_train.txt"])
    >>> lm = expand_vocabulary(general_lm, general_tokenizer, domain)

    References:
        Howard & Ruder (2018). Universal Language Model Fine-tuning for Text
        Classification (the fastai implementation's ``match_embeds``).
    """
    old_words, new_words = _vocabulary_list(old_vocabulary), _vocabulary_list(new_vocabulary)
    if isinstance(model_or_weights, dict):
        return {name: _expand_rows(rows, old_words, new_words) for name, rows in model_or_weights.items()}
    if isinstance(model_or_weights, np.ndarray):
        return _expand_rows(model_or_weights, old_words, new_words)
    if not isinstance(model_or_weights, (AwdLstmEncoder, AwdLstmLanguageModel)):
        raise TypeError(
            "expand_vocabulary takes an AwdLstmLanguageModel, an AwdLstmEncoder, a numpy array or a dict of arrays; "
            f"got {type(model_or_weights).__name__}"
        )
    model = _build(model_or_weights)
    old_encoder = model.encoder if isinstance(model, AwdLstmLanguageModel) else model
    encoder = AwdLstmEncoder(
        **{**old_encoder.constructor_config(), "vocabulary_size": len(new_words) + _NUM_SPECIAL_IDS},
        dtype=old_encoder.dtype_policy,
    )
    encoder.token_embedding.embeddings.assign(
        _expand_rows(old_encoder.token_embedding.embeddings.numpy(), old_words, new_words)
    )
    for old, new in zip(old_encoder.lstm_layers, encoder.lstm_layers):
        new.set_weights(old.get_weights())
    if isinstance(model, AwdLstmEncoder):
        return encoder
    language_model = _build(AwdLstmLanguageModel(encoder, **model.head_config()))
    language_model.output_bias.bias.assign(_expand_rows(model.output_bias.bias.numpy(), old_words, new_words))
    return language_model
