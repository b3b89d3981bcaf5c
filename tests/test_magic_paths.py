"""The magic's side paths (issue #13): quoting, the one-line form, ``%runs`` help, secrets in
``%config``, settings that change after the first run, and the per-notebook identity.

In-process IPython (``globalipapp``), as in ``test_magic.py`` whose fixtures these reuse.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import jupyter_runs as jr
from jupyter_runs._notebook import notebook_identity
from jupyter_runs.magic import RunAssistantMagics, split_line
from tests import test_magic
from tests.fakes.chat_server import FakeChatServer, text_reply
from tests.test_magic import cell, magics, shown, store_client

# test_magic's fixtures (a module-scoped shell and the extension loaded on it), shared here.
shell, ip = test_magic.shell, test_magic.ip

PARSER = RunAssistantMagics.run_assistant.parser


def thread_name(client: jr.Client, thread_id: str) -> str:
    return client.threads.retrieve(thread_id).metadata["jupyter_runs_name"]


# -- 6: quotes ------------------------------------------------------------------------------------
def test_quoted_option_values_reach_the_run_without_their_quotes(ip: Any, script: Callable[..., str]) -> None:
    run = cell(ip, f'-m {script([{"text": "ok"}])} -i "Answer in French." -t "my project"', "hi")
    client = store_client(ip)
    assert client.assistants.retrieve(run.assistant_id).instructions == "Answer in French."
    assert thread_name(client, run.thread_id) == "my project"


def test_an_unclosed_quote_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="closing quotation"):
        ip.run_cell_magic("run_assistant", '-i "never closed', "hi")


# -- 7: the one-line form -----------------------------------------------------------------------
def test_line_form_reads_every_option_before_the_message(ip: Any, script: Callable[..., str]) -> None:
    model = script([{"text": "brief"}])
    ip.run_line_magic("run_assistant", f'-m {model} -i "Be brief" -t q3 -o a3 hello')
    run = ip.user_ns.pop("a3")
    client = store_client(ip)
    assert thread_name(client, run.thread_id) == "q3"
    assert client.assistants.retrieve(run.assistant_id).instructions == "Be brief"
    texts = [m.text for m in client.messages.list(run.thread_id, order="asc")]
    assert texts == ["hello", "brief"]


def test_line_form_approve_takes_one_comma_separated_word(ip: Any, script: Callable[..., str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ip.run_cell('def f(x: int) -> int:\n    """Echo."""\n    return x')
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt="": asked.append(prompt) or "y")
    turns = [{"tool_calls": [{"name": "f", "arguments": {"x": 1}}]}, {"text": "done"}]
    ip.run_line_magic("run_assistant", f"-m {script(turns)} --tools f --approve f -t l1 -o l1 hello there")
    run = ip.user_ns.pop("l1")
    texts = [m.text for m in store_client(ip).messages.list(run.thread_id, order="asc")]
    assert texts == ["hello there", "done"]
    assert len(asked) == 1 and "f(x=1)" in asked[0]
    assert thread_name(store_client(ip), run.thread_id) == "l1"


def test_split_line_stops_at_double_dash_or_the_first_plain_word() -> None:
    assert split_line('--approve f,g -t "a b" -- -5 degrees?', PARSER) == (
        ["--approve", "f,g", "-t", "a b"], "-5 degrees?")
    assert split_line("--approve -- all of them", PARSER) == (["--approve"], "all of them")
    assert split_line("--temperature -0.5 --wait What's 'up'", PARSER) == (
        ["--temperature", "-0.5", "--wait"], "What's 'up'")


# -- 8: %runs help, %runs show, %%run_assistant? ------------------------------------------------
@pytest.mark.parametrize("line", ["", "help"])
def test_runs_without_a_command_or_help_prints_usage(ip: Any, line: str) -> None:
    with capture_output() as out:
        ip.run_line_magic("runs", line)
    for command in ("%runs threads", "%runs show", "%runs config", "%runs help"):
        assert command in out.stdout


def test_runs_show_without_a_thread_shows_the_default_thread(ip: Any, script: Callable[..., str]) -> None:
    cell(ip, f"-m {script([{'text': 'the default answer'}])}", "default question")
    with capture_output() as out:
        ip.run_line_magic("runs", "show")
    assert "default question" in shown(out) and "the default answer" in shown(out)


def test_help_documents_every_option_and_the_line_form(ip: Any) -> None:
    with capture_output() as out:
        ip.run_cell("%%run_assistant?")
    text = out.stdout
    for action in PARSER._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert option in text, option
    assert "``--``" in text and "verbatim" in text and "waits for it" in text


# -- 9: secrets in %config --------------------------------------------------------------------
def test_percent_config_masks_the_api_key(ip: Any) -> None:
    secret = "server-secret-key-987654"
    ip.run_line_magic("config", f'RunAssistantMagics.api_key = "{secret}"')
    with capture_output() as out:
        ip.run_line_magic("config", "RunAssistantMagics")
        shown_value = ip.run_cell("%config RunAssistantMagics.api_key").result
    assert "api_key" in out.stdout and "****7654" in out.stdout
    assert secret not in out.stdout and secret not in repr(shown_value)
    assert magics(ip).api_key == secret  # still the key where it is used


# -- 10: settings changed after the first run ---------------------------------------------------
def test_a_changed_store_takes_effect_on_the_next_run(ip: Any, script: Callable[..., str], tmp_path: Path) -> None:
    model = script([{"text": "ok"}])
    first = cell(ip, f"-m {model} -t moved", "one")
    magics(ip).store = str(tmp_path / "other.sqlite3")
    second = cell(ip, f"-m {model} -t moved", "two")
    assert second.thread_id != first.thread_id
    assert [t.id for t in jr.Client(store=str(tmp_path / "other.sqlite3")).threads.list()] == [second.thread_id]


def test_a_changed_model_base_url_takes_effect_on_the_next_run(ip: Any, chat_server: FakeChatServer) -> None:
    other = FakeChatServer().start()
    try:
        chat_server.add(text_reply("from one"))
        other.add(text_reply("from two"))
        magics(ip).model_base_url = chat_server.base_url
        assert cell(ip, "-m compat:m", "hi").event_data["messages"][-1].text == "from one"
        magics(ip).model_base_url = other.base_url
        assert cell(ip, "-m compat:m", "again").event_data["messages"][-1].text == "from two"
        assert len(chat_server.requests) == 1 and len(other.requests) == 1
    finally:
        other.stop()
        magics(ip).model_base_url = ""


def test_a_changed_api_key_takes_effect_on_the_next_run(ip: Any, script: Callable[..., str], served: Any) -> None:
    model = script([{"text": "authorized"}])
    magics(ip).api_key = "wrong-key-000000000"
    with pytest.raises(UsageError, match="could not start the run"):
        cell(ip, f"-m {model} --base-url {served.url}", "hi")
    magics(ip).api_key = served.api_key
    assert cell(ip, f"-m {model} --base-url {served.url}", "hi").status == "completed"
    magics(ip).api_key = ""


# -- 11: notebook identity per front end --------------------------------------------------------
def _kernel_env(path: str, name: str | None, root: Path) -> dict[str, str]:
    """``JPY_SESSION_NAME`` exactly as Jupyter Server computes it for a session request."""
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    from jupyter_server.services.sessions.sessionmanager import SessionManager

    manager = SessionManager(kernel_manager=MappingKernelManager(root_dir=str(root)), database_filepath=":memory:")
    return {"JPY_SESSION_NAME": manager.get_kernel_env(path, name)["JPY_SESSION_NAME"]}


def test_identity_in_jupyterlab_and_notebook_7_is_the_notebook_path(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    # Lab 4 and Notebook 7 POST /api/sessions with path "proj/a.ipynb" and name "a.ipynb".
    env = _kernel_env("proj/a.ipynb", "a.ipynb", tmp_path)
    ns = {"__session__": env["JPY_SESSION_NAME"]}
    assert notebook_identity(ns, env, "/run/kernel-1234abcd-0000.json") == f"notebook:{tmp_path / 'proj' / 'a.ipynb'}"
    other = _kernel_env("proj/b.ipynb", "b.ipynb", tmp_path)
    assert notebook_identity({"__session__": other["JPY_SESSION_NAME"]}, other, None) != notebook_identity(ns, env, None)


def test_identity_in_nbclassic_is_the_kernel_not_the_folder(tmp_path: Path) -> None:
    (tmp_path / "proj").mkdir()
    # nbclassic POSTs name "" (services/sessions/session.js): the server joins the folder with it.
    env = _kernel_env("proj/a.ipynb", "", tmp_path)
    assert env["JPY_SESSION_NAME"].endswith("proj/")
    ns = {"__session__": env["JPY_SESSION_NAME"]}
    a = notebook_identity(ns, env, "/run/jupyter/kernel-11111111-aaaa.json")
    b = notebook_identity(ns, env, "/run/jupyter/kernel-22222222-bbbb.json")
    assert a == "kernel:11111111-aaaa" and b == "kernel:22222222-bbbb"


def test_identity_in_vs_code_is_its_notebook_file() -> None:
    ns = {"__vsc_ipynb_file__": "/home/me/proj/a.ipynb", "__session__": "/home/me/proj/"}
    assert notebook_identity(ns, {}, None) == "notebook:/home/me/proj/a.ipynb"


def test_identity_without_a_front_end_is_unknown() -> None:
    assert notebook_identity({}, {}, None) is None


# -- 18: the no-model error's offline suggestion works as printed --------------------------------
def test_the_no_model_error_suggests_an_offline_model_that_exists(ip: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    monkeypatch.chdir(tmp_path)  # any folder: the suggestion must not depend on the repo's
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("run_assistant", "", "hello")
    [line] = [x for x in str(info.value).splitlines() if "scripted:" in x]
    model = re.search(r'"(scripted:[^"]+)"', line).group(1)
    ip.run_line_magic("config", f'RunAssistantMagics.model = "{model}"')
    run = cell(ip, "", "hello")
    assert run.status == "completed" and "offline demo model" in run.event_data["messages"][-1].text


def test_in_vs_code_the_default_thread_is_named_after_the_notebook_file(ip: Any, script: Callable[..., str]) -> None:
    magics(ip).default_thread = ""
    ip.user_ns["__vsc_ipynb_file__"] = "/home/me/proj/analysis.ipynb"
    try:
        run = cell(ip, f"-m {script([{'text': 'ok'}])}", "hi")
        assert thread_name(store_client(ip), run.thread_id) == "notebook:/home/me/proj/analysis.ipynb"
    finally:
        ip.user_ns.pop("__vsc_ipynb_file__")
