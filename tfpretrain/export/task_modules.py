"""Fine-tuned task models as `tf.Module`s for SavedModel serving: raw strings in, labels, tags, answers, vectors out.

`build_serving_module` reads a model directory and wraps its model with the
tokenisation, packing and label lookup of its task in one graph, so that
``tf.saved_model.save(module, path, signatures=signatures)`` writes a
SavedModel whose ``serving_default`` takes a batch of raw UTF-8 strings. A
second signature on token ids serves the same model to a server built
without the tensorflow-text ops (which the string signatures need).

| directory | module | ``serving_default`` inputs | second signature |
|---|---|---|---|
| BERT classify | `BertClassifierModule` | ``texts`` | ``classify_ids`` |
| BERT pair | `BertClassifierModule` | ``text_a``, ``text_b`` | ``classify_ids`` |
| BERT tag (softmax or CRF) | `BertTaggerModule` | ``texts`` | ``tag_ids`` |
| BERT qa | `QuestionAnsweringModule` | ``question``, ``context`` | ``qa_ids`` |
| GPT classify, pair, similarity | `GptClassifierModule` | as BERT's | ``classify_ids`` |
| GPT choice | `GptClassifierModule` | ``context``, ``choices`` | ``classify_ids`` |
| ULMFiT classifier | `UlmfitClassifierModule` | ``texts`` | ``classify_ids`` |
| plain BERT (no task) | `EmbeddingModule` | ``texts`` | ``embed_ids`` |

Each module's docstring lists its signatures' tensors. Every output has the
batch as its first axis, and every input is well-formed: an empty,
whitespace-only or invalid UTF-8 string gets an answer, and a text longer
than the model's sequence says so (``truncated``, ``num_words_truncated``)
rather than losing words silently. Byte offsets (``starts``, ``ends`` of words; ``start``, ``end`` of a QA answer) index
the input string's UTF-8 bytes, end exclusive.

Example:

>>> module, signatures = build_serving_module("runs/sst2")
>>> tf.saved_model.save(module, "saved_models/sst2/1", signatures=signatures)
>>> served = tf.saved_model.load("saved_models/sst2/1").signatures["serving_default"]
>>> served(texts=tf.constant(["a gorgeous film"]))["label"].numpy()
array([b'1'], dtype=object)
"""

import os

import tensorflow as tf

from tfpretrain.export.saved_model import check_batch
from tfpretrain.pipelines.bert_tasks import TASK_FILE, TEXT_TASKS, input_dtypes
from tfpretrain.text.tokenizer import tokenize_with_offsets
from tfpretrain.text.vocabulary import PADDING_TOKEN

#: What `build_serving_module` exports, for its error messages.
EXPORTABLE = ("a fine-tuned BERT or GPT directory (task.json: classify, pair, similarity, choice, tag, qa)",
              "a ULMFiT classifier directory (config.json with labels)",
              "a BERT directory (encoder.json: contextual embeddings)",
              "a tagger directory (tagger.json: exported by TaggingModule)")
# Python's str.isspace() characters: where tfpretrain.text.squad.split_words splits a context into words.
_PYTHON_SPACE = (r"[\t\n\x{b}\x{c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}"
                 r"\x{205f}\x{3000}]")


def _spec(name, shape, dtype=tf.string):
    return tf.TensorSpec(shape, dtype, name=name)


def _cast_inputs(model, inputs):
    """``inputs`` cast to the dtypes of the model's inputs (the id signatures take int32)."""
    return {name: tf.cast(inputs[name], dtype) for name, dtype in input_dtypes(model).items()}


def _pad_width(tensor, width, value):
    """Pads (batch, n) ``tensor`` with ``value`` or cuts it to ``width`` columns."""
    tensor = tensor[:, :width]
    return tf.pad(tensor, [[0, 0], [0, width - tf.shape(tensor)[1]]], constant_values=value)


# ---------------------------------------------------------------------------
# Classifiers: BERT, GPT, ULMFiT


class _ClassifierModule(tf.Module):
    """What the classifier modules share: softmax, label lookup and the two signatures."""

    def __init__(self, model, labels, text_inputs, id_inputs, name):
        super().__init__(name=name)
        self.model = model
        self.labels = [str(label) for label in labels]
        self._label_strings = tf.constant(self.labels, tf.string)
        self.classify = tf.function(self._classify_texts, input_signature=text_inputs)
        self.classify_ids = tf.function(self._classify_ids, input_signature=id_inputs)

    def signatures(self):
        """``{"serving_default": raw strings, "classify_ids": token ids}`` concrete functions."""
        return {"serving_default": self.classify.get_concrete_function(),
                "classify_ids": self.classify_ids.get_concrete_function()}

    def _predict(self, inputs):
        logits = self.model(inputs, training=False)  # (batch, num_labels)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        best = tf.argmax(probabilities, axis=-1, output_type=tf.int32)  # (batch,)
        return {"label": tf.gather(self._label_strings, best), "score": tf.reduce_max(probabilities, axis=-1),
                "probabilities": probabilities}

    def tflite_function(self):
        """The raw-text graph at batch size 1, for `tfpretrain.export.tflite`.

        Inputs as ``serving_default``'s with a batch of 1 (``texts`` is named
        ``text``); outputs ``label``, ``score``, ``probabilities``,
        ``truncated``. The text is normalised by tensorflow-text's
        `FastBertNormalizer` (BERT's exact normaliser has no TFLite kernels),
        so on a few texts the file's word pieces differ from the SavedModel's
        (see `tfpretrain.text.wordpiece`).
        """
        from tfpretrain.text.wordpiece import WordPieceTokenizer

        t = self.tokenizer
        tokenizer = WordPieceTokenizer(t.vocabulary, lowercase=t.lowercase, strip_accents=t.strip_accents,
                                       use_fast_bert_normalizer=True)
        specs = [_spec("text" if spec.name == "texts" else spec.name, [1] + spec.shape[1:])
                 for spec in self.classify.input_signature]
        return tf.function(lambda *columns: self._classify_with(tokenizer, columns), input_signature=specs)

    def _classify_texts(self, *columns):
        return self._classify_with(self.tokenizer, columns)

    def _classify_with(self, tokenizer, columns):
        columns = [check_batch(c, spec.name) if spec.shape.rank == 1 else c
                   for c, spec in zip(columns, self.classify.input_signature)]
        inputs, truncated = self._encode(columns, tokenizer)
        return {**self._predict(inputs), "truncated": truncated}

    def _classify_ids(self, *ids):
        names = [spec.name for spec in self.classify_ids.input_signature]
        return self._predict(self._id_inputs(dict(zip(names, ids))))

    def _id_inputs(self, ids):
        return _cast_inputs(self.model, ids)


def _without_padding(inputs):
    """Packed inputs cut after the batch's last real position (``padding_mask`` is 0 beyond it everywhere).

    The raw-text signatures run the model on the batch's longest text rather
    than on ``sequence_length`` pieces: padding is masked, so the answers are
    the same, and short texts are several times faster (MiniLM on SST-2 at
    batch 1: 4x). Sliced as int32: TFLite's strided slice has no bool kernel.
    """
    length = tf.reduce_max(tf.reduce_sum(tf.cast(inputs["padding_mask"], tf.int32), axis=-1))
    return {name: tf.cast(tf.cast(value, tf.int32)[..., :length], value.dtype) for name, value in inputs.items()}


def _text_inputs(task, num_choices=None):
    """The string inputs of a classify / pair / similarity / choice signature."""
    if task == "classify":
        return [_spec("texts", [None])]
    if task == "choice":
        return [_spec("context", [None]), _spec("choices", [None, num_choices])]
    return [_spec("text_a", [None]), _spec("text_b", [None])]


def _columns(task, texts):
    """The signature's strings as the task's text columns; choice: the context, then one column per choice."""
    if task != "choice":
        return tuple(texts)
    context, choices = texts
    return (context,) + tuple(choices[:, k] for k in range(choices.shape[1]))  # not unstack: no TFLite string kernel


class BertClassifierModule(_ClassifierModule):
    """A fine-tuned BERT classify or pair model with its WordPiece tokenizer and labels.

    Signatures:

    - ``serving_default``: classify ``texts`` string (batch,); pair
      ``text_a``, ``text_b`` string (batch,) ->
      ``label`` string (batch,) (the most probable label), ``score``
      float32 (batch,) (its probability), ``probabilities`` float32
      (batch, num_labels) (in the order of task.json's ``labels``),
      ``truncated`` bool (batch,) (the texts lost word pieces to the
      sequence length). The texts are packed as ``[CLS] a [SEP] (b [SEP])``
      (`tfpretrain.pipelines.bert_tasks.encode_texts`).
    - ``classify_ids``: ``token_ids``, ``segment_ids``, ``padding_mask``
      int32 (batch, sequence_length) -> ``label``, ``score``, ``probabilities``.

    Args:
        model: the Keras classifier (`bert_tasks.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``task``, ``labels``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, options):
        self.tokenizer = tokenizer
        self.task = options["task"]
        self.sequence_length = int(options["sequence_length"])
        ids = [_spec(name, [None, self.sequence_length], tf.int32)
               for name in ("token_ids", "segment_ids", "padding_mask")]
        super().__init__(model, options["labels"], _text_inputs(self.task), ids, name=f"bert_{self.task}")

    def _encode(self, texts, tokenizer):
        from tfpretrain.pipelines.bert_tasks import encode_texts

        packed, truncated = encode_texts(tokenizer, _columns(self.task, texts), self.sequence_length)
        return _without_padding(_cast_inputs(self.model, packed)), truncated


class GptClassifierModule(_ClassifierModule):
    """A GPT model fine-tuned for classify, pair, similarity or choice, with its tokenizer and labels.

    The texts become GPT-1 transfer sequences in the graph
    (`tfpretrain.text.encode_gpt_inputs`).

    Signatures:

    - ``serving_default``: classify ``texts`` string (batch,); pair and
      similarity ``text_a``, ``text_b`` string (batch,); choice ``context``
      string (batch,) and ``choices`` string (batch, num_choices) ->
      ``label`` string (batch,) (choice: the index of the chosen answer,
      "0", "1", ...), ``score`` float32 (batch,), ``probabilities`` float32
      (batch, num_labels), ``truncated`` bool (batch,).
    - ``classify_ids``: ``token_ids``, ``padding_mask`` int32 (batch,
      sequences, sequence_length) (sequences: 1 for classify and pair, 2 for
      similarity, num_choices for choice) -> ``label``, ``score``, ``probabilities``.

    Args:
        model: the `GptTransferModel` (`bert_tasks.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json.
    """

    def __init__(self, model, tokenizer, options):
        from tfpretrain.text.gpt_transforms import sequence_layout

        self.tokenizer = tokenizer
        self.task = options["task"]
        self.sequence_length = int(options["sequence_length"])
        num_labels = len(options["labels"])
        num_texts = TEXT_TASKS[self.task] or num_labels + 1  # choice: the context and one text per answer
        sequences = len(sequence_layout(self.task, num_texts))
        ids = [_spec(name, [None, sequences, self.sequence_length], tf.int32) for name in ("token_ids", "padding_mask")]
        super().__init__(model, options["labels"], _text_inputs(self.task, num_labels), ids, name=f"gpt_{self.task}")

    def _encode(self, texts, tokenizer):
        from tfpretrain.text.gpt_transforms import encode_gpt_inputs

        packed, truncated = encode_gpt_inputs(tokenizer, self.task, _columns(self.task, texts), self.sequence_length)
        return _without_padding(packed), truncated

    def _id_inputs(self, ids):
        return ids  # GptTransferModel casts them itself


class UlmfitClassifierModule(_ClassifierModule):
    """A ULMFiT classifier (`tfpretrain.pipelines.ulmfit.load_classifier`) with its word tokenizer and labels.

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``label`` string
      (batch,), ``score`` float32 (batch,), ``probabilities`` float32
      (batch, num_labels), ``truncated`` bool (batch,) (the text has more
      than ``sequence_length`` words; the classifier reads the first ones).
    - ``classify_ids``: ``token_ids`` int32 (batch, time): `WordTokenizer`
      ids, 0 padding -> ``label``, ``score``, ``probabilities``.

    Args:
        model: the Keras classifier.
        tokenizer: its `tfpretrain.text.WordTokenizer`.
        config: its config.json (``labels``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, config):
        self.tokenizer = tokenizer
        self.sequence_length = int(config["sequence_length"])
        super().__init__(model, config["labels"], _text_inputs("classify"),
                         [_spec("token_ids", [None, None], tf.int32)], name="ulmfit_classify")

    def tflite_function(self):
        """Not available: the word lookup (a hash table) and Unicode lower-casing have no TFLite kernels."""
        raise ValueError("a ULMFiT classifier exports to a SavedModel only (tfpretrain export --name): its word "
                         "lookup is a hash table and its lower-casing has no TFLite kernel; BERT and GPT "
                         "classifiers and taggers export to TFLite")

    def _encode(self, texts, tokenizer):
        (texts,) = texts
        token_ids = tokenizer(texts)  # (batch, words) ragged, as ulmfit.classification_dataset
        truncated = token_ids.row_lengths() > self.sequence_length
        token_ids = token_ids[:, : self.sequence_length].to_tensor(0)  # (batch, time)
        return _pad_width(token_ids, tf.maximum(tf.shape(token_ids)[1], 1), 0), truncated  # at least one step

    def _id_inputs(self, ids):
        return ids["token_ids"]


# ---------------------------------------------------------------------------
# Word-level outputs: BERT tagging and embeddings


def _padded_words(words, starts, ends):
    """Ragged (batch, words) words and byte offsets as the outputs ``words``, ``starts``, ``ends``, ``lengths``."""
    return {"words": words.to_tensor(PADDING_TOKEN), "starts": starts.to_tensor(0), "ends": ends.to_tensor(0),
            "lengths": tf.cast(words.row_lengths(), tf.int32)}


class BertTaggerModule(tf.Module):
    """A fine-tuned BERT tagger (softmax or CRF) with its tokenizer and tags: raw text in, one tag per word out.

    The text is split into words by `tfpretrain.text.tokenize_with_offsets`
    (as `tfpretrain.pipelines.finetune.predict` splits it), each word is
    tagged from its first word piece, and a word cut by truncation (beyond
    ``sequence_length`` pieces) gets "O" and is counted.

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``words`` string
      (batch, words), ``tags`` string (batch, words), ``starts``, ``ends``
      int32 (batch, words) (byte offsets of each word in its text), ``lengths``
      int32 (batch,) (words per text), ``num_words_truncated`` int32
      (batch,); ``words`` is as wide as the longest text, padded with
      ``""`` (``starts``/``ends`` 0).
    - ``tag_ids``: ``token_ids``, ``segment_ids``, ``padding_mask`` int32
      (batch, sequence_length), ``word_positions``, ``word_mask`` int32
      (batch, sequence_length - 2) (`tfpretrain.text.pack_words`) ->
      ``tags`` string (batch, sequence_length - 2) (``""`` where
      ``word_mask`` is 0), ``tag_ids`` int32 (the index into task.json's ``tags``).

    Args:
        model: the `BertTokenTagger` (`bert_tasks.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``tags``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, options):
        super().__init__(name="bert_tag")
        self.model = model
        self.tokenizer = tokenizer
        self.tags = [str(tag) for tag in options["tags"]]
        self._tag_strings = tf.constant(self.tags, tf.string)
        self.sequence_length = int(options["sequence_length"])
        pieces = [_spec(name, [None, self.sequence_length], tf.int32)
                  for name in ("token_ids", "segment_ids", "padding_mask")]
        words = [_spec(name, [None, self.sequence_length - 2], tf.int32) for name in ("word_positions", "word_mask")]
        self.tag = tf.function(self._tag_texts, input_signature=[_spec("texts", [None])])
        self.tag_ids = tf.function(self._tag_ids, input_signature=pieces + words)

    def signatures(self):
        """``{"serving_default": raw strings, "tag_ids": packed ids}`` concrete functions."""
        return {"serving_default": self.tag.get_concrete_function(), "tag_ids": self.tag_ids.get_concrete_function()}

    def _predict(self, packed):
        tag_ids = self.model(_cast_inputs(self.model, packed), training=False)["tag_ids"]  # (batch, slots)
        word_mask = tf.cast(packed["word_mask"], tf.bool)
        tags = tf.where(word_mask, tf.gather(self._tag_strings, tag_ids), PADDING_TOKEN)
        return {"tags": tags, "tag_ids": tf.cast(tag_ids, tf.int32)}

    def _tag_ids(self, token_ids, segment_ids, padding_mask, word_positions, word_mask):
        return self._predict({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
                              "word_positions": word_positions, "word_mask": word_mask})

    def _tag_texts(self, texts):
        from tfpretrain.pipelines.bert_tasks import encode_words

        texts = check_batch(texts)
        words, starts, ends = tokenize_with_offsets(texts)  # ragged (batch, words)
        packed, num_words_truncated = encode_words(self.tokenizer, words, self.sequence_length)
        outputs = _padded_words(words, starts, ends)
        lengths = outputs["lengths"]
        width = tf.shape(outputs["words"])[1]
        tags = _pad_width(self._predict(packed)["tags"], width, PADDING_TOKEN)  # (batch, words)
        position = tf.range(width)[None, :]
        kept = (lengths - num_words_truncated)[:, None]
        tags = tf.where(position < kept, tags, tf.where(position < lengths[:, None], "O", PADDING_TOKEN))
        return {**outputs, "tags": tags, "num_words_truncated": tf.cast(num_words_truncated, tf.int32)}


class EmbeddingModule(tf.Module):
    """Contextual word and sentence vectors of a BERT directory, as `tfpretrain.pipelines.embed.embed_texts`.

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``sentence_vector``
      float32 (batch, hidden_dim), ``word_vectors`` float32 (batch, words,
      dim) (zero for padding and for words cut by truncation), ``words``
      string (batch, words) (padded with ``""``), ``starts``, ``ends`` int32
      (batch, words) (byte offsets), ``lengths`` int32 (batch,),
      ``num_words_truncated`` int32 (batch,).
    - ``embed_ids``: ``token_ids``, ``segment_ids``, ``padding_mask`` int32
      (batch, sequence_length), ``word_positions``, ``word_mask`` int32
      (batch, words) -> ``sentence_vector``, ``word_vectors``.

    Args:
        embedder: a `tfpretrain.models.bert.BertEmbedder`.
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        sequence_length: int. Word pieces per text, ``[CLS]`` and ``[SEP]`` included.
    """

    def __init__(self, embedder, tokenizer, sequence_length):
        super().__init__(name="bert_embeddings")
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        pieces = [_spec(name, [None, self.sequence_length], tf.int32)
                  for name in ("token_ids", "segment_ids", "padding_mask")]
        words = [_spec(name, [None, None], tf.int32) for name in ("word_positions", "word_mask")]
        self.embed = tf.function(self._embed_texts, input_signature=[_spec("texts", [None])])
        self.embed_ids = tf.function(self._embed_ids, input_signature=pieces + words)

    def signatures(self):
        """``{"serving_default": raw strings, "embed_ids": packed ids}`` concrete functions."""
        return {"serving_default": self.embed.get_concrete_function(),
                "embed_ids": self.embed_ids.get_concrete_function()}

    def _embed_ids(self, token_ids, segment_ids, padding_mask, word_positions, word_mask):
        outputs = self.embedder({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
                                 "word_positions": word_positions, "word_mask": word_mask})
        return {name: tf.cast(outputs[name], tf.float32) for name in ("sentence_vector", "word_vectors")}

    def _embed_texts(self, texts):
        from tfpretrain.pipelines.embed import embed_batch

        texts = check_batch(texts)
        outputs = embed_batch(self.embedder, self.tokenizer, texts, self.sequence_length)
        return {
            "sentence_vector": tf.cast(outputs["sentence_vector"], tf.float32),
            "word_vectors": tf.cast(outputs["word_vectors"], tf.float32),
            **_padded_words(outputs["words"], outputs["starts"], outputs["ends"]),
            "num_words_truncated": tf.cast(outputs["num_words_truncated"], tf.int32),
        }


# ---------------------------------------------------------------------------
# Question answering


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
        ids = [_spec(name, [None, self.sequence_length], tf.int32)
               for name in ("token_ids", "segment_ids", "padding_mask")]
        self.answer = tf.function(self._answer, input_signature=[_spec("question", [None]), _spec("context", [None])])
        self.qa_ids = tf.function(self._qa_ids, input_signature=ids)

    def signatures(self):
        """``{"serving_default": raw strings, "qa_ids": packed windows}`` concrete functions."""
        return {"serving_default": self.answer.get_concrete_function(), "qa_ids": self.qa_ids.get_concrete_function()}

    def _logits(self, packed):
        outputs = self.model(_cast_inputs(self.model, packed), training=False)
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


# ---------------------------------------------------------------------------
# Model directories


def _describe(model_dir):
    """What kind of directory ``model_dir`` is, for the error of a directory that cannot be exported."""
    from tfpretrain.models.ulmfit.saving import is_awd_lstm_dir

    def has(name):
        return os.path.exists(os.path.join(model_dir, name))

    if has("decoder.json"):
        return ("a GPT language model without a task (no task.json); fine-tune it first "
                "(`tfpretrain finetune --task classify|pair|similarity|choice`)")
    if is_awd_lstm_dir(model_dir):
        return ("an AWD-LSTM language model (ULMFiT stage 1 or 2), not a classifier; train the classifier stage "
                "(`tfpretrain ulmfit --stage classifier`)")
    if has("bilm.json"):
        return "a biLM language model; train a tagger on it (`tfpretrain train-tagger`) and export that"
    if has("encoder.json"):
        return "an incomplete BERT directory (encoder.json without encoder.weights.h5, vocab.txt or tokenizer.json)"
    return "not a model directory this project writes"


def build_serving_module(model_dir, sequence_length=None, combination="last", sentence_pooling="mean"):
    """The serving `tf.Module` of a model directory and its signatures, ready for `tf.saved_model.save`.

    Args:
        model_dir: a fine-tuned BERT or GPT directory (task.json: classify,
            pair, similarity, choice, tag, qa), a ULMFiT classifier directory
            or a plain BERT directory (contextual embeddings). Tagger
            directories (tagger.json) are exported with
            `tfpretrain.export.TaggingModule` instead.
        sequence_length, combination, sentence_pooling: plain BERT
            directories only: the `tfpretrain.pipelines.embed.embed_texts`
            options (sequence_length None: its default, 128 pieces).

    Returns:
        ``(module, signatures)``: signatures maps ``"serving_default"`` and
        the id signature's name to concrete functions (see the module's
        docstring for their tensors).

    Raises:
        ValueError: for any other directory, naming what it is and what can be exported.
    """
    from tfpretrain.models.bert.saving import BERT_FILES
    from tfpretrain.pipelines import ulmfit

    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model directory {model_dir} does not exist")
    embedding_options = sequence_length is not None or combination != "last" or sentence_pooling != "mean"
    if os.path.exists(os.path.join(model_dir, "tagger.json")):
        raise ValueError(f"{model_dir} is a tagger directory (tagger.json); export it with "
                         "tfpretrain.export.TaggingModule (`tfpretrain export` does)")
    if os.path.exists(os.path.join(model_dir, TASK_FILE)) or ulmfit.is_classifier_dir(model_dir):
        if embedding_options:
            raise ValueError(f"{model_dir} holds a fine-tuned task model; sequence_length, combination and "
                             "sentence_pooling apply to plain BERT directories (embeddings) only")
        module = _task_module(model_dir)
    elif all(os.path.exists(os.path.join(model_dir, name)) for name in BERT_FILES):
        from tfpretrain.pipelines.embed import SEQUENCE_LENGTH, load_embedder

        sequence_length = SEQUENCE_LENGTH if sequence_length is None else int(sequence_length)
        embedder, tokenizer = load_embedder(model_dir, combination, sentence_pooling, sequence_length)
        module = EmbeddingModule(embedder, tokenizer, sequence_length)
    else:
        raise ValueError(f"{model_dir} cannot be exported: it is {_describe(model_dir)}. What can be exported: "
                         f"{'; '.join(EXPORTABLE)}")
    return module, module.signatures()


def _task_module(model_dir):
    from tfpretrain.pipelines import ulmfit
    from tfpretrain.pipelines.bert_tasks import load_task_model, read_task_options

    if not os.path.exists(os.path.join(model_dir, TASK_FILE)):
        return UlmfitClassifierModule(*ulmfit.load_classifier(model_dir))
    if read_task_options(model_dir).get("task") == "qa":
        from tfpretrain.pipelines.finetune_qa import load_qa_model

        return QuestionAnsweringModule(*load_qa_model(model_dir))
    model, tokenizer, options = load_task_model(model_dir)
    if options["task"] == "tag":
        return BertTaggerModule(model, tokenizer, options)
    if options.get("architecture") == "gpt":
        return GptClassifierModule(model, tokenizer, options)
    return BertClassifierModule(model, tokenizer, options)
