"""Text files as tf.data streams: lines, batches of lines, piece windows and next-token windows.

The architecture-independent first half of every language model's data:

- `text_lines`: one string per non-blank line (CoNLL-U files: their ``# text =`` values);
- `piece_sequences`: the lines tokenised in the graph (any tokenizer that maps
  a batch of strings to ragged ids: WordPiece, ULMFiT's `WordTokenizer`),
  concatenated into one stream and cut into fixed-length windows (BERT's
  masked-LM data frames them with ``[CLS]``/``[SEP]``);
- `next_token_windows`: those windows as ``(token_ids, next_ids)`` batches,
  the one next-token function behind GPT's `causal_lm_dataset` and ULMFiT's
  `word_lm_dataset`.

Lines are read lazily (`tfpretrain.text.readers.read_text`, whose errors name
``path:line``), so corpora larger than memory stream through.

Example:

>>> windows = next_token_windows(["ewt/train.conllu"], tokenizer, sequence_length=128, batch_size=16,
...                              end_of_line_id=tokenizer.sep_token_id, split="train")
>>> token_ids, next_ids = next(iter(windows))  # (16, 128) int32 each
"""

import os

import tensorflow as tf

from tfpretrain.text.readers import read_text

SPLITS = ("all", "train", "heldout")
LINES_PER_READ = 256
# Ends every line of a word-level language model's stream (the BiLM's sentences, ULMFiT's lines).
END_OF_SENTENCE = "</S>"


def _check_paths(paths):
    paths = [os.fspath(p) for p in paths]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file not found: {path}")
    return paths


def text_lines(paths):
    """Streams the texts of plain-text or CoNLL-U files, as `tfpretrain.text.readers.read_text` reads them.

    One string per non-blank line (the ``# text =`` values of CoNLL-U files),
    read lazily, so corpora larger than memory stream through.

    Example:

    >>> lines = text_lines(["ud_english_ewt/dev.conllu"]).batch(256)  # (256,) strings per batch
    """
    paths = _check_paths(paths)

    def generate():
        for path in paths:
            yield from read_text(path)

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([], tf.string))


def line_chunks(paths, chunk_size=LINES_PER_READ, split="all", heldout_every=None):
    """Yields lists of up to ``chunk_size`` text lines, read lazily in Python; every k-th line held out.

    Bad input raises `DataFormatError` naming ``path:line`` when the reader reaches it.

    Args:
        paths: list of plain-text or CoNLL-U files.
        chunk_size: int. Lines per list (the last may be shorter).
        split: ``"all"``, ``"train"`` (all lines but every ``heldout_every``-th)
            or ``"heldout"`` (only those).
        heldout_every: int or None (None: no line is held out).
    """
    chunk, index = [], 0
    for path in paths:
        for line in read_text(path):  # raises DataFormatError naming path:line
            held_out = heldout_every is not None and index % heldout_every == 0
            index += 1
            if split == "all" or held_out == (split == "heldout"):
                chunk.append(line)
                if len(chunk) == chunk_size:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def line_batches(paths, split="all", heldout_every=None):
    """Batches of up to `LINES_PER_READ` text lines ``(None,)`` as a dataset (`line_chunks`)."""
    paths = _check_paths(paths)
    return tf.data.Dataset.from_generator(lambda: line_chunks(paths, LINES_PER_READ, split, heldout_every),
                                          output_signature=tf.TensorSpec([None], tf.string))


def check_split(split, heldout_every):
    """Raises a ValueError unless ``split`` is one of `SPLITS` with a usable ``heldout_every``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split != "all" and (heldout_every is None or heldout_every < 2):
        raise ValueError(f"split={split!r} needs heldout_every of at least 2, got {heldout_every}")


def piece_sequences(paths, tokenizer, length, split="all", heldout_every=20, repeat=True, end_of_line_id=None):
    """The word pieces of text files as one stream, cut into consecutive windows of ``length`` pieces.

    Lines are read lazily (`tfpretrain.text.readers.read_text`), tokenised
    in the graph a batch of lines at a time, and their pieces concatenated
    across lines and files; the tail that does not fill a window is dropped.
    A window may start or end mid-sentence, even mid-word.

    Args:
        paths: list of plain-text or CoNLL-U files.
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`, or any layer that
            maps strings ``(lines,)`` to ragged ids ``(lines, None)`` (ULMFiT's
            `tfpretrain.models.ulmfit.WordTokenizer`).
        length: int >= 1. Pieces per window.
        split: ``"all"``, ``"train"`` or ``"heldout"`` (every
            ``heldout_every``-th line only); see `line_batches`.
        heldout_every: int, default 20.
        repeat: bool, default True. Cycle over the files forever.
        end_of_line_id: int or None. Appended after every line's pieces (GPT's
            end-of-text token between documents); None: lines just abut.

    Returns:
        a `tf.data.Dataset` of int32 ``(length,)`` windows, in corpus order.

    Example:

    >>> windows = piece_sequences(["ewt/train.conllu"], tokenizer, 129, end_of_line_id=tokenizer.sep_token_id)
    >>> next(iter(windows)).shape
    TensorShape([129])
    """
    check_split(split, heldout_every)
    if length < 1:
        raise ValueError(f"windows need at least 1 piece, got length={length}")

    def line_pieces(lines):  # (lines,) -> (pieces,)
        pieces = tokenizer(lines)  # (lines, None)
        if end_of_line_id is not None:
            ends = tf.fill([pieces.nrows(), 1], tf.constant(end_of_line_id, pieces.dtype))
            pieces = tf.concat([pieces, ends], axis=1)
        return pieces.flat_values

    pieces = line_batches(paths, split, heldout_every if split != "all" else None)
    pieces = pieces.map(line_pieces, num_parallel_calls=tf.data.AUTOTUNE)
    pieces = pieces.filter(lambda ids: tf.size(ids) > 0)  # before repeat: a corpus without pieces ends
    if repeat:
        pieces = pieces.repeat()
    return pieces.rebatch(length, drop_remainder=True)  # (length,)


def next_token_windows(paths, tokenizer, sequence_length, batch_size, end_of_line_id, split="all",
                       heldout_every=20, repeat=True, shuffle_buffer=1000, seed=0, drop_remainder=True):
    """Batches of ``(token_ids, next_ids)`` for next-token training: the one window function of GPT and ULMFiT.

    The lines' ids, each line followed by ``end_of_line_id``, form one
    continuous stream (`piece_sequences`) cut into windows of
    ``sequence_length + 1`` ids: ``token_ids`` are a window's first
    ``sequence_length`` ids, ``next_ids`` the id after each of them. Windows
    do not overlap, so the first id of every window is never a target (1 in
    ``sequence_length + 1``); the tail that fills no window is dropped.

    Args:
        paths: list of plain-text or CoNLL-U files.
        tokenizer: strings ``(lines,)`` -> ragged int32 ids (see `piece_sequences`).
        sequence_length: int >= 1.
        batch_size: int.
        end_of_line_id: int. Appended after every line (GPT's ``[SEP]``, ULMFiT's ``</S>``).
        split, heldout_every, repeat: see `piece_sequences`.
        shuffle_buffer: int, default 1000. Windows in the shuffle buffer (0: in
            corpus order; ``split="heldout"`` is never shuffled).
        seed: int, default 0. Shuffle seed: the same arguments give the same batches.
        drop_remainder: bool, default True. Whole batches only (static shapes);
            False keeps a last, smaller batch.

    Returns:
        a `tf.data.Dataset` of ``(token_ids, next_ids)``, int32 ``(batch, sequence_length)`` each.

    Example:

    >>> token_ids, next_ids = next(iter(next_token_windows(paths, tokenizer, 128, 16, tokenizer.sep_token_id)))
    >>> bool((token_ids[:, 1:] == next_ids[:, :-1]).numpy().all())
    True
    """
    if sequence_length < 1:
        raise ValueError(f"sequence_length must be at least 1, got {sequence_length}")
    windows = piece_sequences(paths, tokenizer, sequence_length + 1, split, heldout_every, repeat,
                              end_of_line_id=end_of_line_id)  # (sequence_length + 1,)
    if shuffle_buffer and split != "heldout":
        windows = windows.shuffle(shuffle_buffer, seed=seed)
    batches = windows.batch(batch_size, drop_remainder=drop_remainder)  # (batch, sequence_length + 1)
    return batches.map(lambda window: (window[:, :-1], window[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)
