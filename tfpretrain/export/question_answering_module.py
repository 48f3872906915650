"""The extractive question-answering serving module: question and context strings in, answer text and byte span out."""

import tensorflow as tf

from tfpretrain.export.saved_model import cast_inputs, check_batch, spec

# Python's str.isspace() characters: where tfpretrain.text.squad.split_words splits a context into words.
_PYTHON_SPACE = (r"[\t\n\x{b}\x{c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
                 r"\x{205f}\x{3000}]")


def _best_window_spans(start_logits, end_logits, start_mask, end_mask, max_answer_length):
    """The best valid span of each window: ``(score, start, end)``, each (windows,).

    In the graph what `tfpretrain.text.squad.best_spans` does in NumPy: a span
    is valid when both ends are allowed by the masks, ``start <= end`` and
    it is at most ``max_answer_length`` pieces; its score is the start plus
    the end logit, summed in float64; on ties the first start, then the
    shortest span wins. A window without a valid span scores -inf.
    """
    length = start_logits.shape[1]
    width = max(1, min(int(max_answer_length), length))
    start_logits = tf.where(start_mask, tf.cast(start_logits, tf.float64), -float("inf"))  # (windows, length)
    end_logits = tf.where(end_mask, tf.cast(end_logits, tf.float64), -float("inf"))
    end_logits = tf.pad(end_logits, [[0, 0], [0, width]], constant_values=-float("inf"))  # (windows, length + width)
    ends = tf.range(length)[:, None] + tf.range(width)[None, :]  # (length, width)
    scores = start_logits[:, :, None] + tf.gather(end_logits, ends, axis=1)  # (windows, length, width)
    scores = tf.reshape(scores, [-1, length * width])
    best = tf.reduce_max(scores, axis=1)  # (windows,)
    first = tf.reduce_min(tf.where(scores == best[:, None], tf.range(length * width)[None, :], length * width), axis=1)
    start = first // width
    return best, start, start + first % width


class QuestionAnsweringModule(tf.Module):
    """A fine-tuned BERT question answerer (SQuAD v1.1) with its tokenizer and window options.

    The whole of `tfpretrain.pipelines.finetune_qa.predict` runs in the
    graph: the context is split on whitespace and into word pieces with
    their characters (`WordPieceTokenizer.tokenize_words_with_offsets`), read
    through as many overlapping windows ``[CLS] question [SEP] context-window
    [SEP]`` as it needs (``doc_stride`` apart, each piece decoded in its
    "max context" window), and the best span over all windows is cut out of
    the context. The answers equal `finetune_qa.predict`'s.

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

    Args:
        model: the Keras question answerer (`finetune_qa.load_qa_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``sequence_length``, ``doc_stride``,
            ``max_query_length``, ``max_answer_length``).
    """

    def __init__(self, model, tokenizer, options):
        super().__init__(name="bert_qa")
        self.model = model
        self.tokenizer = tokenizer
        self.sequence_length = int(options["sequence_length"])
        self.doc_stride = int(options["doc_stride"])
        self.max_query_length = int(options["max_query_length"])
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
        score, start, end = _best_window_spans(start_logits, end_logits, context, context, self.max_answer_length)
        found = tf.math.is_finite(score)
        return {"start_logits": start_logits, "end_logits": end_logits,
                "start_position": tf.where(found, start, -1), "end_position": tf.where(found, end, -1),
                "score": tf.where(found, tf.cast(score, tf.float32), float("nan"))}

    def _context_pieces(self, contexts):
        """The word pieces of each context and their characters, as `tfpretrain.text.squad.tokenize_contexts`.

        Returns ``(pieces, start_chars, end_chars, char_bytes)``: ragged (batch,
        pieces) ids and character spans in the context, and ragged (batch,
        characters + 1) the byte offset of each character (and of the end).
        """
        chars, char_bytes = tf.strings.unicode_split_with_offsets(
            contexts, "UTF-8", errors="replace", replacement_char=0xFFFD)  # ragged (batch, chars)
        space = tf.strings.regex_full_match(chars.flat_values, _PYTHON_SPACE)  # (all chars,)
        rows = chars.value_rowids()
        index_in_row = tf.range(tf.size(space, out_type=tf.int64)) - tf.gather(chars.row_starts(), rows)
        after_space = tf.concat([[True], space[:-1]], axis=0) | (index_in_row == 0)
        begins = ~space & after_space  # (all chars,): the first character of a word
        word_of_char = tf.cumsum(tf.cast(begins, tf.int64)) - 1
        num_words = tf.reduce_sum(tf.cast(begins, tf.int64))
        word_chars = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(chars.flat_values, ~space), tf.boolean_mask(word_of_char, ~space), nrows=num_words)
        words = tf.RaggedTensor.from_value_rowids(
            tf.strings.reduce_join(word_chars, axis=1), tf.boolean_mask(rows, begins), nrows=chars.nrows())
        word_starts = tf.boolean_mask(index_in_row, begins)  # (words,): the word's first character in the context
        pieces, starts, ends = self.tokenizer.tokenize_words_with_offsets(words)  # (batch, words, pieces)
        word_of_piece = pieces.values.value_rowids()  # (all pieces,)
        shift = tf.cast(tf.gather(word_starts, word_of_piece), tf.int32)
        start_chars = pieces.values.with_flat_values(starts.flat_values + shift)
        end_chars = pieces.values.with_flat_values(ends.flat_values + shift)
        merge = pieces.merge_dims(1, 2)  # (batch, pieces)
        text_ends = tf.RaggedTensor.from_row_lengths(tf.cast(tf.strings.length(contexts), tf.int64),
                                                     tf.ones_like(chars.row_lengths()))
        return (merge, merge.with_flat_values(start_chars.flat_values), merge.with_flat_values(end_chars.flat_values),
                tf.concat([char_bytes, text_ends], axis=1))

    def _windows(self, query, pieces):
        """The windows ``[CLS] question [SEP] context-window [SEP]``, cut as `squad.build_squad_features` cuts them.

        Returns ``(packed, windows)``: the packed windows (all windows of the
        batch, sequence_length), and ``windows`` with, per window, ``example``
        (its question's row) and, per context piece in it (ragged
        ``slots``), ``piece`` (index into ``pieces.flat_values``),
        ``position`` (in the packed window) and ``max_context`` (the piece's
        best window is this one, `squad.max_context_windows`).
        """
        from tfpretrain.text.packing import pack_segments

        tokenizer = self.tokenizer
        num_pieces = tf.cast(pieces.row_lengths(), tf.int32)  # (batch,)
        window_length = self.sequence_length - tf.cast(query.row_lengths(), tf.int32) - 3  # (batch,)
        stride = tf.maximum(1, tf.minimum(self.doc_stride, window_length))  # as squad.window_starts
        num_windows = 1 + tf.maximum(0, -((window_length - num_pieces) // stride))  # 1 + ceil((n - length) / stride)
        example = tf.cast(tf.ragged.range(num_windows).value_rowids(), tf.int32)  # (windows,): each one's question
        first = tf.ragged.range(num_windows).flat_values * tf.gather(stride, example)  # (windows,): first piece
        end = tf.minimum(first + tf.gather(window_length, example), tf.gather(num_pieces, example))
        slots = tf.ragged.range(first, end)  # (windows, pieces in the window): the piece's index in its context
        window = tf.cast(slots.value_rowids(), tf.int32)  # (slots,): the window of each slot
        piece = slots.flat_values + tf.gather(tf.cast(pieces.row_starts(), tf.int32), tf.gather(example, window))
        window_query = tf.gather(query, example)
        packed = pack_segments((window_query, slots.with_flat_values(tf.gather(pieces.flat_values, piece))),
                               self.sequence_length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                               tokenizer.pad_token_id)
        # The window where each piece has the most context on both sides (the first on ties).
        in_window = slots.flat_values - tf.gather(first, window)  # (slots,)
        size = tf.gather(end - first, window)
        score = tf.cast(tf.minimum(in_window, size - 1 - in_window), tf.float64) + 0.01 * tf.cast(size, tf.float64)
        num_pieces_all, num_windows_all = tf.shape(pieces.flat_values)[0], tf.shape(example)[0]
        best_score = tf.gather(tf.math.unsorted_segment_max(score, piece, num_pieces_all), piece)
        best_window = tf.math.unsorted_segment_min(tf.where(score == best_score, window, num_windows_all), piece,
                                                   num_pieces_all)
        return packed, {
            "example": example,
            "window": window,
            "piece": piece,
            "position": in_window + tf.gather(tf.cast(window_query.row_lengths(), tf.int32), window) + 2,
            "max_context": tf.equal(tf.gather(best_window, piece), window),
        }

    def _answer(self, question, context):
        question, context = check_batch(question, "question"), check_batch(context, "context")
        query = self.tokenizer(question)  # (batch, pieces) ragged
        truncated = query.row_lengths() > self.max_query_length
        query = query[:, : self.max_query_length]
        pieces, start_chars, end_chars, char_bytes = self._context_pieces(context)
        packed, windows = self._windows(query, pieces)
        start_logits, end_logits = self._logits(packed)  # (windows, sequence_length)

        # Per position of each window: is it a context piece, may an answer start there, which piece is it.
        example = windows["example"]
        num_windows = tf.shape(example)[0]
        indices = tf.stack([windows["window"], windows["position"]], axis=1)
        shape = tf.stack([num_windows, self.sequence_length])
        context_mask = tf.scatter_nd(indices, tf.ones_like(windows["piece"]), shape) > 0
        start_mask = tf.scatter_nd(indices, tf.cast(windows["max_context"], tf.int32), shape) > 0
        position_piece = tf.scatter_nd(indices, windows["piece"], shape)  # (windows, sequence_length)

        # The best span of each question: its best window's best span (the first window on ties).
        score, start, end = _best_window_spans(start_logits, end_logits, start_mask, context_mask,
                                               self.max_answer_length)  # (windows,)
        batch = tf.shape(question)[0]
        best = tf.math.unsorted_segment_max(score, example, batch)  # (batch,)
        found = tf.math.unsorted_segment_max(tf.cast(tf.math.is_finite(score), tf.int32), example, batch) > 0
        chosen = tf.math.unsorted_segment_min(tf.where(score == tf.gather(best, example), tf.range(num_windows),
                                                       num_windows), example, batch)
        chosen = tf.where(found, chosen, 0)
        first_piece = tf.gather_nd(position_piece, tf.stack([chosen, tf.gather(start, chosen)], axis=1))
        last_piece = tf.gather_nd(position_piece, tf.stack([chosen, tf.gather(end, chosen)], axis=1))
        first_char = _gather_if(found, start_chars.flat_values, first_piece)  # (batch,): characters in the context
        last_char = _gather_if(found, end_chars.flat_values, last_piece)
        char_base = tf.cast(char_bytes.row_starts(), tf.int32)
        start_byte = tf.cast(tf.gather(char_bytes.flat_values, char_base + first_char), tf.int32)
        end_byte = tf.cast(tf.gather(char_bytes.flat_values, char_base + last_char), tf.int32)
        return {
            "answer": tf.strings.substr(context, start_byte, end_byte - start_byte),
            "start": start_byte,
            "end": end_byte,
            "score": tf.where(found, tf.cast(best, tf.float32), float("nan")),
            "truncated": truncated,
        }


def _gather_if(condition, values, indices):
    """``values[indices]`` where ``condition``, else 0 (``indices`` there may point anywhere, ``values`` be empty)."""
    values = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)
    return tf.gather(values, tf.where(condition, indices, tf.shape(values)[0] - 1))
