"""A GPT directory on disk: ``decoder.json`` + ``decoder.weights.h5`` + ``vocab.txt`` + ``tokenizer.json``.

``decoder.json`` holds the `GptDecoder` constructor arguments; ``vocab.txt``
and ``tokenizer.json`` are those of a BERT directory (see
`tfpretrain.models.model_dir`), the vocabulary starting with
`GPT_RESERVED_TOKENS`. ``pretrain-gpt`` adds ``pretraining.json``;
``generate`` and ``finetune`` read the directory.
"""

import os

from tfpretrain.models.model_dir import (
    DECODER_CONFIG_FILE,
    DECODER_WEIGHTS_FILE,
    ENCODER_CONFIG_FILE,
    GPT_FILES,
    load_backbone,
    save_backbone,
)

__all__ = ["GPT_FILES", "is_gpt_dir", "load_gpt", "save_gpt"]


def is_gpt_dir(directory):
    """Whether ``directory`` holds a GPT decoder (``decoder.json``), as opposed to a BERT encoder.

    Example:

    >>> is_gpt_dir("runs/gpt-tiny"), is_gpt_dir("runs/bert-mini")
    (True, False)
    """
    return os.path.isfile(os.path.join(os.fspath(directory), DECODER_CONFIG_FILE))


def save_gpt(out_dir, decoder, tokenizer):
    """Writes ``decoder`` and ``tokenizer`` as a GPT directory.

    Args:
        out_dir: str. Created if missing; existing GPT files are overwritten.
        decoder: a `GptDecoder`.
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.

    Example:

    >>> save_gpt("runs/gpt-tiny", decoder, tokenizer)
    >>> decoder, tokenizer = load_gpt("runs/gpt-tiny")
    """
    save_backbone(out_dir, decoder, tokenizer, DECODER_CONFIG_FILE, DECODER_WEIGHTS_FILE)


def load_gpt(directory, dtype=None):
    """Reads a GPT directory written by `save_gpt` (``pretrain-gpt``, or a GPT fine-tune).

    Args:
        directory: str. The GPT directory.
        dtype: optional dtype policy for the decoder, e.g. "mixed_float16";
            defaults to the global policy. The weights are float32 either way.

    Returns:
        ``(decoder, tokenizer)``: a `GptDecoder` with the saved weights and a
        `tfpretrain.text.WordPieceTokenizer`. Call it under a
        ``tf.distribute`` strategy's scope to place the variables there.

    Example:

    >>> decoder, tokenizer = load_gpt("runs/gpt-tiny")
    """
    from tfpretrain.models.gpt.decoder import GptDecoder

    if os.path.isdir(directory) and not is_gpt_dir(directory) and os.path.exists(
            os.path.join(directory, ENCODER_CONFIG_FILE)):
        raise ValueError(f"{directory} holds a BERT encoder ({ENCODER_CONFIG_FILE}), not a GPT decoder; "
                         "load it with tfpretrain.models.bert.load_bert")
    return load_backbone(directory, GptDecoder, DECODER_CONFIG_FILE, DECODER_WEIGHTS_FILE, dtype=dtype, kind="GPT",
                          written_by="`tfpretrain pretrain-gpt`")
