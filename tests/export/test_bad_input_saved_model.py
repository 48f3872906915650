"""Bad input at the SavedModel signature: every serving module, exported and reloaded, answers or refuses clearly.

Kinds (per module; `tests/export/test_task_modules.py` covers a matrix for
classify / qa and the empty, whitespace, control-character, invalid UTF-8 and
long texts of its ``BAD_TEXTS`` on batches; the tagger CLI tests cover an
int tensor and a matrix): empty batch, rank 0, rank 2 (also ``[n, 1]`` and
``[0, 3]``, which a size check alone let through), wrong dtype, a missing
input, inputs of different batch sizes, and in one batch: the empty string,
whitespace only, invalid UTF-8, NUL bytes, a 100,000-character text, only a
BOM, CRLF, Arabic, CJK, emoji with zero-width joiners, combining marks.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_bert_dir, make_tagger_dir, make_task_dir, write_head, write_sentences

pytestmark = pytest.mark.slow  # builds and exports six tiny models

ODD_TEXTS = [
    b"", b"   \t  ", b"caf\xc3\xa9 \xff\xfe bad bytes \xc3", b"nul\x00 in\x00side", ("long " * 20000).encode(),
    b"\xef\xbb\xbf", b"windows line\r\n", "مرحبا بالعالم".encode(), "東京は晴れ。".encode(),
    "family 👨\u200d👩\u200d👧 🙂".encode(), "cafe\u0301 n\u0303 a\u0308".encode(),
]


@pytest.fixture(scope="module")
def served(shared_data, tmp_path_factory):
    """Each kind of serving module, exported with `export_saved_model` and loaded back: name -> signatures."""
    import keras
    import tensorflow_text  # noqa: F401

    from tfpretrain.export import export_saved_model
    from tfpretrain.export.serving import serving_module

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("bad_saved_model")
    uner = shared_data / "uner_english_ewt" / "dev.iob2"
    data = {
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2.tsv", 100),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte.tsv", 30),
        "uner_train": write_sentences(uner, root / "uner.iob2", 0, 50),
    }
    bert = make_bert_dir(data, root / "bert")
    dirs = {"tagger": make_tagger_dir(root / "tagger"), "embed": bert}
    for name, options in {
        "classify": {"task": "classify", "labels": ["0", "1"], "sequence_length": 32},
        "pair": {"task": "pair", "labels": ["0", "1"], "sequence_length": 32},
        "bert_tag": {"task": "tag", "tags": ["O", "B-LOC", "I-LOC"], "scheme": "IOB2", "crf": True,
                     "constraint": "BIO", "sequence_length": 24},
        "qa": {"task": "qa", "sequence_length": 48, "doc_stride": 16, "max_query_length": 12, "max_answer_length": 8},
    }.items():
        dirs[name] = make_task_dir(bert, root / name, {**options, "architecture": "bert"})
    loaded = {}
    for name, model_dir in dirs.items():
        module, signatures = serving_module(model_dir)
        path = export_saved_model(module, root / "saved_models", name, signatures)
        loaded[name] = tf.saved_model.load(path).signatures
    return loaded


# name -> the text inputs of its serving_default signature
TEXT_INPUTS = {"tagger": ["texts"], "embed": ["texts"], "classify": ["texts"], "pair": ["text_a", "text_b"],
               "bert_tag": ["texts"], "qa": ["question", "context"]}
NAMES = list(TEXT_INPUTS)


def _call(signature, inputs):
    return {key: value.numpy() for key, value in signature(**inputs).items()}


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_gives_empty_outputs(served, name):
    """Defect 6: the tagger crashed on an empty batch (Matrix size-incompatible in the CharCNN)."""
    outputs = _call(served[name]["serving_default"], {key: tf.constant([], tf.string) for key in TEXT_INPUTS[name]})
    assert outputs and all(value.shape[0] == 0 for value in outputs.values()), {k: v.shape for k, v in outputs.items()}


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_on_the_id_signature(served, name):
    signature = next(s for key, s in served[name].items() if key != "serving_default")
    inputs = {key: tf.zeros([0] + [d or 1 for d in spec.shape[1:]], spec.dtype)
              for key, spec in signature.structured_input_signature[1].items()}
    outputs = _call(signature, inputs)
    assert all(value.shape[0] == 0 for value in outputs.values()), {k: v.shape for k, v in outputs.items()}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", ["scalar", "matrix", "column", "empty_matrix"])
def test_inputs_of_another_rank_are_refused_naming_the_rank(served, name, shape):
    """Defect 6: a scalar string crashed the tagger; a [n, 1] or [0, 3] matrix passed the old size check."""
    bad = {"scalar": tf.constant("Ines flew to Porto ."), "matrix": tf.constant([["a", "b"]]),
           "column": tf.constant([["a"], ["b"]]), "empty_matrix": tf.zeros([0, 3], tf.string)}[shape]
    inputs = {key: tf.constant(["ok"] * int(bad.shape[0] if bad.shape.rank else 1), tf.string)
              for key in TEXT_INPUTS[name]}
    first = TEXT_INPUTS[name][-1]
    inputs[first] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"{first} must have rank 1"):
        _call(served[name]["serving_default"], inputs)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_dtype_and_missing_input_are_refused(served, name):
    signature = served[name]["serving_default"]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(**{key: tf.constant([1, 2]) for key in TEXT_INPUTS[name]})
    with pytest.raises(TypeError):
        signature()


def test_inputs_of_different_batch_sizes_are_refused(served):
    for name in ("pair", "qa"):
        first, second = TEXT_INPUTS[name]
        with pytest.raises((tf.errors.InvalidArgumentError, ValueError)):
            _call(served[name]["serving_default"], {first: tf.constant(["a", "b"]), second: tf.constant(["c"])})


@pytest.mark.parametrize("name", NAMES)
def test_odd_texts_get_well_formed_answers(served, name):
    keys = TEXT_INPUTS[name]
    texts = tf.constant(ODD_TEXTS)
    outputs = _call(served[name]["serving_default"], {key: texts for key in keys})
    for key, value in outputs.items():
        assert value.shape[0] == len(ODD_TEXTS), key
        if value.dtype.kind == "f" and not (name == "qa" and key == "score"):  # qa: NaN score = no answer
            assert np.isfinite(value).all(), key
    if "lengths" in outputs:  # words: cut out of the input bytes by their offsets
        for i, text in enumerate(ODD_TEXTS):
            n = outputs["lengths"][i]
            words = [text[s:e] for s, e in zip(outputs["starts"][i, :n], outputs["ends"][i, :n])]
            assert words == list(outputs["words"][i, :n])
        assert list(outputs["lengths"][:2]) == [0, 0]  # empty, blank (a BOM is a zero-width word: it is tagged)
    if "num_words_truncated" in outputs:
        assert outputs["num_words_truncated"][4] > 0 and outputs["num_words_truncated"][0] == 0
    if "truncated" in outputs:
        assert outputs["truncated"][4] and not outputs["truncated"][0]
    if "label" in outputs:
        assert set(outputs["label"]) <= {b"0", b"1"}
        np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-5)
