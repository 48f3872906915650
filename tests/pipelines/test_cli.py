"""The command line as a user runs it: pretrain, train on CoNLL-U and IOB2, evaluate, tag, export, resume."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.conftest import ENV, REPO_ROOT, cli, write_slice


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


def test_help_does_not_import_tensorflow():
    """The parser takes its choices from light library modules: ``--help`` and argument errors are instant."""
    code = "import sys; from tfpretrain.pipelines import cli; cli.build_parser(); print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert result.stdout.split() == ["False"], result.stderr[-2000:]


def test_cli_choices_are_the_library_s():
    """Choices the CLI cannot import without TensorFlow equal the library's constants."""
    from tfpretrain.models.bert.embedder import LAYER_COMBINATIONS
    from tfpretrain.models.fine_tuning import SCHEDULES
    from tfpretrain.models.gpt.generation import SAMPLERS
    from tfpretrain.models.model_dir import TASKS
    from tfpretrain.pipelines import cli

    assert cli.SAMPLERS == SAMPLERS
    assert cli.FINE_TUNING_SCHEDULES == SCHEDULES
    assert set(cli.LAYER_COMBINATIONS) == set(LAYER_COMBINATIONS) - {"scalar_mix"}  # a learned mix needs training
    assert cli.TASKS is TASKS


def test_every_command_is_an_add_and_run_pair():
    """Each sub-command is declared by ``add_<command>`` and runs ``run_<command>`` (set_defaults), side by side."""
    from tfpretrain.pipelines import cli

    subparsers = next(a for a in cli.build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert len(subparsers.choices) == len(cli.COMMANDS) >= 14
    for name, parser in subparsers.choices.items():
        function = name.replace("-", "_")
        assert parser.get_default("run") is getattr(cli, f"run_{function}"), name
        assert getattr(cli, f"add_{function}") in cli.COMMANDS, name


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
        "--column", "upos", "--bilm", bilm, "--epochs", 4, "--batch-size", 8, "--preset", "tiny", "--out", out)
    return out


@pytest.mark.slow
def test_train_on_conllu_with_bilm_then_evaluate(work, upos_tagger):
    for name in ("model.keras", "preprocessor.json", "tagger.json", "history.csv", "training_curves.png"):
        assert (upos_tagger / name).exists(), name
    assert any((upos_tagger / "logs").rglob("*tfevents*")), "no TensorBoard logs"
    recorded = json.loads((upos_tagger / "tagger.json").read_text(encoding="utf-8"))
    assert (recorded["learning_rate"], recorded["schedule"]) == (3e-3, "constant")  # cosine is for BERT features
    result = cli("evaluate", "--model", upos_tagger, "--data", work["conllu_dev"])
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(scores) >= {"precision", "recall", "f1", "accuracy"}
    assert 0.4 < scores["accuracy"] <= 1.0  # 17 UPOS tags; NOUN alone is ~17%
    assert scores["tokens"] == sum(
        1 for line in open(work["conllu_dev"], encoding="utf-8") if line.split("\t")[0].isdigit()
    )


@pytest.mark.slow
def test_tag_arguments_stdin_and_json(upos_tagger):
    conll = cli("tag", "--model", upos_tagger, "The dog barked .", "Hi").stdout
    rows = [line.split("\t") for line in conll.strip().splitlines() if line]
    assert [r[0] for r in rows] == ["The", "dog", "barked", ".", "Hi"]
    lines = cli("tag", "--model", upos_tagger, "--json", input="First line .\n\nthird 🙂\n").stdout.splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["words"] for r in results] == [["First", "line", "."], [], ["third", "🙂"]]
    assert all(len(r["tags"]) == len(r["words"]) for r in results)


ODD_TEXTS = ["The dog barked .", "", "   \t ", "bad \udcff byte", "emoji 🙂 and 東京 here", "x " * 5000,
             "Another sentence , with a comma ."]
# Run in a fresh interpreter that imports only TensorFlow and tensorflow-text.
SERVE_SCRIPT = """
import json, sys
import numpy as np, tensorflow as tf, tensorflow_text  # noqa: F401
texts = [t.encode("utf-8", "surrogateescape") for t in json.loads(sys.argv[2])]
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
rows = [serve(texts=tf.constant(texts[i:i + 1])) for i in range(len(texts))]  # batch size 1
batch = serve(texts=tf.constant(texts))  # batch size 7, every odd input mixed in
for name, bad in (("int", tf.constant([1, 2])), ("matrix", tf.constant([["a", "b"]]))):
    try:
        serve(texts=bad)
        print("accepted", name)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:  # a clear error, no crash
        print("rejected", name, type(error).__name__)
def plain(value):
    return value.numpy().tolist()
print(json.dumps({"rows": [{k: plain(v) for k, v in r.items()} for r in rows],
                  "batch": {k: plain(v) for k, v in batch.items()},
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] == "tfpretrain")},
                 default=lambda b: b.decode("utf-8", "replace")))
"""


def _texts_arg():
    return json.dumps([t for t in ODD_TEXTS])


@pytest.mark.slow
def test_export_saved_model_answers_in_a_fresh_process(work, upos_tagger):
    root = work["root"] / "saved_models"
    first = cli("export", "--model", upos_tagger, "--name", "upos", "--root", root).stdout.strip().splitlines()[-1]
    second = cli("export", "--model", upos_tagger, "--name", "upos", "--root", root).stdout.strip().splitlines()[-1]
    assert first.endswith(os.path.join("upos", "1")) and second.endswith(os.path.join("upos", "2"))
    assert sorted(os.listdir(root / "upos")) == ["1", "2"]  # no half-written staging folder left
    result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, first, _texts_arg()], capture_output=True,
                            text=True, env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert "rejected int TypeError" in lines or "rejected int ValueError" in lines or any(
        line.startswith("rejected int") for line in lines)
    assert any(line.startswith("rejected matrix") for line in lines)
    served = json.loads(lines[-1])
    assert served["loaded"] == []  # no tfpretrain: TensorFlow and tensorflow-text only
    keras_answers = [json.loads(line) for line in cli(
        "tag", "--model", upos_tagger, "--json", input="\n".join(ODD_TEXTS[:3] + ODD_TEXTS[4:]) + "\n"
    ).stdout.splitlines()]
    batch = served["batch"]
    assert batch["lengths"][:3] == [4, 0, 0] and batch["num_words_truncated"][5] == 5000 - 512
    for i, row in enumerate(served["rows"]):
        n = row["lengths"][0]
        assert row["tags"][0][:n] == batch["tags"][i][:n]  # batch size 1 and 7 agree
        assert abs(row["score"][0] - batch["score"][i]) < 1e-4
    for i, answer in zip([0, 1, 2, 4, 5, 6], keras_answers):  # the Keras model's answers (invalid UTF-8 aside)
        n = batch["lengths"][i]
        assert batch["tags"][i][:n] == answer["tags"] and batch["words"][i][:n] == answer["words"]
        assert batch["starts"][i][:n] == answer["starts"]
    shown = subprocess.run([os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "show", "--dir",
                            first, "--all"], capture_output=True, text=True, env=ENV, timeout=300)
    assert "signature_def['serving_default']" in shown.stdout and "signature_def['tag_ids']" in shown.stdout


@pytest.mark.slow
def test_ids_only_saved_model_needs_no_tensorflow_text(work, upos_tagger):
    root = work["root"] / "ids_only"
    path = cli("export", "--model", upos_tagger, "--name", "upos", "--root", root, "--ids-only").stdout.split()[-1]
    script = (
        "import json, sys, tensorflow as tf\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "ids = json.loads(sys.argv[2])\n"
        "out = serve(word_ids=tf.constant(ids['word_ids']), char_ids=tf.constant(ids['char_ids']))\n"
        "print(json.dumps({'tags': out['tags'].numpy().tolist(), 'tftext': 'tensorflow_text' in sys.modules},"
        " default=bytes.decode))\n"
    )
    from tfpretrain.export.serving import serving_module

    module, signatures = serving_module(str(upos_tagger))
    features = module.preprocessor(module.preprocessor.tokenize(["The dog barked .", "Hi"]).to_tensor())
    ids = {k: v.numpy().tolist() for k, v in features.items()}
    result = subprocess.run([sys.executable, "-c", script, path, json.dumps(ids)], capture_output=True, text=True,
                            env=ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["tftext"] is False
    expected = signatures["serving_default"](texts=tf.constant(["The dog barked .", "Hi"]))["tags"].numpy()
    assert served["tags"] == [[t.decode() for t in row] for row in expected]


@pytest.mark.slow
def test_tflite_tags_equal_keras_on_every_dev_sentence(work, upos_tagger, shared_data):
    from tfpretrain.export.tflite import TfliteModel
    from tfpretrain.export.serving import serving_module
    from tfpretrain.text.readers import read_conllu

    float_path, int8_path = work["root"] / "upos.tflite", work["root"] / "upos_int8.tflite"
    assert cli("export", "--model", upos_tagger, "--tflite", float_path).stdout.split()[-1] == str(float_path)
    cli("export", "--model", upos_tagger, "--tflite", int8_path, "--quantize", "dynamic")
    data = float_path.read_bytes()
    assert b"Flex" not in data  # no SELECT_TF_OPS kernels: builtins and tensorflow-text ops only
    assert int8_path.stat().st_size < len(data)  # tiny model: the tokenizer tables dominate; see the benchmark
    texts = [s.text for s in read_conllu(shared_data / "ud_english_ewt" / "dev.conllu")]
    assert len(texts) > 2000 and all(texts)
    module, signatures = serving_module(str(upos_tagger))
    serve = signatures["serving_default"]
    model, quantized = TfliteModel(str(float_path)), TfliteModel(str(int8_path))
    same_int8 = total = ties = 0
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        expected = {k: v.numpy() for k, v in serve(texts=tf.constant(batch)).items()}
        for i, text in enumerate(batch):
            n = expected["lengths"][i]
            got = model.run_one(text)
            assert got["lengths"][0] == n, text
            for key in ("words", "starts", "ends"):
                assert got[key][0, :n].tolist() == expected[key][i, :n].tolist(), (key, text)
            if got["tags"][0, :n].tolist() != expected["tags"][i, :n].tolist():
                # Only a tie (two paths within float32 rounding of each other) may decode differently.
                ties += 1
                assert _path_log_probability_gap(module, text, got["tags"][0, :n], expected["tags"][i, :n]) < 1e-4
            assert abs(got["score"][0] - expected["score"][i]) < 1e-3
            tags8 = quantized.run_one(text)["tags"][0, :n]
            same_int8 += int((tags8 == expected["tags"][i, :n]).sum())
            total += int(n)
    assert ties <= len(texts) // 200, ties
    assert same_int8 / total > 0.9  # int8 weights change a few tags; the benchmark reports by how much


def _path_log_probability_gap(module, text, tags_a, tags_b):
    """|log p(a) - log p(b)| under the Keras model's CRF, for one text and two tag paths."""
    words = module.preprocessor.tokenize([text]).to_tensor()
    features = module.preprocessor(words)
    potentials = module.model(features, training=False)["potentials"]
    mask = features["word_ids"] > 0
    a, b = (module.model.crf.log_likelihood(potentials, module.preprocessor.tag_ids(tf.constant([list(t)])), mask)
            for t in (tags_a, tags_b))
    return float(abs(a[0] - b[0]))


@pytest.mark.slow
def test_predict_gives_the_same_answers_from_keras_savedmodel_and_tflite(work, upos_tagger):
    saved = cli("export", "--model", upos_tagger, "--name", "predict", "--root", work["root"] / "sm").stdout.split()[-1]
    tflite = work["root"] / "predict.tflite"
    cli("export", "--model", upos_tagger, "--tflite", tflite)
    stdin = "The dog barked .\n\n" + "x " * 3000 + "\nemoji 🙂 here\n"
    outputs = [[json.loads(line) for line in cli("predict", "--model", path, input=stdin).stdout.splitlines()]
               for path in (upos_tagger, saved, tflite)]
    for answers in outputs[1:]:
        assert len(answers) == len(outputs[0]) == 4
        for got, expected in zip(answers, outputs[0]):
            assert abs(got.pop("score") - expected["score"]) < 1e-3
            assert got == {k: v for k, v in expected.items() if k != "score"}
    assert outputs[0][2]["num_words_truncated"] == 3000 - 512 and outputs[0][1]["words"] == []
    result = cli("export", "--model", upos_tagger, "--tflite", tflite, "--name", "x", check=False)
    assert result.returncode == 2 and "--name NAME" in result.stderr


@pytest.mark.slow
def test_a_bilm_named_by_encoder_trains_the_tagger_bilm_trains(work, bilm):
    """--encoder finds the BiLM from the directory: TagLM is --layers last --inject top, the same model as --bilm."""
    common = ("train-tagger", "--train", work["conllu_train"], "--dev", work["conllu_dev"], "--format", "conllu",
              "--column", "upos", "--epochs", 1, "--batch-size", 16, "--preset", "tiny")
    by_bilm = json.loads(cli(*common, "--bilm", bilm, "--out", work["root"] / "by_bilm").stdout.splitlines()[-1])
    by_encoder = json.loads(cli(*common, "--encoder", bilm, "--layers", "last", "--inject", "top",
                                "--out", work["root"] / "by_encoder").stdout.splitlines()[-1])
    assert by_encoder["accuracy"] == pytest.approx(by_bilm["accuracy"], abs=1e-9)
    refused = cli(*common, "--encoder", bilm, "--layers", "concat_last_four", "--out", work["root"] / "refused",
                  check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "is a BiLM" in refused.stderr and "--layers scalar_mix --inject input" in refused.stderr


@pytest.mark.slow
def test_train_on_iob2_without_bilm(work):
    out = work["root"] / "ner"
    train = write_slice(work["iob2"], work["root"] / "ner_train.iob2", 300)
    dev = work["root"] / "ner_dev.iob2"
    with open(work["iob2"], encoding="utf-8") as f:
        dev.write_text("\n\n".join(f.read().split("\n\n")[1800:1900]) + "\n\n", encoding="utf-8")
    result = cli("train-tagger", "--train", train, "--dev", dev, "--format", "iob2", "--epochs", 1,
                 "--preset", "tiny", "--static-shapes", "on", "--out", out)
    assert "constraint: BIO" in result.stdout
    assert json.loads((out / "tagger.json").read_text())["static_shapes"] is True  # the option reached the run
    scores = json.loads(cli("evaluate", "--model", out, "--data", dev).stdout.strip().splitlines()[-1])
    assert 0.0 <= scores["f1"] <= 1.0 and scores["accuracy"] > 0.5


@pytest.mark.slow
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
    assert result.returncode == 2 and "no such model; give a model directory" in result.stderr


@pytest.mark.slow
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


@pytest.mark.slow
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


def _readme_requests():
    text = (REPO_ROOT / "saved_models" / "README.md").read_text(encoding="utf-8")
    return {name: json.loads(body) for name, body in
            re.findall(r"<!-- request: ([\w-]+) -->\n```json\n(.*?)\n```", text, flags=re.S)}


@pytest.mark.slow
def test_readme_request_bodies_run_through_the_signatures(work, upos_tagger):
    """The REST and gRPC bodies of saved_models/README.md, fed to the SavedModel as TF Serving would."""
    import tensorflow_text  # noqa: F401  (registers the ops, as a server must)
    from google.protobuf import json_format
    from tensorflow.core.framework import tensor_pb2

    requests = _readme_requests()
    assert set(requests) == {"rest-rows", "rest-columns", "rest-ids", "grpc"}
    path = cli("export", "--model", upos_tagger, "--name", "readme", "--root", work["root"] / "rm").stdout.split()[-1]
    signatures = tf.saved_model.load(path).signatures
    answers = {}
    for name, body in requests.items():
        if name == "grpc":
            signature = signatures[body["modelSpec"]["signatureName"]]
            inputs = {key: tf.constant(tf.make_ndarray(json_format.ParseDict(value, tensor_pb2.TensorProto())))
                      for key, value in body["inputs"].items()}
        else:
            signature = signatures[body["signature_name"]]
            inputs = body.get("inputs") or {"texts": body["instances"]}
            inputs = {key: tf.constant(value) for key, value in inputs.items()}
        answers[name] = signature(**inputs)
    assert answers["rest-rows"]["tags"].shape[0] == 2
    first = answers["rest-rows"]["tags"][0, :4].numpy().tolist()
    assert answers["rest-columns"]["tags"][0].numpy().tolist() == first == answers["grpc"]["tags"][0].numpy().tolist()
    assert answers["rest-ids"]["lengths"].numpy().tolist() == [2]
