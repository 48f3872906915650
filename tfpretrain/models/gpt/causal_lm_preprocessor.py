"""GPT's pretraining data: next-token batches streamed from raw text files, tokenised and packed in tf.data.

reader -> batches of lines -> WordPiece ids in the graph, ``[SEP]`` after
every line (a line is a document; ``[SEP]`` is GPT's end-of-text token) ->
one continuous piece stream cut into windows of ``sequence_length + 1``
pieces (`tfpretrain.text.streams.next_token_windows`, which ULMFiT's word
stream uses too) -> shuffle buffer -> batch -> inputs are a window's first
``sequence_length`` pieces, targets its last ``sequence_length`` ->
prefetch. Packing leaves no padding, and attention runs across document
boundaries, as in GPT-2's training.
"""

import tensorflow as tf

from tfpretrain.text.streams import next_token_windows


def causal_lm_dataset(paths, tokenizer, sequence_length=128, batch_size=16, shuffle_buffer=1000, seed=0,
                      repeat=True, split="all", heldout_every=20):
    """Batches of ``(x, next_token_ids, weights)`` for next-token pretraining, streamed from text files.

    Each window of ``sequence_length + 1`` consecutive pieces gives one
    example: ``token_ids`` its first ``sequence_length`` pieces, the targets
    the ``sequence_length`` pieces after each of them. Windows do not
    overlap, so the first piece of every window is never a target (1 in
    ``sequence_length + 1`` pieces); the tail that fills no window or batch
    is dropped. Shapes are static (``drop_remainder``), as XLA wants.

    Args:
        paths: list of plain-text files (one document per line) or CoNLL-U
            files (their ``# text =`` lines), read as
            `tfpretrain.text.readers.read_text` does (bad input raises a
            `DataFormatError` naming path:line when the reader reaches it).
        tokenizer: a `tfpretrain.text.WordPieceTokenizer` with ``[SEP]``.
        sequence_length: int, default 128.
        batch_size: int, default 16.
        shuffle_buffer: int, default 1000. Windows in the shuffle buffer (0: no
            shuffling; never for ``split="heldout"``).
        seed: int, default 0. Shuffle seed: the same arguments give the same
            batches.
        repeat: bool, default True. Cycle over the files forever.
        split: ``"all"``, ``"train"`` (all lines but every
            ``heldout_every``-th) or ``"heldout"`` (only those, for validation
            perplexity).
        heldout_every: int, default 20 (5% held out).

    Returns:
        a `tf.data.Dataset` of ``(x, y, sample_weight)``: ``x`` a dict of
        ``token_ids`` and ``padding_mask`` (batch, sequence_length) int32 (the
        mask all ones: packed windows have no padding), ``y`` the next token
        ids (batch, sequence_length) int32 and ``sample_weight`` float32 ones.

    Example:

    >>> from tfpretrain.models.gpt import causal_lm_dataset
    >>> dataset = causal_lm_dataset(["ud_english_ewt/train.conllu"], tokenizer, split="train")
    >>> x, y, weights = next(iter(dataset))
    >>> bool((x["token_ids"][:, 1:] == y[:, :-1]).numpy().all())
    True

    References:
        Radford et al. (2019). Language Models are Unsupervised Multitask
        Learners (documents packed with an end-of-text token between them).
    """
    windows = next_token_windows(paths, tokenizer, sequence_length, batch_size, tokenizer.sep_token_id, split,
                                 heldout_every, repeat, shuffle_buffer, seed, drop_remainder=True)

    def make_example(token_ids, next_ids):  # (batch, sequence_length) each
        x = {"token_ids": token_ids, "padding_mask": tf.ones_like(token_ids, tf.int32)}
        return x, next_ids, tf.ones_like(token_ids, tf.float32)

    return windows.map(make_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
