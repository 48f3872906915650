"""Every colab/*.ipynb runs top to bottom with its small settings (nbclient), and is stored without outputs.

Each notebook executes in a fresh kernel running this interpreter, in a temporary working directory
(so it writes nothing into the repository). By default on the package's embedded data, as in Colab
(a new user's first run; on the real corpora the small settings are too small to learn UNER: entity
F1 0.0 measured). ``TFPRETRAIN_NOTEBOOKS_DATA=real`` runs them on the real corpora of conftest.py
instead (about the same time). ``TFPRETRAIN_NOTEBOOK_OUTPUTS=DIR`` keeps the executed notebooks.
"""

import json
import os
import sys
import time

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the `test` extra (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the `test` extra (pip install -e '.[test]')")

NOTEBOOKS = sorted((REPO_ROOT / "colab").glob("*.ipynb"))
TIMEOUT_PER_CELL = 600  # seconds; the small settings of a whole notebook take about 1-2 minutes on 2 cores


def _kernel_spec_dir(tmp_path):
    """A kernelspec "python3" that starts ipykernel with this interpreter (the venv's), whatever Jupyter finds."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (tfpretrain tests)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return tmp_path / "jupyter"


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert {"tagging.ipynb", "bert.ipynb", "ulmfit.ipynb", "gpt.ipynb", "export.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_stored_without_outputs_and_opens_with_install_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} cell {index} has outputs"
    first, second = notebook.cells[0], notebook.cells[1]
    assert first.cell_type == "code" and 'IN_COLAB = "google.colab" in sys.modules' in first.source
    assert "TFPRETRAIN_SOURCE" in first.source and "%pip install" in first.source
    assert second.cell_type == "markdown" and second.source.startswith("# ")
    assert any(cell.cell_type == "code" and "FULL_SIZE = False" in cell.source for cell in notebook.cells[2:4])


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("JUPYTER_PATH", str(_kernel_spec_dir(tmp_path)))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "jupyter_runtime"))  # connection files
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile or startup scripts
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("TFPRETRAIN_NOTEBOOKS_DATA") == "real":
        if not SHARED_DATA.is_dir():
            pytest.skip(f"TFPRETRAIN_NOTEBOOKS_DATA=real but the real corpora are not at {SHARED_DATA}")
        monkeypatch.setenv("TFPRETRAIN_SHARED_DATA", str(SHARED_DATA))
    else:  # no corpora at this path: the notebooks use the embedded default data, as in Colab
        monkeypatch.setenv("TFPRETRAIN_SHARED_DATA", str(tmp_path / "no_shared_data"))
    client = nbclient.NotebookClient(notebook, timeout=TIMEOUT_PER_CELL, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    seconds = time.perf_counter() - started
    print(f"{path.name}: {seconds:.1f} s")
    if os.environ.get("TFPRETRAIN_NOTEBOOK_OUTPUTS"):  # to read the executed notebooks (never in colab/)
        nbformat.write(notebook, os.path.join(os.environ["TFPRETRAIN_NOTEBOOK_OUTPUTS"], path.name))
    errors = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
              if output.output_type == "error"]
    assert not errors
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    images = sum("image/png" in output.get("data", {}) for cell in code_cells for output in cell.outputs)
    shows = sum(cell.source.count("plt.show()") for cell in code_cells)
    # Every figure shows inline (training code must not switch matplotlib's backend away from inline).
    assert shows >= 1 and images == shows, f"{path.name}: {images} images for {shows} plt.show() calls"
    assert not (REPO_ROOT / "colab" / "runs").exists() and not list(REPO_ROOT.glob("runs/notebook_*"))
