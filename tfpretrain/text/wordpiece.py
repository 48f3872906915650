"""BERT WordPiece in the graph: vocabulary learning, tokenisation equal to Hugging Face's BertTokenizer.

Text is normalised as Hugging Face's ``BertNormalizer`` does it (invalid
UTF-8 is replaced and then dropped like U+FFFD; control and format characters
are removed; whitespace becomes a space; with ``strip_accents`` the text is
NFD-decomposed and its non-spacing marks removed; with ``lowercase`` it is
lower-cased), then `tf_text.FastWordpieceTokenizer` splits it on whitespace,
punctuation and CJK characters and into word pieces in one pass (Google's
LinMaxMatch; it has a TFLite kernel).

`tf_text.FastBertNormalizer` (TFLite-compatible) is available as an option but
is not the default: it case-folds and applies compatibility decompositions, so
it differs from BERT on characters such as "…", "ß", full-width letters and
control characters (11 of 20,951 EWT/SST-2/RTE sentences), and it keeps
invalid UTF-8 bytes, so a word holding one becomes ``[UNK]`` (BERT drops the
bytes and keeps the rest of the word). TFLite classifier files use it.

Known differences from Hugging Face ``tokenizers``: a word longer than 100
UTF-8 bytes becomes ``[UNK]`` (Hugging Face counts 100 characters), and
characters added in recent Unicode versions may be classified differently
(about 760 rarely used code points of 1.1 million).

Example:

>>> tokenizer = WordPieceTokenizer("vocab.txt")
>>> tokenizer(tf.constant(["Hello, naïve world!"])).to_list()
[[7592, 1010, 15743, 2088, 999]]
"""

import collections
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from tfpretrain.text.vocabulary import load_vocabulary

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
RESERVED_TOKENS = [PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN]
CONTINUATION_PREFIX = "##"
MAX_BYTES_PER_WORD = 100

# RE2 patterns of Hugging Face's BertNormalizer(clean_text=True): NUL, U+FFFD and
# every control/format/private-use character except \t \n \r are removed; \t \n \r
# and the Unicode space separators become a plain space.
_REMOVED = r"[\x{0}-\x{8}\x{b}\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\p{Cf}\p{Co}\x{fffd}]"
_SPACES = r"[\t\n\r\p{Zs}\x{2028}\x{2029}]"
_NON_SPACING_MARKS = r"\p{Mn}"
# Characters BERT's BasicTokenizer makes words of their own: ASCII symbols, Unicode punctuation, CJK ideographs.
_SPLIT_OFF = (r"[!-/:-@\[-`{-~\p{P}\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
              r"\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")


def normalize_bert_text(texts, lowercase=True, strip_accents=None):
    """BERT text normalisation of a string tensor (any shape), as Hugging Face's ``BertNormalizer``.

    Args:
        texts: tf.string tensor. Invalid UTF-8 is replaced, then dropped.
        lowercase: bool, default True.
        strip_accents: bool or None. None: the same as ``lowercase``.
    """
    strip_accents = lowercase if strip_accents is None else strip_accents
    texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    texts = tf.strings.regex_replace(texts, _REMOVED, "")
    texts = tf.strings.regex_replace(texts, _SPACES, " ")
    if strip_accents:
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, _NON_SPACING_MARKS, "")
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return texts


def learn_wordpiece_vocabulary(texts, vocabulary_size, lowercase=True, reserved_tokens=RESERVED_TOKENS):
    """Learns a WordPiece vocabulary from raw text with tf-text's bottom-up learner (keras-hub's, too).

    The text is normalised and split exactly as `WordPieceTokenizer` does
    before the pieces are learned, and every character seen is kept (as a word
    start and as a ``##`` continuation), so words of the training text never
    become ``[UNK]``.

    Args:
        texts: iterable of str, or a `tf.data.Dataset` of scalar strings.
        vocabulary_size: int. The size of the vocabulary, reserved tokens
            included: fewer when the text has fewer pieces worth keeping, more
            only when its characters alone (each twice, plain and ``##``)
            need more.
        lowercase: bool, default True. Lower-case and strip accents first.
        reserved_tokens: list of str, put first (ids 0, 1, ...); by default
            `RESERVED_TOKENS` ``[PAD] [UNK] [CLS] [SEP] [MASK]``.

    Returns:
        list of str.

    Example:

    >>> learn_wordpiece_vocabulary(["the cat sat", "the cats sat"], 30)[:7]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'c']
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

    if isinstance(texts, tf.data.Dataset):
        dataset = texts
    else:
        texts = [t for t in texts if t and t.strip()]
        if not texts:
            raise ValueError("learn_wordpiece_vocabulary needs some non-blank text; got none")
        dataset = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
    words = dataset.batch(1024).map(
        lambda t: split_bert_words(normalize_bert_text(t, lowercase)).flat_values, num_parallel_calls=tf.data.AUTOTUNE)
    word_counts = collections.Counter()
    for batch in words.as_numpy_iterator():
        word_counts.update(batch)
    if not word_counts:
        raise ValueError("learn_wordpiece_vocabulary found no words in the text")
    word_counts = {word.decode("utf-8"): count for word, count in word_counts.items()}
    vocabulary = learner.learn(word_counts, vocabulary_size, list(reserved_tokens),
                               include_joiner_token=True, joiner=CONTINUATION_PREFIX)
    return _trim_vocabulary(vocabulary, vocabulary_size, len(reserved_tokens))


def split_bert_words(texts):
    """Splits normalised strings ``(batch,)`` into BERT's words: on whitespace, and around punctuation and CJK."""
    return tf_text.regex_split(texts, r"\s+|" + _SPLIT_OFF, _SPLIT_OFF)


def _as_ragged_words(words):
    """Words as a ragged ``(batch, words)`` string tensor (dense input converted)."""
    if isinstance(words, tf.RaggedTensor):
        return words
    return tf.RaggedTensor.from_tensor(tf.convert_to_tensor(words, dtype=tf.string))


def fill_empty_rows(rows, fill):
    """A ragged ``(n, None)`` tensor with each empty row given one value, ``fill[i]`` for row ``i``.

    Written with dense integer ops on the flat values (a running sum of row
    starts gives each value its row), not ragged concatenation, so that it
    converts to TFLite builtins: the on-device taggers run it.

    Example:

    >>> fill_empty_rows(tf.ragged.constant([[5, 6], [], [7]]), tf.constant([0, 1, 2])).to_list()
    [[5, 6], [1], [7]]
    """
    values = rows.flat_values
    lengths = tf.cast(rows.row_lengths(), tf.int32)  # (n,)
    old_starts = tf.cast(rows.row_starts(), tf.int32)
    new_lengths = tf.maximum(lengths, 1)
    new_limits = tf.cumsum(new_lengths)
    new_starts = new_limits - new_lengths
    total = tf.reduce_sum(new_lengths)
    row = tf.cumsum(tf.scatter_nd(new_starts[1:, None], tf.ones_like(new_starts[1:]), total[None]))  # (total,)
    source = tf.gather(old_starts, row) + tf.range(total) - tf.gather(new_starts, row)
    padded = tf.concat([values, tf.zeros([1], values.dtype)], axis=0)  # never empty
    filled = tf.where(tf.gather(lengths, row) > 0, tf.gather(padded, tf.minimum(source, tf.size(values))),
                      tf.gather(tf.cast(fill, values.dtype), row))
    return tf.RaggedTensor.from_row_splits(filled, tf.concat([[0], tf.cast(new_limits, tf.int64)], axis=0),
                                           validate=False)


def _trim_vocabulary(vocabulary, vocabulary_size, num_reserved):
    """Keeps the reserved tokens and every single character, then the first learned pieces."""
    reserved, learned = vocabulary[:num_reserved], vocabulary[num_reserved:]

    def is_character(token):
        return len(token.removeprefix(CONTINUATION_PREFIX)) == 1

    characters = [t for t in learned if is_character(t)]
    room = max(0, vocabulary_size - num_reserved - len(characters))
    pieces = [t for t in learned if not is_character(t)][:room]
    keep = set(characters) | set(pieces)
    return reserved + [t for t in learned if t in keep]


@keras.saving.register_keras_serializable(package="tfpretrain")
class WordPieceTokenizer(keras.layers.Layer):
    """BERT's WordPiece tokenizer in the graph, equal to Hugging Face's ``BertTokenizer``.

    Raw strings in, word-piece ids out (without ``[CLS]``/``[SEP]``; see
    `tfpretrain.text.packing`). Runs inside `tf.data` and exported graphs.

    Args:
        vocabulary: list of str, or the path of a ``vocab.txt``. Must contain
            ``[UNK]``; ``[PAD] [CLS] [SEP] [MASK]`` are looked up by string.
        lowercase: bool, default True. Lower-case the text (uncased models).
        strip_accents: bool or None, default None (= ``lowercase``, as
            Hugging Face's BertTokenizer). Remove accents after NFD.
        use_fast_bert_normalizer: bool, default False. Normalise with
            `tf_text.FastBertNormalizer` (TFLite builtin-friendly) instead of
            the exact ops; needs ``strip_accents == lowercase`` and differs
            from BERT on a few characters (see the module docstring).
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    >>> tokenizer = tfpretrain.text.WordPieceTokenizer("minilm/vocab.txt")
    >>> ids = tokenizer(tf.constant(["Hello, world!"]))
    >>> ids.to_list(), tokenizer.detokenize(ids).numpy()
    ([[7592, 1010, 2088, 999]], array([b'hello , world !'], dtype=object))
    """

    def __init__(self, vocabulary, lowercase=True, strip_accents=None, use_fast_bert_normalizer=False, **kwargs):
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = load_vocabulary(vocabulary)
        self.vocabulary = [str(t) for t in vocabulary]
        if UNK_TOKEN not in self.vocabulary:
            raise ValueError(f"the vocabulary has no {UNK_TOKEN} token; add it (RESERVED_TOKENS lists "
                             "the tokens a BERT vocabulary needs)")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            duplicates = sorted({t for t in self.vocabulary if self.vocabulary.count(t) > 1})[:5]
            raise ValueError(f"the vocabulary repeats tokens, e.g. {duplicates}; each token needs one id")
        self.lowercase = bool(lowercase)
        self.strip_accents = None if strip_accents is None else bool(strip_accents)
        self.use_fast_bert_normalizer = bool(use_fast_bert_normalizer)
        if self.use_fast_bert_normalizer and self._strips_accents != self.lowercase:
            raise ValueError("use_fast_bert_normalizer=True needs strip_accents equal to lowercase "
                             f"(got lowercase={lowercase}, strip_accents={strip_accents})")
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        self._fast_normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=self.lowercase)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=self.vocabulary, suffix_indicator=CONTINUATION_PREFIX, max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int32, unknown_token=UNK_TOKEN, no_pretokenization=False,
            support_detokenization=True,
        )
        self._tokens = tf.constant(self.vocabulary, dtype=tf.string)
        self._starts_word = tf.constant(
            np.array([not t.startswith(CONTINUATION_PREFIX) for t in self.vocabulary], dtype=bool)
        )
        self.built = True

    @property
    def _strips_accents(self):
        return self.lowercase if self.strip_accents is None else self.strip_accents

    def _special_id(self, token):
        if token not in self._index:
            raise ValueError(f"the vocabulary has no {token} token (needed for BERT inputs)")
        return self._index[token]

    @property
    def pad_token_id(self):
        return self._special_id(PAD_TOKEN)

    @property
    def unk_token_id(self):
        return self._special_id(UNK_TOKEN)

    @property
    def cls_token_id(self):
        return self._special_id(CLS_TOKEN)

    @property
    def sep_token_id(self):
        return self._special_id(SEP_TOKEN)

    @property
    def mask_token_id(self):
        return self._special_id(MASK_TOKEN)

    def vocabulary_size(self):
        return len(self.vocabulary)

    def id_to_token(self, i):
        if not 0 <= int(i) < len(self.vocabulary):
            raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self.vocabulary) - 1})")
        return self.vocabulary[int(i)]

    def token_to_id(self, token):
        if token not in self._index:
            raise ValueError(f"{token!r} is not in the vocabulary")
        return self._index[token]

    def normalize(self, strings):
        """The text as the word-piece splitter sees it (cleaned, lower-cased, accents stripped)."""
        strings = tf.convert_to_tensor(strings, dtype=tf.string)
        if self.use_fast_bert_normalizer:  # invalid UTF-8 stays; such a word becomes [UNK] (TFLite has no transcode)
            return self._fast_normalizer.normalize(strings)
        return normalize_bert_text(strings, self.lowercase, self.strip_accents)

    def call(self, strings):
        """Raw strings ``(batch,)`` (or a scalar) -> word-piece ids, ragged int32 ``(batch, pieces)``."""
        return self._wordpiece.tokenize(self.normalize(strings))

    def tokenize_words(self, words):
        """Words ``(batch, words)`` (ragged or dense strings) -> ragged int32 ``(batch, words, pieces)``.

        Every word keeps at least one piece: one that normalises to nothing
        (only control characters, say) becomes ``[UNK]``, so word counts never
        change. A "word" with punctuation inside (``"don't"``) gets all the
        pieces BERT splits it into.
        """
        words = _as_ragged_words(words)
        pieces, _ = self._pieces_of_words(words.flat_values)  # (total_words, pieces)
        return words.with_flat_values(pieces)  # (batch, words, pieces)

    def tokenize_words_with_offsets(self, words):
        """`tokenize_words` plus each piece's span in its word, in characters: ``(pieces, starts, ends)``.

        All three are ragged ``(batch, words, pieces)``; ``starts`` / ``ends``
        (int32, end exclusive) count the word's characters (code points; an
        invalid UTF-8 sequence is one character). A piece spans the characters
        its normalised text came from, each character normalised on its own
        as BERT normalises it; an ``[UNK]`` spans the
        characters it stands for, and the ``[UNK]`` of a word that normalises
        to nothing spans ``(length, length)``. Where the characters normalised
        one by one do not add up to the normalised word (context-dependent
        normalisation, very rare), every piece of that word spans the whole word.
        """
        words = _as_ragged_words(words)
        flat = words.flat_values  # (words,)
        pieces, (starts, ends, normalized_lengths) = self._pieces_of_words(flat, with_offsets=True)
        chars = tf.strings.unicode_split(flat, "UTF-8", errors="replace", replacement_char=0xFFFD)  # (words, chars)
        char_lengths = tf.cast(tf.strings.length(self.normalize(chars.flat_values)), tf.int64)  # (all chars,) bytes
        # Normalised byte -> character, in one sorted sequence over all words: where each character's bytes end.
        char_ends = tf.cumsum(char_lengths)  # (all chars,)
        first_char = chars.row_starts()  # (words,): index of each word's first character
        word_bytes = tf.gather(tf.concat([[0], char_ends], axis=0), first_char)  # (words,): bytes before each word
        aligned = tf.gather(tf.concat([[0], char_ends], axis=0), chars.row_limits()) - word_bytes == normalized_lengths
        rows = pieces.value_rowids()  # (pieces,): the word of each piece

        def to_chars(offsets):
            # How many of the word's characters end at or before each byte offset: the character that made that byte.
            position = tf.searchsorted(char_ends, tf.gather(word_bytes, rows) + offsets, side="right",
                                       out_type=tf.int64)
            return position - tf.gather(first_char, rows)  # (pieces,)

        starts, ends = starts.flat_values, ends.flat_values
        length = tf.gather(chars.row_lengths(), rows)
        start_chars = to_chars(starts)
        end_chars = to_chars(ends - 1) + 1
        past_the_end = starts >= tf.gather(normalized_lengths, rows)
        start_chars = tf.where(past_the_end, length, start_chars)
        end_chars = tf.where(past_the_end | (ends <= starts), start_chars, end_chars)
        whole = ~tf.gather(aligned, rows)
        start_chars = tf.where(whole, tf.zeros_like(start_chars), start_chars)
        end_chars = tf.where(whole, length, end_chars)

        def as_words(values):
            return words.with_flat_values(pieces.with_flat_values(tf.cast(values, tf.int32)))

        return as_words(pieces.flat_values), as_words(start_chars), as_words(end_chars)

    def _pieces_of_words(self, flat_words, with_offsets=False):
        """Word pieces of each word ``(words,)``, ragged ``(words, pieces)``, an ``[UNK]`` for a word normalised away.

        With ``with_offsets`` also ``(starts, ends, normalized_lengths)``: each
        piece's int64 byte span in its normalised word (the added ``[UNK]``:
        ``(length, length)``) and each normalised word's length in bytes.
        """
        normalized = self.normalize(flat_words)
        if with_offsets:
            pieces, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
        else:
            pieces = self._wordpiece.tokenize(normalized)
        unknown = tf.fill(tf.shape(flat_words), tf.constant(self.unk_token_id, tf.int32))
        pieces = fill_empty_rows(pieces, unknown)
        if not with_offsets:
            return pieces, None
        lengths = tf.cast(tf.strings.length(normalized), tf.int64)
        starts, ends = (fill_empty_rows(tf.cast(offsets, tf.int64), lengths) for offsets in (starts, ends))
        return pieces, (starts, ends, lengths)

    def word_starts(self, token_ids):
        """Whether each id begins a word (is not a ``##`` continuation piece); same shape as ``token_ids``."""
        if isinstance(token_ids, tf.RaggedTensor):
            return token_ids.with_flat_values(self.word_starts(token_ids.flat_values))
        return tf.gather(self._starts_word, tf.cast(token_ids, tf.int32))

    def detokenize(self, ids):
        """Ids ``(batch, pieces)`` -> strings ``(batch,)``: pieces joined by spaces, ``##`` pieces glued on.

        ``[PAD]`` ids are dropped; other special tokens are written out.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
            if ids.shape.rank == 1:
                return self.detokenize(ids[tf.newaxis])[0]
            ids = tf.RaggedTensor.from_tensor(ids)
        if PAD_TOKEN in self._index:
            ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, self.pad_token_id))
        tokens = tf.gather(self._tokens, tf.cast(ids, tf.int32))
        text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
        return tf.strings.regex_replace(text, " " + CONTINUATION_PREFIX, "")

    def compute_output_spec(self, strings):
        shape = tuple(getattr(strings, "shape", ())) + (None,)
        return keras.KerasTensor(shape, dtype="int32", ragged=True)

    def get_config(self):
        config = super().get_config()
        config.update({
            "vocabulary": self.vocabulary,
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "use_fast_bert_normalizer": self.use_fast_bert_normalizer,
        })
        return config
