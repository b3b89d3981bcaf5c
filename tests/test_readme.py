"""The README's two set-up commands are the ones the project actually runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _bash_blocks((ROOT / "README.md").read_text())[1]
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_first_readme_command_opens_the_quickstart() -> None:
    first = _bash_blocks((ROOT / "README.md").read_text())[0]
    assert first.startswith("pip install")
    assert "jupyter lab examples/quickstart.ipynb" in first
    assert (ROOT / "examples" / "quickstart.ipynb").is_file()


# -- every snippet runs as pasted, in a fresh kernel / interpreter, outside the repo (issue #13) --
def _fences(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(lang, body) for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S)]


def _python_blocks() -> list[str]:
    return [body for lang, body in _fences((ROOT / "README.md").read_text()) if lang == "python"]


def _kernel_env(tmp_path: Path, chat_url: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "JUPYTER_RUNS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["JUPYTER_RUNS_STORE"] = str(tmp_path / "threads.sqlite3")
    # The tour's openai: model, answered by the fake Chat Completions server on 127.0.0.1.
    env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"] = chat_url, "sk-readme-test"
    return env


def test_every_readme_python_block_is_tested_here() -> None:
    blocks = _python_blocks()
    assert len(blocks) == 4, "a new python block in the README needs running below"
    assert blocks[0].lstrip().startswith("%load_ext jupyter_runs")  # the tour
    assert "pd.DataFrame(" in blocks[1]  # --context, run after the tour
    assert blocks[2].startswith("%config RunAssistantMagics.prices")  # run after the tour too
    assert "jr.Client(" in blocks[3] and "%" not in blocks[3].split("\n", 1)[0]  # without the magic


def test_the_tour_runs_as_pasted_in_a_fresh_kernel(tmp_path: Path, chat_server: Any) -> None:
    import nbformat
    from nbclient import NotebookClient

    fences = _fences((ROOT / "README.md").read_text())
    tour = next(i for i, (lang, body) in enumerate(fences) if lang == "python" and "%load_ext" in body)
    magic_lang, magic_cell = fences[tour + 1]
    assert magic_lang == "" and magic_cell.startswith("%%run_assistant")
    nb = nbformat.v4.new_notebook()
    context = next(i for i, (lang, body) in enumerate(fences) if lang == "python" and "pd.DataFrame(" in body)
    context_lang, context_cell = fences[context + 1]
    assert context_lang == "" and context_cell.startswith("%%run_assistant --context df")
    prices = next(body for lang, body in fences if lang == "python" and "RunAssistantMagics.prices" in body)
    nb.cells = [nbformat.v4.new_code_cell(fences[tour][1]), nbformat.v4.new_code_cell(magic_cell),
                nbformat.v4.new_code_cell("import jupyter_runs as jr\nawait jr.wait_all()"),
                nbformat.v4.new_code_cell(fences[context][1]), nbformat.v4.new_code_cell(prices),
                nbformat.v4.new_code_cell(context_cell),
                nbformat.v4.new_code_cell("import jupyter_runs as jr\nawait jr.wait_all()")]
    import os

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_kernel_env(tmp_path, chat_server.base_url))
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    shown = "\n".join(o.get("data", {}).get("text/markdown", "") for c in nb.cells for o in c.get("outputs", []))
    assert "Hello from the fake model." in shown and "Run completed" in shown
    assert len(chat_server.requests) == 2
    # The --context cell sent the DataFrame's description, missing values and all.
    sent = json.dumps(chat_server.requests[1].body["messages"])
    assert "revenue" in sent and "north" in sent


def test_without_the_magic_runs_as_pasted_in_a_fresh_interpreter_outside_the_repo(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    snippet = _python_blocks()[3]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "JUPYTER_RUNS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "data")  # jr.Client() would keep its store here
    done = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, _, streamed = done.stdout.partition("\n")
    assert first.startswith("completed") and "North grew fastest" in first
    assert streamed.strip() == "North grew fastest: +12% against +4% for south."
    assert "unknown tool" not in done.stdout


def test_readme_names_the_prerequisites_and_the_root_flag_before_the_first_command() -> None:
    text = (ROOT / "README.md").read_text()
    before = text[: text.index("```bash")]
    assert "npm" in before and "Node.js" in before and "Python 3.10" in before
    after_first = text[text.index("```bash"):]
    assert "--allow-root" in after_first[: after_first.index("**Test it**")]


def test_readme_documents_keys_scripted_paths_and_the_seed() -> None:
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "JUPYTER_RUNS_API_KEY" in text
    assert "scripted:demo.json" not in text
    assert "working directory" in text and "absolute paths" in text
    seed = text.index("seed")
    assert "openaiapi" in text[max(0, seed - 300): seed + 300]  # explained where it first appears
    # What survives a restart: the default thread too, not only -t NAME.
    assert "after a kernel restart" in text and "continues the same conversation" in text


def test_the_try_it_install_covers_every_example_import() -> None:
    """``pip install -e ".[lab]"`` must bring every module the example notebooks import."""
    import ast
    import importlib.metadata as md
    import sys

    import nbformat
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["lab"]]
    installed: set[str] = set()
    todo = [r.name for r in wanted]
    while todo:  # the install's closure, from the installed distributions' own metadata
        name = todo.pop().lower().replace("_", "-")
        if name in installed:
            continue
        installed.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [Requirement(r).name for r in requires if "extra ==" not in r]
    providers = md.packages_distributions()
    for path in sorted((ROOT / "examples").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith("%"))
            if cell.source.lstrip().startswith("%%"):
                continue
            for node in ast.walk(ast.parse(code)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                for module in (n.split(".")[0] for n in names):
                    if module in sys.stdlib_module_names or module == "jupyter_runs":
                        continue
                    dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
                    assert dists & installed, f"{path.name} imports {module}, which the lab extra does not install"
