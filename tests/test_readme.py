"""The README's two set-up commands are the ones the project actually runs."""

from __future__ import annotations

import re
from pathlib import Path

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
