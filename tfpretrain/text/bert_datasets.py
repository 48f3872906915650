"""Masked-LM pretraining batches streamed from raw text files, tokenised and masked in tf.data.

reader (`tfpretrain.text.readers.read_text`, one line at a time) -> batches of
lines -> WordPiece ids in the graph -> one token stream, cut into
``sequence_length - 2`` pieces (consecutive lines share a sequence, as BERT's
pretraining data packs documents) -> ``[CLS] ... [SEP]`` -> shuffle buffer of
sequences -> batch -> masked-LM corruption -> prefetch. Nothing holds more
than the shuffle buffer, so corpora larger than memory stream through.

The first half of that (`piece_sequences`: lines -> fixed-length windows of
the piece stream) also feeds GPT's next-token data
(`tfpretrain.text.lm_datasets.causal_lm_dataset`).
"""

import os

import tensorflow as tf

from tfpretrain.text.readers import read_text

SPLITS = ("all", "train", "heldout")
LINES_PER_READ = 256


def _line_batches(paths, split, heldout_every):
    """Batches of up to `LINES_PER_READ` text lines ``(None,)``, read lazily; every k-th line held out."""
    paths = [os.fspath(p) for p in paths]
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"text file not found: {path}")

    def generate():
        chunk, index = [], 0
        for path in paths:
            for line in read_text(path):  # raises DataFormatError naming path:line
                held_out = heldout_every is not None and index % heldout_every == 0
                index += 1
                if split == "all" or held_out == (split == "heldout"):
                    chunk.append(line)
                    if len(chunk) == LINES_PER_READ:
                        yield chunk
                        chunk = []
        if chunk:
            yield chunk

    return tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([None], tf.string))


def _check_split(split, heldout_every):
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
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        length: int >= 1. Pieces per window.
        split: ``"all"``, ``"train"`` or ``"heldout"`` (every
            ``heldout_every``-th line only); see `masked_lm_dataset`.
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
    _check_split(split, heldout_every)
    if length < 1:
        raise ValueError(f"windows need at least 1 piece, got length={length}")

    def line_pieces(lines):  # (lines,) -> (pieces,)
        pieces = tokenizer(lines)  # (lines, None)
        if end_of_line_id is not None:
            ends = tf.fill([pieces.nrows(), 1], tf.constant(end_of_line_id, pieces.dtype))
            pieces = tf.concat([pieces, ends], axis=1)
        return pieces.flat_values

    pieces = _line_batches(paths, split, heldout_every if split != "all" else None)
    pieces = pieces.map(line_pieces, num_parallel_calls=tf.data.AUTOTUNE)
    pieces = pieces.filter(lambda ids: tf.size(ids) > 0)  # before repeat: a corpus without pieces ends
    if repeat:
        pieces = pieces.repeat()
    return pieces.rebatch(length, drop_remainder=True)  # (length,)


def masked_lm_dataset(paths, tokenizer, masker, sequence_length=128, batch_size=16, shuffle_buffer=1000, seed=0,
                      repeat=True, split="all", heldout_every=20):
    """Batches of ``(x, mask_ids, mask_weights)`` for masked-LM pretraining, streamed from text files.

    Lines are tokenised into one continuous stream of word pieces that is cut
    into sequences of ``sequence_length - 2`` pieces (a sequence may start or
    end mid-sentence, even mid-word; the tail that does not fill a sequence is
    dropped) and framed as ``[CLS] pieces [SEP]`` (segment 0, no padding).
    Shapes are static (``drop_remainder``), as XLA wants.

    Reproducible: the shuffle uses ``seed``, and each sequence is masked from
    ``masker.seed`` and its position in the stream, so the same arguments give
    the same batches. With ``repeat`` every pass over the corpus gets new
    masks (dynamic masking).

    Args:
        paths: list of plain-text files (one sentence or paragraph per line)
            or CoNLL-U files (their ``# text =`` lines), read as
            `tfpretrain.text.readers.read_text` does.
        tokenizer: a `tfpretrain.text.WordPieceTokenizer`.
        masker: a `tfpretrain.text.MaskedLMMasker`; with ``whole_word`` the
            word starts come from ``tokenizer.word_starts``.
        sequence_length: int, default 128.
        batch_size: int, default 16.
        shuffle_buffer: int, default 1000. Sequences in the shuffle buffer
            (0: no shuffling; never for ``split="heldout"``).
        seed: int, default 0. Shuffle seed.
        repeat: bool, default True. Cycle over the files forever.
        split: ``"all"``, ``"train"`` (all lines but every
            ``heldout_every``-th) or ``"heldout"`` (only those, for validation
            masked-LM accuracy), as `tfpretrain.text.tokenized_lines` splits.
        heldout_every: int, default 20 (5% held out).

    Returns:
        a `tf.data.Dataset` of ``(x, y, sample_weight)``: ``x`` a dict of
        ``token_ids``, ``segment_ids``, ``padding_mask`` (batch,
        sequence_length; all int32, since bool inputs break Keras' first
        step under `MirroredStrategy`) and ``mask_positions`` (batch,
        max_selections);
        ``y`` the ``mask_ids`` and ``sample_weight`` the ``mask_weights``.

    Example:

    >>> dataset = masked_lm_dataset(["ud_english_ewt/train.conllu"], tokenizer, masker, split="train")
    >>> x, mask_ids, mask_weights = next(iter(dataset))
    >>> x["token_ids"].shape, mask_ids.shape
    (TensorShape([16, 128]), TensorShape([16, 20]))
    """
    _check_split(split, heldout_every)
    if sequence_length < 3:
        raise ValueError(f"sequence_length must be at least 3 ([CLS], a piece, [SEP]), got {sequence_length}")
    cls_token_id, sep_token_id = tokenizer.cls_token_id, tokenizer.sep_token_id

    sequences = piece_sequences(paths, tokenizer, sequence_length - 2, split, heldout_every, repeat)
    if shuffle_buffer and split != "heldout":
        sequences = sequences.shuffle(shuffle_buffer, seed=seed)
    batches = sequences.enumerate().batch(batch_size, drop_remainder=True)

    def make_example(element_index, body):  # (batch,), (batch, sequence_length - 2)
        batch = tf.shape(body)[0]
        token_ids = tf.concat(
            [tf.fill([batch, 1], cls_token_id), body, tf.fill([batch, 1], sep_token_id)], axis=1)  # (batch, L)
        word_starts = tokenizer.word_starts(token_ids) if masker.whole_word else None
        masked = masker(token_ids, word_starts, element_index)
        x = {
            "token_ids": masked["token_ids"],
            "segment_ids": tf.zeros_like(token_ids),
            "padding_mask": tf.ones_like(token_ids, tf.int32),
            "mask_positions": masked["mask_positions"],
        }
        return x, masked["mask_ids"], masked["mask_weights"]

    return batches.map(make_example, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
