"""The extractive question-answering serving module: question and context strings in, answer text and byte span out."""

import tensorflow as tf

from tfpretrain.export.saved_model import cast_inputs, check_batch, check_same_batch, fast_normalizing, spec
from tfpretrain.models.bert.preprocessor import PIECE_INPUTS, cut_padding
from tfpretrain.models.bert.question_answering_preprocessor import (
    QuestionAnsweringPreprocessor,
    best_single_span,
    best_spans,
    character_bytes,
    decode_answer_spans,
    single_context_byte_pieces,
    single_question_windows,
)


class QuestionAnsweringModule(tf.Module):
    """A fine-tuned BERT question answerer (SQuAD v1.1): its preprocessor, model and span decoder in one graph.

    A thin wrapper: `QuestionAnsweringPreprocessor` cuts each (question,
    context) pair into windows ``[CLS] question [SEP] context-window [SEP]``,
    the model scores them, and `decode_answer_spans` picks the best span over
    all windows of a question, as `tfpretrain.models.bert.answer_questions`
    (training, evaluation, prediction) does with the same functions.

    Signatures:

    - ``serving_default``: ``question``, ``context`` string (batch,) ->
      ``answer`` string (batch,), ``start``, ``end`` int32 (batch,) (byte
      offsets of the answer in ``context``: ``context[start:end] == answer``
      in UTF-8 bytes), ``score`` float32 (batch,) (the answer's start plus end
      logit, not a probability), ``truncated`` bool (batch,) (the question
      was cut to ``max_query_length`` pieces). A context with no words gives
      the answer ``""``, start = end = 0 and score NaN.
    - ``qa_ids``: ``token_ids``, ``segment_ids``, ``padding_mask`` int32
      (windows, sequence_length), one packed window per row ->
      ``start_logits``, ``end_logits`` float32 (windows, sequence_length)
      and the window's best span in its second segment (the context, before
      the last ``[SEP]``): ``start_position``, ``end_position`` int32
      (windows,) (-1 if none) and ``score`` float32 (NaN if none).

    ``serving_default`` runs the model on the batch's longest window rather
    than on ``sequence_length`` pieces (padding is masked: the same answers).
    `tflite_function` gives the same answerer at batch size 1 for a
    ``.tflite`` file (`tfpretrain.export.tflite`), with the windows cut in
    the graph from TFLite kernels only.

    Args:
        model: the Keras question answerer (`tfpretrain.models.bert.load_qa_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``sequence_length``, ``doc_stride``,
            ``max_query_length``, ``max_answer_length``).

    Example:

    >>> module = QuestionAnsweringModule(*tfpretrain.models.bert.load_qa_model("runs/squad"))
    >>> tf.saved_model.save(module, "saved_models/squad/1", signatures=module.signatures())
    """

    def __init__(self, model, tokenizer, options):
        super().__init__(name="bert_qa")
        self.model = model
        self.tokenizer = tokenizer
        self.preprocessor = QuestionAnsweringPreprocessor(tokenizer, options["sequence_length"], options["doc_stride"],
                                                          options["max_query_length"])
        self.sequence_length = self.preprocessor.sequence_length
        self.doc_stride = self.preprocessor.doc_stride
        self.max_query_length = self.preprocessor.max_query_length
        self.max_answer_length = int(options["max_answer_length"])
        ids = [spec(name, [None, self.sequence_length], tf.int32)
               for name in ("token_ids", "segment_ids", "padding_mask")]
        self.answer = tf.function(self._answer, input_signature=[spec("question", [None]), spec("context", [None])])
        self.qa_ids = tf.function(self._qa_ids, input_signature=ids)

    def signatures(self):
        """``{"serving_default": raw strings, "qa_ids": packed windows}`` concrete functions."""
        return {"serving_default": self.answer.get_concrete_function(), "qa_ids": self.qa_ids.get_concrete_function()}

    def _logits(self, packed):
        outputs = self.model(cast_inputs(self.model, packed), training=False)
        return tf.cast(outputs["start_logits"], tf.float32), tf.cast(outputs["end_logits"], tf.float32)


    def _qa_ids(self, token_ids, segment_ids, padding_mask):
        start_logits, end_logits = self._logits(
            {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask})
        length = tf.reduce_sum(tf.cast(padding_mask > 0, tf.int32), axis=1, keepdims=True)  # (windows, 1)
        position = tf.range(self.sequence_length)[None, :]
        context = (segment_ids == 1) & (padding_mask > 0) & (position < length - 1)  # the final [SEP] excluded
        windows = tf.shape(token_ids)[0]
        score, _, start, end = best_spans(start_logits, end_logits, context, context, self.max_answer_length,
                                          n_best_size=1, example=tf.range(windows), num_questions=windows)
        score, start, end = score[:, 0], start[:, 0], end[:, 0]  # (windows,): each window on its own
        found = tf.math.is_finite(score)
        return {"start_logits": start_logits, "end_logits": end_logits,
                "start_position": tf.where(found, start, -1), "end_position": tf.where(found, end, -1),
                "score": tf.where(found, tf.cast(score, tf.float32), float("nan"))}

    def _answer(self, question, context):
        question, context = check_same_batch([check_batch(question, "question"), check_batch(context, "context")],
                                             ["question", "context"])
        windows = self.preprocessor(question, context)
        # The model reads the batch's longest window (`cut_padding`), not sequence_length pieces: padding is
        # masked, so the logits of the real positions are the same; padding positions get the model's own -1e9 back.
        inputs = cut_padding({key: windows[key] for key in PIECE_INPUTS}, self.sequence_length)
        start_logits, end_logits = self._logits(inputs)
        pad = [[0, 0], [0, self.sequence_length - tf.shape(inputs["token_ids"])[1]]]
        start_logits = tf.ensure_shape(tf.pad(start_logits, pad, constant_values=-1e9), [None, self.sequence_length])
        end_logits = tf.ensure_shape(tf.pad(end_logits, pad, constant_values=-1e9), [None, self.sequence_length])
        spans = decode_answer_spans(start_logits, end_logits, windows, tf.shape(question)[0], self.max_answer_length)
        score = spans["score"][:, 0]  # (batch,)
        found = tf.math.is_finite(score)
        char_bytes = character_bytes(context)  # (batch, characters + 1)
        base = tf.cast(char_bytes.row_starts(), tf.int32)
        start_byte = tf.cast(tf.gather(char_bytes.flat_values, base + spans["start_char"][:, 0]), tf.int32)
        end_byte = tf.cast(tf.gather(char_bytes.flat_values, base + spans["end_char"][:, 0]), tf.int32)
        return {
            "answer": tf.strings.substr(context, start_byte, end_byte - start_byte),
            "start": start_byte,
            "end": end_byte,
            "score": tf.where(found, tf.cast(score, tf.float32), float("nan")),
            "truncated": windows["truncated"],
        }

    def tflite_function(self):
        """The raw-text graph at batch size 1, for `tfpretrain.export.tflite`.

        Inputs ``question``, ``context`` string (1,); outputs as
        ``serving_default``'s (``answer``, ``start``, ``end``, ``score``,
        ``truncated``, each (1,)). The windows are cut in the graph, with
        TFLite builtins and tensorflow-text's TFLite ops only
        (`single_context_byte_pieces`, `single_question_windows`,
        `best_single_span` in `tfpretrain.models.bert.question_answering_preprocessor`),
        in UTF-8 bytes. The texts are normalised by tensorflow-text's
        `FastBertNormalizer` (BERT's exact normaliser has no TFLite kernels),
        so on texts with characters it normalises differently (control
        characters, "…", "ß", full-width letters, U+FFFD; see
        `single_context_byte_pieces`) the answer may differ from the
        SavedModel's; invalid UTF-8 is kept, its word becomes ``[UNK]``. On
        the SQuAD v1.1 dev sample (810 questions) the answers, spans and
        scores are the SavedModel's.
        """
        tokenizer = fast_normalizing(self.tokenizer)
        return tf.function(lambda question, context: self._answer_one(tokenizer, question, context),
                           input_signature=[spec("question", [1]), spec("context", [1])])

    def _answer_one(self, tokenizer, question, context):
        """`_answer` for one (question, context) pair, with TFLite kernels only (`tflite_function`)."""
        import tensorflow_text as tf_text

        query = tokenizer(question).flat_values  # (question pieces,): the one row
        truncated = tf.shape(query)[0] > self.max_query_length
        query = query[:self.max_query_length]
        pieces, start_bytes, end_bytes = single_context_byte_pieces(
            tokenizer._fast_normalizer, tokenizer._wordpiece, context)  # pylint: disable=protected-access
        windows = single_question_windows(query, pieces, self.sequence_length, self.doc_stride,
                                          tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id)
        start_logits, end_logits = self._logits(
            {key: windows[key] for key in ("token_ids", "segment_ids", "padding_mask")})  # (windows, length)
        score, window, start, end = best_single_span(start_logits, end_logits,
                                                     windows["context"] & windows["max_context"], windows["context"],
                                                     self.max_answer_length)
        found = score > float("-inf")
        piece = tf.gather(windows["piece"], window)  # (length,)
        start_bytes = tf.concat([start_bytes, [0]], axis=0)  # never empty
        end_bytes = tf.concat([end_bytes, [0]], axis=0)
        start_byte = tf.where(found, tf.gather(start_bytes, tf.gather(piece, start)), 0)
        end_byte = tf.where(found, tf.gather(end_bytes, tf.gather(piece, end)), 0)
        answer = tf_text.ByteSplitter().split_by_offsets(context, tf.reshape(start_byte, [1, 1]),
                                                         tf.reshape(end_byte, [1, 1]))
        return {
            "answer": tf.reshape(answer, [1]),
            "start": tf.reshape(start_byte, [1]),
            "end": tf.reshape(end_byte, [1]),
            "score": tf.reshape(tf.where(found, score, float("nan")), [1]),
            "truncated": tf.reshape(truncated, [1]),
        }
