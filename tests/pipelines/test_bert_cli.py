"""The BERT commands as a user runs them: pretrain-bert, import-hf, embed, finetune + evaluate, bad input."""

import json

import numpy as np
import pytest

from tests.conftest import cli, run_litert, write_ewt_text, write_slice

pytestmark = pytest.mark.slow  # pretrains and fine-tunes BERT through the CLI


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    """The raw text of the first 3,000 EWT train sentences, one per line (outside the repo)."""
    return write_ewt_text(shared_data, tmp_path_factory.mktemp("bert_corpus") / "ewt.txt", 3000)


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("bert") / "tiny"
    result = cli("pretrain-bert", "--text", corpus, "--out", out, "--preset", "tiny", "--steps", 600,
                 "--steps-per-epoch", 200, "--vocabulary-size", 2000, "--sequence-length", 64,
                 "--learning-rate", 1e-3, "--batch-size", 16)
    return out, last_json(result)


def test_pretrain_bert_learns_and_writes_a_bert_directory(pretrained):
    out, result = pretrained
    assert result["last_epoch_accuracy"] > result["first_epoch_accuracy"] + 0.03, result
    assert result["val_accuracy"] is not None and 0 < result["val_accuracy"] <= 1
    assert 1 < result["val_perplexity"] < 2000  # below uniform over the 2,000-piece vocabulary
    for name in ("encoder.json", "encoder.weights.h5", "vocab.txt", "tokenizer.json", "pretraining.json",
                 "history.csv", "training_curves.png"):
        assert (out / name).exists(), name
    vocabulary = (out / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_pretrain_bert_under_a_mirrored_strategy(corpus, tmp_path):
    result = cli("pretrain-bert", "--text", corpus, "--out", tmp_path / "bert", "--preset", "tiny", "--steps", 6,
                 "--steps-per-epoch", 3, "--vocabulary-size", 1000, "--sequence-length", 32,
                 "--batch-size", 8, "--strategy", "mirrored", "--logical-cpus", 2)
    assert "on 2 replica(s)" in result.stdout + result.stderr
    assert np.isfinite(last_json(result)["val_perplexity"])


def test_finetune_classify_from_the_pretrained_encoder_and_evaluate(pretrained, shared_data, tmp_path):
    train = tmp_path / "train.tsv"
    lines = (shared_data / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[:401]
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "sst2"
    scores = last_json(cli("finetune", "--task", "classify", "--init", pretrained[0], "--train", train,
                           "--dev", shared_data / "sst2" / "dev.tsv", "--out", out, "--epochs", 1,
                           "--sequence-length", 64))
    evaluated = last_json(cli("evaluate", "--model", out, "--data", shared_data / "sst2" / "dev.tsv"))
    assert 0 <= evaluated["accuracy"] <= 1
    assert evaluated["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-6)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, minilm_dir):
    out = tmp_path_factory.mktemp("minilm") / "bert"
    summary = last_json(cli("import-hf", "--from", minilm_dir, "--out", out))
    assert summary["num_layers"] == 6 and summary["hidden_dim"] == 384 and summary["vocabulary_size"] == 30522
    return out


def test_embed_gives_sentence_vectors_that_rank_paraphrases_first(minilm):
    texts = ["A man is playing a guitar.", "Someone plays an instrument.",
             "The stock market fell sharply today."]
    rows = [json.loads(line) for line in cli("embed", "--model", minilm, *texts).stdout.strip().splitlines()]
    assert [row["words"] for row in rows][0] == ["A", "man", "is", "playing", "a", "guitar", "."]
    vectors = np.array([row["sentence_vector"] for row in rows])
    assert vectors.shape == (3, 384)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert all(len(row["word_vectors"]) == len(row["words"]) for row in rows)


def test_embed_concat_last_four_to_npz_and_odd_text(minilm, tmp_path):
    out = tmp_path / "vectors.npz"
    long_text = " ".join(["word"] * 300)
    cli("embed", "--model", minilm, "--combination", "concat_last_four", "--out", out, "", "東京 🙂 ok", long_text)
    arrays = np.load(out)
    assert arrays["sentence_vectors"].shape == (3, 384)
    assert arrays["word_vectors_0"].shape == (0, 1536)  # empty text: no words, still a well-formed answer
    assert arrays["word_vectors_1"].shape[1] == 1536 and np.isfinite(arrays["word_vectors_1"]).all()
    assert arrays["word_vectors_2"].shape == (126, 1536)  # 128 pieces minus [CLS] and [SEP]


def test_bad_input_gives_a_clear_error_not_a_traceback(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    result = cli("pretrain-bert", "--text", empty, "--out", tmp_path / "out", "--steps", 2, check=False)
    assert result.returncode == 2 and "no text found" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}", encoding="utf-8")
    result = cli("import-hf", "--from", tmp_path / "hf", "--out", tmp_path / "imported", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def test_finetune_tag_with_crf_and_evaluate(pretrained, shared_data, tmp_path):

    blocks = (shared_data / "uner_english_ewt" / "dev.iob2").read_text(encoding="utf-8").split("\n\n")
    train, dev = tmp_path / "train.iob2", tmp_path / "dev.iob2"
    train.write_text("\n\n".join(blocks[:200]) + "\n\n", encoding="utf-8")
    write_slice(shared_data / "uner_english_ewt" / "dev.iob2", dev, 60)
    out = tmp_path / "ner"
    scores = last_json(cli("finetune", "--task", "tag", "--crf", "--format", "iob2", "--init", pretrained[0],
                           "--train", train, "--dev", dev, "--out", out, "--epochs", 1, "--sequence-length", 64))
    evaluated = last_json(cli("evaluate", "--model", out, "--data", dev, "--format", "iob2"))
    assert evaluated["f1"] == pytest.approx(scores["f1"], abs=1e-6)
    assert evaluated["accuracy"] == pytest.approx(scores["accuracy"], abs=1e-6)
    assert evaluated["sentences"] == 60 and evaluated["num_words_truncated"] >= 0
    assert json.loads((out / "task.json").read_text())["crf"] is True
    # On a phone: the .tflite file, run where only ai_edge_litert and tensorflow_text are imported, tags as
    # `predict` on the model directory does.
    texts = [" ".join(line.split()[0] for line in block.splitlines() if line and not line.startswith("#"))
             for block in blocks[200:260]] + ["", "Ines flew to Porto ."]
    cli("export", "--model", out, "--tflite", tmp_path / "ner.tflite")
    on_device = run_litert(tmp_path / "ner.tflite", [{"text": text} for text in texts], tmp_path)
    predicted = [json.loads(line) for line in cli("predict", "--model", out, input="\n".join(texts) + "\n")
                 .stdout.splitlines()]
    assert len(predicted) == len(texts)
    for answer, expected in zip(on_device, predicted):
        assert answer["words"][:answer["lengths"]] == expected["words"]
        assert answer["tags"][:answer["lengths"]] == expected["tags"]
    result = cli("finetune", "--task", "qa", "--format", "iob2", "--init", pretrained[0], "--train", train,
                 "--dev", dev, "--out", tmp_path / "qa", check=False)
    assert result.returncode == 2 and "not for --task qa" in result.stderr
