"""Fine-tune BERT for extractive question answering on SQuAD v1.1 (``tfpretrain finetune --task qa``).

Orchestration only: `tfpretrain.text.squad` reads the questions,
`tfpretrain.models.bert.question_answering_preprocessor` cuts them into
windows (the same in-graph path the exported model takes), and
`tfpretrain.models.bert.question_answering` builds, loads and scores the model.
The model directory is that of the other fine-tuning tasks
(`tfpretrain.models.task_model.save_task_model`): a BERT directory of the
fine-tuned encoder, the span layer's head weights and ``task.json``
(``"task": "qa"``, the window options, tokenizer and encoder configs, dev
scores), so ``tfpretrain evaluate --model DIR`` knows the task.

A question whose context is empty (or only whitespace) gets a well-formed empty
answer (``""``, characters 0 to 0, score None) from `predict`; a context longer
than the sequence length is read through overlapping windows.

Example:

>>> scores = run("runs/bert", "squad/train.json", "squad/dev.json", "runs/qa", epochs=2)
>>> predict("runs/qa", [("Who won?", "The Broncos won the game.")])[0]["answer"]
'The Broncos'
"""

import math
import os

import keras
import numpy as np

from tfpretrain.models.bert.question_answering import (
    answer_questions,
    build_question_answerer,
    load_qa_model,
    score_questions,
    span_losses,
)
from tfpretrain.models.bert.question_answering_preprocessor import (
    QuestionAnsweringPreprocessor,
    build_squad_features,
    squad_dataset,
)
from tfpretrain.models.fine_tuning import fine_tuning_optimizer
from tfpretrain.models.task_model import input_dtypes, load_init_encoder, record_run, save_task_model
from tfpretrain.text.squad import SquadQuestion, read_squad
from tfpretrain.training.callbacks import fit_resumable, read_history_csv
from tfpretrain.training.distribute import get_strategy
from tfpretrain.training.precision import check_jit_compile, uses_precision


def _read_questions(path):
    questions = read_squad(path)
    if not questions:
        raise ValueError(f"{path}: no questions found; expected SQuAD v1.1 JSON "
                         '({"data": [{"paragraphs": [{"context": ..., "qas": [...]}]}]})')
    return questions


@uses_precision
def run(init_dir, train_path, dev_path, out_dir, *, sequence_length=384, doc_stride=128, max_query_length=64,
        max_answer_length=30, epochs=2, batch_size=12, learning_rate=5e-5, max_train_examples=None, seed=0,
        strategy="default", logical_cpus=None, precision=None, jit_compile="auto", overwrite=False, verbose=1,
        log=print):
    """Fine-tunes the BERT encoder in ``init_dir`` for SQuAD; saves the model to ``out_dir``.

    Training is `fit_resumable` (a checkpoint per epoch; the same call after an
    interruption continues) with AdamW and BERT's schedule (linear warm-up over
    10% of the steps, then linear decay). The loss is the mean of the start and
    end cross-entropies over every window of every training question.

    Args:
        init_dir: a BERT directory (`tfpretrain.models.bert.load_bert`).
        train_path, dev_path: SQuAD v1.1 JSON files (the first answer of a
            training question is its target).
        out_dir: where the model directory is written.
        sequence_length: pieces per window, ``[CLS]`` and ``[SEP]``s included.
        doc_stride: pieces between the starts of overlapping windows of a long context.
        max_query_length: questions are cut to this many pieces.
        max_answer_length: the longest answer predicted, in pieces.
        max_train_examples: use only the first N training questions.
        strategy, logical_cpus: see `tfpretrain.training.distribute.get_strategy`.
        precision, jit_compile, overwrite: see `tfpretrain.pipelines.finetune.run`.

    Returns:
        The dev scores of `score_questions` plus ``train_loss`` (last epoch),
        ``train_questions``, ``train_windows`` and ``train_windows_per_second``.
    """
    distribution = get_strategy(strategy, logical_cpus)  # first: it must run before TF sets up its devices
    keras.utils.set_random_seed(seed)
    train = _read_questions(train_path)
    dev = _read_questions(dev_path)
    if max_train_examples is not None:
        train = train[:max_train_examples]
    options = {"task": "qa", "sequence_length": int(sequence_length), "doc_stride": int(doc_stride),
               "max_query_length": int(max_query_length), "max_answer_length": int(max_answer_length),
               "precision": precision}

    with distribution.scope():
        encoder, tokenizer = load_init_encoder(init_dir, sequence_length)
        model = build_question_answerer(encoder)  # any window length: training batches are cut to their longest
    preprocessor = QuestionAnsweringPreprocessor(tokenizer, sequence_length, doc_stride, max_query_length)
    features = build_squad_features(train, preprocessor)
    answerable = int(np.sum(features.start_positions > 0))
    log(f"Read {len(train)} training and {len(dev)} dev questions; {len(features)} training windows of "
        f"{sequence_length} pieces ({answerable} hold their answer), {features.num_truncated_questions} questions "
        f"cut to {max_query_length} pieces; strategy {strategy} ({distribution.num_replicas_in_sync} replica(s))")
    total_steps = max(1, math.ceil(len(features) / batch_size) * epochs)
    with distribution.scope():
        # One rate for the encoder and the span layer: the head's own rate is measured for classify and tag only.
        optimizer = fine_tuning_optimizer(model, encoder, learning_rate, total_steps, head_learning_rate=None)
        model.compile(optimizer=optimizer, **span_losses(),
                      jit_compile=check_jit_compile(jit_compile))

    dtypes = input_dtypes(model)
    train_data = squad_dataset(features, batch_size, labels=True, shuffle=True, seed=seed, input_dtypes=dtypes)
    dev_features = build_squad_features(dev, preprocessor)
    dev_data = squad_dataset(dev_features, batch_size, labels=True, input_dtypes=dtypes)  # val_loss: first answers
    history, seconds = fit_resumable(model, train_data, dev_data, epochs, out_dir, verbose, log)
    epochs_run = len(history.history.get("loss", []))

    scores = score_questions(model, tokenizer, options, dev)
    losses = read_history_csv(os.path.join(out_dir, "history.csv")).get("loss")
    if losses:
        scores["train_loss"] = losses[-1][1]
    scores.update(train_questions=len(train), train_windows=len(features),
                  train_windows_per_second=len(features) * epochs_run / max(seconds, 1e-9))
    record_run(options, train_path=train_path, dev_path=dev_path, init_dir=init_dir, tokenizer=tokenizer,
               encoder=encoder, scores=scores, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
               seed=seed)
    save_task_model(out_dir, model, encoder, tokenizer, options)
    log(f"Saved the question-answering model to {out_dir}")
    return scores


def evaluate(model_dir, data_path, batch_size=32):
    """Exact match and F1 of the model in ``model_dir`` on a SQuAD v1.1 file (`models.bert.score_questions`)."""
    questions = _read_questions(data_path)
    model, tokenizer, options = load_qa_model(model_dir)
    return score_questions(model, tokenizer, options, questions, batch_size)


def predict(model_dir, question_context_pairs, batch_size=32):
    """Answers ``(question, context)`` pairs with the model in ``model_dir``.

    Returns:
        list of ``{"answer", "start_char", "end_char", "score"}``, one per pair:
        ``context[start_char:end_char] == answer``; ``score`` is the start plus
        end logit. An empty (or whitespace-only) context gives ``{"answer": "",
        "start_char": 0, "end_char": 0, "score": None}``.
    """
    pairs = list(question_context_pairs)
    questions = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
            raise ValueError(f"pair {i}: {pair!r}; expected a (question, context) tuple of two strings")
        questions.append(SquadQuestion(str(i), pair[0], pair[1], (), f"pair {i}"))
    if not questions:
        return []
    model, tokenizer, options = load_qa_model(model_dir)
    answers, _ = answer_questions(model, tokenizer, options, questions, batch_size)
    return [{key: answer[key] for key in ("answer", "start_char", "end_char", "score")} for answer in answers]
