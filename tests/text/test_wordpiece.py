"""WordPiece tokenisation against Hugging Face ``tokenizers`` and keras-hub on real sentences and odd input."""

import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.harness import run_preprocessing_test
from tfpretrain.text import RESERVED_TOKENS, WordPieceTokenizer, learn_wordpiece_vocabulary
from tfpretrain.text.readers import read_text
from tfpretrain.text.vocabulary import load_vocabulary, save_vocabulary

tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers is the oracle")


@pytest.fixture(scope="module")
def ours(minilm_dir):
    return WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"))


@pytest.fixture(scope="module")
def hf(minilm_dir):
    tokenizer = tokenizers.Tokenizer.from_file(os.path.join(minilm_dir, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def hf_ids(hf, texts):
    return [e.ids for e in hf.encode_batch(list(texts), add_special_tokens=False)]


def our_ids(tokenizer, texts, batch_size=512):
    texts = list(texts)
    tokenize = tf.function(tokenizer.__call__)
    ids = []
    for start in range(0, len(texts), batch_size):
        ids += tokenize(tf.constant(texts[start : start + batch_size], dtype=tf.string)).to_list()
    return ids


@pytest.fixture(scope="module")
def real_sentences(shared_data):
    """All EWT dev sentences, SST-2 dev sentences and both sides of RTE dev pairs."""
    texts = list(read_text(shared_data / "ud_english_ewt" / "dev.conllu"))
    for name, columns in (("sst2", ["content"]), ("rte", ["sentence1", "sentence2"])):
        with open(shared_data / name / "dev.tsv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                texts += [row[c] for c in columns]
    assert len(texts) > 3000
    return texts


def test_equals_hugging_face_on_every_real_sentence(ours, hf, real_sentences):
    expected, got = hf_ids(hf, real_sentences), our_ids(ours, real_sentences)
    different = [t for t, e, g in zip(real_sentences, expected, got) if e != g]
    assert not different, f"{len(different)} of {len(real_sentences)} differ, e.g. {different[:3]}"


def test_equals_keras_hub_on_ascii_sentences(ours, hf, minilm_dir, real_sentences):
    """keras-hub keeps accents for uncased vocabularies (naïve -> [UNK]); elsewhere it must agree."""
    keras_hub = pytest.importorskip("keras_hub")
    hub = keras_hub.models.BertTokenizer.from_preset(minilm_dir)
    hub_tokenize = tf.function(hub.__call__)
    ascii_texts = [t for t in real_sentences if t.isascii()]
    hub_ids = hub_tokenize(tf.constant(ascii_texts)).to_list()
    assert hub_ids == our_ids(ours, ascii_texts)
    others = [t for t in real_sentences if not t.isascii()]
    assert 0 < len(others) < len(real_sentences) // 5  # the ones left for the Hugging Face comparison
    hub_others = hub_tokenize(tf.constant(others)).to_list()
    differing = sum(h != g for h, g in zip(hub_others, hf_ids(hf, others)))
    assert differing > 0  # the known accent difference shows up in real text


ODD_TEXTS = [
    "", " ", " \t\n\r ", "\x00", "a\x00b\x07c\u200dd", "\x1b[31mred\x1b[0m", "hi😀 there 😀👍🏽",
    "中文字符test 日本語のテキスト 한국어", "naïve café Ǆemal ÅSTRÖM", "İstanbul ß ﬁ Ａｂｃ …",
    "\ufffdabc",
    "a\u00adb\u2028c\u3000d\u00a0e", "$5.00 #hash @user ~tilde `q ^ | < > = +", "‘quote’ “dq” — dash",
    "\u0301abc e\u0301", "x" * 150, "word " * 2000, "ab" * 5000, "\u0645\u0631\u062d\u0628\u0627 Привет мир",
]


@pytest.mark.parametrize("lowercase", [True, False])
def test_odd_input_equals_hugging_face(minilm_dir, lowercase):
    vocabulary = load_vocabulary(os.path.join(minilm_dir, "vocab.txt"))
    oracle = tokenizers.Tokenizer(tokenizers.models.WordPiece(
        {t: i for i, t in enumerate(vocabulary)}, unk_token="[UNK]", max_input_chars_per_word=100))
    oracle.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase)
    oracle.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase)
    assert len(ODD_TEXTS[-3]) == 10_000 and len(ODD_TEXTS[-2]) == 10_000
    assert our_ids(tokenizer, ODD_TEXTS) == hf_ids(oracle, ODD_TEXTS)


@pytest.mark.parametrize("lowercase,strip_accents", [(True, False), (False, True)])
def test_accent_options_equal_hugging_face(minilm_dir, lowercase, strip_accents):
    vocabulary = load_vocabulary(os.path.join(minilm_dir, "vocab.txt"))
    oracle = tokenizers.Tokenizer(tokenizers.models.WordPiece(
        {t: i for i, t in enumerate(vocabulary)}, unk_token="[UNK]"))
    oracle.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    oracle.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tokenizer = WordPieceTokenizer(vocabulary, lowercase=lowercase, strip_accents=strip_accents)
    texts = ["naïve café", "Ǆemal ÅSTRÖM résumé", "Crème Brûlée", "plain text"]
    assert our_ids(tokenizer, texts) == hf_ids(oracle, texts)


def test_invalid_utf8_is_replaced_not_fatal(ours, hf):
    raw = [b"caf\xe9 ok", b"\xff\xfe\xfd", b"trunc\xe2\x82", b"fine \xc3\xa9t\xc3\xa9"]
    got = ours(tf.constant(raw)).to_list()
    assert got == hf_ids(hf, [r.decode("utf-8", errors="replace") for r in raw])
    assert got[1] == []


def test_special_ids_looked_up_by_string(ours):
    assert (ours.pad_token_id, ours.unk_token_id, ours.cls_token_id, ours.sep_token_id, ours.mask_token_id) == (
        0, 100, 101, 102, 103)
    assert ours.vocabulary_size() == 30522
    assert ours.id_to_token(101) == "[CLS]" and ours.token_to_id("hello") == 7592
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.token_to_id("no-such-token")


def test_scalar_and_graph_and_dataset_agree(ours):
    texts = ["The quick brown fox.", "Unaffable grumpiness!", ""]
    run_preprocessing_test(ours, texts)


def test_tokenize_words_matches_whole_text_and_keeps_word_counts(ours, real_sentences):
    texts = real_sentences[:300]
    words = tf.ragged.constant([t.split() or [] for t in texts], dtype=tf.string, ragged_rank=1)
    word_pieces = ours.tokenize_words(words)
    assert word_pieces.shape.rank == 3
    assert word_pieces.row_lengths().numpy().tolist() == [len(t.split()) for t in texts]
    flat = [[p for word in sentence for p in word] for sentence in word_pieces.to_list()]
    assert flat == ours(tf.constant(texts)).to_list()
    odd = ours.tokenize_words(tf.ragged.constant([["ok", "\x07\x00", ""], ["\u200d"]])).to_list()
    assert odd == [[[7929], [100], [100]], [[100]]]


def test_tokenize_words_with_offsets_equals_hugging_face_offsets(ours, hf, real_sentences):
    # Every distinct whitespace word of the real sentences, and words whose characters change or vanish.
    words = sorted({word for text in real_sentences for word in text.split()})
    words += ["naïve", "ÅNGSTRÖM", "ﬁne", "x\u200by", "\x01a", "a☃b", "27–20", "x" * 150]
    pieces, starts, ends = (t.to_list()[0] for t in ours.tokenize_words_with_offsets(tf.ragged.constant([words])))
    expected = hf.encode_batch(words, add_special_tokens=False)
    assert pieces == [e.ids for e in expected]
    assert [list(zip(s, e)) for s, e in zip(starts, ends)] == [[tuple(o) for o in e.offsets] for e in expected]
    # A word that normalises to nothing keeps one [UNK] (as tokenize_words), spanning its end.
    pieces, starts, ends = (t.to_list() for t in ours.tokenize_words_with_offsets(tf.ragged.constant([["\u200b"]])))
    assert (pieces, starts, ends) == ([[[ours.unk_token_id]]], [[[1]]], [[[1]]])


def test_word_starts_and_detokenize(ours):
    ids = ours(tf.constant(["Unaffable grumpiness, naïve!"]))
    tokens = [ours.id_to_token(i) for i in ids.to_list()[0]]
    assert ours.word_starts(ids).to_list()[0] == [not t.startswith("##") for t in tokens]
    assert ours.detokenize(ids).numpy().tolist() == [b"unaffable grumpiness , naive !"]
    padded = tf.pad(ids.to_tensor(), [[0, 0], [0, 3]])
    assert ours.detokenize(padded).numpy().tolist() == [b"unaffable grumpiness , naive !"]


def test_config_round_trip_and_serialization(ours):
    texts = tf.constant(["Round trip, naïve café."])
    clone = WordPieceTokenizer.from_config(ours.get_config())
    assert clone(texts).to_list() == ours(texts).to_list()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(ours))
    assert restored(texts).to_list() == ours(texts).to_list()


def test_fast_bert_normalizer_option(minilm_dir, ours, real_sentences):
    fast = WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"), use_fast_bert_normalizer=True)
    ascii_texts = [t for t in real_sentences if t.isascii()][:500]
    assert our_ids(fast, ascii_texts) == our_ids(ours, ascii_texts)
    assert fast(tf.constant(["…"])).to_list() != ours(tf.constant(["…"])).to_list()  # the documented difference
    with pytest.raises(ValueError, match="strip_accents"):
        WordPieceTokenizer(os.path.join(minilm_dir, "vocab.txt"), strip_accents=False, use_fast_bert_normalizer=True)


def test_vocabulary_without_unk_is_rejected():
    with pytest.raises(ValueError, match=r"\[UNK\]"):
        WordPieceTokenizer(["a", "b"])


def test_save_and_load_vocabulary(tmp_path):
    tokens = RESERVED_TOKENS + ["a", "##b", "ü"]
    save_vocabulary(tokens, tmp_path / "vocab.txt")
    assert load_vocabulary(tmp_path / "vocab.txt") == tokens
    with pytest.raises(ValueError, match="line break"):
        save_vocabulary(["a\nb"], tmp_path / "bad.txt")
    (tmp_path / "gap.txt").write_text("a\n\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="gap.txt:2"):
        load_vocabulary(tmp_path / "gap.txt")


def test_learned_vocabulary_covers_its_text(shared_data):
    sentences = list(read_text(shared_data / "ud_english_ewt" / "train.conllu"))[:2000]
    vocabulary = learn_wordpiece_vocabulary(sentences, 1000)
    assert vocabulary[: len(RESERVED_TOKENS)] == RESERVED_TOKENS
    assert 500 < len(vocabulary) <= 1000 and len(set(vocabulary)) == len(vocabulary)
    tokenizer = WordPieceTokenizer(vocabulary)
    assert tokenizer.mask_token_id == 4
    ids = np.concatenate(our_ids(tokenizer, sentences))
    assert not np.any(ids == tokenizer.unk_token_id)
    assert len(ids) < 0.5 * sum(len(s.replace(" ", "")) for s in sentences)  # real subwords, not characters
    # Unseen words made of seen characters are still covered.
    seen = set("".join(sentences).lower())
    dev = [s for s in read_text(shared_data / "ud_english_ewt" / "dev.conllu") if set(s.lower()) <= seen][:300]
    assert not np.any(np.concatenate(our_ids(tokenizer, dev)) == tokenizer.unk_token_id)


def test_learn_from_dataset_and_reject_empty():
    dataset = tf.data.Dataset.from_tensor_slices(["the cat sat", "the cats sat on the mat"] * 20)
    vocabulary = learn_wordpiece_vocabulary(dataset, 40, reserved_tokens=["[PAD]", "[UNK]"])
    assert vocabulary[:2] == ["[PAD]", "[UNK]"] and "##s" in vocabulary and "t" in vocabulary
    with pytest.raises(ValueError, match="non-blank"):
        learn_wordpiece_vocabulary(["", "  "], 100)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fill_empty_rows_equals_python(seed):
    """The dense (TFLite-convertible) rule that gives a word normalised away its [UNK], against plain Python."""
    from tfpretrain.text.wordpiece import fill_empty_rows

    rng = np.random.default_rng(seed)
    rows = [list(rng.integers(0, 99, size=rng.choice([0, 0, 1, 3]))) for _ in range(rng.integers(0, 12))]
    fill = list(rng.integers(100, 200, size=len(rows)))
    ragged = tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)
    expected = [row or [f] for row, f in zip(rows, fill)]
    assert fill_empty_rows(ragged, tf.constant(fill, tf.int32)).to_list() == expected
