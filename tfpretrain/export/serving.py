"""Any model directory as a `tf.Module` for SavedModel serving: raw strings in, labels, tags, answers, vectors out.

`serving_module` reads a model directory (its kind from `model_kind`) and
wraps its model with the tokenisation, packing and label lookup of its task in one graph, so that
``tf.saved_model.save(module, path, signatures=signatures)`` writes a
SavedModel whose ``serving_default`` takes a batch of raw UTF-8 strings. A
second signature on token ids serves the same model to a server built
without the tensorflow-text ops (which the string signatures need).

| directory | module | ``serving_default`` inputs | second signature |
|---|---|---|---|
| tagger (CharCNN / BiLM / CRF) | `TaggingModule` | ``texts`` | ``tag_ids`` |
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

>>> module, signatures = serving_module("runs/sst2")
>>> tf.saved_model.save(module, "saved_models/sst2/1", signatures=signatures)
>>> served = tf.saved_model.load("saved_models/sst2/1").signatures["serving_default"]
>>> served(texts=tf.constant(["a gorgeous film"]))["label"].numpy()
array([b'1'], dtype=object)
"""

from tfpretrain.export.bert_tagger_module import BertTaggerModule
from tfpretrain.export.classifier_modules import BertClassifierModule, GptClassifierModule, UlmfitClassifierModule
from tfpretrain.export.embedding_module import EmbeddingModule
from tfpretrain.export.question_answering_module import QuestionAnsweringModule
from tfpretrain.export.tagging_module import TaggingModule
from tfpretrain.models.model_dir import ModelKind, model_kind

#: What `serving_module` exports, for its error messages.
EXPORTABLE = ("a fine-tuned BERT or GPT directory (task.json: classify, pair, similarity, choice, tag, qa)",
              "a ULMFiT classifier directory (config.json with labels)",
              "a BERT directory (encoder.json: contextual embeddings)",
              "a tagger directory (tagger.json: train-tagger)")
#: What to do with a directory that holds a model but nothing to serve.
_NEXT_STEP = {
    ModelKind("gpt"): "fine-tune it first (`tfpretrain finetune --task classify|pair|similarity|choice`)",
    ModelKind("ulmfit"): "train the classifier stage (`tfpretrain ulmfit --stage classifier`)",
    ModelKind("bilm"): "train a tagger on it (`tfpretrain train-tagger --bilm DIR`) and export that",
}


def serving_module(model_dir, sequence_length=None, combination="last", sentence_pooling="mean"):
    """The serving `tf.Module` of a model directory and its signatures, ready for `tf.saved_model.save`.

    Args:
        model_dir: a tagger directory (``train-tagger``), a fine-tuned BERT or
            GPT directory (task.json: classify, pair, similarity, choice,
            tag, qa), a ULMFiT classifier directory or a plain BERT directory
            (contextual embeddings).
        sequence_length, combination, sentence_pooling: plain BERT
            directories only: the `tfpretrain.models.bert.load_embedder`
            options (sequence_length None: its default, 128 pieces).

    Returns:
        ``(module, signatures)``: signatures maps ``"serving_default"`` and
        the id signature's name to concrete functions (see the module's
        docstring for their tensors).

    Raises:
        FileNotFoundError: no such directory, or one with files missing.
        ValueError: a directory with nothing to serve (a language model
            without a task), naming what it is and what to do.
    """
    try:
        kind = model_kind(model_dir)
    except ValueError as error:
        raise ValueError(f"{error}. What can be exported: {'; '.join(EXPORTABLE)}") from None
    model_dir = str(model_dir)
    embedding_options = sequence_length is not None or combination != "last" or sentence_pooling != "mean"
    if embedding_options and kind != ModelKind("bert"):
        raise ValueError(f"{model_dir} holds {kind.describe()}; sequence_length, combination and "
                         "sentence_pooling apply to plain BERT directories (embeddings) only")
    if kind.architecture == "tagger":
        from tfpretrain.models.tagger.saving import load_tagger

        model, preprocessor, _ = load_tagger(model_dir)
        module = TaggingModule(model, preprocessor)
    elif kind == ModelKind("ulmfit", "classify"):
        from tfpretrain.models.ulmfit import load_classifier

        module = UlmfitClassifierModule(*load_classifier(model_dir))
    elif kind == ModelKind("bert"):
        from tfpretrain.models.bert.embedder import SEQUENCE_LENGTH, load_embedder

        sequence_length = SEQUENCE_LENGTH if sequence_length is None else int(sequence_length)
        embedder, tokenizer = load_embedder(model_dir, combination, sentence_pooling, sequence_length)
        module = EmbeddingModule(embedder, tokenizer, sequence_length)
    elif kind.task is not None and kind.architecture in ("bert", "gpt"):
        module = _task_module(model_dir, kind)
    else:
        raise ValueError(f"{model_dir} cannot be exported: it is {kind.describe()}; {_NEXT_STEP[kind]}. "
                         f"What can be exported: {'; '.join(EXPORTABLE)}")
    return module, module.signatures()


def _task_module(model_dir, kind):
    from tfpretrain.models.task_model import load_task_model

    if kind.task == "qa":
        from tfpretrain.models.bert.question_answering import load_qa_model

        return QuestionAnsweringModule(*load_qa_model(model_dir))
    model, tokenizer, options = load_task_model(model_dir)
    if kind.task == "tag":
        return BertTaggerModule(model, tokenizer, options)
    if kind.architecture == "gpt":
        return GptClassifierModule(model, tokenizer, options)
    return BertClassifierModule(model, tokenizer, options)
