"""A BERT directory on disk: ``encoder.json`` + ``encoder.weights.h5`` + ``vocab.txt`` + ``tokenizer.json``.

``encoder.json`` holds the `BertEncoder` constructor arguments, ``tokenizer.json``
``{"lowercase": bool, "strip_accents": bool or null}``; ``vocab.txt`` is
Hugging Face's format (one token per line, line i = id i). ``pretrain-bert``
adds ``pretraining.json``. ``import-hf``, ``pretrain-bert`` and the fine-tuning
commands all read and write this layout. GPT directories
(`tfpretrain.models.gpt.save_gpt`) are the same with ``decoder.json`` and
``decoder.weights.h5``: `save_model_dir` and `load_model_dir` write and read both.
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
    save_model_dir(out_dir, encoder, tokenizer, ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE)


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

    return load_model_dir(directory, BertEncoder, ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE, dtype=dtype)


def save_model_dir(out_dir, model, tokenizer, config_file, weights_file):
    """Writes ``config_file`` (the model's ``constructor_config()``), ``weights_file`` and the tokenizer's files.

    The layout shared by BERT (`save_bert`) and GPT
    (`tfpretrain.models.gpt.save_gpt`) directories.

    Args:
        out_dir: str. Created if missing; existing files are overwritten.
        model: a `BertEncoder` or `GptDecoder` (anything with
            ``constructor_config()``, ``vocabulary_size`` and ``save_weights``).
        tokenizer: a `WordPieceTokenizer` (``vocabulary``, ``lowercase``, ``strip_accents``).
        config_file, weights_file: str. File names inside ``out_dir``.
    """
    from tfpretrain.text.vocabulary import save_vocabulary

    vocabulary = list(tokenizer.vocabulary)
    if len(vocabulary) > model.vocabulary_size:
        raise ValueError(
            f"the tokenizer has {len(vocabulary)} tokens but the {type(model).__name__} embeds only "
            f"{model.vocabulary_size}; build it with vocabulary_size=tokenizer.vocabulary_size()"
        )
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, config_file), "w", encoding="utf-8") as f:
        json.dump(model.constructor_config(), f, indent=2)
    model.save_weights(os.path.join(out_dir, weights_file))
    save_vocabulary(vocabulary, os.path.join(out_dir, VOCABULARY_FILE))
    strip_accents = None if tokenizer.strip_accents is None else bool(tokenizer.strip_accents)
    with open(os.path.join(out_dir, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"lowercase": bool(tokenizer.lowercase), "strip_accents": strip_accents}, f, indent=2)


def read_json(directory, name):
    """The JSON file ``directory/name``; invalid JSON is a ValueError naming ``path:line``."""
    path = os.path.join(directory, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def load_model_dir(directory, model_class, config_file, weights_file, dtype=None, kind="BERT",
                   written_by="`tfpretrain import-hf` or `tfpretrain pretrain-bert`"):
    """Reads a directory written by `save_model_dir` -> ``(model, tokenizer)``, with errors naming the bad file.

    Args:
        directory: str.
        model_class: `BertEncoder` or `GptDecoder`: built from ``config_file``.
        config_file, weights_file: str. File names inside ``directory``.
        dtype: optional dtype policy for the model.
        kind, written_by: str. How errors call the directory and what writes one.
    """
    from tfpretrain.text.vocabulary import load_vocabulary
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{kind} directory {directory} does not exist")
    expected = (config_file, weights_file, VOCABULARY_FILE, TOKENIZER_CONFIG_FILE)
    missing = [name for name in expected if not os.path.exists(os.path.join(directory, name))]
    if missing:
        raise FileNotFoundError(
            f"{directory} is not a {kind} directory: missing {', '.join(missing)} (expected {', '.join(expected)}; "
            f"write one with {written_by})"
        )
    config = read_json(directory, config_file)
    try:
        model = model_class(**config, dtype=dtype)
    except TypeError as error:
        raise ValueError(
            f"{os.path.join(directory, config_file)} does not hold {model_class.__name__} arguments ({error})"
        ) from None
    weights_path = os.path.join(directory, weights_file)
    try:
        model.load_weights(weights_path)
    except ValueError as error:
        raise ValueError(
            f"{weights_path} does not match the {model_class.__name__} that {config_file} describes: {error}"
        ) from None
    tokenizer_config = read_json(directory, TOKENIZER_CONFIG_FILE)
    unknown = sorted(set(tokenizer_config) - {"lowercase", "strip_accents"})
    if unknown or "lowercase" not in tokenizer_config:
        raise ValueError(
            f"{os.path.join(directory, TOKENIZER_CONFIG_FILE)} must hold 'lowercase' and optionally 'strip_accents'; "
            f"got keys {sorted(tokenizer_config)}"
        )
    vocabulary = load_vocabulary(os.path.join(directory, VOCABULARY_FILE))
    if len(vocabulary) > model.vocabulary_size:
        raise ValueError(
            f"{os.path.join(directory, VOCABULARY_FILE)} has {len(vocabulary)} tokens but the model embeds only "
            f"{model.vocabulary_size} ({config_file}: vocabulary_size)"
        )
    tokenizer = WordPieceTokenizer(
        vocabulary, lowercase=tokenizer_config["lowercase"], strip_accents=tokenizer_config.get("strip_accents"),
    )
    return model, tokenizer

