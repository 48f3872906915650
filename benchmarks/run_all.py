"""Runs every benchmark in turn (``make bench``); each prints its own table and ratios."""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
BENCHMARKS = [
    "crf_benchmark.py", "tagger_benchmark.py",  # CRF and the ELMo-style tagger
    "feature_tagger.py",  # the tagger on a frozen MiniLM's layers against flair
    "wordpiece_benchmark.py", "input_pipeline_benchmark.py",  # tf.data text pipelines
    "bert_mlm_benchmark.py", "bert_finetune_benchmark.py",  # BERT
    "hf_finetune_peer.py", "finetune_recipe_benchmark.py",  # fine-tuning against Hugging Face; ULMFiT's recipe
    "gpt_benchmark.py", "awd_lstm_benchmark.py", "ulmfit_benchmark.py",  # GPT and ULMFiT
    "export_benchmark.py",  # deployment: SavedModel vs TFLite float / int8
    "static_shapes_benchmark.py",  # XLA: dynamic against static batch shapes
]

if __name__ == "__main__":
    failed = [name for name in BENCHMARKS if subprocess.call([sys.executable, str(HERE / name)]) != 0]
    sys.exit(1 if failed else 0)
