"""A BERT directory on disk: ``encoder.json`` + ``encoder.weights.h5`` + ``vocab.txt`` + ``tokenizer.json``.

``encoder.json`` holds the `BertEncoder` constructor arguments, ``tokenizer.json``
``{"lowercase": bool, "strip_accents": bool or null}``; ``vocab.txt`` is
Hugging Face's format (one token per line, line i = id i). ``pretrain-bert``
adds ``pretraining.json``. ``import-hf``, ``pretrain-bert`` and the fine-tuning
commands all read and write this layout.
"""

import json
import os

ENCODER_CONFIG_FILE = "encoder.json"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"
VOCABULARY_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
BERT_FILES = (ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE, VOCABULARY_FILE, TOKENIZER_CONFIG_FILE)


def save_bert(out_dir, encoder, tokenizer):
    """Writes ``encoder`` and ``tokenizer`` as a BERT directory.

    Args:
        out_dir: str. Created if missing; existing BERT files are overwritten.
        encoder: a `BertEncoder`.
        tokenizer: a `tfpretrain.text.wordpiece.WordPieceTokenizer`, or any
            object with ``vocabulary`` (list of str), ``lowercase`` and
            ``strip_accents``.

    Example:

    >>> save_bert("runs/bert-mini", encoder, tokenizer)
    >>> encoder, tokenizer = load_bert("runs/bert-mini")
    """
    from tfpretrain.text.vocabulary import save_vocabulary

    vocabulary = list(tokenizer.vocabulary)
    if len(vocabulary) > encoder.vocabulary_size:
        raise ValueError(
            f"the tokenizer has {len(vocabulary)} tokens but the encoder embeds only {encoder.vocabulary_size}; "
            "build the encoder with vocabulary_size=tokenizer.vocabulary_size()"
        )
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, ENCODER_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump(encoder.constructor_config(), f, indent=2)
    encoder.save_weights(os.path.join(out_dir, ENCODER_WEIGHTS_FILE))
    save_vocabulary(vocabulary, os.path.join(out_dir, VOCABULARY_FILE))
    strip_accents = None if tokenizer.strip_accents is None else bool(tokenizer.strip_accents)
    with open(os.path.join(out_dir, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"lowercase": bool(tokenizer.lowercase), "strip_accents": strip_accents}, f, indent=2)


def _read_json(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def load_bert(directory, dtype=None):
    """Reads a BERT directory written by `save_bert` (or ``import-hf``).

    Args:
        directory: str. The BERT directory.
        dtype: optional dtype policy for the encoder, e.g. "mixed_float16";
            defaults to the global policy. The weights are float32 either way.

    Returns:
        ``(encoder, tokenizer)``: a `BertEncoder` with the saved weights and a
        `tfpretrain.text.wordpiece.WordPieceTokenizer` with the saved
        vocabulary and normalisation. Call it under a
        ``tf.distribute`` strategy's scope to place the variables there.
    """
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    if not os.path.isdir(directory):
        raise FileNotFoundError(f"BERT directory {directory} does not exist")
    missing = [name for name in BERT_FILES if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a BERT directory: missing {', '.join(missing)} (expected {', '.join(BERT_FILES)}; "
            "write one with `tfpretrain import-hf` or `tfpretrain pretrain-bert`)"
        )
    config = _read_json(directory, ENCODER_CONFIG_FILE)
    try:
        encoder = BertEncoder(**config, dtype=dtype)
    except TypeError as error:
        raise ValueError(
            f"{os.path.join(directory, ENCODER_CONFIG_FILE)} does not hold BertEncoder arguments ({error})"
        ) from None
    weights_path = os.path.join(directory, ENCODER_WEIGHTS_FILE)
    try:
        encoder.load_weights(weights_path)
    except ValueError as error:
        raise ValueError(
            f"{weights_path} does not match the encoder that {ENCODER_CONFIG_FILE} describes: {error}"
        ) from None
    tokenizer_config = _read_json(directory, TOKENIZER_CONFIG_FILE)
    unknown = sorted(set(tokenizer_config) - {"lowercase", "strip_accents"})
    if unknown or "lowercase" not in tokenizer_config:
        raise ValueError(
            f"{os.path.join(directory, TOKENIZER_CONFIG_FILE)} must hold 'lowercase' and optionally 'strip_accents'; "
            f"got keys {sorted(tokenizer_config)}"
        )
    vocabulary = load_vocabulary(os.path.join(directory, VOCABULARY_FILE))
    if len(vocabulary) > encoder.vocabulary_size:
        raise ValueError(
            f"{os.path.join(directory, VOCABULARY_FILE)} has {len(vocabulary)} tokens but the encoder embeds only "
            f"{encoder.vocabulary_size} ({ENCODER_CONFIG_FILE}: vocabulary_size)"
        )
    tokenizer = WordPieceTokenizer(
        vocabulary, lowercase=tokenizer_config["lowercase"], strip_accents=tokenizer_config.get("strip_accents"),
    )
    return encoder, tokenizer
