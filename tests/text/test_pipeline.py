"""In-graph tokenisation and id mapping against a pure-Python reference on real sentences."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tokenizers import normalizers, pre_tokenizers

from tests.harness import run_preprocessing_test
from tfpretrain.models.bilm import language_model_dataset
from tfpretrain.models.tagger import TaggingPreprocessor, keys_of, tagging_dataset
from tfpretrain.text import build_vocabulary, char_ids, text_lines, tokenize, tokenize_with_offsets
from tfpretrain.text.readers import read_conllu, read_iob2


def reference_tokenize(text):
    """Hugging Face tokenizers' BERT pre-tokenisation (CJK split by its normaliser), text otherwise unchanged."""
    normalizer = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=True, strip_accents=False,
                                            lowercase=False)
    return [word for word, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(normalizer.normalize_str(text))]


def reference_key(word):
    """Hugging Face's BERT lower-casing: lower, NFD, non-spacing marks removed."""
    return normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                      lowercase=True).normalize_str(word)


def reference_char_ids(token, max_chars):
    data = token.encode("utf-8")[: max_chars - 2]
    ids = [257] + [b + 1 for b in data] + [258] if token else []
    return ids + [0] * (max_chars - len(ids))


@pytest.fixture(scope="module")
def ewt_texts(shared_data):
    return [s.text for s in read_conllu(shared_data / "ud_english_ewt" / "dev.conllu")[:400]]


def test_tokenize_matches_reference_on_real_text(ewt_texts):
    ours = tokenize(tf.constant(ewt_texts)).to_list()
    for text, tokens in zip(ewt_texts, ours):
        assert [t.decode("utf-8") for t in tokens] == reference_tokenize(text), text


def test_tokenize_odd_input():
    texts = ["", "   \t ", "a\x00b\x07c", "Tokyo 東京 🙂 done", "naïve café", "x\u00a0y", "مرحبا بالعالم",
             "£5 ok🙂 (yes) — «quoted» ¿qué?", "a\u2028b\u3000c"]
    for text, tokens in zip(texts, tokenize(tf.constant(texts)).to_list()):
        assert [t.decode("utf-8") for t in tokens] == reference_tokenize(text), repr(text)
    invalid = tokenize(tf.constant([b"ab\xffcd ok"])).to_list()[0]
    assert invalid == [b"ab\xffcd", b"ok"]  # invalid bytes stay inside their word


def test_offsets_cut_the_words_out_of_the_text(ewt_texts):
    texts = ewt_texts[:100] + ["Tokyo 東京 🙂 done", "", "  a  "]
    words, starts, ends = tokenize_with_offsets(tf.constant(texts))
    for text, row, row_starts, row_ends in zip(texts, words.to_list(), starts.to_list(), ends.to_list()):
        data = text.encode("utf-8")
        assert [data[s:e] for s, e in zip(row_starts, row_ends)] == row


def test_char_ids_match_reference(ewt_texts):
    tokens = [reference_tokenize(t) for t in ewt_texts[:50]]
    width = max(map(len, tokens))
    padded = [t + [""] * (width - len(t)) for t in tokens]
    ours = char_ids(tf.constant(padded), max_chars=12).numpy()
    expected = np.array([[reference_char_ids(tok, 12) for tok in row] for row in padded])
    np.testing.assert_array_equal(ours, expected)


def test_preprocessor_matches_reference_and_round_trips(shared_data):
    sentences = read_iob2(shared_data / "uner_english_ewt" / "dev.iob2")[:200]
    words = build_vocabulary(([reference_key(t) for t in s.tokens] for s in sentences), min_count=2)
    assert words == build_vocabulary([keys_of(s.tokens for s in sentences)], min_count=2)
    tags = sorted({t for s in sentences for t in s.tags})
    pre = TaggingPreprocessor(words, tags, max_chars_per_token=20)
    index = {w: i + 2 for i, w in enumerate(words)}
    batch = sentences[:32]
    width = max(len(s.tokens) for s in batch)
    tokens = tf.constant([list(s.tokens) + [""] * (width - len(s.tokens)) for s in batch])
    features = pre(tokens)
    expected_words = [[index.get(reference_key(t), 1) if t else 0 for t in row] for row in tokens.numpy().astype(str)]
    np.testing.assert_array_equal(features["word_ids"], expected_words)
    tag_ids = pre.tag_ids(tf.ragged.constant([list(s.tags) for s in batch])).numpy()
    for row, s in zip(tag_ids, batch):
        assert [tags[i] for i in row[: len(s.tags)]] == list(s.tags)
        assert (row[len(s.tags):] == -1).all()
    revived = TaggingPreprocessor.from_config(pre.get_config())
    np.testing.assert_array_equal(revived(tokens)["word_ids"], features["word_ids"])


def test_direct_mapped_and_batched_agree():
    pre = TaggingPreprocessor(["the", "cat"], ["O", "X"])
    texts = ["The cat sat .", "cat", "A much longer sentence about the cat"]
    def batch_ids(batch):
        return pre(tokenize(batch))["word_ids"]

    def one_ids(text):
        return pre(tokenize(text[None]))["word_ids"][0]

    run_preprocessing_test(batch_ids, texts, example_fn=one_ids, track=[pre])


def test_tagging_dataset_covers_every_sentence_once(shared_data):
    sentences = read_conllu(shared_data / "ud_english_ewt" / "dev.conllu")[:300]
    tags = sorted({t for s in sentences for t in s.tags})
    words = build_vocabulary([t.lower() for t in s.tokens] for s in sentences)
    pre = TaggingPreprocessor(words, tags)
    seen_tokens, seen_sentences = 0, 0
    for features, tag_ids in tagging_dataset(sentences, pre, batch_size=16, shuffle=True, seed=1):
        valid = features["word_ids"].numpy() != 0
        assert ((tag_ids.numpy() >= 0) == valid).all()
        assert features["char_ids"].shape[:2] == features["word_ids"].shape
        seen_tokens += valid.sum()
        seen_sentences += valid.shape[0]
    assert seen_sentences == len(sentences)
    assert seen_tokens == sum(len(s.tokens) for s in sentences)


def test_language_model_targets(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat\n\nthe dog\n", encoding="utf-8")
    vocabulary = ["<S>", "</S>", "the", "cat", "sat", "dog"]
    lookup = keras.layers.StringLookup(vocabulary=vocabulary, mask_token="", oov_token="[UNK]")
    batches = list(language_model_dataset([str(corpus)], lookup, batch_size=4, shuffle_buffer=0))
    assert len(batches) == 1
    _, targets = batches[0]
    ids = {w: i + 2 for i, w in enumerate(vocabulary)}
    np.testing.assert_array_equal(
        targets["next_ids"], [[ids["cat"], ids["sat"], ids["</S>"]], [ids["dog"], ids["</S>"], -1]]
    )
    np.testing.assert_array_equal(
        targets["previous_ids"], [[ids["<S>"], ids["the"], ids["cat"]], [ids["<S>"], ids["the"], -1]]
    )


def test_text_lines_reads_conllu_text(shared_data):
    path = shared_data / "ud_english_ewt" / "dev.conllu"
    lines = [l.decode("utf-8") for l in text_lines([str(path)]).as_numpy_iterator()]
    expected = [s.text for s in read_conllu(path)]
    assert lines == [t.strip() for t in expected if t.strip()]
