"""``%%run_assistant`` and ``%runs`` in an in-process IPython shell (``globalipapp``).

This shell has no running event loop, so runs block (``--wait`` semantics, as in a terminal);
the background path is covered with real kernels in ``test_magic_kernel.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

import jupyter_runs as jr
from jupyter_runs.magic import RunAssistantMagics, split_line


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    """globalipapp's shell, once; cleared afterwards so later tests run outside IPython again."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = get_ipython() or InteractiveShell.instance()
    # A notebook front end would ask for markdown too; the terminal shell only for text.
    shell.display_formatter.active_types = list(shell.display_formatter.format_types)
    yield shell
    InteractiveShell.clear_instance()


@pytest.fixture
def ip(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for var in ("JUPYTER_RUNS_MODEL", "OPENAI_API_KEY", "JUPYTER_RUNS_API_KEY", "JUPYTER_RUNS_STORE"):
        monkeypatch.delenv(var, raising=False)
    shell.run_line_magic("load_ext", "jupyter_runs")
    magics = shell.magics_manager.registry["RunAssistantMagics"]
    magics.store = str(tmp_path / "threads.sqlite3")
    magics.model = ""
    magics.default_thread = "test-default"
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_runs")
    for name in ("weather", "boom", "r", "r2", "asst"):
        shell.user_ns.pop(name, None)


def shown(out: Any) -> str:
    """Everything a captured cell displayed: a run's plain text (its markdown preview omits the
    steps), else the markdown (else plain text) fallback."""
    return "\n".join(o.data["text/plain"] if "jr-run" in o.data.get("text/html", "")
                     else o.data.get("text/markdown") or o.data.get("text/plain", "") for o in out.outputs)


def magics(ip: Any) -> RunAssistantMagics:
    return ip.magics_manager.registry["RunAssistantMagics"]


def store_client(ip: Any) -> jr.Client:
    return jr.Client(store=magics(ip).store)


def cell(ip: Any, line: str, body: str) -> Any:
    """Run ``%%run_assistant line`` and return the ``-o`` handle (``r``)."""
    ip.run_cell_magic("run_assistant", f"{line} -o r", body)
    return ip.user_ns["r"]


def define_weather(ip: Any) -> None:
    ip.run_cell('''
def weather(city: str) -> dict:
    """Current weather for a city."""
    print(f"looking up {city}")
    return {"city": city, "temperature_c": 18}
''')


WEATHER_TURNS = [{"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
                 {"text": "Sunny in Paris."}]


def test_no_model_configured_says_how_to_configure_one(ip: Any) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("run_assistant", "", "hello")
    text = str(info.value)
    assert "OPENAI_API_KEY" in text and "ollama:" in text and "scripted:" in text


def test_bad_options_are_usage_errors(ip: Any, script: Callable[..., str]) -> None:
    with pytest.raises(UsageError, match="unrecognized arguments"):
        ip.run_cell_magic("run_assistant", "--bogus", "hi")
    with pytest.raises(UsageError, match="expected one argument"):
        ip.run_cell_magic("run_assistant", "-m", "hi")
    with pytest.raises(UsageError, match="no function named 'nope'"):
        ip.run_cell_magic("run_assistant", f"-m {script([{'text': 'x'}])} --tools nope", "hi")
    with pytest.raises(UsageError, match="needs a message"):
        ip.run_cell_magic("run_assistant", f"-m {script([{'text': 'x'}])}", "   ")


def test_help_lists_every_option(ip: Any) -> None:
    doc = ip.magics_manager.magics["cell"]["run_assistant"].__doc__
    for option in ("--thread", "--new-thread", "--assistant", "--model", "--instructions", "--tools",
                   "--approve", "--wait", "--out", "--poll", "--temperature", "--max-tokens", "--base-url"):
        assert option in doc


def test_run_with_tools_streams_to_completion_and_keeps_the_handle(ip: Any, script: Callable[..., str]) -> None:
    define_weather(ip)
    with capture_output() as out:
        run = cell(ip, f"-m {script(WEATHER_TURNS)} --tools weather", "Weather in Paris?")
    assert isinstance(run, jr.RunStream) and run.status == "completed"
    assert run.event_data["messages"][-1].text == "Sunny in Paris."
    step = next(s for s in run.event_data["steps"] if s.type == "tool_calls")
    assert json.loads(step.step_details.tool_calls[0].function.output)["city"] == "Paris"
    # The tool's print went into its record, not into the cell's output.
    assert "looking up Paris" not in out.stdout
    # The displayed fallback tells the story.
    assert "Sunny in Paris." in shown(out) and "completed" in shown(out)


def test_default_thread_carries_context_across_cells(ip: Any, script: Callable[..., str]) -> None:
    model = script([{"text": "noted"}])
    first = cell(ip, f"-m {model}", "My name is Ada.")
    second = cell(ip, f"-m {model}", "What is my name?")
    assert first.thread_id == second.thread_id
    texts = [m.text for m in store_client(ip).messages.list(second.thread_id, order="asc")]
    assert texts == ["My name is Ada.", "noted", "What is my name?", "noted"]
    fresh = cell(ip, f"-m {model} --new-thread", "Start over")
    assert fresh.thread_id != first.thread_id


def test_named_thread_survives_a_new_session_on_the_same_store(ip: Any, script: Callable[..., str]) -> None:
    model = script([{"text": "ok"}])
    first = cell(ip, f"-m {model} -t project", "one")
    # A restarted kernel: new magics, new client, same store file.
    store = magics(ip).store
    ip.run_line_magic("unload_ext", "jupyter_runs")
    ip.run_line_magic("load_ext", "jupyter_runs")
    magics(ip).store = store
    second = cell(ip, f"-m {model} -t project", "two")
    assert second.thread_id == first.thread_id
    assert len(store_client(ip).messages.list(first.thread_id).to_list()) == 4


def test_assistant_is_reused_while_its_settings_stay_the_same(ip: Any, script: Callable[..., str]) -> None:
    model = script([{"text": "ok"}])
    a = cell(ip, f"-m {model} -i Be_brief", "one")
    b = cell(ip, f"-m {model} -i Be_brief", "two")
    c = cell(ip, f"-m {model} -i Be_chatty", "three")
    assert a.assistant_id == b.assistant_id != c.assistant_id


def test_assistant_option_takes_a_variable_or_an_id(ip: Any, script: Callable[..., str]) -> None:
    client = store_client(ip)
    asst = client.assistants.create(model=script([{"text": "from asst"}]), instructions="x")
    ip.user_ns["asst"] = asst
    assert cell(ip, "-a asst", "hi").assistant_id == asst.id
    assert cell(ip, f"-a {asst.id}", "hi").assistant_id == asst.id


def test_temperature_and_max_tokens_reach_the_run(ip: Any, script: Callable[..., str]) -> None:
    run = cell(ip, f"-m {script([{'text': 'ok'}])} --temperature 0.3 --max-tokens 300", "hi")
    assert run.temperature == 0.3 and run.max_completion_tokens == 300


def test_poll_mode_polls_and_shows_the_final_run(ip: Any, script: Callable[..., str]) -> None:
    define_weather(ip)
    with capture_output() as out:
        run = cell(ip, f"-m {script(WEATHER_TURNS)} --tools weather --poll", "Weather?")
    assert type(run) is jr.Run and run.status == "completed"
    assert "Sunny in Paris." in shown(out) and "weather(" in shown(out)


def test_tool_that_raises_becomes_an_error_output_and_the_run_completes(ip: Any, script: Callable[..., str]) -> None:
    ip.run_cell('def boom() -> str:\n    """Always fails."""\n    raise ValueError("no data today")')
    turns = [{"tool_calls": [{"name": "boom", "arguments": {}}]}, {"text": "Sorry, no data."}]
    run = cell(ip, f"-m {script(turns)} --tools boom", "go")
    assert run.status == "completed"
    output = run.event_data["steps"][0].step_details.tool_calls[0].function.output
    assert "ValueError" in output and "no data today" in output


def test_approve_asks_on_stdin_when_the_cell_blocks(ip: Any, script: Callable[..., str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    define_weather(ip)
    monkeypatch.setattr("builtins.input", lambda prompt="": "n")
    run = cell(ip, f"-m {script(WEATHER_TURNS)} --tools weather --approve weather", "Weather?")
    output = run.event_data["steps"][0].step_details.tool_calls[0].function.output
    assert "declined" in output


def test_remote_server_by_base_url(ip: Any, script: Callable[..., str], served: Any) -> None:
    magics(ip).api_key = served.api_key
    run = cell(ip, f"-m {script([{'text': 'over http'}])} --base-url {served.url}", "hi")
    assert run.status == "completed" and run.event_data["messages"][-1].text == "over http"
    assert served.backend  # the run is in the served engine's store, not the local one
    assert not store_client(ip).threads.list().to_list()


def test_line_form_takes_the_message_verbatim(ip: Any, script: Callable[..., str]) -> None:
    parser = RunAssistantMagics.run_assistant.parser
    assert split_line("-t x --approve=a What's up, doc", parser) == (["-t", "x", "--approve=a"], "What's up, doc")
    assert split_line("-- -not an option", parser) == ([], "-not an option")
    ip.run_line_magic("run_assistant", f"-m {script([{'text': 'hey'}])} -o r What's new")
    run = ip.user_ns["r"]
    texts = [m.text for m in store_client(ip).messages.list(run.thread_id, order="asc")]
    assert texts[-2:] == ["What's new", "hey"]


def test_runs_threads_and_show_replay_the_store(ip: Any, script: Callable[..., str]) -> None:
    define_weather(ip)
    cell(ip, f"-m {script(WEATHER_TURNS)} --tools weather -t history", "Weather in Paris?")
    with capture_output() as out:
        ip.run_line_magic("runs", "threads")
    assert "history" in out.outputs[0].data["text/markdown"]
    with capture_output() as out:
        ip.run_line_magic("runs", "show history")
    assert "Weather in Paris?" in shown(out) and "Sunny in Paris." in shown(out) and "weather(" in shown(out)
    with pytest.raises(UsageError, match="no stored thread named 'nope'"):
        ip.run_line_magic("runs", "show nope")


def test_runs_config_masks_secrets(ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdefghijklmnop1234")
    magics(ip).api_key = "server-secret-key-987654"
    with capture_output() as out:
        ip.run_line_magic("runs", "config")
    text = out.outputs[0].data["text/markdown"]
    assert "sk-test-abcdefghijklmnop1234" not in text and "server-secret-key-987654" not in text
    assert "****1234" in text and "openai:gpt-4.1-mini" in text


def test_config_traits_are_settable_with_percent_config(ip: Any) -> None:
    ip.run_line_magic("config", 'RunAssistantMagics.model = "scripted:x.json"')
    ip.run_line_magic("config", "RunAssistantMagics.max_tool_output = 1234")
    assert magics(ip).model == "scripted:x.json" and magics(ip).max_tool_output == 1234
