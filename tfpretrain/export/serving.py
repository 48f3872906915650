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

from tfpretrain.export.bert_tagger_module import BertTaggerModule
from tfpretrain.export.classifier_modules import BertClassifierModule, GptClassifierModule, UlmfitClassifierModule
from tfpretrain.export.embedding_module import EmbeddingModule
from tfpretrain.export.question_answering_module import QuestionAnsweringModule
from tfpretrain.pipelines.bert_tasks import TASK_FILE  # TODO(lead)

#: What `build_serving_module` exports, for its error messages.
EXPORTABLE = ("a fine-tuned BERT or GPT directory (task.json: classify, pair, similarity, choice, tag, qa)",
              "a ULMFiT classifier directory (config.json with labels)",
              "a BERT directory (encoder.json: contextual embeddings)",
              "a tagger directory (tagger.json: exported by TaggingModule)")


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
