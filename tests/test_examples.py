"""Every example notebook executes headless (nbclient, a real kernel) and shows what it promises."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
REPO = EXAMPLES.parent


@pytest.fixture(autouse=True)
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels inherit this: a store of the test's own, and no real model configured."""
    monkeypatch.setenv("JUPYTER_RUNS_STORE", str(tmp_path / "threads.sqlite3"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JUPYTER_RUNS_MODEL", raising=False)


def execute(name: str, tmp_path: Path, extra: str | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(EXAMPLES / name, as_version=4)
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    return nb


def outputs(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "jr-run" in data.get("text/html", ""):  # a run's static view: its text as the reader sees it
                parts.append(data["text/plain"] + "\n" + data["text/html"])
                continue
            parts.append(data.get("text/markdown") or data.get("text/plain") or out.get("text", ""))
    return "\n".join(parts)


def test_quickstart_runs_offline_and_saves_the_finished_conversation(tmp_path: Path) -> None:
    nb = execute("quickstart.ipynb", tmp_path)  # no wait_all cell: a headless run ends before its cell returns
    text = outputs(nb)
    assert "Fastest growth: **North**" in text
    assert "load_sales" in text and "percent_change" in text
    assert "Run completed" in text


def test_data_analysis_shows_the_table_and_the_plot(tmp_path: Path) -> None:
    text = outputs(execute("data_analysis.ipynb", tmp_path))
    assert "Widgets" in text and "top_products" in text and "plot_monthly" in text
    assert "[figure 500x250 shown to the user]" in text  # what the model was told of the plot
    assert "Run completed" in text


def test_seed_api_notebook(tmp_path: Path) -> None:
    text = outputs(execute("seed_api.ipynb", tmp_path))
    assert "completed" in text and "18 °C and sunny" in text
    assert "tool_calls completed" in text and "message_creation completed" in text


@pytest.mark.timeout(180)
def test_remote_server_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As in Jupyter: the kernel forwards what its subprocesses write to fd 1/2 (ipykernel turns
    # that off under pytest), unbuffered, so a server log line would land in the cell's outputs.
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    text = outputs(execute("remote_server.ipynb", tmp_path))
    assert "completed | It is **18 °C and sunny**" in text
    assert "HTTP/1.1" not in text and "POST /v1" not in text  # no server access log in the notebook
