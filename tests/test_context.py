"""The assistant sees the notebook: ``--context``, ``--notebook-tools`` and ``context=``.

What the model received is read from the fake Chat Completions server's recorded request bodies
(a real loopback socket), in an in-process IPython shell (runs block, as in a terminal).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

import jupyter_runs as jr
from jupyter_runs import context
from tests.fakes.chat_server import FakeChatServer, text_reply, tool_calls_reply


@pytest.fixture(scope="module")
def shell() -> Iterator[Any]:
    from IPython.core.interactiveshell import InteractiveShell

    shell = get_ipython() or InteractiveShell.instance()
    shell.display_formatter.active_types = list(shell.display_formatter.format_types)
    yield shell
    InteractiveShell.clear_instance()


@pytest.fixture
def ip(shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
       chat_server: FakeChatServer) -> Iterator[Any]:
    for var in ("JUPYTER_RUNS_MODEL", "OPENAI_API_KEY", "JUPYTER_RUNS_API_KEY", "JUPYTER_RUNS_STORE"):
        monkeypatch.delenv(var, raising=False)
    shell.run_line_magic("load_ext", "jupyter_runs")
    magics = shell.magics_manager.registry["RunAssistantMagics"]
    magics.store = str(tmp_path / "threads.sqlite3")
    magics.model = "compat:fake-model"
    magics.model_base_url = chat_server.base_url
    magics.default_thread = f"context-{tmp_path.name}"
    shell.user_ns["df"] = sales_frame()
    yield shell
    shell.run_line_magic("unload_ext", "jupyter_runs")
    for name in ("df", "_secret", "r", "np", "jr", "client"):
        shell.user_ns.pop(name, None)


def sales_frame(rows: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    data = {f"m{i}": rng.normal(size=rows).round(3) for i in range(11)}
    return pd.DataFrame({"region": [f"r{i % 4}" for i in range(rows)], **data})


def shown(out: Any) -> str:
    return "\n".join(o.data.get("text/markdown") or o.data.get("text/plain", "") for o in out.outputs)


def last_user_content(body: dict[str, Any]) -> str:
    user = [m for m in body["messages"] if m["role"] == "user"]
    return user[-1]["content"]


# -- the encoder --------------------------------------------------------------------------------


def test_a_dataframe_is_described_by_shape_dtypes_rows_and_summary() -> None:
    df = sales_frame()
    kind, body = context.describe(df)
    assert kind == "DataFrame 1,000×12"
    assert "shape: 1,000 rows x 12 columns" in body
    assert "- region: object" in body or "- region: str" in body
    assert "- m0: float64" in body
    # head and tail rows, not the middle
    assert f"| 0 | r0 | {df.iat[0, 1]:g} |" in body and "| 999 | r3 |" in body and "| 500 |" not in body
    assert "numeric summary:" in body and f"| m0 | {df['m0'].mean():.4g} |" in body
    assert len(body.encode()) < context.CONTEXT_LIMIT


def test_arrays_collections_strings_and_others_are_described_compactly() -> None:
    kind, body = context.describe(np.arange(12.0).reshape(3, 4))
    assert kind == "ndarray 3×4 float64"
    assert "shape: (3, 4), dtype: float64" in body and "min 0, max 11, mean 5.5" in body
    kind, body = context.describe({i: str(i) for i in range(50)})
    assert kind == "dict[50]" and body.startswith("length 50; sample (first 10 of 50):")
    assert '"9": "9"' in body and '"10"' not in body
    kind, body = context.describe("x" * 100_000, limit=1000)
    assert kind == "str 100,000 chars" and len(body.encode()) <= 1000 and "truncated: 100000 bytes" in body

    class Odd:
        def __repr__(self) -> str:
            return "Odd(" + "y" * 50_000 + ")"

    kind, body = context.describe(Odd(), limit=500)
    assert kind == "Odd" and body.startswith("Odd(yyy") and len(body.encode()) <= 500


def test_a_figure_is_described_by_its_size() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.set_title("sales")
    try:
        kind, body = context.describe(fig)
    finally:
        plt.close(fig)
    assert kind == "Figure 400×300" and "1 axes" in body and "'sales'" in body


def test_blocks_round_trip_and_clip_keeping_their_delimiters() -> None:
    [att] = context.from_values({"df": sales_frame()})
    assert att.text.startswith('<context name="df" kind="DataFrame 1,000×12">\n')
    assert att.text.endswith("\n</context>")
    clipped = context.clip_block(att.text, 600)
    assert len(clipped.encode()) <= 600 and context.is_block(clipped) and "truncated" in clipped
    message = {"content": [{"type": "text", "text": {"value": "q"}},
                           {"type": "text", "text": {"value": att.text}}]}
    [chip] = context.parse_blocks(message)
    assert chip["name"] == "df" and chip["kind"] == "DataFrame 1,000×12" and chip["text"] == att.text
    assert chip["label"] == f"df · DataFrame 1,000×12 · {att.size / 1000:.1f} KB"


# -- --context ----------------------------------------------------------------------------------


def test_context_df_puts_the_description_in_the_request_and_shows_chips(
    ip: Any, chat_server: FakeChatServer
) -> None:
    chat_server.add(text_reply("Twelve columns."))
    with capture_output() as out:
        ip.run_cell_magic("run_assistant", "--wait --context df -o r", "What is in df?")
    run = ip.user_ns["r"]
    assert run.status == "completed"
    sent = last_user_content(chat_server.requests[0].body)
    assert sent.startswith("What is in df?\n<context name=\"df\" kind=\"DataFrame 1,000×12\">")
    assert "shape: 1,000 rows x 12 columns" in sent and "numeric summary:" in sent
    # Stored in the thread, as its own part, so the served API and later runs see it too.
    client = jr.Client(store=ip.magics_manager.registry["RunAssistantMagics"].store)
    try:
        [msg] = [m for m in client.messages.list(run.thread_id) if m.role == "user"]
        assert [p.type for p in msg.content] == ["text", "text"]
        assert msg.content[1].text.value in sent
        assert msg.metadata["jupyter_runs_context"] == "df"
    finally:
        client.close()
    # The saved output lists the attachment.
    assert "**Context:** df · DataFrame 1,000×12 · " in shown(out)


def test_context_error_sends_the_last_traceback(ip: Any, chat_server: FakeChatServer) -> None:
    ip.run_cell("def divide(a, b):\n    return a / b\n\ntotal = divide(1, 0)\n")
    chat_server.add(text_reply("b is zero."))
    ip.run_cell_magic("run_assistant", "--wait --context error", "Why did this fail?")
    sent = last_user_content(chat_server.requests[0].body)
    assert '<context name="error" kind="ZeroDivisionError">' in sent
    assert "Traceback (most recent call last)" in sent and "return a / b" in sent
    assert "ZeroDivisionError: division by zero" in sent
    assert "interactiveshell.py" not in sent  # IPython's own frames are left out


def test_context_in_and_out_and_underscore(ip: Any, chat_server: FakeChatServer) -> None:
    ip.run_cell("41 + 1", store_history=True)
    n = ip.execution_count - 1
    chat_server.add(text_reply("ok"))
    ip.run_cell_magic("run_assistant", f"--wait --context In[{n}],Out[{n}],_", "Explain")
    sent = last_user_content(chat_server.requests[0].body)
    assert f'<context name="In[{n}]" kind="cell source, 1 lines">\n41 + 1\n</context>' in sent
    assert f'<context name="Out[{n}]" kind="int">\n42\n</context>' in sent
    assert '<context name="_" kind="int">\n42\n</context>' in sent


def test_context_refuses_unknown_names_and_expressions(ip: Any, chat_server: FakeChatServer) -> None:
    with pytest.raises(UsageError, match="no variable named 'nope'"):
        ip.run_cell_magic("run_assistant", "--wait --context nope", "hi")
    with pytest.raises(UsageError, match="not a variable name"):
        ip.run_cell_magic("run_assistant", "--wait --context df.head()", "hi")
    assert chat_server.requests == []


def test_help_documents_context_and_notebook_tools(ip: Any) -> None:
    doc = ip.magics_manager.magics["cell"]["run_assistant"].__doc__
    assert "--context NAMES" in doc and "'error'" in doc and "--notebook-tools" in doc


def test_python_api_context_attaches_values(chat_server: FakeChatServer) -> None:
    client = jr.Client(store=":memory:", model_config={"base_url": chat_server.base_url})
    try:
        chat_server.add(text_reply("ok"))
        asst = client.assistants.create(model="compat:fake-model")
        thread = client.threads.create()
        client.messages.create(thread.id, content="Summarise", context={"sales": sales_frame(10)})
        client.runs.create(thread.id, assistant_id=asst.id).wait()
        sent = last_user_content(chat_server.requests[0].body)
        assert sent.startswith('Summarise\n<context name="sales" kind="DataFrame 10×12">')
        assert "| 9 | r1 |" in sent
    finally:
        client.close()


# -- --notebook-tools ---------------------------------------------------------------------------


def tool_outputs(body: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in body["messages"] if m["role"] == "tool"}


def test_notebook_tools_answer_list_and_describe(ip: Any, chat_server: FakeChatServer) -> None:
    ip.run_cell("import numpy as np\nimport jupyter_runs as jr\n_secret = 'sk-hidden-value'\n"
                "client = jr.Client(store=':memory:')\nweights = np.ones(5)\n")
    chat_server.add(
        tool_calls_reply([("c1", "list_variables", "{}"), ("c2", "describe_variable", '{"name": "df"}')]),
        text_reply("df has 1,000 rows."),
    )
    ip.run_cell_magic("run_assistant", "--wait --notebook-tools -o r", "What data do I have?")
    assert ip.user_ns["r"].status == "completed"
    first, second = (r.body for r in chat_server.requests)
    assert {t["function"]["name"] for t in first["tools"]} == {
        "list_variables", "describe_variable", "read_cells", "last_error"}
    outputs = tool_outputs(second)
    listed = {v["name"]: v for v in json.loads(outputs["c1"])}
    assert listed["df"]["type"] == "DataFrame 1,000×12" and listed["df"]["bytes"] > 80_000
    assert listed["weights"] == {"name": "weights", "type": "ndarray 5", "bytes": 40}
    for absent in ("_secret", "np", "jr", "client", "In", "Out", "get_ipython"):
        assert absent not in listed
    assert outputs["c2"].startswith("df: DataFrame 1,000×12\nshape: 1,000 rows x 12 columns")
    assert outputs["c2"] == "df: " + "\n".join(context.describe(ip.user_ns["df"], 8192))
    # Shown in the timeline as ordinary tool steps.
    steps = ip.user_ns["r"].event_data["steps"]
    names = [c.function.name for s in steps if s.type == "tool_calls" for c in s.step_details.tool_calls]
    assert names == ["list_variables", "describe_variable"]


def test_notebook_tools_refuse_private_names_and_expressions(ip: Any, chat_server: FakeChatServer) -> None:
    ip.user_ns["_secret"] = "sk-hidden-value"
    calls = [("p", "describe_variable", '{"name": "_secret"}'),
             ("d", "describe_variable", '{"name": "__builtins__"}'),
             ("e", "describe_variable", '{"name": "df.head()"}'),
             ("i", "describe_variable", '{"name": "__import__(\'os\').system(\'echo hi\')"}')]
    chat_server.add(tool_calls_reply(calls), text_reply("refused"))
    ip.run_cell_magic("run_assistant", "--wait --notebook-tools", "Show me secrets")
    outputs = tool_outputs(chat_server.requests[1].body)
    assert "'_secret' is a private name" in outputs["p"] and "sk-hidden" not in outputs["p"]
    assert "'__builtins__' is a private name" in outputs["d"]
    assert "'df.head()' is not a variable name; expressions are never evaluated" in outputs["e"]
    assert "expressions are never evaluated" in outputs["i"]


def test_read_cells_and_last_error(ip: Any, chat_server: FakeChatServer) -> None:
    ip.run_cell("api_key = 'sk-abcdefghijklmnop1234'\ncount = 3\ncount * 2", store_history=True)
    ip.run_cell("int('x')", store_history=True)
    chat_server.add(tool_calls_reply([("r", "read_cells", '{"last": 2}'), ("e", "last_error", "{}")]),
                    text_reply("int('x') fails"))
    ip.run_cell_magic("run_assistant", "--wait --notebook-tools", "What went wrong?")
    outputs = tool_outputs(chat_server.requests[1].body)
    cells = json.loads(outputs["r"])
    assert [c["source"] for c in cells] == ["[masked]\ncount = 3\ncount * 2", "int('x')"]
    assert cells[0]["output"] == "6" and "output" not in cells[1]
    assert "ValueError: invalid literal for int() with base 10: 'x'" in outputs["e"]
    ip.user_ns.pop("api_key", None)
    ip.user_ns.pop("count", None)


def test_line_form_takes_context_before_the_message(ip: Any, chat_server: FakeChatServer) -> None:
    chat_server.add(text_reply("ok"))
    ip.run_line_magic("run_assistant", "--wait --context df What's in df, briefly?")
    sent = last_user_content(chat_server.requests[0].body)
    assert sent.startswith("What's in df, briefly?\n<context name=\"df\"")


def test_context_budget_setting_bounds_the_request(ip: Any, chat_server: FakeChatServer) -> None:
    from jupyter_runs.backends.local.conversation import estimate_tokens

    ip.magics_manager.registry["RunAssistantMagics"].context_budget = 600
    for i in range(8):
        chat_server.add(text_reply("noted " * 40))
        ip.run_cell_magic("run_assistant", "--wait", f"fact {i}: " + "word " * 60)
    bodies = [r.body for r in chat_server.requests]
    assert all(estimate_tokens(b["messages"]) <= 600 for b in bodies)
    assert len(bodies[-1]["messages"]) < 15 and bodies[-1]["messages"][-1]["content"].startswith("fact 7:")


def test_the_served_api_shows_the_attached_context(served: Any) -> None:
    client = jr.Client(base_url=served.url, api_key=served.api_key)
    try:
        thread = client.threads.create()
        client.messages.create(thread.id, content="look", context={"sizes": [1, 2, 3]})
        [msg] = client.messages.list(thread.id).to_list()
        assert [p.text.value for p in msg.content] == [
            "look", '<context name="sizes" kind="list[3]">\nlength 3; sample: [1, 2, 3]\n</context>']
        assert msg.metadata == {"jupyter_runs_context": "sizes"}
        size = len(msg.content[1].text.value.encode())
        assert context.parse_blocks(msg)[0]["label"] == f"sizes · list[3] · {size} B"
    finally:
        client.close()
