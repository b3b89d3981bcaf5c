"""What a run leaves in a notebook executed headless: nbclient, ``jupyter nbconvert --execute`` and
papermill in real kernels. Each ``%%run_assistant`` cell's run ends before the next cell starts,
the saved output is the static view (no widget mimetype, no widget state, no JS bundle), and its
size is the transcript plus a bounded overhead."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

TOOLS = '''
def load_sales(region: str) -> list:
    """This quarter's sales rows for a region."""
    print(f"loading {region} sales")
    return [{"region": region, "q1": 100, "q2": 112 if region == "north" else 104}]
'''


@pytest.fixture(autouse=True)
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_RUNS_STORE", str(tmp_path / "threads.sqlite3"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JUPYTER_RUNS_MODEL", raising=False)


def script(tmp_path: Path, name: str, turns: list[dict[str, Any]], delay: float = 0.01) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"delay": delay, "turns": turns}))
    return path.name


def three_runs(tmp_path: Path) -> nbformat.NotebookNode:
    """Setup, then three runs; the third's tool calls take a while, so a background run would lose."""
    cells = ["%load_ext jupyter_runs", TOOLS]
    for i in range(3):
        turns: list[dict[str, Any]] = [{"text": f"Reply number {i}: **done**."}]
        if i == 2:
            turns = [{"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}}]}] + turns
        tools = " --tools load_sales" if i == 2 else ""
        cells.append(f"%%run_assistant -m scripted:{script(tmp_path, f's{i}', turns, delay=0.05)}{tools}\n"
                     f"Question number {i}?")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def run_outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """The data of every run's output, in cell order."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            html = (out.get("data") or {}).get("text/html", "")
            if "class='jr-run" in html:
                found.append(dict(out["data"]))
    return found


def assert_three_completed(nb: nbformat.NotebookNode) -> None:
    outs = run_outputs(nb)
    assert len(outs) == 3
    for i, data in enumerate(outs):
        assert WIDGET_VIEW not in data
        assert set(data) == {"text/html", "text/markdown", "text/plain"}
        assert "data-status='completed'" in data["text/html"]
        assert f"Reply number {i}: <strong>done</strong>." in data["text/html"]
        assert f"Question number {i}?" in data["text/html"]
        assert f"Reply number {i}" in data["text/plain"]
    assert "data-name='load_sales'" in outs[2]["text/html"]
    assert "loading north sales" in outs[2]["text/html"]
    assert "widgets" not in nb.metadata  # no widget state of ours (nor anyone's) was saved


def bundle_chunks() -> list[str]:
    """Distinctive pieces of the front-end bundle and its CSS: none may appear in a saved notebook."""
    static = REPO / "jupyter_runs" / "static"
    chunks = []
    for name in ("widget.js", "widget.css"):
        text = (static / name).read_text()
        assert len(text) > 2000, f"build the front end first: {name}"
        chunks += [text[i:i + 120] for i in range(0, len(text) - 120, max(len(text) // 8, 1))]
    return chunks


def test_nbclient_saves_three_completed_runs_in_order_with_no_wait_cell(tmp_path: Path) -> None:
    nb = three_runs(tmp_path)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert_three_completed(nb)


def test_nbconvert_execute_saves_three_completed_runs(tmp_path: Path) -> None:
    path = tmp_path / "three.ipynb"
    nbformat.write(three_runs(tmp_path), path)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    str(path)], check=True, capture_output=True, cwd=tmp_path, timeout=180)
    assert_three_completed(nbformat.read(path, as_version=4))


def test_papermill_saves_three_completed_runs(tmp_path: Path) -> None:
    path, out = tmp_path / "three.ipynb", tmp_path / "three.out.ipynb"
    nbformat.write(three_runs(tmp_path), path)
    subprocess.run([sys.executable, "-m", "papermill", str(path), str(out), "--cwd", str(tmp_path)],
                   check=True, capture_output=True, cwd=tmp_path, timeout=180)
    assert_three_completed(nbformat.read(out, as_version=4))


def test_background_option_still_returns_at_once_headless(tmp_path: Path) -> None:
    """The override: --background keeps the old behaviour (a later wait_all cell joins the run)."""
    nb = nbformat.v4.new_notebook()
    name = script(tmp_path, "slow", [{"text": " ".join(["word"] * 60)}], delay=0.05)
    nb.cells = [nbformat.v4.new_code_cell(c) for c in (
        "%load_ext jupyter_runs",
        f"%%run_assistant --background -m scripted:{name}\nTalk.",
        "import jupyter_runs.magic as m\nm.RunAssistantMagics  # the run is still going here\n"
        "print('running' if get_ipython().magics_manager.registry['RunAssistantMagics']._tasks else 'done')",
    )]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[2].outputs[-1]["text"].strip() == "running"
    (data,) = [o["data"] for o in nb.cells[1].outputs if o.get("output_type") == "display_data"]
    assert "data-status='completed'" not in data["text/html"]


def transcript_bytes(prompt: str, reply: str, tool_texts: list[str]) -> int:
    """The run's content as the saved output holds it: prompt and tool texts, and the reply as
    rendered HTML (``**x**`` is ``<strong>x</strong>`` there: markup that grows with the text is
    content, the fixed cost per run is what the 8 KB bounds)."""
    from jupyter_runs.static_view import render_markdown

    return len((prompt + render_markdown(reply) + "".join(tool_texts)).encode())


def test_twenty_runs_cost_their_transcripts_plus_at_most_8_kb_each_and_no_bundle(tmp_path: Path) -> None:
    cells = ["%load_ext jupyter_runs", TOOLS]
    transcripts, sources_ = [], []
    for i in range(20):
        # Markdown as models write it (emphasis, a table, code, a comparison), 0.3 to 12 KB.
        reply = (f"Run {i}. " + "North grew **fastest** this quarter, ahead of south (4% < 12%). " * (5 + 60 * (i % 4))
                 + "\n\n| region | q2 |\n|---|---|\n| north | 112 |\n\n```python\nprint(rows[0])\n```\n")
        turns: list[dict[str, Any]] = [{"text": reply}]
        tool_texts: list[str] = []
        if i % 2:
            turns.insert(0, {"tool_calls": [{"name": "load_sales", "arguments": {"region": "north"}}]})
            tool_texts = ['{"region": "north"}', "loading north sales\n",
                          json.dumps([{"region": "north", "q1": 100, "q2": 112}])]
        prompt = f"Question {i}: which region grew fastest?"
        tools = " --tools load_sales" if i % 2 else ""
        cells.append(f"%%run_assistant -m scripted:{script(tmp_path, f'r{i}', turns, delay=0)}{tools}\n{prompt}")
        transcripts.append(transcript_bytes(prompt, reply, tool_texts))
        sources_.append(len((prompt + reply + "".join(tool_texts)).encode()))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    before = len(nbformat.writes(nb).encode())
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    saved = nbformat.writes(nb)
    after = len(saved.encode())

    outs = run_outputs(nb)
    assert len(outs) == 20
    for i, cell in enumerate(nb.cells[2:]):
        cost = len(json.dumps(cell.outputs, ensure_ascii=False, indent=1).encode())
        assert cost <= transcripts[i] + 8 * 1024, (i, cost, transcripts[i])
    growth = after - before
    assert growth <= sum(transcripts) + 20 * 8 * 1024, (growth, sum(transcripts))
    for chunk in bundle_chunks():
        assert chunk not in saved
    assert "_esm" not in saved and "anywidget" not in saved
    sources = sum(sources_)
    print(f"20 runs: notebook grew {growth:,} bytes for {sum(transcripts):,} transcript bytes "
          f"({(growth - sum(transcripts)) / 20:,.0f} bytes overhead per run; "
          f"{(growth - sources) / 20:,.0f} per run over the markdown source's {sources:,} bytes)")
