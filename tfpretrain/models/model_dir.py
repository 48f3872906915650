"""Model directories on disk: every file name, JSON and head-weight I/O, and `model_kind`.

Each command writes a directory, and every other command (``evaluate``,
``predict``, ``export``, ``finetune --init``, ...) reads it. This module is the
one place that knows the layouts:

| kind (`model_kind`) | written by | files |
|---|---|---|
| ``bert`` | ``import-hf``, ``pretrain-bert`` | ``encoder.json``, ``encoder.weights.h5``, ``vocab.txt``, ``tokenizer.json`` |
| ``gpt`` | ``pretrain-gpt`` | ``decoder.json``, ``decoder.weights.h5``, ``vocab.txt``, ``tokenizer.json`` |
| ``bert`` / ``gpt`` with a task | ``finetune`` | the above, ``head.weights.npz`` and ``task.json`` |
| ``ulmfit`` | ``ulmfit`` (language models) | ``awd_lstm.json``, ``awd_lstm.weights.h5``, ``vocab.txt``, ``config.json`` |
| ``ulmfit`` with task ``classify`` | ``ulmfit --stage classifier`` | the above (``config.json`` with ``labels``) and ``head.weights.npz`` |
| ``bilm`` | ``pretrain-bilm`` | ``language_model.keras``, ``vocabulary.txt``, ``bilm.json`` |
| ``tagger`` | ``train-tagger`` | ``model.keras``, ``preprocessor.json``, ``tagger.json`` |

Example:

>>> model_kind("runs/minilm")
ModelKind(architecture='bert', task=None)
>>> model_kind("runs/sst2")
ModelKind(architecture='bert', task='classify')
"""

import json
import os
from typing import NamedTuple

import numpy as np

# BERT and GPT backbones (`save_backbone`): the model's constructor arguments, its weights and the WordPiece files.
ENCODER_CONFIG_FILE = "encoder.json"
ENCODER_WEIGHTS_FILE = "encoder.weights.h5"
DECODER_CONFIG_FILE = "decoder.json"
DECODER_WEIGHTS_FILE = "decoder.weights.h5"
VOCABULARY_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer.json"
BERT_FILES = (ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE, VOCABULARY_FILE, TOKENIZER_CONFIG_FILE)
GPT_FILES = (DECODER_CONFIG_FILE, DECODER_WEIGHTS_FILE, VOCABULARY_FILE, TOKENIZER_CONFIG_FILE)
# Fine-tuned task models: a backbone directory plus the head's weights and the task's options.
TASK_FILE = "task.json"
HEAD_WEIGHTS_FILE = "head.weights.npz"
# ULMFiT: an AWD-LSTM and its word vocabulary; config.json holds the stage's settings and results.
AWD_LSTM_CONFIG_FILE = "awd_lstm.json"
AWD_LSTM_WEIGHTS_FILE = "awd_lstm.weights.h5"
CONFIG_FILE = "config.json"
AWD_LSTM_FILES = (AWD_LSTM_CONFIG_FILE, AWD_LSTM_WEIGHTS_FILE, VOCABULARY_FILE, CONFIG_FILE)
# The ELMo-style BiLM and the CharCNN / BiLM / CRF tagger: whole `.keras` models.
BILM_MODEL_FILE = "language_model.keras"
BILM_VOCABULARY_FILE = "vocabulary.txt"  # the word list, kept so that a resumed run keeps its ids
BILM_FILE = "bilm.json"
TAGGER_MODEL_FILE = "model.keras"
TAGGER_PREPROCESSOR_FILE = "preprocessor.json"
TAGGER_FILE = "tagger.json"
TAGGER_FILES = (TAGGER_MODEL_FILE, TAGGER_PREPROCESSOR_FILE, TAGGER_FILE)
# Records any training run adds.
PRETRAINING_RECORD = "pretraining.json"
PRECISION_RECORD = "precision.json"

ARCHITECTURES = ("bert", "gpt", "ulmfit", "bilm", "tagger")
#: The tasks a task.json names (``finetune --task``), and which architecture does which.
TASKS = ("classify", "pair", "qa", "tag", "similarity", "choice")
ARCHITECTURE_TASKS = {"bert": ("classify", "pair", "qa", "tag"), "gpt": ("classify", "pair", "similarity", "choice")}


class ModelKind(NamedTuple):
    """What a model directory holds: its ``architecture`` and, for a task model, its ``task``.

    ``architecture`` is one of `ARCHITECTURES`; ``task`` is None for a
    pretrained model (a BERT encoder, a GPT decoder, an AWD-LSTM or BiLM
    language model), else the task.json task (``classify``, ``pair``,
    ``similarity``, ``choice``, ``tag``, ``qa``), ``classify`` for a ULMFiT
    classifier and ``tag`` for a tagger.
    """

    architecture: str
    task: str | None = None

    def describe(self):
        """A few words for messages, e.g. "a BERT encoder fine-tuned for task classify"."""
        if self.architecture == "tagger":
            return "a tagger (train-tagger)"
        if self.architecture == "bilm":
            return "a BiLM language model (pretrain-bilm)"
        if self.architecture == "ulmfit":
            return "a ULMFiT classifier" if self.task else "an AWD-LSTM language model (ULMFiT stage 1 or 2)"
        name = {"bert": "a BERT encoder", "gpt": "a GPT language model"}[self.architecture]
        return f"{name} without a task" if self.task is None else f"{name} fine-tuned for task {self.task}"


def _has(directory, name):
    return os.path.exists(os.path.join(directory, name))


def model_kind(directory):
    """What ``directory`` holds, from the files in it (see the table in this module's docstring).

    Args:
        directory: str or path-like.

    Returns:
        A `ModelKind`.

    Raises:
        FileNotFoundError: ``directory`` does not exist or is not a directory.
        ValueError: it holds none of the layouts this project writes (the
            message names what was expected), or its task.json is not JSON.

    Example:

    >>> model_kind("runs/demo/tagger")
    ModelKind(architecture='tagger', task='tag')
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"model directory {directory} does not exist" if not os.path.exists(directory)
                                else f"{directory} is a file, not a model directory")
    if _has(directory, TAGGER_FILE):
        return ModelKind("tagger", "tag")
    if _has(directory, TASK_FILE):
        task = read_json(directory, TASK_FILE).get("task")
        return ModelKind("gpt" if _has(directory, DECODER_CONFIG_FILE) else "bert", task)
    if _has(directory, AWD_LSTM_CONFIG_FILE):
        config = read_json(directory, CONFIG_FILE) if _has(directory, CONFIG_FILE) else {}
        classifier = "labels" in config and _has(directory, HEAD_WEIGHTS_FILE)
        return ModelKind("ulmfit", "classify" if classifier else None)
    if _has(directory, BILM_FILE) or _has(directory, BILM_MODEL_FILE):
        return ModelKind("bilm")
    if _has(directory, DECODER_CONFIG_FILE):
        return ModelKind("gpt")
    if _has(directory, ENCODER_CONFIG_FILE):
        return ModelKind("bert")
    raise ValueError(f"{directory} is not a model directory this project writes: it holds none of "
                     f"{TAGGER_FILE} (train-tagger), {TASK_FILE} (finetune), {ENCODER_CONFIG_FILE} (import-hf, "
                     f"pretrain-bert), {DECODER_CONFIG_FILE} (pretrain-gpt), {AWD_LSTM_CONFIG_FILE} (ulmfit), "
                     f"{BILM_FILE} (pretrain-bilm)")


# ---------------------------------------------------------------------------
# JSON files


def read_json(directory, name):
    """The JSON file ``directory/name``; invalid JSON is a ValueError naming ``path:line``.

    Example:

    >>> read_json("runs/sst2", TASK_FILE)["labels"]
    ['0', '1']
    """
    path = os.path.join(os.fspath(directory), name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None


def write_json(directory, name, value):
    """Writes ``value`` as indented JSON to ``directory/name`` (``directory`` created if missing)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2)


def read_task_options(directory):
    """The ``task.json`` of a fine-tuned model directory (task, labels or tags, sequence_length, ...)."""
    if not _has(directory, TASK_FILE):
        raise FileNotFoundError(f"{directory} is not a fine-tuned model directory: {TASK_FILE} is missing "
                                "(fine-tune one with `tfpretrain finetune --task ... --out DIR`).")
    return read_json(directory, TASK_FILE)


def write_task_options(directory, options):
    """Writes ``options`` as the directory's ``task.json``."""
    write_json(directory, TASK_FILE, options)


# ---------------------------------------------------------------------------
# BERT and GPT backbones


def save_backbone(out_dir, model, tokenizer, config_file, weights_file):
    """Writes ``config_file`` (the model's ``constructor_config()``), ``weights_file`` and the tokenizer's files.

    The layout of BERT (`tfpretrain.models.bert.save_bert`) and GPT
    (`tfpretrain.models.gpt.save_gpt`) directories.

    Args:
        out_dir: str. Created if missing; existing files are overwritten.
        model: a `BertEncoder` or `GptDecoder` (anything with
            ``constructor_config()``, ``vocabulary_size`` and ``save_weights``).
        tokenizer: a `WordPieceTokenizer` (``vocabulary``, ``lowercase``, ``strip_accents``).
        config_file, weights_file: str. File names inside ``out_dir``
            (`ENCODER_CONFIG_FILE` and `ENCODER_WEIGHTS_FILE`, or the decoder's).
    """
    from tfpretrain.text.vocabulary import save_vocabulary

    vocabulary = list(tokenizer.vocabulary)
    if len(vocabulary) > model.vocabulary_size:
        raise ValueError(
            f"the tokenizer has {len(vocabulary)} tokens but the {type(model).__name__} embeds only "
            f"{model.vocabulary_size}; build it with vocabulary_size=tokenizer.vocabulary_size()"
        )
    write_json(out_dir, config_file, model.constructor_config())
    model.save_weights(os.path.join(out_dir, weights_file))
    save_vocabulary(vocabulary, os.path.join(out_dir, VOCABULARY_FILE))
    strip_accents = None if tokenizer.strip_accents is None else bool(tokenizer.strip_accents)
    write_json(out_dir, TOKENIZER_CONFIG_FILE, {"lowercase": bool(tokenizer.lowercase), "strip_accents": strip_accents})


def load_backbone(directory, model_class, config_file, weights_file, dtype=None, kind="BERT",
                  written_by="`tfpretrain import-hf` or `tfpretrain pretrain-bert`"):
    """Reads a directory written by `save_backbone` -> ``(model, tokenizer)``, with errors naming the bad file.

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
    missing = [name for name in expected if not _has(directory, name)]
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


# ---------------------------------------------------------------------------
# Task heads


def save_head_weights(directory, layers):
    """Writes the weights of ``layers`` (a task model's head) to ``head.weights.npz``, keyed ``layer_name/i``.

    Args:
        directory: str. Created if missing.
        layers: the head's Keras layers (those with weights; the backbone is
            saved on its own with `save_backbone` or `save_awd_lstm`).
    """
    os.makedirs(directory, exist_ok=True)
    head = {f"{layer.name}/{i}": weight for layer in layers for i, weight in enumerate(layer.get_weights())}
    np.savez(os.path.join(directory, HEAD_WEIGHTS_FILE), **head)


def load_head_weights(directory, layers, described_by=TASK_FILE):
    """Restores ``layers`` from ``head.weights.npz``, checking that the names and every shape match.

    Args:
        directory: str. The model directory.
        layers: the head's Keras layers, built, in any order.
        described_by: str. The file that describes the head, for messages
            (``task.json``; a ULMFiT classifier's ``config.json``).

    Raises:
        FileNotFoundError: ``head.weights.npz`` is missing.
        ValueError: its weights are not exactly the head's, or a shape differs.
    """
    path = os.path.join(directory, HEAD_WEIGHTS_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory}: {HEAD_WEIGHTS_FILE} is missing; the model directory is incomplete "
                                "(train it again with the same --out).")
    with np.load(path) as stored:
        expected = {f"{layer.name}/{i}" for layer in layers for i in range(len(layer.weights))}
        if set(stored.files) != expected:
            raise ValueError(f"{path} holds {sorted(stored.files)} but the model's head has {sorted(expected)}; "
                             f"{described_by} and the weights do not match")
        for layer in layers:
            weights = []
            for i, variable in enumerate(layer.weights):
                key = f"{layer.name}/{i}"
                if stored[key].shape != tuple(variable.shape):
                    raise ValueError(f"{path}: weight {key} should have shape {tuple(variable.shape)}, "
                                     f"found {stored[key].shape}; {described_by} and the weights do not match")
                weights.append(stored[key])
            layer.set_weights(weights)
