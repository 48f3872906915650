"""Serving modules of fine-tuned models, exported as SavedModels and reloaded in a fresh process.

Every model is tiny and untrained (random encoder, scrambled head, so that
its outputs depend on the input): the tests check that the served graph computes what
the Python path does (`finetune.predict`, `finetune_qa.predict`,
`embed.embed_texts`, `ulmfit_classifier.predict`) on slices of the real corpora, at
batch sizes 1 and 7, and that bad input gets well-formed answers.

One fixture builds every model directory and SavedModel, and one subprocess
(importing only tensorflow and tensorflow_text) runs all of them, to keep the
file fast.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.conftest import make_bert_dir, scramble_head, write_head, write_sentences

pytestmark = pytest.mark.slow  # builds, exports and converts to TFLite a model of every task

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
DECODER = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64, "max_sequence_length": 64}
CHOICES = 3
ID_SIGNATURES = {"tag": "tag_ids", "tag_crf": "tag_ids", "qa": "qa_ids", "bert": "embed_ids"}  # else classify_ids
# Inputs no model should fail on: empty, whitespace, control characters, invalid UTF-8, far too long.
BAD_TEXTS = [b"", b"   \t\n ", b"\x00\x01 \xe2\x98\x83 ok", b"caf\xc3\xa9 \xff\xfe bad bytes",
             ("long " * 2000).encode()]

# The fresh process: load each SavedModel, call its signatures on the saved inputs, save every output.
SERVE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of the string signatures)

assert not any(name.startswith("tfpretrain") for name in sys.modules)
jobs = json.load(open(sys.argv[1]))
for job in jobs:
    signatures = tf.saved_model.load(job["saved_model"]).signatures
    outputs = {}
    for call, (signature, inputs) in enumerate(job["calls"]):
        tensors = {name: tf.constant(np.load(path, allow_pickle=True)) for name, path in inputs.items()}
        for key, value in signatures[signature](**tensors).items():
            outputs[f"{call}/{key}"] = value.numpy()
    np.savez(job["out"], **outputs)
print("served", len(jobs))
"""


def _task_dir(init_dir, out, options, seed):
    """A fine-tuned directory as `finetune.run` writes one, without training: random encoder, scrambled head."""
    from tfpretrain.models.bert.question_answering import build_question_answerer
    from tfpretrain.models.task_model import build_task_model, load_init_encoder, save_task_model

    encoder, tokenizer = load_init_encoder(init_dir, options["sequence_length"])
    if options["task"] == "qa":
        model = build_question_answerer(encoder, options["sequence_length"])
    else:
        model = build_task_model(options["task"], encoder, options)
    save_task_model(str(out), model, encoder, tokenizer, dict(options))
    # Taggers and span heads: many tags and spans; classifiers: probabilities that are not saturated.
    scramble_head(out, seed, scale=1.0 if options["task"] in ("tag", "qa") else 0.2)
    return out


def _gpt_dir(data, out):
    from tfpretrain.models.gpt import GPT_RESERVED_TOKENS, GptDecoder, save_gpt
    from tfpretrain.text.task_readers import read_classification_tsv, read_pair_tsv
    from tfpretrain.text.wordpiece import WordPieceTokenizer, learn_wordpiece_vocabulary

    texts = [e.texts[0] for e in read_classification_tsv(data["sst2_train"])]
    texts += [t for e in read_pair_tsv(data["rte_train"]) for t in e.texts]
    tokenizer = WordPieceTokenizer(learn_wordpiece_vocabulary(texts, 1200, reserved_tokens=GPT_RESERVED_TOKENS))
    save_gpt(str(out), GptDecoder(vocabulary_size=tokenizer.vocabulary_size(), **DECODER), tokenizer)
    return out


def _squad_questions(shared_data, every=8):
    from tfpretrain.text.squad import read_squad

    return read_squad(shared_data / "squad_v1.1_sample" / "dev.json")[::every]


@pytest.fixture(scope="module")
def model_dirs(shared_data, tmp_path_factory):
    """Every kind of exportable directory, built from slices of SST-2, RTE and UNER (no training)."""
    keras.utils.set_random_seed(0)  # module-scoped: the same random encoders whichever test runs first
    from tfpretrain.pipelines import ulmfit_classifier
    from tfpretrain.text.task_readers import read_tag_sentences, tag_list

    root = tmp_path_factory.mktemp("task_modules")
    uner = shared_data / "uner_english_ewt" / "dev.iob2"
    data = {
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2_train.tsv", 200),
        "sst2_dev": write_head(shared_data / "sst2" / "dev.tsv", root / "sst2_dev.tsv", 40),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte_train.tsv", 100),
        "uner_train": write_sentences(uner, root / "uner_train.iob2", 0, 200),
    }
    bert = make_bert_dir(data, root / "bert")
    tags = tag_list(read_tag_sentences(data["uner_train"]))
    bert_tasks = {
        "classify": {"task": "classify", "labels": ["0", "1"], "sequence_length": 32},
        "pair": {"task": "pair", "labels": ["0", "1"], "sequence_length": 48},
        "tag": {"task": "tag", "tags": tags, "scheme": "IOB2", "crf": False, "constraint": None, "sequence_length": 24},
        "tag_crf": {"task": "tag", "tags": tags, "scheme": "IOB2", "crf": True, "constraint": "BIO",
                    "sequence_length": 24},
        # Short windows: most SQuAD contexts are read through several.
        "qa": {"task": "qa", "sequence_length": 64, "doc_stride": 24, "max_query_length": 16, "max_answer_length": 10},
    }
    dirs = {"bert": bert}
    for seed, (name, options) in enumerate(bert_tasks.items()):
        dirs[name] = _task_dir(bert, root / name, {**options, "architecture": "bert"}, seed)
    gpt = _gpt_dir(data, root / "gpt")
    for seed, task in enumerate(("classify", "pair", "similarity", "choice")):
        labels = [str(k) for k in range(CHOICES)] if task == "choice" else ["0", "1"]
        options = {"task": task, "labels": labels, "sequence_length": 40, "architecture": "gpt", "lm_loss_weight": 0.5}
        dirs[f"gpt_{task}"] = _task_dir(gpt, root / f"gpt_{task}", options, 10 + seed)
    ulmfit_classifier.train_classifier(None, data["sst2_train"], data["sst2_dev"], str(root / "ulmfit"),
                                       from_scratch=True, preset="tiny", epochs=1, max_train_examples=32,
                                       batch_size=16, sequence_length=20, verbose=0, log=lambda *_: None)
    dirs["ulmfit"] = root / "ulmfit"
    return {name: str(path) for name, path in dirs.items()}


def _texts(shared_data):
    """Seven SST-2 dev sentences, seven RTE dev pairs, seven UNER sentences (raw text)."""
    from tfpretrain.text.task_readers import read_classification_tsv, read_pair_tsv

    sst2 = [e.texts[0] for e in read_classification_tsv(shared_data / "sst2" / "dev.tsv")[:7]]
    rte = [tuple(e.texts) for e in read_pair_tsv(shared_data / "rte" / "dev.tsv")[:7]]
    with open(shared_data / "uner_english_ewt" / "dev.iob2", encoding="utf-8") as f:
        uner = [line[len("# text = "):].rstrip("\n") for line in f if line.startswith("# text = ")][:7]
    return sst2, rte, uner


def _decoded(texts):
    """Python strings of byte strings, invalid UTF-8 replaced (as the graph's normalisers replace it)."""
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in texts]


def _id_inputs(name, module, texts):
    """The id signature's inputs for a batch, made by the Python path's own encoders."""
    import tensorflow as tf

    from tfpretrain.models.bert.preprocessor import encode_texts, encode_words
    from tfpretrain.models.ulmfit import classification_dataset
    from tfpretrain.text import tokenize
    from tfpretrain.models.gpt.preprocessor import encode_gpt_inputs
    from tfpretrain.text.packing import pack_words

    tokenizer, length = module.tokenizer, module.sequence_length
    if name == "ulmfit":
        return {"token_ids": next(iter(classification_dataset(texts, None, tokenizer, 64, length))).numpy()}
    if name.startswith("gpt_") or name in ("classify", "pair"):
        rows = [(row,) if isinstance(row, str) else tuple(row) for row in texts]
        columns = tuple(tf.constant(list(column)) for column in zip(*rows))  # the text columns of the task
        if name.startswith("gpt_"):
            packed, _ = encode_gpt_inputs(tokenizer, module.task, columns, length)
        else:
            packed, _ = encode_texts(tokenizer, columns, length)
    elif name.startswith("tag"):
        packed, _ = encode_words(tokenizer, tokenize(tf.constant(texts)), length)
    elif name == "bert":
        packed = pack_words(tokenizer.tokenize_words(tokenize(tf.constant(texts))), length, tokenizer.cls_token_id,
                            tokenizer.sep_token_id, tokenizer.pad_token_id)
        packed.pop("num_words_truncated")
    else:  # qa: the windows of question_answering_preprocessor.build_squad_features
        packed = texts.inputs()
    return {key: np.asarray(value).astype(np.int32) for key, value in dict(packed).items()}


def _calls(name, module, texts):
    """``[(signature, inputs)]``: serving_default at batch sizes 1 and 7 and on bad input, then the id signature."""
    sst2, rte, uner, squad = texts
    bad_pairs = list(zip(BAD_TEXTS, reversed(BAD_TEXTS)))
    if name in ("classify", "gpt_classify", "ulmfit", "bert", "tag", "tag_crf"):
        good = uner if name.startswith("tag") else sst2
        batches = [{"texts": good[:1]}, {"texts": good}, {"texts": BAD_TEXTS + good[:2]}, {"texts": [b"", b" "]}]
        ids = _id_inputs(name, module, good)
    elif name in ("pair", "gpt_pair", "gpt_similarity"):
        batches = [{"text_a": [a], "text_b": [b]} for a, b in rte[:1]]
        batches += [{"text_a": [a for a, _ in pairs], "text_b": [b for _, b in pairs]} for pairs in (rte, bad_pairs)]
        ids = _id_inputs(name, module, rte)
    elif name == "gpt_choice":
        endings = ["it is bad .", "it is good .", "it is fine ."]
        rows = [(text, *endings[k:], *endings[:k]) for k, text in enumerate(sst2)]
        bad_rows = [(text, *BAD_TEXTS[k:k + CHOICES]) for k, text in enumerate(BAD_TEXTS[:3])]
        batches = [{"context": [r[0] for r in chunk], "choices": [list(r[1:]) for r in chunk]}
                   for chunk in (rows[:1], rows, bad_rows)]
        ids = _id_inputs(name, module, rows)
    else:  # qa
        from tfpretrain.models.bert.question_answering_preprocessor import (
            QuestionAnsweringPreprocessor,
            build_squad_features,
        )

        pairs = [(q.question, q.context) for q in squad]
        batches = [{"question": [q for q, _ in chunk], "context": [c for _, c in chunk]}
                   for chunk in [pairs[:1]] + [pairs[i:i + 7] for i in range(0, len(pairs), 7)] + [bad_pairs]]
        batches.append({"question": [b"a", b"b"], "context": [b"", b" \n"]})  # no context at all
        features = build_squad_features(squad[:7], QuestionAnsweringPreprocessor(
            module.tokenizer, module.sequence_length, module.doc_stride, module.max_query_length))
        ids = _id_inputs(name, module, features)
    return [("serving_default", batch) for batch in batches] + [(ID_SIGNATURES.get(name, "classify_ids"), ids)]


@pytest.fixture(scope="module")
def served(model_dirs, shared_data, tmp_path_factory):
    """Every model exported with `serving_module` and served by one fresh process.

    Returns ``{name: {"calls": [(signature, inputs)], "outputs": [dict per call], "saved_model": path}}``.
    """
    from tfpretrain.export import export_saved_model
    from tfpretrain.export.serving import serving_module

    root = tmp_path_factory.mktemp("served")
    texts = (*_texts(shared_data), _squad_questions(shared_data))
    jobs, served = [], {}
    for name, model_dir in model_dirs.items():
        module, signatures = serving_module(model_dir)
        calls = _calls(name, module, texts)
        job_calls = []
        for i, (signature, inputs) in enumerate(calls):
            paths = {key: str(root / f"{name}-{i}-{key}.npy") for key in inputs}
            for key, value in inputs.items():
                array = value if isinstance(value, np.ndarray) else np.array(_nested_bytes(value), dtype=object)
                np.save(paths[key], array, allow_pickle=True)
            job_calls.append((signature, paths))
        path = export_saved_model(module, str(root / "saved_models"), name, signatures, version=1)
        jobs.append({"saved_model": path, "calls": job_calls, "out": str(root / f"{name}.npz")})
        served[name] = {"calls": calls, "saved_model": path, "model_dir": model_dir}
    (root / "jobs.json").write_text(json.dumps(jobs))
    result = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(root / "jobs.json")], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name, job in zip(model_dirs, jobs):
        outputs = served[name]["outputs"] = [{} for _ in served[name]["calls"]]
        with np.load(job["out"], allow_pickle=True) as stored:
            for key in stored.files:
                call, output = key.split("/", 1)
                outputs[int(call)][output] = stored[key]
    return served


def _nested_bytes(value):
    if isinstance(value, (list, tuple)):
        return [_nested_bytes(v) for v in value]
    return value.encode("utf-8") if isinstance(value, str) else value


def _text_calls(entry):
    """The serving_default calls and outputs, and the id call and its outputs."""
    calls = [(inputs, outputs) for (signature, inputs), outputs in zip(entry["calls"], entry["outputs"])
             if signature == "serving_default"]
    (ids_inputs, ids_outputs), = [(inputs, outputs) for (signature, inputs), outputs
                                  in zip(entry["calls"], entry["outputs"]) if signature != "serving_default"]
    return calls, ids_inputs, ids_outputs


def _rows(inputs):
    """One Python-path input per row of a batch: a string, or a tuple of strings (pair, choice)."""
    if "texts" in inputs:
        return _decoded(inputs["texts"])
    if "choices" in inputs:
        return [(c, *r) for c, r in zip(_decoded(inputs["context"]), [_decoded(row) for row in inputs["choices"]])]
    first, second = ("text_a", "text_b") if "text_a" in inputs else ("question", "context")
    return list(zip(_decoded(inputs[first]), _decoded(inputs[second])))


CLASSIFIERS = ("classify", "pair", "gpt_classify", "gpt_pair", "gpt_similarity", "gpt_choice", "ulmfit")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_equals_python_predict(served, name):
    from tfpretrain.pipelines import finetune, ulmfit_classifier

    entry = served[name]
    calls, _, ids_outputs = _text_calls(entry)
    rows = [_rows(inputs) for inputs, _ in calls]
    predict = ulmfit_classifier.predict if name == "ulmfit" else finetune.predict
    expected = iter(predict(entry["model_dir"], [row for batch in rows for row in batch]))
    for (inputs, outputs), batch in zip(calls, rows):
        assert [len(value) for value in outputs.values()] == [len(batch)] * len(outputs)
        for i, _ in enumerate(batch):
            python = next(expected)
            assert outputs["label"][i].decode() == python["label"]
            np.testing.assert_allclose(outputs["probabilities"][i], list(python["probabilities"].values()), atol=1e-5)
            assert outputs["score"][i] == pytest.approx(python["score"], abs=1e-5)
    assert np.std(calls[1][1]["probabilities"][:, 0]) > 1e-4, name  # the predictions depend on the text
    # Bad input: the rows holding the 10,000-character text are reported truncated, the others are not.
    long_rows = {"gpt_choice": [2], "pair": [0, 4], "gpt_pair": [0, 4], "gpt_similarity": [0, 4]}.get(name, [4])
    assert list(np.flatnonzero(calls[2][1]["truncated"][:5])) == long_rows
    # The id signature on the Python path's own packing gives the same as the strings, batch of 7.
    np.testing.assert_allclose(ids_outputs["probabilities"], calls[1][1]["probabilities"], atol=1e-5)
    assert list(ids_outputs["label"]) == list(calls[1][1]["label"])


@pytest.mark.parametrize("name", ["tag", "tag_crf"])
def test_tagger_equals_python_predict(served, name):
    from tfpretrain.pipelines import finetune

    entry = served[name]
    calls, _, ids_outputs = _text_calls(entry)
    texts = [text for inputs, _ in calls for text in inputs["texts"]]
    expected = iter(finetune.predict(entry["model_dir"], _decoded(texts)))
    tags_seen = set()
    for inputs, outputs in calls:
        width = outputs["words"].shape[1]
        for i, text in enumerate(_nested_bytes(inputs["texts"])):
            python, length = next(expected), int(outputs["lengths"][i])
            words = list(outputs["words"][i, :length])
            assert list(outputs["words"][i, length:]) == [b""] * (width - length)
            assert list(outputs["tags"][i, length:]) == [b""] * (width - length)
            assert [text[s:e] for s, e in zip(outputs["starts"][i, :length], outputs["ends"][i, :length])] == words
            tags = [t.decode() for t in outputs["tags"][i, :length]]
            tags_seen.update(tags)
            assert tags == python["tags"], text[:80]
            if text == text.decode("utf-8", "replace").encode():  # valid UTF-8: the same words as Python's
                assert [w.decode() for w in words] == python["tokens"]
    assert len(tags_seen) > 2
    bad = calls[2][1]
    assert list(bad["lengths"][:2]) == [0, 0] and bad["lengths"][4] == 2000 and bad["num_words_truncated"][4] > 1900
    empty = calls[3][1]  # a batch of empty texts: no words, one column of padding (as the CharCNN tagger's)
    assert empty["words"].shape == (2, 1) and list(empty["lengths"]) == [0, 0]
    assert empty["words"].tolist() == empty["tags"].tolist() == [[b""], [b""]]
    # tag_ids on packed ids: the tags of the words that fit, as the string signature gives them.
    strings = calls[1][1]
    for i, kept in enumerate(strings["lengths"] - strings["num_words_truncated"]):
        assert list(ids_outputs["tags"][i, :kept]) == list(strings["tags"][i, :kept])
        assert set(ids_outputs["tags"][i, kept:]) <= {b""}


def _byte_offset(text, char_offset):
    return len(text[:char_offset].encode("utf-8"))


def test_question_answering_equals_python_predict(served):
    from tfpretrain.pipelines import finetune_qa
    from tfpretrain.models.task_model import input_dtypes
    from tfpretrain.models.bert.question_answering import load_qa_model

    entry = served["qa"]
    calls, ids_inputs, ids_outputs = _text_calls(entry)
    rows = [_rows(inputs) for inputs, _ in calls]
    expected = iter(finetune_qa.predict(entry["model_dir"], [row for batch in rows for row in batch]))
    compared = multi_window = 0
    for (inputs, outputs), batch in zip(calls, rows):
        for i, (question, context) in enumerate(batch):
            python = next(expected)
            raw = _nested_bytes(inputs["context"])[i]
            start, end = int(outputs["start"][i]), int(outputs["end"][i])
            assert raw[start:end] == outputs["answer"][i]
            if raw != context.encode("utf-8"):
                continue  # invalid UTF-8: the offsets count the input's bytes, Python's the replaced characters'
            assert outputs["answer"][i].decode() == python["answer"]
            if raw != BAD_TEXTS[-1]:  # ("long " * 2000: its identical windows tie exactly, and float noise decides)
                assert (start, end) == (_byte_offset(context, python["start_char"]),
                                        _byte_offset(context, python["end_char"]))
            if python["score"] is None:
                assert np.isnan(outputs["score"][i])
            else:
                assert outputs["score"][i] == pytest.approx(python["score"], abs=1e-4)
            compared += 1
            multi_window += len(context) > 400
    assert compared >= 100 and multi_window > 50
    assert list(calls[-1][1]["answer"]) == [b"", b""] and np.isnan(calls[-1][1]["score"]).all()
    bad = calls[-2][1]
    assert list(bad["truncated"]) == [False, False, False, False, True]  # the 2,000-word question is cut
    assert bad["answer"][4] == b"" and bad["start"][4] == bad["end"][4] == 0 and np.isnan(bad["score"][4])
    # qa_ids: the model's logits on the windows of build_squad_features, and each window's best span (brute force).
    model, _, _ = load_qa_model(entry["model_dir"])
    dtypes = input_dtypes(model)
    logits = model({key: value.astype(dtypes[key]) for key, value in ids_inputs.items()}, training=False)
    for key in ("start_logits", "end_logits"):
        np.testing.assert_allclose(ids_outputs[key], logits[key], rtol=1e-5, atol=1e-4)
    for row, (start, end) in enumerate(zip(ids_outputs["start_position"], ids_outputs["end_position"])):
        segment, mask = ids_inputs["segment_ids"][row], ids_inputs["padding_mask"][row]
        context = (segment == 1) & (mask == 1)
        context[np.flatnonzero(mask)[-1]] = False  # the final [SEP]
        start_logits, end_logits = (ids_outputs[key][row].astype(np.float64) for key in ("start_logits", "end_logits"))
        positions = np.flatnonzero(context)
        # Every span of at most max_answer_length=10 pieces in the context; max() keeps the first best (start, end).
        score, first, last = max(((start_logits[s] + end_logits[e], s, e) for s in positions for e in positions
                                  if s <= e < s + 10), key=lambda span: span[0])
        assert (start, end) == (first, last) and ids_outputs["score"][row] == pytest.approx(score, abs=1e-4)


def test_embeddings_equal_embed_texts(served):
    from tfpretrain.pipelines.embed import embed_texts

    entry = served["bert"]
    calls, _, ids_outputs = _text_calls(entry)
    texts = [text for inputs, _ in calls for text in inputs["texts"]]
    expected = iter(embed_texts(entry["model_dir"], _decoded(texts)))
    for inputs, outputs in calls:
        for i, text in enumerate(_nested_bytes(inputs["texts"])):
            python, length = next(expected), int(outputs["lengths"][i])
            kept = length - int(outputs["num_words_truncated"][i])
            assert int(outputs["num_words_truncated"][i]) == python["num_words_truncated"]
            np.testing.assert_allclose(outputs["sentence_vector"][i], python["sentence_vector"], atol=1e-5)
            np.testing.assert_allclose(outputs["word_vectors"][i, :kept], python["word_vectors"], atol=1e-5)
            assert not outputs["word_vectors"][i, kept:].any()
            words = list(outputs["words"][i, :length])
            assert [text[s:e] for s, e in zip(outputs["starts"][i, :length], outputs["ends"][i, :length])] == words
            if text == text.decode("utf-8", "replace").encode():
                assert [w.decode() for w in words] == python["words"]
    assert calls[2][1]["num_words_truncated"][4] > 0
    np.testing.assert_allclose(ids_outputs["word_vectors"], calls[1][1]["word_vectors"], atol=1e-5)
    np.testing.assert_allclose(ids_outputs["sentence_vector"], calls[1][1]["sentence_vector"], atol=1e-5)


def test_saved_model_cli_lists_both_signatures(served):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    if not os.path.exists(cli):
        pytest.skip(f"saved_model_cli is not installed beside {sys.executable}")
    result = subprocess.run([cli, "show", "--dir", served["pair"]["saved_model"], "--all"], capture_output=True,
                            text=True, env=ENV, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['classify_ids']", "inputs['text_a']",
                 "inputs['text_b']", "inputs['segment_ids']", "outputs['probabilities']", "outputs['truncated']"):
        assert text in result.stdout, text


def test_inputs_of_the_wrong_rank_are_rejected(model_dirs, tmp_path):
    """A loaded SavedModel signature does not check shapes itself; the run-time check names the input."""
    import tensorflow as tf

    from tfpretrain.export import export_saved_model
    from tfpretrain.export.serving import serving_module

    for name, inputs, bad in (("classify", {"texts": [["a", "b"]]}, "texts"),
                              ("qa", {"question": ["Who?"], "context": [["a", "b"]]}, "context")):
        module, signatures = serving_module(model_dirs[name])
        path = export_saved_model(module, tmp_path, name, signatures)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=bad):
            serve(**{key: tf.constant(value) for key, value in inputs.items()})


def test_directories_that_cannot_be_exported(model_dirs, tmp_path):
    from tfpretrain.export.serving import serving_module

    with pytest.raises(FileNotFoundError, match="does not exist"):
        serving_module(tmp_path / "missing")
    with pytest.raises(ValueError, match="not a model directory.*What can be exported: a fine-tuned BERT"):
        serving_module(tmp_path)
    (tmp_path / "tagger.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="not a tagger directory: missing model.keras"):
        serving_module(tmp_path)
    gpt = os.path.join(os.path.dirname(model_dirs["gpt_classify"]), "gpt")
    with pytest.raises(ValueError, match="GPT language model without a task.*finetune"):
        serving_module(gpt)
    with pytest.raises(ValueError, match="plain BERT directories"):
        serving_module(model_dirs["classify"], sequence_length=16)


TFLITE_CLASSIFIERS = ("classify", "pair", "gpt_choice")
TFLITE_WORD_MODELS = ("tag", "tag_crf", "bert")  # BERT taggers (softmax, CRF) and embeddings


@pytest.fixture(scope="module")
def tflite_files(model_dirs, tmp_path_factory):
    """The TFLite-exportable models as ``.tflite`` files (each converted in a subprocess)."""
    from tfpretrain.export.tflite import export_tflite

    root = tmp_path_factory.mktemp("tflite")
    return {name: export_tflite(model_dirs[name], root / f"{name}.tflite")
            for name in TFLITE_CLASSIFIERS + TFLITE_WORD_MODELS}


@pytest.mark.parametrize("name", TFLITE_CLASSIFIERS)
def test_tflite_classifier_equals_the_saved_model(served, tflite_files, name):
    """The ``.tflite`` file answers as the SavedModel wherever its TFLite normaliser gives the same pieces.

    The file normalises with FastBertNormalizer (no TFLite kernel exists for
    BERT's exact normaliser): rows whose word pieces differ (invalid UTF-8 in
    the bad inputs) must still get a well-formed answer.
    """
    from tfpretrain.export.tflite import TfliteModel
    from tfpretrain.export.serving import serving_module
    from tfpretrain.text.wordpiece import WordPieceTokenizer

    exact = serving_module(served[name]["model_dir"])[0].tokenizer
    fast = WordPieceTokenizer(exact.vocabulary, lowercase=exact.lowercase, use_fast_bert_normalizer=True)
    model = TfliteModel(tflite_files[name])
    with open(os.path.join(served[name]["model_dir"], "task.json")) as f:
        labels = json.load(f)["labels"]
    names = [{"text": "texts"}.get(n, n) for n in model.input_names]
    compared = differing = 0
    for (signature, inputs), outputs in zip(served[name]["calls"], served[name]["outputs"]):
        if signature != "serving_default":
            continue
        for i in range(len(outputs["label"])):
            row = [inputs[n][i] for n in names]
            answer = model.run_one(tuple(row))
            assert answer["label"][0].decode() in labels
            assert np.sum(answer["probabilities"][0]) == pytest.approx(1.0, abs=1e-5)
            assert bool(answer["truncated"][0]) == bool(outputs["truncated"][i])
            texts = [t for part in row for t in (part if isinstance(part, list) else [part])]
            if exact(texts).to_list() != fast(texts).to_list():
                differing += 1
                continue
            compared += 1
            assert answer["label"][0] == outputs["label"][i]
            np.testing.assert_allclose(answer["probabilities"][0], outputs["probabilities"][i], atol=1e-5)
    assert compared >= 8 and differing <= 3, (compared, differing)


@pytest.mark.parametrize("name", TFLITE_WORD_MODELS)
def test_tflite_tagger_and_embedder_equal_the_saved_model(served, tflite_files, name):
    """Every output of the ``.tflite`` file (XNNPACK on) equals the SavedModel's wherever the pieces agree.

    The SavedModel ran at batch sizes 1 and 7 (rows padded to the longest
    text), the file runs each text alone: words, offsets, tags and counts are
    equal, vectors to float rounding. Rows whose FastBertNormalizer pieces
    differ (invalid UTF-8) must still be well-formed.
    """
    from tfpretrain.export.serving import serving_module
    from tfpretrain.export.tflite import TfliteModel, to_bytes
    from tfpretrain.export.saved_model import fast_normalizing

    exact = serving_module(served[name]["model_dir"])[0].tokenizer
    fast = fast_normalizing(exact)
    model = TfliteModel(tflite_files[name])
    compared = differing = 0
    for inputs, outputs in _text_calls(served[name])[0]:
        for i, text in enumerate(inputs["texts"]):
            answer = model.run_one(text)
            length = int(outputs["lengths"][i])
            assert int(answer["lengths"][0]) == length
            if exact([to_bytes(text)]).to_list() != fast([to_bytes(text)]).to_list():
                differing += 1
                continue
            compared += 1
            for key, value in answer.items():
                expected = outputs[key][i]
                if expected.ndim:  # per-word outputs: the file's row is as wide as its own text
                    expected, value = expected[:length], value[0][:length]
                else:
                    value = value[0]
                if value.dtype.kind == "f":
                    np.testing.assert_allclose(value, expected, atol=1e-4, err_msg=key)
                else:
                    np.testing.assert_array_equal(value, expected, err_msg=key)
    assert compared >= 12 and differing <= 3, (compared, differing)
    assert model.uses_xnnpack  # every text, the empty ones included, ran under the XNNPACK delegate


def test_tflite_classifier_through_predict_and_refusals(model_dirs, tflite_files, shared_data, tmp_path):
    """``tfpretrain predict`` prints the same labels from the model directory and from its ``.tflite`` file."""
    from tfpretrain.export.tflite import export_tflite
    from tfpretrain.pipelines import predict

    sst2, rte, _ = _texts(shared_data)
    for name, rows in (("classify", sst2), ("pair", ["\t".join(pair) for pair in rte]),
                       ("gpt_choice", [f"{text}\tit is bad .\tit is good .\tit is fine ." for text in sst2])):
        keras_answers, tflite_answers = (predict.run(path, rows) for path in (model_dirs[name], tflite_files[name]))
        assert [a["label"] for a in tflite_answers] == [a["label"] for a in keras_answers], name
        assert [a["text"] for a in tflite_answers] == [a["text"] for a in keras_answers]
        assert all(isinstance(a["label"], str) for a in keras_answers + tflite_answers)
        json.dumps(keras_answers + tflite_answers)  # what `tfpretrain predict` prints
    with pytest.raises(ValueError, match="ULMFiT classifier exports to a SavedModel only"):
        export_tflite(model_dirs["ulmfit"], tmp_path / "ulmfit.tflite")
    assert not os.listdir(tmp_path)  # nothing half-written
    tagger_rows = _texts(shared_data)[2] + ["", "caf\xe9  \x00 ok"]
    keras_tags, tflite_tags = (predict.run(path, tagger_rows) for path in (model_dirs["tag_crf"],
                                                                              tflite_files["tag_crf"]))
    assert [a["tags"] for a in tflite_tags] == [a["tags"] for a in keras_tags]
    assert [a["words"] for a in tflite_tags] == [a["words"] for a in keras_tags]
