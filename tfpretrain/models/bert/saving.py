"""A BERT directory on disk: ``encoder.json`` + ``encoder.weights.h5`` + ``vocab.txt`` + ``tokenizer.json``.

``encoder.json`` holds the `BertEncoder` constructor arguments, ``tokenizer.json``
``{"lowercase": bool, "strip_accents": bool or null}``; ``vocab.txt`` is
Hugging Face's format (one token per line, line i = id i). ``pretrain-bert``
adds ``pretraining.json``. ``import-hf``, ``pretrain-bert`` and the fine-tuning
commands all read and write this layout. GPT directories
(`tfpretrain.models.gpt.save_gpt`) are the same with ``decoder.json`` and
``decoder.weights.h5``; `tfpretrain.models.model_dir` writes and reads both.
"""

from tfpretrain.models.model_dir import (
    BERT_FILES,
    ENCODER_CONFIG_FILE,
    ENCODER_WEIGHTS_FILE,
    load_backbone,
    save_backbone,
)

__all__ = ["BERT_FILES", "load_bert", "save_bert"]


def save_bert(out_dir, encoder, tokenizer):
    """Writes ``encoder`` and ``tokenizer`` as a BERT directory.

    Args:
        out_dir: str. Created if missing; existing BERT files are overwritten.
        encoder: a `BertEncoder`.
        tokenizer: a `tfpretrain.text.wordpiece.WordPieceTokenizer`, or any
            object with ``vocabulary`` (list of str), ``lowercase`` and
            ``strip_accents``.

    Example:

    >>> save_bert("runs/bert-mini", encoder, tokenizer)
    >>> encoder, tokenizer = load_bert("runs/bert-mini")
    """
    save_backbone(out_dir, encoder, tokenizer, ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE)


def load_bert(directory, dtype=None):
    """Reads a BERT directory written by `save_bert` (or ``import-hf``).

    Args:
        directory: str. The BERT directory.
        dtype: optional dtype policy for the encoder, e.g. "mixed_float16";
            defaults to the global policy. The weights are float32 either way.

    Returns:
        ``(encoder, tokenizer)``: a `BertEncoder` with the saved weights and a
        `tfpretrain.text.wordpiece.WordPieceTokenizer` with the saved
        vocabulary and normalisation. Call it under a
        ``tf.distribute`` strategy's scope to place the variables there.
    """
    from tfpretrain.models.bert.encoder import BertEncoder

    return load_backbone(directory, BertEncoder, ENCODER_CONFIG_FILE, ENCODER_WEIGHTS_FILE, dtype=dtype)
