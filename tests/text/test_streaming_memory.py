"""Masked-LM and GPT data stream their files: peak memory does not grow with the corpus.

A fresh process (peak RSS, ``VmHWM``, only ever rises) streams a 2 MiB file
through `masked_lm_dataset` and `causal_lm_dataset` once, another a 20 MiB file
of the same lines. A pipeline that held the corpus (a ``list`` of its lines, a
``cache()``, a shuffle buffer over every sequence) adds at least the 18 MiB of
extra text to the peak (reading the lines into a list measured +42 MiB);
streaming measured +0.5 MiB.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
LINE = b"the cat sat on the mat , the dog ran far away home .\n"
STREAM_ONCE = textwrap.dedent("""
    import json, sys
    from tfpretrain.models.bert import masked_lm_dataset
    from tfpretrain.models.gpt import causal_lm_dataset
    from tfpretrain.text import MaskedLMMasker, WordPieceTokenizer
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "the", "cat", "sat", "on", "mat", "dog",
                  "ran", "far", "away", "home"]
    tokenizer = WordPieceTokenizer(vocabulary)
    masker = MaskedLMMasker(tokenizer.vocabulary_size(), tokenizer.mask_token_id, [0, 2, 3], max_selections=20)
    datasets = {
        "bert": masked_lm_dataset([sys.argv[1]], tokenizer, masker, sequence_length=128, batch_size=64, repeat=False),
        "gpt": causal_lm_dataset([sys.argv[1]], tokenizer, sequence_length=128, batch_size=64, repeat=False),
    }
    batches = {name: sum(1 for _ in dataset) for name, dataset in datasets.items()}
    peak = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
    print(json.dumps({"batches": batches, "peak_mib": int(peak) / 1024}))
""")


def stream_once(path):
    """Batches and peak RSS (MiB) of a fresh process that streams ``path`` once through each pipeline."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-c", STREAM_ONCE, str(path)], capture_output=True, text=True,
                          env=env, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="peak RSS is read from Linux's /proc/self/status")
def test_peak_memory_stays_flat_when_the_corpus_grows_tenfold(tmp_path):
    sizes = {"small": 2 * 2**20, "large": 20 * 2**20}
    runs = {}
    for name, size in sizes.items():
        path = tmp_path / f"{name}.txt"
        path.write_bytes(LINE * (size // len(LINE)))
        runs[name] = stream_once(path)
    for kind in ("bert", "gpt"):  # the whole of the larger file went through
        assert runs["large"]["batches"][kind] >= 9 * runs["small"]["batches"][kind] > 0
    extra_text_mib = (sizes["large"] - sizes["small"]) / 2**20
    assert runs["large"]["peak_mib"] - runs["small"]["peak_mib"] < 0.25 * extra_text_mib, runs
