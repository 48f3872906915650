"""Bad input at the CLI text boundary: ``tfpretrain tag`` / ``predict`` read stdin, one answer per line, always JSON.

On an untrained tiny tagger (`make_tagger_dir`) and an untrained tiny BERT
classifier and pair classifier (`make_task_dir`): stdin with empty lines,
whitespace-only lines, invalid UTF-8, NUL bytes, a 100,000-character line,
Arabic, CJK, emoji with zero-width joiners, combining marks, CRLF line ends,
a leading BOM and only a BOM; pair inputs with missing or extra fields; and
model directories whose ``model.keras`` is truncated. Each gets a
well-formed answer (one JSON line per input line, the text shown with
invalid bytes replaced) or one clear error line and exit status 2.
"""

import json
import os
import shutil

import pytest

from tests.conftest import cli, make_bert_dir, make_tagger_dir, make_task_dir, write_head, write_sentences

# One line each (bytes): the stdin of `tag` and `predict`.
ODD_LINES = [
    b"Ines flew to Porto .",
    b"",  # empty line
    b"   \t  ",  # whitespace only
    b"caf\xc3\xa9 \xff\xfe bad bytes \xc3",  # invalid UTF-8
    b"nul\x00 inside",  # NUL byte
    ("word " * 20000).encode(),  # a 100,000-character line
    "مرحبا بالعالم".encode(),  # Arabic (right to left)
    "東京は晴れ。".encode(),  # CJK, no spaces
    "family 👨\u200d👩\u200d👧 🙂".encode(),  # emoji, zero-width joiners
    "cafe\u0301 n\u0303".encode(),  # combining marks
    b"windows line\r",  # CRLF line end (its \n is the separator)
]
STDIN = b"\xef\xbb\xbf" + b"\n".join(ODD_LINES) + b"\n"  # with a leading BOM


@pytest.fixture(scope="module")
def model_dirs(shared_data, tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("bad_text")
    data = {
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2.tsv", 100),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte.tsv", 30),
        "uner_train": write_sentences(shared_data / "uner_english_ewt" / "dev.iob2", root / "uner.iob2", 0, 50),
    }
    bert = make_bert_dir(data, root / "bert")
    dirs = {"tagger": make_tagger_dir(root / "tagger"), "bert": bert}
    for task in ("classify", "pair"):
        options = {"task": task, "labels": ["neg", "pos"], "sequence_length": 32, "architecture": "bert"}
        dirs[task] = make_task_dir(bert, root / task, options)
    return dirs


def _run_bytes(*args, stdin):
    """`cli` with bytes on stdin; returns (returncode, stdout lines, stderr)."""
    import subprocess
    import sys

    from tests.conftest import ENV

    result = subprocess.run([sys.executable, "-m", "tfpretrain", *map(str, args)], input=stdin, capture_output=True,
                            env=ENV, timeout=600)
    stdout = result.stdout.decode("utf-8")  # must be UTF-8 whatever came in
    return result.returncode, stdout.splitlines(), result.stderr.decode("utf-8", "replace")


def _expected_texts():
    return [line.rstrip(b"\r").decode("utf-8", "replace") for line in ODD_LINES]


def _assert_well_formed_tags(answers):
    assert [a["text"] for a in answers] == _expected_texts()
    for answer in answers:
        n = answer["lengths"]
        assert len(answer["words"]) == len(answer["tags"]) == len(answer["starts"]) == n
        assert set(answer["tags"]) <= {"O", "B-LOC", "I-LOC", "B-PER", "I-PER"}
        assert 0.0 <= answer["score"] <= 1.0
    assert answers[1]["words"] == answers[2]["words"] == []
    assert answers[3]["words"][0] == "café" and "\ufffd" in "".join(answers[3]["words"])  # shown with U+FFFD
    assert answers[5]["lengths"] + answers[5]["num_words_truncated"] == 20000
    assert answers[10]["words"] == ["windows", "line"]  # no "\r" word


@pytest.mark.slow
def test_tag_answers_every_odd_line(model_dirs):
    """Defect 5: one line of invalid UTF-8 failed the whole input ("Error converting unicode string")."""
    code, lines, stderr = _run_bytes("tag", "--model", model_dirs["tagger"], "--json", stdin=STDIN)
    assert code == 0, stderr
    _assert_well_formed_tags([json.loads(line) for line in lines])
    code, lines, stderr = _run_bytes("tag", "--model", model_dirs["tagger"], stdin=STDIN)  # CoNLL lines
    assert code == 0, stderr
    assert lines[0].startswith("Ines\t") and len(lines) > 512 and not any("\r" in line for line in lines)


@pytest.mark.slow
def test_predict_answers_every_odd_line(model_dirs):
    code, lines, stderr = _run_bytes("predict", "--model", model_dirs["classify"], stdin=STDIN)
    assert code == 0, stderr
    answers = [json.loads(line) for line in lines]
    assert [a["text"] for a in answers] == _expected_texts()
    assert all(a["label"] in ("neg", "pos") and abs(sum(a["probabilities"]) - 1) < 1e-5 for a in answers)
    assert [a["truncated"] for a in answers] == [i == 5 for i in range(len(ODD_LINES))]


@pytest.mark.slow
def test_only_a_bom_and_empty_stdin_give_no_answers(model_dirs):
    for stdin in (b"\xef\xbb\xbf", b""):
        code, lines, stderr = _run_bytes("predict", "--model", model_dirs["tagger"], stdin=stdin)
        assert (code, lines) == (0, []), stderr


@pytest.mark.slow
def test_pair_input_with_a_missing_field_is_one_error_line(model_dirs):
    stdin = b"a premise\ta hypothesis\nalone\n"
    code, lines, stderr = _run_bytes("predict", "--model", model_dirs["pair"], stdin=stdin)
    assert code == 2 and lines == []
    assert stderr.strip().splitlines()[-1] == ("tfpretrain predict: error: input 2: expected 2 tab-separated texts "
                                               "(text_a, text_b), got 1")


def test_pair_inputs_in_process(model_dirs):
    """Tab-separated pairs: empty fields and invalid UTF-8 answered; a missing or extra field refused (input named)."""
    from tfpretrain.pipelines import predict

    answers = predict.run(model_dirs["pair"], ["\t", "a\t", "\tb", b"caf\xe9\t\xff", "x\ty"])
    assert [a["text"] for a in answers] == [["", ""], ["a", ""], ["", "b"], ["caf\ufffd", "\ufffd"], ["x", "y"]]
    assert all(a["label"] in ("neg", "pos") for a in answers)
    for texts, number in ((["ok\tfine", "no tab"], 2), (["a\tb\tc"], 1), ([b"\xff"], 1)):
        with pytest.raises(ValueError, match=f"input {number}: expected 2 tab-separated texts"):
            predict.run(model_dirs["pair"], texts)
    json.dumps(answers, allow_nan=False)


def test_arguments_with_undecodable_bytes_in_process(model_dirs):
    """A TEXT argument that was not UTF-8 reaches Python as lone surrogates: tagged, and shown with U+FFFD."""
    from tfpretrain.pipelines import tag

    [answer] = tag.run(model_dirs["tagger"], ["bad \udcff byte"])
    assert answer["text"] == "bad \ufffd byte" and answer["words"] == ["bad", "\ufffd", "byte"]
    json.dumps(answer, ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_embed_takes_bytes_and_never_prints_nan(model_dirs):
    """`embed` reads stdin as `tag` does; a NaN vector (damaged weights) is an error, never bare NaN in the JSON."""
    import numpy as np

    from tfpretrain.pipelines import embed, predict

    results = embed.embed_texts(str(model_dirs["bert"]), [b"caf\xc3\xa9 \xff ok", "bad \udcff byte", ""])
    lines = [json.dumps(embed.to_json(r), ensure_ascii=False, allow_nan=False) for r in results]
    assert [json.loads(line)["text"] for line in lines] == ["café \ufffd ok", "bad \ufffd byte", ""]
    damaged = {**results[0], "sentence_vector": np.full_like(results[0]["sentence_vector"], np.nan)}
    with pytest.raises(ValueError, match="sentence vector of 'café \ufffd ok' holds NaN or Inf: the model's"):
        embed.to_json(damaged)
    # predict: a NaN score (a QA question without an answer) is null.
    [answer] = predict.answers({"score": np.array([np.nan], "float32"), "start": np.array([0])}, [("q", "c")])
    assert answer["score"] is None and json.dumps(answer, allow_nan=False)


def _truncated_copy(source, target, name):
    shutil.copytree(source, target)
    path = os.path.join(target, name)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    return target


def test_truncated_model_keras_is_reported_damaged(model_dirs, tmp_path):
    """Defect 12: a truncated model.keras was reported as "File not found"."""
    from tfpretrain.models.bilm import load_language_model
    from tfpretrain.models.tagger.saving import load_tagger

    damaged = _truncated_copy(model_dirs["tagger"], tmp_path / "tagger", "model.keras")
    with pytest.raises(ValueError, match=r"model\.keras is damaged or incomplete.*train again or restore it"):
        load_tagger(str(damaged))
    bilm = tmp_path / "bilm"
    bilm.mkdir()
    shutil.copy(damaged / "model.keras", bilm / "language_model.keras")
    with pytest.raises(ValueError, match=r"language_model\.keras is damaged or incomplete"):
        load_language_model(str(bilm))
    (bilm / "language_model.keras").write_bytes(b"")  # an empty file
    with pytest.raises(ValueError, match="damaged or incomplete"):
        load_language_model(str(bilm))


@pytest.mark.slow
def test_tag_on_a_truncated_model_is_one_error_line(model_dirs, tmp_path):
    damaged = _truncated_copy(model_dirs["tagger"], tmp_path / "tagger", "model.keras")
    result = cli("tag", "--model", damaged, "a text", check=False)
    assert result.returncode == 2 and result.stdout == ""
    [line] = [line for line in result.stderr.splitlines() if line.startswith("tfpretrain")]
    assert "model.keras is damaged or incomplete" in line and "Traceback" not in result.stderr
