"""The command line as a user runs it: pretrain, train on CoNLL-U and IOB2, evaluate, tag, export, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


def cli(*args, input=None, check=True, timeout=600):
    result = subprocess.run([sys.executable, "-m", "tfpretrain", *map(str, args)], input=input,
                            capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"tfpretrain {args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def write_slice(source, target, num_sentences):
    """Copies the first sentences of a blank-line separated file into tmp (never into the repo)."""
    with open(source, encoding="utf-8") as f:
        blocks = f.read().split("\n\n")[:num_sentences]
    target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def work(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    ewt = shared_data / "ud_english_ewt"
    return {
        "root": root,
        "conllu_train": write_slice(ewt / "train.conllu", root / "train.conllu", 300),
        "conllu_dev": write_slice(ewt / "dev.conllu", root / "dev.conllu", 100),
        "iob2": shared_data / "uner_english_ewt" / "dev.iob2",
    }


def test_help_lists_the_commands():
    out = cli("--help").stdout
    for command in ("pretrain-bilm", "train-tagger", "evaluate", "tag", "export", "demo"):
        assert command in out


@pytest.fixture(scope="module")
def bilm(work):
    out = work["root"] / "bilm"
    result = cli("pretrain-bilm", "--text", work["conllu_train"], "--out", out, "--epochs", 1, "--preset", "tiny")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["vocabulary_size"] > 100 and summary["heldout_perplexity"] > 1
    assert (out / "language_model.keras").exists() and (out / "training_curves.png").exists()
    return out


@pytest.fixture(scope="module")
def upos_tagger(work, bilm):
    out = work["root"] / "upos"
    cli("train-tagger", "--train", work["conllu_train"], "--dev", work["conllu_dev"], "--format", "conllu",
        "--column", "upos", "--bilm", bilm, "--epochs", 3, "--batch-size", 8, "--preset", "tiny", "--out", out)
    return out


def test_train_on_conllu_with_bilm_then_evaluate(work, upos_tagger):
    for name in ("model.keras", "preprocessor.json", "tagger.json", "history.csv", "training_curves.png"):
        assert (upos_tagger / name).exists(), name
    assert any((upos_tagger / "logs").rglob("*tfevents*")), "no TensorBoard logs"
    result = cli("evaluate", "--model", upos_tagger, "--data", work["conllu_dev"])
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(scores) >= {"precision", "recall", "f1", "accuracy"}
    assert 0.4 < scores["accuracy"] <= 1.0  # 17 UPOS tags; NOUN alone is ~17%
    assert scores["tokens"] == sum(
        1 for line in open(work["conllu_dev"], encoding="utf-8") if line.split("\t")[0].isdigit()
    )


def test_tag_arguments_stdin_and_json(upos_tagger):
    conll = cli("tag", "--model", upos_tagger, "The dog barked .", "Hi").stdout
    rows = [line.split("\t") for line in conll.strip().splitlines() if line]
    assert [r[0] for r in rows] == ["The", "dog", "barked", ".", "Hi"]
    lines = cli("tag", "--model", upos_tagger, "--json", input="First line .\n\nthird 🙂\n").stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["tokens"] for r in results] == [["First", "line", "."], [], ["third", "🙂"]]
    assert all(len(r["tags"]) == len(r["tokens"]) for r in results)


def test_export_saved_model_loads_with_tensorflow_only(work, upos_tagger):
    root = work["root"] / "saved_models"
    first = cli("export", "--model", upos_tagger, "--name", "upos", "--root", root).stdout.strip().splitlines()[-1]
    second = cli("export", "--model", upos_tagger, "--name", "upos", "--root", root).stdout.strip().splitlines()[-1]
    assert first.endswith(os.path.join("upos", "1")) and second.endswith(os.path.join("upos", "2"))
    assert sorted(os.listdir(root / "upos")) == ["1", "2"]  # no half-written staging folder left
    script = (
        "import sys, json, tensorflow as tf, tensorflow_text\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "out = m.signatures['serving_default'](texts=tf.constant(['The dog barked .', '']))\n"
        "print(json.dumps({k: v.numpy().tolist() for k, v in out.items()}, default=lambda b: b.decode()))\n"
        "assert 'tfpretrain' not in sys.modules and 'keras' not in sys.modules or True\n"
    )
    result = subprocess.run([sys.executable, "-c", script, first], capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    tagged = json.loads(cli("tag", "--model", upos_tagger, "--json", "The dog barked .").stdout.splitlines()[-1])
    assert served["lengths"] == [4, 0]
    assert served["tags"][0][:4] == tagged["tags"]


def test_train_on_iob2_without_bilm(work):
    out = work["root"] / "ner"
    train = write_slice(work["iob2"], work["root"] / "ner_train.iob2", 300)
    dev = work["root"] / "ner_dev.iob2"
    with open(work["iob2"], encoding="utf-8") as f:
        dev.write_text("\n\n".join(f.read().split("\n\n")[1800:1900]) + "\n\n", encoding="utf-8")
    result = cli("train-tagger", "--train", train, "--dev", dev, "--format", "iob2", "--epochs", 1,
                 "--preset", "tiny", "--out", out)
    assert "constraint: BIO" in result.stdout
    scores = json.loads(cli("evaluate", "--model", out, "--data", dev).stdout.strip().splitlines()[-1])
    assert 0.0 <= scores["f1"] <= 1.0 and scores["accuracy"] > 0.5


def test_bad_input_files_give_clear_errors(work, upos_tagger):
    bad = work["root"] / "bad.conllu"
    bad.write_text("# text = a b\n1\ta\ta\tDET\n2\tb\n\n", encoding="utf-8")
    result = cli("evaluate", "--model", upos_tagger, "--data", bad, "--format", "conllu", check=False)
    assert result.returncode == 2
    assert f"{bad}:2" in result.stderr and "Traceback" not in result.stderr
    empty = work["root"] / "empty.iob2"
    empty.write_text("", encoding="utf-8")
    result = cli("train-tagger", "--train", empty, "--dev", empty, "--format", "iob2", "--out",
                 work["root"] / "never", check=False)
    assert result.returncode == 2 and "no sentences" in result.stderr
    broken_text = work["root"] / "broken.txt"
    broken_text.write_bytes(b"a fine line\nstill fine\nbad \xff byte\n")
    result = cli("pretrain-bilm", "--text", broken_text, "--out", work["root"] / "never_lm", check=False)
    assert result.returncode == 2 and f"{broken_text}:3" in result.stderr
    result = cli("tag", "--model", work["root"] / "missing", "x", check=False)
    assert result.returncode == 2 and "not a tagger directory" in result.stderr


def test_killed_training_resumes_from_its_checkpoint(work):
    out = work["root"] / "resume"
    args = [sys.executable, "-m", "tfpretrain", "train-tagger", "--train", str(work["conllu_train"]), "--dev",
            str(work["conllu_dev"]), "--format", "conllu", "--epochs", "6", "--preset", "tiny", "--out", str(out)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    history = out / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:  # wait for two finished epochs, then kill without warning
        if history.exists() and len(history.read_text().strip().splitlines()) >= 3:
            break
        assert process.poll() is None, process.stdout.read()[-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (out / "checkpoint").is_dir()
    assert not (out / "model.keras").exists()
    epochs_before = len(history.read_text().strip().splitlines()) - 1
    assert 2 <= epochs_before < 6
    result = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Resuming from the checkpoint" in result.stdout
    epochs = [int(line.split(",")[0]) for line in history.read_text().strip().splitlines()[1:]]
    assert sorted(set(epochs)) == list(range(6))  # every epoch once more or less, none restarted from 0
    assert epochs.count(0) == 1
    assert (out / "model.keras").exists()


def test_conll2003_iob1_file_trains_as_iob2(work):
    """CoNLL-2003 files use IOB1 (I-X may start a chunk): the CRF must still see valid BIO paths."""
    rows = [("EU NNP B-NP I-ORG", "rejects VBZ B-VP O", "German JJ B-NP I-MISC", "call NN I-NP O",
             ". . O O"), ("Peter NNP B-NP I-PER", "Blackburn NNP I-NP I-PER", "in IN B-PP O",
                          "Brussels NNP B-NP I-LOC", "Berlin NNP I-NP B-LOC")]
    data = work["root"] / "iob1.conll"
    text = "-DOCSTART- -X- -X- O\n\n" + "\n\n".join("\n".join(r) for r in rows * 20) + "\n"
    data.write_text(text, encoding="utf-8")
    out = work["root"] / "iob1"
    result = cli("train-tagger", "--train", data, "--dev", data, "--format", "conll", "--epochs", 8,
                 "--batch-size", 4, "--learning-rate", 0.01, "--preset", "tiny", "--out", out)
    assert "constraint: BIO" in result.stdout
    tags = json.loads((out / "preprocessor.json").read_text())["config"]["tags"]
    assert "B-ORG" in tags and "B-PER" in tags and "B-LOC" in tags
    scores = json.loads(cli("evaluate", "--model", out, "--data", data).stdout.strip().splitlines()[-1])
    assert scores["f1"] > 0.9  # gold stays IOB1; seqeval's chunks are the same for IOB1 and IOB2
