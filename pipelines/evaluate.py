"""Score any trained model on a labelled file (``tfpretrain evaluate``): the kind comes from the directory.

| directory (`model_kind`) | scored by | scores |
|---|---|---|
| tagger (``train-tagger``) | `tfpretrain.models.tagger.evaluation.evaluate_sentences` | precision, recall, f1 (entities), accuracy |
| fine-tuned BERT / GPT (``finetune``) | `tfpretrain.pipelines.finetune.evaluate` | per task (accuracy, entity F1, SQuAD EM / F1) |
| ULMFiT classifier (``ulmfit``) | `tfpretrain.pipelines.ulmfit_classifier.evaluate` | accuracy, macro_f1 |
"""

from tfpretrain.models.model_dir import model_kind


def run(model_dir, data_path, format=None, column=None):  # noqa: A002 (the CLI's option name)
    """Returns the scores of the model in ``model_dir`` on ``data_path`` (a JSON-serialisable dict).

    ``format`` and ``column`` default to what the model was trained on.
    """
    kind = model_kind(model_dir)
    if kind.architecture == "tagger":
        return _evaluate_tagger(model_dir, data_path, format, column)
    if kind.architecture == "ulmfit" and kind.task:
        from tfpretrain.pipelines import ulmfit_classifier

        return ulmfit_classifier.evaluate(model_dir, data_path, column=column)
    if kind.task:
        from tfpretrain.pipelines import finetune

        return finetune.evaluate(model_dir, data_path, format=format, column=column)
    raise ValueError(f"{model_dir} holds {kind.describe()}: there is no task to score; evaluate a tagger "
                     "(train-tagger), a fine-tuned model (finetune) or a ULMFiT classifier (ulmfit)")


def _evaluate_tagger(model_dir, data_path, format, column):  # noqa: A002
    from tfpretrain.models.tagger.evaluation import evaluate_sentences
    from tfpretrain.models.tagger.saving import load_tagger
    from tfpretrain.text.readers import read_tagged

    model, preprocessor, metadata = load_tagger(model_dir)
    format = format or metadata.get("format")
    column = column if column is not None else metadata.get("column")
    sentences = read_tagged(data_path, format, column)
    if not sentences:
        raise ValueError(f"{data_path}: no sentences found (is --format {format} right?)")
    return evaluate_sentences(model, preprocessor, sentences)
