"""GPT's preprocessor for fine-tuning: each task's texts rewritten as token sequences for a left-to-right decoder.

The one path from strings to `GptTransferModel` inputs: fine-tuning's tf.data
pipeline (`tfpretrain.models.task_model.task_dataset`), prediction and the
exported classifier (`tfpretrain.export.GptClassifierModule`) all call
`encode_gpt_inputs`.

Radford et al. (2018), figure 1: a task's texts become one or more token
sequences that start with ``[START]``, join texts with ``[DELIM]`` and end
with ``[EXTRACT]``, whose final hidden state feeds a linear head.

| task | sequences per example | sequence(s) |
|---|---|---|
| classify | 1 | ``[START] text [EXTRACT]`` |
| pair (entailment) | 1 | ``[START] premise [DELIM] hypothesis [EXTRACT]`` |
| similarity | 2 | ``[START] a [DELIM] b [EXTRACT]`` and ``[START] b [DELIM] a [EXTRACT]`` |
| choice | K | ``[START] context [DELIM] choice_k [EXTRACT]`` for each of the K choices |

Everything runs in the graph on a batch of string columns (tf.data or a
served model). Texts that do not fit are cut piece by piece from the longer
text first (round robin), and reported.

Example:

>>> from tfpretrain.models.gpt.preprocessor import encode_gpt_inputs
>>> packed, truncated = encode_gpt_inputs(tokenizer, "pair", (premises, hypotheses), 64)
>>> packed["token_ids"].shape   # (batch, sequences per example, sequence_length)
TensorShape([8, 1, 64])
"""

import tensorflow as tf

from tfpretrain.text.packing import pack_segments

START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN = "[START]", "[DELIM]", "[EXTRACT]"
TRANSFER_TOKENS = (START_TOKEN, DELIMITER_TOKEN, EXTRACT_TOKEN)
# What `encode_gpt_inputs` returns (and `GptTransferModel` takes): int32 ids and mask.
INPUT_DTYPES = {"token_ids": "int32", "padding_mask": "int32"}

# task -> the texts of each sequence, as indices into the example's text columns
# (choice: context 0 with each choice 1..K, filled in by `sequence_layout`).
_LAYOUTS = {
    "classify": ((0,),),
    "pair": ((0, 1),),
    "similarity": ((0, 1), (1, 0)),
}
TRANSFER_TASKS = ("classify", "pair", "similarity", "choice")


def sequence_layout(task, num_texts):
    """Which text columns make each of the example's sequences, e.g. ``((0, 1), (1, 0))`` for similarity."""
    if task == "choice":
        if num_texts < 3:
            raise ValueError(f"a choice example needs a context and at least 2 choices, got {num_texts} text(s)")
        return tuple((0, k) for k in range(1, num_texts))
    if task not in _LAYOUTS:
        raise ValueError(f"unknown GPT transfer task {task!r}; choose one of {', '.join(TRANSFER_TASKS)}")
    layout = _LAYOUTS[task]
    needed = 1 + max(max(texts) for texts in layout)
    if num_texts != needed:
        raise ValueError(f"task {task!r} takes {needed} text(s) per example, got {num_texts}")
    return layout


def transfer_token_ids(tokenizer):
    """The ids of ``[START]``, ``[DELIM]`` and ``[EXTRACT]`` in the tokenizer's vocabulary (an error if missing)."""
    missing = [token for token in TRANSFER_TOKENS if token not in tokenizer.vocabulary]
    if missing:
        raise ValueError(f"the vocabulary has no {', '.join(missing)}; GPT transfer needs "
                         f"{', '.join(TRANSFER_TOKENS)} (vocabularies learned by `tfpretrain pretrain-gpt` have them)")
    return tuple(int(tokenizer.token_to_id(token)) for token in TRANSFER_TOKENS)


def encode_gpt_inputs(tokenizer, task, texts, sequence_length):
    """Rewrites a batch of examples as GPT transfer sequences (see the table above).

    Args:
        tokenizer: a `tfpretrain.text.WordPieceTokenizer` whose vocabulary has
            the `TRANSFER_TOKENS`.
        task: "classify", "pair", "similarity" or "choice".
        texts: tuple of string tensors (batch,), the example's text columns
            (choice: the context, then the K choices).
        sequence_length: int. Tokens per sequence, the special tokens included.

    Returns:
        ``(packed, truncated)``: ``packed`` has ``token_ids`` and
        ``padding_mask`` (batch, sequences, sequence_length) int32 (the mask is
        1 at real tokens; the ``[EXTRACT]`` token is the last real one);
        ``truncated`` (batch,) bool: some sequence of the example lost pieces.
    """
    start_id, delimiter_id, extract_id = transfer_token_ids(tokenizer)
    layout = sequence_layout(task, len(texts))
    pieces = [tokenizer(column) for column in texts]  # each (batch, pieces), ragged
    token_ids, padding_masks, truncated = [], [], []
    for columns in layout:
        segments = tuple(pieces[c] for c in columns)
        packed = pack_segments(segments, sequence_length, start_id, delimiter_id, tokenizer.pad_token_id,
                               end_token_id=extract_id)
        token_ids.append(packed["token_ids"])  # (batch, sequence_length)
        padding_masks.append(tf.cast(packed["padding_mask"], tf.int32))
        needed = tf.add_n([tf.cast(s.row_lengths(), tf.int32) for s in segments]) + len(segments) + 1
        truncated.append(needed > sequence_length)
    packed = {
        "token_ids": tf.stack(token_ids, axis=1),  # (batch, sequences, sequence_length)
        "padding_mask": tf.stack(padding_masks, axis=1),
    }
    return packed, tf.reduce_any(tf.stack(truncated, axis=1), axis=1)
