"""BERT's pretraining data: masked-LM batches streamed from raw text files, tokenised and masked in tf.data.

reader (`tfpretrain.text.readers.read_text`, one line at a time) -> batches of
lines -> WordPiece ids in the graph -> one token stream, cut into
``sequence_length - 2`` pieces (consecutive lines share a sequence, as BERT's
pretraining data packs documents; `tfpretrain.text.streams.piece_sequences`)
-> ``[CLS] ... [SEP]`` -> shuffle buffer of sequences -> batch -> masked-LM
corruption (`tfpretrain.text.MaskedLMMasker`) -> prefetch. Nothing holds more
than the shuffle buffer, so corpora larger than memory stream through.
"""

import tensorflow as tf

from tfpretrain.text.streams import check_split, piece_sequences


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
            masked-LM accuracy), as `tfpretrain.text.streams.line_batches` splits.
        heldout_every: int, default 20 (5% held out).

    Returns:
        a `tf.data.Dataset` of ``(x, y, sample_weight)``: ``x`` a dict of
        ``token_ids``, ``segment_ids``, ``padding_mask`` (batch,
        sequence_length; all int32, since bool inputs break Keras' first
        step under `MirroredStrategy`) and ``mask_positions`` (batch,
        max_selections);
        ``y`` the ``mask_ids`` and ``sample_weight`` the ``mask_weights``.

    Example:

    >>> from tfpretrain.models.bert import masked_lm_dataset
    >>> dataset = masked_lm_dataset(["ud_english_ewt/train.conllu"], tokenizer, masker, split="train")
    >>> x, mask_ids, mask_weights = next(iter(dataset))
    >>> x["token_ids"].shape, mask_ids.shape
    (TensorShape([16, 128]), TensorShape([16, 20]))
    """
    check_split(split, heldout_every)
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
