"""Classifier serving modules (BERT, GPT, ULMFiT): raw strings in; label, score, probabilities, truncated out.

Thin wrappers: the texts are encoded by the architecture's preprocessor
(`tfpretrain.models.bert.preprocessor.encode_texts`,
`tfpretrain.models.gpt.preprocessor.encode_gpt_inputs`), as in fine-tuning,
and the model runs on the batch's longest text
(`tfpretrain.models.bert.preprocessor.cut_padding`): padding is masked, so
the answers are those at full length, and short texts are several times
faster (MiniLM on SST-2 at batch 1: 4x).
"""

import tensorflow as tf

from tfpretrain.export.saved_model import (
    cast_inputs,
    check_batch,
    check_same_batch,
    fast_normalizing,
    pad_width,
    serve_any_batch,
    spec,
)
from tfpretrain.models.bert.preprocessor import cut_padding, encode_texts
from tfpretrain.models.gpt.preprocessor import encode_gpt_inputs, sequence_layout
from tfpretrain.text.task_readers import TEXT_TASKS


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
        tokenizer = fast_normalizing(self.tokenizer)
        specs = [spec("text" if column.name == "texts" else column.name, [1] + column.shape[1:])
                 for column in self.classify.input_signature]
        return tf.function(lambda *columns: self._classify_with(tokenizer, columns), input_signature=specs)

    def _classify_texts(self, *columns):
        columns = self._checked(columns)
        return serve_any_batch(lambda *padded: self._classify_with(self.tokenizer, padded), *columns)

    def _checked(self, columns):
        columns = [check_batch(c, column.name) if column.shape.rank == 1 else c
                   for c, column in zip(columns, self.classify.input_signature)]
        return check_same_batch(columns, [column.name for column in self.classify.input_signature])

    def _classify_with(self, tokenizer, columns):
        columns = self._checked(columns)
        inputs, truncated = self._encode(columns, tokenizer)
        return {**self._predict(inputs), "truncated": truncated}

    def _classify_ids(self, *ids):
        names = [column.name for column in self.classify_ids.input_signature]
        return self._predict(self._id_inputs(dict(zip(names, ids))))

    def _id_inputs(self, ids):
        return cast_inputs(self.model, ids)


def _text_inputs(task, num_choices=None):
    """The string inputs of a classify / pair / similarity / choice signature."""
    if task == "classify":
        return [spec("texts", [None])]
    if task == "choice":
        return [spec("context", [None]), spec("choices", [None, num_choices])]
    return [spec("text_a", [None]), spec("text_b", [None])]


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
      (`tfpretrain.models.bert.preprocessor.encode_texts`).
    - ``classify_ids``: ``token_ids``, ``segment_ids``, ``padding_mask``
      int32 (batch, sequence_length) -> ``label``, ``score``, ``probabilities``.

    Args:
        model: the Keras classifier (`tfpretrain.models.task_model.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json (``task``, ``labels``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, options):
        self.tokenizer = tokenizer
        self.task = options["task"]
        self.sequence_length = int(options["sequence_length"])
        ids = [spec(name, [None, self.sequence_length], tf.int32)
               for name in ("token_ids", "segment_ids", "padding_mask")]
        super().__init__(model, options["labels"], _text_inputs(self.task), ids, name=f"bert_{self.task}")

    def _encode(self, texts, tokenizer):
        packed, truncated = encode_texts(tokenizer, _columns(self.task, texts), self.sequence_length)
        return cut_padding(cast_inputs(self.model, packed), self.sequence_length), truncated


class GptClassifierModule(_ClassifierModule):
    """A GPT model fine-tuned for classify, pair, similarity or choice, with its tokenizer and labels.

    The texts become GPT-1 transfer sequences in the graph
    (`tfpretrain.models.gpt.encode_gpt_inputs`).

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
        model: the `GptTransferModel` (`tfpretrain.models.task_model.load_task_model`).
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: its task.json.
    """

    def __init__(self, model, tokenizer, options):
        self.tokenizer = tokenizer
        self.task = options["task"]
        self.sequence_length = int(options["sequence_length"])
        num_labels = len(options["labels"])
        num_texts = TEXT_TASKS[self.task] or num_labels + 1  # choice: the context and one text per answer
        sequences = len(sequence_layout(self.task, num_texts))
        ids = [spec(name, [None, sequences, self.sequence_length], tf.int32) for name in ("token_ids", "padding_mask")]
        super().__init__(model, options["labels"], _text_inputs(self.task, num_labels), ids, name=f"gpt_{self.task}")

    def _encode(self, texts, tokenizer):
        packed, truncated = encode_gpt_inputs(tokenizer, self.task, _columns(self.task, texts), self.sequence_length)
        return cut_padding(packed, self.sequence_length), truncated

    def _id_inputs(self, ids):
        return ids  # GptTransferModel casts them itself


class UlmfitClassifierModule(_ClassifierModule):
    """A ULMFiT classifier (`tfpretrain.models.ulmfit.load_classifier`) with its word tokenizer and labels.

    Signatures:

    - ``serving_default``: ``texts`` string (batch,) -> ``label`` string
      (batch,), ``score`` float32 (batch,), ``probabilities`` float32
      (batch, num_labels), ``truncated`` bool (batch,) (the text has more
      than ``sequence_length`` words; the classifier reads the first ones).
    - ``classify_ids``: ``token_ids`` int32 (batch, time): `WordTokenizer`
      ids, 0 padding -> ``label``, ``score``, ``probabilities``.

    Args:
        model: the Keras classifier.
        tokenizer: its `tfpretrain.models.ulmfit.WordTokenizer`.
        config: its config.json (``labels``, ``sequence_length``).
    """

    def __init__(self, model, tokenizer, config):
        self.tokenizer = tokenizer
        self.sequence_length = int(config["sequence_length"])
        super().__init__(model, config["labels"], _text_inputs("classify"),
                         [spec("token_ids", [None, None], tf.int32)], name="ulmfit_classify")

    def tflite_function(self):
        """Not available: the word lookup (a hash table) and Unicode lower-casing have no TFLite kernels."""
        raise ValueError("a ULMFiT classifier exports to a SavedModel only (tfpretrain export --name): its word "
                         "lookup is a hash table and its lower-casing has no TFLite kernel; BERT and GPT "
                         "classifiers and taggers export to TFLite")

    def _encode(self, texts, tokenizer):
        from tfpretrain.models.ulmfit.preprocessor import classifier_token_ids

        (texts,) = texts
        token_ids, truncated = classifier_token_ids(tokenizer, texts, self.sequence_length)  # as classification_dataset
        token_ids = token_ids.to_tensor(0)  # (batch, time)
        return pad_width(token_ids, tf.maximum(tf.shape(token_ids)[1], 1), 0), truncated  # at least one step

    def _id_inputs(self, ids):
        return ids["token_ids"]
