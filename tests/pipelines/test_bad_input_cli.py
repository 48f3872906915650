"""Bad input on the command line (issue 15): one line and exit 2 for a user's mistake, quiet native logs,
numeric options checked up front, no half-made --out folder, and evaluate's entity scores on files without entities.
"""

import json
import os
import re
import warnings

import numpy as np
import pytest

from tests.conftest import cli

NATIVE_LOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d", re.M)


def _one_error_line(result, command, *words):
    """Exit 2 and exactly one stderr line ``tfpretrain COMMAND: error: ...`` holding ``words``."""
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    assert lines[0].startswith(f"tfpretrain {command}: error: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- paths that are not readable files -----------------------------------------------------------------


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_paths")
    (root / "folder").mkdir()
    (root / "file.txt").write_text("one line\n", encoding="utf-8")
    good = "# text = a b\n1\ta\tO\t-\t-\n2\tb\tB-PER\t-\t-\n\n"
    (root / "good.iob2").write_text(good, encoding="utf-8")
    return {"root": root, "folder": root / "folder", "missing": root / "missing.iob2",
            "not_a_folder": root / "file.txt" / "x.iob2", "good": root / "good.iob2"}


@pytest.mark.slow
def test_train_dev_and_text_paths_that_are_not_files_give_one_line(paths):
    """A folder as --train, a missing --dev, a path through a file as --text (and a folder as --data below)."""
    result = cli("train-tagger", "--train", paths["folder"], "--dev", paths["good"], "--format", "iob2", "--out",
                 paths["root"] / "out_train", check=False)
    _one_error_line(result, "train-tagger", str(paths["folder"]), "Is a directory", "give a file")
    result = cli("train-tagger", "--train", paths["good"], "--dev", paths["missing"], "--format", "iob2", "--out",
                 paths["root"] / "out_dev", check=False)
    _one_error_line(result, "train-tagger", str(paths["missing"]), "No such file")
    result = cli("pretrain-bilm", "--text", paths["not_a_folder"], "--out", paths["root"] / "out_text", check=False)
    _one_error_line(result, "pretrain-bilm", str(paths["not_a_folder"]), "Not a directory")
    for out in ("out_train", "out_dev", "out_text"):  # a failed run leaves no --out folder (defect 13)
        assert not (paths["root"] / out).exists(), out


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_gives_one_line(paths):
    locked = paths["root"] / "locked.iob2"
    locked.write_text("1\ta\tO\n", encoding="utf-8")
    locked.chmod(0)
    result = cli("train-tagger", "--train", locked, "--dev", paths["good"], "--format", "iob2", "--out",
                 paths["root"] / "out_locked", check=False)
    _one_error_line(result, "train-tagger", str(locked), "Permission denied")


# --- numeric options (defect 10) ----------------------------------------------------------------------


@pytest.mark.parametrize("command, option, value", [
    ("train-tagger", "--epochs", "0"), ("train-tagger", "--epochs", "-2"), ("train-tagger", "--batch-size", "0"),
    ("train-tagger", "--learning-rate", "0"), ("train-tagger", "--epochs", "two"),
    ("finetune", "--max-train-examples", "0"), ("finetune", "--epochs", "0"), ("finetune", "--sequence-length", "-1"),
    ("pretrain-bert", "--steps", "0"), ("pretrain-gpt", "--batch-size", "0"), ("pretrain-bilm", "--max-length", "0"),
    ("ulmfit", "--general-epochs", "0"), ("ulmfit", "--dropout-scale", "-1"), ("generate", "--p", "1.5"),
    ("generate", "--temperature", "0"), ("generate", "--max-new-tokens", "0"), ("embed", "--sequence-length", "0"),
    ("export", "--version", "-1"), ("train-tagger", "--seed", "-1"),
])
def test_numeric_options_are_checked_by_the_parser(command, option, value, capsys):
    from tfpretrain.pipelines import cli as command_line

    required = {
        "train-tagger": ["--train", "a", "--dev", "b", "--format", "iob2", "--out", "o"],
        "finetune": ["--task", "classify", "--init", "i", "--train", "a", "--dev", "b", "--out", "o"],
        "pretrain-bert": ["--text", "a", "--out", "o"], "pretrain-gpt": ["--text", "a", "--out", "o"],
        "pretrain-bilm": ["--text", "a", "--out", "o"], "ulmfit": ["--train", "a", "--dev", "b", "--out", "o"],
        "generate": ["--model", "m"], "embed": ["--model", "m"], "export": ["--model", "m", "--name", "n"],
    }[command]
    with pytest.raises(SystemExit) as error:
        command_line.build_parser().parse_args([command, *required, option, value])
    assert error.value.code == 2
    assert f"argument {option}: expected " in capsys.readouterr().err


def test_every_numeric_option_has_a_checking_type():
    """No add_<command> declares a bare type=int / type=float any more."""
    from tfpretrain.pipelines import cli as command_line

    subparsers = next(a for a in command_line.build_parser()._actions
                      if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in subparsers.choices.items():
        for action in parser._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}: type={action.type.__name__}"


def test_epochs_zero_is_a_value_error_from_the_library_too(tmp_path, paths):
    from tfpretrain.pipelines import train_tagger

    out = tmp_path / "never"
    with pytest.raises(ValueError, match="epochs must be a whole number >= 1, got 0"):
        train_tagger.run(paths["good"], paths["good"], out, format="iob2", epochs=0, verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1, got -3"):
        train_tagger.run(paths["good"], paths["good"], out, format="iob2", batch_size=-3, verbose=0)
    assert not out.exists()


def test_a_run_failing_on_its_data_leaves_no_precision_record(tmp_path, paths):
    """Defect 13: the precision record is removed again, and the --out folder the run made (parents too)."""
    from tfpretrain.pipelines import train_tagger

    out = tmp_path / "new" / "run"
    with pytest.raises(FileNotFoundError):
        train_tagger.run(paths["missing"], paths["good"], out, format="iob2", epochs=1, verbose=0)
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        train_tagger.run(paths["missing"], paths["good"], kept, format="iob2", epochs=1, verbose=0)
    assert sorted(os.listdir(kept)) == ["notes.txt"]


# --- quiet by default, --verbose to see TensorFlow's native log lines (defect 14) ----------------------


@pytest.mark.slow
def test_native_log_lines_only_with_verbose(tmp_path):
    missing = tmp_path / "no_such_hf_dir"
    quiet = cli("import-hf", "--from", missing, "--out", tmp_path / "out", check=False)
    assert not NATIVE_LOG_LINE.search(quiet.stderr), quiet.stderr
    assert "absl::InitializeLog" not in quiet.stderr
    _one_error_line(quiet, "import-hf", str(missing))
    verbose = cli("--verbose", "import-hf", "--from", missing, "--out", tmp_path / "out", check=False)
    assert NATIVE_LOG_LINE.search(verbose.stderr), verbose.stderr
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr  # --verbose shows the traceback too
    assert verbose.stderr.strip().splitlines()[-1] == quiet.stderr.strip()


def test_verbose_goes_before_or_after_the_command():
    from tfpretrain.pipelines import cli as command_line

    parser = command_line.build_parser()
    assert parser.parse_args(["--verbose", "tag", "--model", "m"]).verbose is True
    assert parser.parse_args(["tag", "--model", "m", "--verbose"]).verbose is True
    assert parser.parse_args(["tag", "--model", "m"]).verbose is False


def test_the_native_log_filter_passes_every_other_line(capfd):
    from tfpretrain.pipelines.console import NativeLogFilter

    with NativeLogFilter():
        os.write(2, b"I0000 00:00:1796590369.416816    3628 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"E0000 00:00:1796590369.4 3628 cuda_executor.cc:1228] failed call to cuInit: INTERNAL\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"Epoch 1/3 partial")
        os.write(2, b" line\nI am a real message\nI0000 not a log line\n")
        os.write(2, b"Traceback (most recent call last):\n  File \"x.py\", line 1\nE")
    err = capfd.readouterr().err
    assert err == ("Epoch 1/3 partial line\nI am a real message\nI0000 not a log line\n"
                   "Traceback (most recent call last):\n  File \"x.py\", line 1\nE")


def test_an_unexpected_error_is_one_line_naming_it_and_exit_1(monkeypatch, capsys):
    from tfpretrain.pipelines import cli as command_line

    def broken(args):
        raise KeyError("tags")

    parser_args = command_line.build_parser().parse_args(["tag", "--model", "m", "x"])
    parser_args.run = broken
    assert command_line._run(parser_args, verbose=False) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected KeyError" in err[0] and "--verbose" in err[0]
    assert command_line._run(parser_args, verbose=True) == 1
    assert "Traceback" in capsys.readouterr().err


def test_a_decode_error_names_the_file(tmp_path, capsys):
    from tfpretrain.pipelines import cli as command_line

    latin = tmp_path / "latin1.json"
    latin.write_bytes(b'{"k\xe9": 1}')

    def reads_json(args):
        with open(latin, encoding="utf-8") as f:
            json.load(f)

    args = command_line.build_parser().parse_args(["tag", "--model", "m", "x"])
    args.run = reads_json
    assert command_line._run(args, verbose=False) == 2
    assert f"{latin}: not UTF-8 text" in capsys.readouterr().err
    latin.write_text('{"k": ', encoding="utf-8")
    assert command_line._run(args, verbose=False) == 2
    assert f"{latin}: not valid JSON" in capsys.readouterr().err


# --- evaluate on a file without entities (defect 1) ------------------------------------------------------

IOB2_TAGS = ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
NO_ENTITIES = "# text = the cat sat\n1\tthe\tO\t-\t-\n2\tcat\tO\t-\t-\n3\tsat\tO\t-\t-\n\n" \
              "# text = on a mat\n1\ton\tO\t-\t-\n2\ta\tO\t-\t-\n3\tmat\tO\t-\t-\n\n"


@pytest.fixture(scope="module")
def all_o_tagger(tmp_path_factory):
    """An IOB2 tagger whose weights are all 0: every score ties, so it answers tag id 0, 'O', everywhere."""
    import keras

    from tfpretrain.models import build_tagger
    from tfpretrain.models.tagger import TAGGER_PRESETS, TaggingPreprocessor
    from tfpretrain.models.tagger.saving import save_tagger

    preprocessor = TaggingPreprocessor(["the", "cat", "sat", "on", "a", "mat", "paris"], IOB2_TAGS)
    model = build_tagger(preprocessor.word_vocabulary_size, IOB2_TAGS, constraint="BIO", **TAGGER_PRESETS["tiny"])
    import tensorflow as tf

    model(preprocessor(tf.constant([["the", "cat"]])))
    model.set_weights([np.zeros_like(w) for w in model.get_weights()])
    out = tmp_path_factory.mktemp("all_o") / "tagger"
    keras.config.set_dtype_policy("float32")
    save_tagger(str(out), model, preprocessor, {"format": "iob2", "column": None})
    return out, model, preprocessor


def _seqeval(gold, predicted):
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UndefinedMetricWarning: seqeval answers 0.0
        return {"precision": precision_score(gold, predicted), "recall": recall_score(gold, predicted),
                "f1": f1_score(gold, predicted), "accuracy": accuracy_score(gold, predicted)}


def test_tagger_evaluation_without_gold_entities_matches_seqeval(all_o_tagger, tmp_path):
    from tfpretrain.export.tagging_module import TaggingModule
    from tfpretrain.models.tagger.evaluation import evaluate_sentences, predict_tags
    from tfpretrain.text.readers import read_iob2

    _, model, preprocessor = all_o_tagger
    path = tmp_path / "no_entities.iob2"
    path.write_text(NO_ENTITIES, encoding="utf-8")
    sentences = read_iob2(path)
    predicted = predict_tags(TaggingModule(model, preprocessor), sentences)
    assert predicted == [["O"] * 3, ["O"] * 3]
    scores = evaluate_sentences(model, preprocessor, sentences)
    expected = _seqeval([list(s.tags) for s in sentences], predicted)
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
    assert scores["f1"] == 0.0 and scores["accuracy"] == 1.0  # was 1.0 / 1.0: accuracy reported as F1


@pytest.mark.slow
def test_evaluate_command_without_gold_entities_reports_seqeval_s_zero(all_o_tagger, tmp_path):
    model_dir = all_o_tagger[0]
    path = tmp_path / "no_entities.iob2"
    path.write_text(NO_ENTITIES, encoding="utf-8")
    result = cli("evaluate", "--model", model_dir, "--data", path)
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert (scores["precision"], scores["recall"], scores["f1"], scores["accuracy"]) == (0.0, 0.0, 0.0, 1.0)
    result = cli("evaluate", "--model", model_dir, "--data", tmp_path, check=False)  # --data: a folder
    _one_error_line(result, "evaluate", str(tmp_path), "Is a directory")


@pytest.mark.parametrize("predicted", [[["O", "O", "O"]], [["B-PER", "I-PER", "O"]]])
def test_bert_tag_scores_without_gold_entities_match_seqeval(monkeypatch, predicted):
    from tfpretrain.models import task_model
    from tfpretrain.text.readers import TaggedSentence

    examples = [TaggedSentence(("a", "b", "c"), ("O", "O", "O"), None, "x:1")]
    monkeypatch.setattr(task_model, "predict_words", lambda *args, **kwargs: (predicted, np.zeros(1, "int32")))
    options = {"task": "tag", "tags": IOB2_TAGS}
    scores = task_model.score_examples(None, None, options, examples)
    expected = _seqeval([["O", "O", "O"]], predicted)
    assert {k: scores[k] for k in expected} == pytest.approx(expected)
