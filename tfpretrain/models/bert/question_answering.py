"""Extractive question answering (SQuAD) on a BERT encoder: the span head, loading it, answering and scoring.

`build_question_answerer` is the model (start and end logits per piece);
`load_qa_model` reads a fine-tuned ``qa`` directory; `answer_questions` and
`score_questions` run `SquadQuestion`s through the windows of
`tfpretrain.models.bert.question_answering_preprocessor`, the model and its
span decoder (the exported `tfpretrain.export.QuestionAnsweringModule` calls
the same preprocessor and decoder in one graph).

Example:

>>> model, tokenizer, options = load_qa_model("runs/squad")
>>> score_questions(model, tokenizer, options, read_squad("squad/dev.json"))["f1"]
88.1...
"""

import os

import keras
from keras import ops

from tfpretrain.models.bert.classifier import encoder_inputs
from tfpretrain.models.bert.question_answering_preprocessor import (
    QuestionAnsweringPreprocessor,
    build_squad_features,
    decode_answers,
    squad_dataset,
)
from tfpretrain.models.model_dir import TASK_FILE, read_task_options
from tfpretrain.training.squad_metrics import squad_scores

#: The model's outputs, also the keys of its training targets.
SPAN_OUTPUTS = ("start_logits", "end_logits")


def build_question_answerer(encoder, sequence_length=None, name="question_answerer"):
    """BERT's SQuAD head: ``sequence_output`` -> Dense(2) -> start and end logits.

    Padding positions get a large negative logit (in float32, whatever the
    compute dtype), so a softmax over the sequence ignores them. The encoder's
    pooler (the ``[CLS]`` vector) is unused here and frozen. Which positions
    may start or end an answer (context pieces only) is decided when decoding
    (`question_answering_preprocessor.decode_answers`); in training, a window that does not
    hold the answer points both targets at ``[CLS]`` (position 0).

    Args:
        encoder: a `tfpretrain.models.bert.BertEncoder` (its weights are fine-tuned).
        sequence_length: int or None. Static length of the inputs.
        name: str. The model's name.

    Returns:
        A functional `keras.Model`: inputs ``{"token_ids", "segment_ids",
        "padding_mask"}`` (batch, sequence_length); outputs ``{"start_logits",
        "end_logits"}``, each (batch, sequence_length) float32. Train it with
        `span_losses` (the mean of the start and end cross-entropies).

    Example:

    >>> encoder, tokenizer = tfpretrain.models.bert.load_bert("runs/bert")
    >>> model = build_question_answerer(encoder)
    >>> model.compile(optimizer=bert_optimizer(5e-5, total_steps), **span_losses())

    References:
        Devlin et al. (2019). BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding, section 4.2.
    """
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler.trainable = False  # unused here: freezing it spares the optimizer gradient-less variables
    inputs = encoder_inputs(encoder, sequence_length)
    sequence_output = encoder(inputs)["sequence_output"]  # (batch, seq, hidden)
    logits = keras.layers.Dense(
        2, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="span_logits",
    )(sequence_output)  # (batch, seq, 2)
    logits = ops.cast(logits, "float32")
    padding = ops.logical_not(ops.cast(inputs["padding_mask"], "bool"))  # (batch, seq)
    start_logits = ops.where(padding, -1e9, logits[..., 0])  # (batch, seq)
    end_logits = ops.where(padding, -1e9, logits[..., 1])
    outputs = {"start_logits": start_logits, "end_logits": end_logits}
    return keras.Model(inputs, outputs, name=name)


def span_losses():
    """``compile`` arguments for `build_question_answerer`: the mean of start and end sparse cross-entropies."""
    return {
        "loss": {key: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for key in SPAN_OUTPUTS},
        "loss_weights": {key: 0.5 for key in SPAN_OUTPUTS},
    }


def load_qa_model(model_dir):
    """Returns ``(model, tokenizer, options)`` of a fine-tuned question-answering directory (task ``qa``).

    Raises:
        FileNotFoundError: no task.json or head weights.
        ValueError: the directory holds another task, or its task.json lacks
            the window options.

    Example:

    >>> model, tokenizer, options = load_qa_model("runs/squad")
    >>> options["sequence_length"], options["doc_stride"]
    (384, 128)
    """
    from tfpretrain.models.task_model import load_task_model

    options = read_task_options(model_dir)
    if options.get("task") != "qa":
        raise ValueError(f"{os.path.join(model_dir, TASK_FILE)}: task {options.get('task')!r}; expected 'qa' "
                         "(load other fine-tuned models with tfpretrain.models.task_model.load_task_model)")
    return load_task_model(model_dir)


def answer_questions(model, tokenizer, options, questions, batch_size=32):
    """Predicted answers of `SquadQuestion`s, and the windows they were read through.

    Args:
        model: `build_question_answerer`'s model.
        tokenizer: its `tfpretrain.text.WordPieceTokenizer`.
        options: dict with ``sequence_length``, ``doc_stride``,
            ``max_query_length`` and ``max_answer_length`` (its task.json).
        questions: list of `tfpretrain.text.squad.SquadQuestion`.
        batch_size: int. Windows per model call.

    Returns:
        ``(answers, features)``: the `decode_answers` dicts, one per question,
        and the `SquadFeatures`.

    Example:

    >>> answers, _ = answer_questions(*load_qa_model("runs/squad"), [SquadQuestion("1", "Who won?", context)])
    >>> answers[0]["answer"]
    'The Broncos'
    """
    from tfpretrain.models.task_model import input_dtypes

    preprocessor = QuestionAnsweringPreprocessor(tokenizer, options["sequence_length"], options["doc_stride"],
                                                 options["max_query_length"])
    features = build_squad_features(questions, preprocessor)
    if not len(features):
        return [], features
    logits = model.predict(squad_dataset(features, batch_size, input_dtypes=input_dtypes(model)), verbose=0)
    answers = decode_answers(features, logits["start_logits"], logits["end_logits"], options["max_answer_length"])
    return answers, features


def score_questions(model, tokenizer, options, questions, batch_size=32):
    """Exact match and F1 (0-100, official SQuAD v1.1 normalisation) of `answer_questions`' answers.

    Returns:
        dict ``{"exact_match", "f1", "num_questions", "num_unanswered", "num_windows",
        "num_truncated_questions"}`` (questions cut to ``max_query_length`` pieces).

    Example:

    >>> score_questions(*load_qa_model("runs/squad"), read_squad("squad/dev.json"))["exact_match"]
    80.9...
    """
    answers, features = answer_questions(model, tokenizer, options, questions, batch_size)
    scores = squad_scores(questions, {a["id"]: a["answer"] for a in answers})
    scores.update(num_windows=len(features), num_truncated_questions=features.num_truncated_questions)
    return scores
