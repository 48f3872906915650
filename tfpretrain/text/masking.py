"""BERT's masked-LM corruption in the graph: select 15% of the tokens, then 80% [MASK], 10% random, 10% kept.

Reproducible whatever the batching and parallelism: every random number is
a function of ``(seed, element index, position or word, purpose)`` only.
The `tf.random.stateless_*` ops take one seed per call, so giving every row
its own seed would take a loop over rows (``tf.vectorized_map`` of
``stateless_uniform`` measured 3.4 ms per 256 x 128 batch); instead the
numbers come from a counter-based hash (the MurmurHash3 32-bit finaliser,
applied to a counter), which is stateless in the same sense and fully vectorised.

References:
    Devlin et al., 2019. BERT: Pre-training of Deep Bidirectional Transformers
    for Language Understanding. https://arxiv.org/abs/1810.04805 (and
    google-research/bert ``create_pretraining_data.py`` for whole-word masking).
"""

import numpy as np
import tensorflow as tf

_MASK32 = 0xFFFFFFFF
# Purposes: independent streams of random numbers.
_SELECT, _ACTION, _REPLACEMENT = 1, 2, 3


def _fmix32(x):
    """MurmurHash3's finaliser: a bijective avalanche mix of uint32 values."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))
    x = x * tf.constant(0x85EBCA6B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(13, tf.uint32)))
    x = x * tf.constant(0xC2B2AE35, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(16, tf.uint32)))


def _row_keys(seed, element_index):
    """(batch,) uint32 keys from the masker seed and each row's int64 element index."""
    index = tf.cast(element_index, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(index, _MASK32), tf.uint32)
    high = tf.cast(tf.bitwise.right_shift(index, 32), tf.uint32)
    key = _fmix32(tf.bitwise.bitwise_xor(high, tf.constant((seed * 0x9E3779B1 + 0x7F4A7C15) & _MASK32, tf.uint32)))
    return _fmix32(tf.bitwise.bitwise_xor(key * tf.constant(0x27D4EB2F, tf.uint32), low) + key)


def _uniform(keys, counters, purpose, rounds=2):
    """Uniform floats in [0, 1), (batch, n): one per (row key, counter, purpose)."""
    x = keys[:, None] + tf.cast(counters, tf.uint32) * tf.constant(0x9E3779B9, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.constant(purpose * 0x632BE5AB & _MASK32, tf.uint32))
    for _ in range(rounds):
        x = _fmix32(x)
    bits = tf.bitwise.right_shift(x, tf.constant(8, tf.uint32))  # 24 random bits
    return tf.cast(bits, tf.float32) * (1.0 / (1 << 24))


class MaskedLMMasker:
    """Chooses masked-LM targets and corrupts the inputs, BERT style, in the graph.

    Per sequence, ``n = min(max_selections, max(1, round(selection_rate *
    candidates)))`` tokens are selected (0 when there is no candidate), as in
    BERT's ``create_pretraining_data.py``: an exact count, not a Bernoulli
    draw per token. Candidates are all tokens but ``unselectable_token_ids``
    (``[CLS]``, ``[SEP]``, ``[PAD]``). Of the selected tokens,
    ``mask_token_rate`` become ``[MASK]``, ``random_token_rate`` a random id
    (uniform over the vocabulary without the unselectable ids and ``[MASK]``),
    and the rest stay unchanged (each token draws independently).

    With ``whole_word``, words (a candidate that starts a word, per
    ``word_starts``, and the continuation pieces after it) are taken in random
    order, skipping a word that would exceed ``n`` (as BERT's whole-word
    masking does), so a word is always selected whole. A continuation piece
    with no start before it (a sequence cut mid-word) counts as a word.

    Args:
        vocabulary_size: int.
        mask_token_id: int. Id of ``[MASK]``.
        unselectable_token_ids: list of int. Never selected (special tokens).
        selection_rate: float, default 0.15.
        mask_token_rate: float, default 0.8.
        random_token_rate: float, default 0.1.
        max_selections: int, default 20. Width of the ``mask_*`` outputs.
        whole_word: bool, default False.
        seed: int, default 0.

    Call arguments:
        token_ids: int ``(batch, sequence_length)`` (or one ``(sequence_length,)``).
        word_starts: bool, same shape, or None (needed with ``whole_word``).
        element_seed: int or int tensor. The element index of each row, a
            ``(batch,)`` tensor, or a scalar: the index of the first row (row
            i uses ``element_seed + i``). A row's masks depend only on
            ``seed``, its element index and its tokens, so masking elements
            one by one, mapped before batching, or a batch at once with
            consecutive indices gives the same result.

    Returns:
        dict of ``token_ids`` (corrupted, same shape), ``mask_positions``
        (batch, max_selections) int32, ascending, 0-padded; ``mask_ids``: the
        original ids there (0 at padding); ``mask_weights`` float32 (1 at real
        selections).

    Example:

    >>> masker = MaskedLMMasker(30522, mask_token_id=103, unselectable_token_ids=[0, 101, 102], seed=7)
    >>> out = masker(packed["token_ids"], None, element_seed=0)
    >>> out["mask_positions"].shape
    TensorShape([32, 20])
    """

    def __init__(self, vocabulary_size, mask_token_id, unselectable_token_ids, selection_rate=0.15,
                 mask_token_rate=0.8, random_token_rate=0.1, max_selections=20, whole_word=False, seed=0):
        for name, rate in (("selection_rate", selection_rate), ("mask_token_rate", mask_token_rate),
                           ("random_token_rate", random_token_rate)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {rate}")
        if mask_token_rate + random_token_rate > 1.0 + 1e-9:
            raise ValueError(f"mask_token_rate + random_token_rate must be at most 1, got "
                             f"{mask_token_rate} + {random_token_rate}")
        if max_selections < 1:
            raise ValueError(f"max_selections must be at least 1, got {max_selections}")
        self.vocabulary_size = int(vocabulary_size)
        self.mask_token_id = int(mask_token_id)
        self.unselectable_token_ids = [int(i) for i in unselectable_token_ids]
        self.selection_rate = float(selection_rate)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)
        self.max_selections = int(max_selections)
        self.whole_word = bool(whole_word)
        self.seed = int(seed)
        excluded = set(self.unselectable_token_ids) | {self.mask_token_id}
        replacements = np.array([i for i in range(self.vocabulary_size) if i not in excluded], dtype=np.int32)
        if replacements.size == 0:
            raise ValueError("the vocabulary has no token to use as a random replacement")
        self._replacements = tf.constant(replacements)

    def get_config(self):
        return {name: getattr(self, name) for name in (
            "vocabulary_size", "mask_token_id", "unselectable_token_ids", "selection_rate", "mask_token_rate",
            "random_token_rate", "max_selections", "whole_word", "seed")}

    def __call__(self, token_ids, word_starts=None, element_seed=0):
        token_ids = tf.convert_to_tensor(token_ids)
        if token_ids.shape.rank == 1:
            starts = None if word_starts is None else tf.convert_to_tensor(word_starts)[tf.newaxis]
            out = self(token_ids[tf.newaxis], starts, tf.reshape(element_seed, [-1])[:1])
            return {name: value[0] for name, value in out.items()}
        if self.whole_word and word_starts is None:
            raise ValueError("whole_word masking needs word_starts (True at the first piece of each word); "
                             "WordPieceTokenizer.word_starts(token_ids) gives them")
        dtype = token_ids.dtype
        token_ids = tf.cast(token_ids, tf.int32)
        batch = tf.shape(token_ids)[0]
        length = token_ids.shape[1] if token_ids.shape[1] is not None else tf.shape(token_ids)[1]
        element_seed = tf.cast(element_seed, tf.int64)
        if element_seed.shape.rank == 0:
            element_seed = element_seed + tf.range(tf.cast(batch, tf.int64))
        keys = _row_keys(self.seed, element_seed)  # (batch,)

        candidate = tf.ones_like(token_ids, tf.bool)
        for special in self.unselectable_token_ids:
            candidate &= tf.not_equal(token_ids, special)
        num_candidates = tf.reduce_sum(tf.cast(candidate, tf.int32), axis=1)  # (batch,)
        budget = tf.cast(tf.round(self.selection_rate * tf.cast(num_candidates, tf.float32)), tf.int32)
        budget = tf.where(num_candidates > 0, tf.clip_by_value(budget, 1, self.max_selections), 0)

        k = min(self.max_selections, length) if isinstance(length, int) else tf.minimum(self.max_selections, length)
        if self.whole_word:
            selected = self._select_words(candidate, tf.cast(word_starts, tf.bool), budget, keys, length)
            order_key = tf.where(selected, tf.range(length)[None, :], length + tf.range(length)[None, :])
            _, mask_positions = tf.math.top_k(-order_key, k=k)  # (batch, k): selected first, ascending
            real = tf.range(k)[None, :] < tf.reduce_sum(tf.cast(selected, tf.int32), axis=1, keepdims=True)
        else:
            noise = _uniform(keys, tf.range(length)[None, :], _SELECT, rounds=1)  # (batch, length)
            _, chosen = tf.math.top_k(-tf.where(candidate, noise, 2.0), k=k)  # the k lowest candidates
            real = tf.range(k)[None, :] < budget[:, None]  # keep the first `budget` of them
            _, ascending = tf.math.top_k(-tf.where(real, chosen, length + tf.range(k)[None, :]), k=k)
            mask_positions = tf.gather(chosen, ascending, batch_dims=1)
        mask_positions = tf.where(real, mask_positions, 0)  # (batch, k)
        mask_ids = tf.where(real, tf.gather(token_ids, mask_positions, batch_dims=1), 0)

        # 80/10/10, drawn per (row, position) so it does not depend on the other selections.
        action = _uniform(keys, mask_positions, _ACTION)  # (batch, k)
        pick = _uniform(keys, mask_positions, _REPLACEMENT) * tf.cast(tf.size(self._replacements), tf.float32)
        random_ids = tf.gather(self._replacements, tf.minimum(tf.cast(pick, tf.int32), tf.size(self._replacements) - 1))
        new_ids = tf.where(action < self.mask_token_rate, self.mask_token_id,
                           tf.where(action < self.mask_token_rate + self.random_token_rate, random_ids, mask_ids))
        # Write the new ids; padding slots write into an extra column that is dropped.
        target = tf.where(real, mask_positions, length)
        rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(target))
        corrupted = tf.tensor_scatter_nd_update(
            tf.pad(token_ids, [[0, 0], [0, 1]]), tf.stack([rows, target], axis=-1), new_ids)[:, :length]

        padding = [[0, 0], [0, self.max_selections - k]]
        return {
            "token_ids": tf.cast(corrupted, dtype),
            "mask_positions": tf.pad(mask_positions, padding),  # (batch, max_selections)
            "mask_ids": tf.pad(mask_ids, padding),
            "mask_weights": tf.pad(tf.cast(real, tf.float32), padding),
        }

    def _select_words(self, candidate, word_starts, budget, keys, length):
        """(batch, length) bool: whole words taken in random order within the budget."""
        previous = tf.pad(candidate[:, :-1], [[0, 0], [1, 0]])
        starts = candidate & (word_starts | ~previous)
        # Word w of a row = the w-th start; its pieces are the candidates up to the next start.
        word_index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # (batch, length)
        word_index = tf.where(candidate, word_index, length)  # non-candidates: a dummy word
        sizes = tf.math.bincount(word_index, minlength=length + 1, maxlength=length + 1, axis=-1)[:, :length]
        noise = _uniform(keys, tf.range(length)[None, :], _SELECT, rounds=1)  # one number per word slot
        order = tf.argsort(tf.where(sizes > 0, noise, 2.0), axis=1, stable=True)  # words in random order
        chosen_sorted = self._greedy(tf.gather(sizes, order, batch_dims=1), budget)
        chosen_words = tf.gather(chosen_sorted, tf.argsort(order, axis=1), batch_dims=1)  # by word slot
        chosen_words = tf.pad(chosen_words, [[0, 0], [0, 1]])  # the dummy word is never chosen
        return tf.gather(chosen_words, word_index, batch_dims=1) & candidate

    @staticmethod
    def _greedy(sorted_sizes, budget):
        """Takes words in order, skipping any that would exceed the budget (BERT's whole-word rule)."""
        def step(used, sizes):
            take = (sizes > 0) & (used + sizes <= budget)
            return used + tf.where(take, sizes, 0), take

        sizes_by_word = tf.transpose(sorted_sizes)  # (length, batch)
        initial = (tf.zeros_like(sizes_by_word[0]), tf.zeros_like(sizes_by_word[0], tf.bool))
        _, taken = tf.scan(lambda state, sizes: step(state[0], sizes), sizes_by_word, initializer=initial)
        return tf.transpose(taken)
