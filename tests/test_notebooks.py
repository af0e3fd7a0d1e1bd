"""The notebooks run top to bottom (small sizes set through the environment), draw their figures, assert
what they teach, and are stored without outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart.ipynb", "02_train_new_domain.ipynb", "03_ab_compare.ipynb"]
SMALL = {"CROPPER_NB_ITEMS": "4", "CROPPER_NB_PANELS": "48", "CROPPER_NB_EPOCHS": "6", "CROPPER_NB_GRPO_STEPS": "1"}
PLOTTING = ("plt.show()", "display(Image(")


def test_all_notebooks_are_listed_and_stored_without_outputs():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    for name in NAMES:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs are committed"


def test_readme_links_every_notebook():
    readme = (NOTEBOOKS.parent / "README.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"notebooks/{name}" in readme


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_and_draws_its_figures(name, tmp_path, monkeypatch):
    for key, value in SMALL.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the hosted-model cells stay off in tests
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("VLLM_URL", raising=False)
    shutil.copy(NOTEBOOKS / name, tmp_path / name)
    notebook = nbformat.read(tmp_path / name, as_version=4)
    # A failing cell (the last cells assert the result the notebook teaches) raises CellExecutionError.
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    plotting = [c for c in notebook.cells if c.cell_type == "code" and any(p in c.source for p in PLOTTING)]
    assert plotting, f"{name} draws no figure"
    for cell in plotting:
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"{name}: a plotting cell produced no image:\n{cell.source[:200]}"
