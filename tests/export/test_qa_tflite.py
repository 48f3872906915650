"""The extractive question answerer as one ``.tflite`` file: the SavedModel's answers, windows cut in the graph.

A tiny untrained BERT (random encoder, scrambled span head, so that answers
vary with the input) with short windows (sequence_length 64, doc_stride 24),
so that most SQuAD contexts are read through several windows. The file's
answers (text, byte span, score) must equal `QuestionAnsweringModule`'s (the
SavedModel's ``serving_default`` graph) on SQuAD dev questions, and bad input
must get well-formed answers.
"""


import numpy as np
import pytest

from tests.conftest import make_bert_dir, make_task_dir, scramble_head, write_head, write_sentences

QA_OPTIONS = {"task": "qa", "architecture": "bert", "sequence_length": 64, "doc_stride": 24, "max_query_length": 16,
              "max_answer_length": 10}


@pytest.fixture(scope="module")
def qa_files(shared_data, tmp_path_factory):
    """``(model_dir, tflite_path)`` of a tiny question answerer."""
    import keras

    from tfpretrain.export.tflite import export_tflite

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("qa_tflite")
    data = {
        "sst2_train": write_head(shared_data / "sst2" / "train.tsv", root / "sst2.tsv", 200),
        "rte_train": write_head(shared_data / "rte" / "train.tsv", root / "rte.tsv", 100),
        "uner_train": write_sentences(shared_data / "uner_english_ewt" / "dev.iob2", root / "uner.iob2", 0, 200),
    }
    bert = make_bert_dir(data, root / "bert")
    model_dir = make_task_dir(bert, root / "qa", QA_OPTIONS)
    scramble_head(model_dir)
    return str(model_dir), export_tflite(model_dir, root / "qa.tflite")


@pytest.fixture(scope="module")
def answerers(qa_files):
    """``(saved, lite)``: one (question, context) pair -> the outputs of the module's graph and of the file."""
    import tensorflow as tf

    from tfpretrain.export.serving import serving_module
    from tfpretrain.export.tflite import TfliteModel, to_bytes

    model_dir, path = qa_files
    module = serving_module(model_dir)[0]
    lite = TfliteModel(path)

    def saved(question, context):
        outputs = module.answer(tf.constant([to_bytes(question)]), tf.constant([to_bytes(context)]))
        return {name: value.numpy() for name, value in outputs.items()}

    return saved, lambda question, context: lite.run_one((question, context))


def _assert_same(lite, saved, where):
    for name in ("answer", "start", "end", "truncated"):
        np.testing.assert_array_equal(lite[name], saved[name], err_msg=f"{where}: {name}")
    np.testing.assert_allclose(lite["score"], saved["score"], atol=1e-4, err_msg=f"{where}: score")


def _assert_well_formed(outputs, context):
    context = context.encode("utf-8") if isinstance(context, str) else context
    assert {name: value.shape for name, value in outputs.items()} == {
        "answer": (1,), "start": (1,), "end": (1,), "score": (1,), "truncated": (1,)}
    assert outputs["start"].dtype == np.int32 and outputs["end"].dtype == np.int32
    assert outputs["score"].dtype == np.float32 and outputs["truncated"].dtype == bool
    start, end = int(outputs["start"][0]), int(outputs["end"][0])
    assert 0 <= start <= end <= len(context)
    assert outputs["answer"][0] == context[start:end]
    if np.isnan(outputs["score"][0]):
        assert (start, end) == (0, 0)


@pytest.mark.slow  # a TFLite conversion (in a subprocess) and 100 SQuAD questions
def test_tflite_answers_equal_the_saved_model(shared_data, answerers):
    from tfpretrain.text.squad import read_squad

    saved, lite = answerers
    questions = read_squad(shared_data / "squad_v1.1_sample" / "dev.json")[::8]
    multi_window = 0
    for question in questions:
        expected, got = saved(question.question, question.context), lite(question.question, question.context)
        _assert_same(got, expected, question.id)
        _assert_well_formed(got, question.context)
        assert np.isfinite(got["score"][0]) and got["answer"][0]  # every SQuAD context has words
        multi_window += len(question.context) > 400
    assert len(questions) >= 100 and multi_window > 50


@pytest.mark.slow
def test_tflite_bad_input_gets_well_formed_answers(shared_data, answerers):
    from tfpretrain.text.squad import read_squad

    saved, lite = answerers
    squad = read_squad(shared_data / "squad_v1.1_sample" / "dev.json")
    long_context = " ".join(sorted({q.context for q in squad})[:12])  # ~10,000 characters: about 100 windows
    long_question = "which " * 2000
    same = [  # the file's normaliser agrees with BERT's on these: the same answers
        ("", "The Broncos won the Super Bowl."),  # empty question
        ("Who won?", ""),  # empty context
        ("   ", " \n\t "),  # whitespace only
        ("Who won?", "  \t\n "),
        ("Who won?", "tab\tnew\nline  and\u00a0no-break space, caf\u00e9 \u00bd \u2013 na\u00efve"),
        (squad[0].question, long_context),  # many windows
        (long_question, squad[0].context),  # the question is cut
        (long_question, ""),
    ]
    for index, (question, context) in enumerate(same):
        got = lite(question, context)
        _assert_well_formed(got, context)
        _assert_same(got, saved(question, context), f"pair {index}")
    assert bool(lite(long_question, squad[0].context)["truncated"][0])
    for question, context in same[1:4] + same[7:]:  # no words in the context: no answer
        got = lite(question, context)
        assert got["answer"][0] == b"" and np.isnan(got["score"][0])
    odd = [  # invalid UTF-8 (kept by the file's normaliser), control characters, identical windows: well-formed only
        ("Who?", b"caf\xc3\xa9 \xff\xfe bad bytes \xc3"),
        (b"\xff\xfe?", "The Broncos won."),
        ("Who?", b"\xc3"),
        ("Who?", "\x00\x01 \u2603 ok \u200b zero width \u00ad soft hyphen \u2026 stra\u00dfe \uff21\uff22"),
        ("Who?", "family \U0001F468\u200d\U0001F469\u200d\U0001F467 \U0001F642 \u6771\u4eac\u306f\u6674\u308c\u3002"),
        ("Who?", "long " * 2000),
    ]
    for question, context in odd:
        got = lite(question, context)
        _assert_well_formed(got, context)
        assert np.isfinite(got["score"][0])


def test_single_question_windows_equal_context_windows():
    """The dense one-question windows are `context_windows`' (pieces, max-context flags) packed as `pack_segments`."""
    import itertools

    import tensorflow as tf

    from tfpretrain.models.bert.question_answering_preprocessor import context_windows, single_question_windows

    for sequence_length, query_length, stride, num_pieces in itertools.product(
            [8, 20, 130], [0, 3], [1, 3, 7, 200], [0, 1, 5, 17, 64, 250]):
        window_length = sequence_length - query_length - 3
        reference = context_windows(tf.constant([num_pieces]), tf.constant([window_length]), stride)
        pieces, flags = reference["piece"].to_list(), reference["max_context"].to_list()
        windows = {name: value.numpy() for name, value in single_question_windows(
            tf.range(100, 100 + query_length), tf.range(1000, 1000 + num_pieces), sequence_length, stride,
            cls_token_id=1, sep_token_id=2).items()}
        where = (sequence_length, query_length, stride, num_pieces)
        context = windows["context"]
        assert [list(row[mask]) for row, mask in zip(windows["piece"], context)] == pieces, where
        assert [list(row[mask]) for row, mask in zip(windows["max_context"], context)] == flags, where
        assert windows["token_ids"].shape[1] == query_length + 3 + len(pieces[0]), where  # the longest window
        for row, window in enumerate(pieces):
            tokens = [1, *range(100, 100 + query_length), 2, *(1000 + p for p in window), 2]
            padding = windows["token_ids"].shape[1] - len(tokens)
            assert list(windows["token_ids"][row]) == tokens + [0] * padding, where
            segments = [0] * (query_length + 2) + [1] * (len(window) + 1) + [0] * padding
            assert list(windows["segment_ids"][row]) == segments, where
            assert list(windows["padding_mask"][row]) == [True] * len(tokens) + [False] * padding


def test_best_single_span_equals_best_spans():
    """The float32 one-question span decoder picks `best_spans`' span (random logits, masks with holes)."""
    from tfpretrain.models.bert.question_answering_preprocessor import best_single_span, best_spans

    rng = np.random.default_rng(0)
    for trial in range(40):
        windows, length = int(rng.integers(1, 5)), 24
        start_logits, end_logits = rng.normal(size=(2, windows, length)).astype(np.float32)
        end_mask = rng.random((windows, length)) < (0.0 if trial == 0 else 0.7)  # trial 0: no valid span
        start_mask = end_mask & (rng.random((windows, length)) < 0.8)
        score, window, start, end = best_single_span(start_logits, end_logits, start_mask, end_mask, 5)
        ref_score, ref_window, ref_start, ref_end = (value.numpy()[0, 0] for value in best_spans(
            start_logits, end_logits, start_mask, end_mask, 5, n_best_size=1))
        if not np.isfinite(ref_score):
            assert float(score) == -np.inf and (int(window), int(start), int(end)) == (0, 0, 0)
            continue
        assert (int(window), int(start), int(end)) == (ref_window, ref_start, ref_end), trial
        assert float(score) == pytest.approx(ref_score, abs=1e-5)
