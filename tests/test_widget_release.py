"""Finished widgets are released (issue 12, item 14): in a real kernel driven like an interactive
front end (``allow_stdin`` true), every run's widget comm is closed once its static view replaced
it by display id, and ``%runs show`` opens no comm at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_magic_kernel import Kernel

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel(tmp_path, [{"text": "A short reply."}], delay=0.0)
    yield k
    k.close()


def test_twenty_finished_runs_leave_no_live_widget(kernel: Kernel) -> None:
    for i in range(20):
        kernel.ok(f"%%run_assistant -t t{i}\nrun {i}")
    kernel.ok("import jupyter_runs as jr\nawait jr.wait_all()")
    kernel.drain(0.5)
    # Not one widget model left in the kernel: neither the runs' nor their DOMWidget Layouts.
    live = kernel.value("[type(w).__name__ for w in __import__('ipywidgets').widgets.widget._instances.values()]")
    assert live == []
    opens = [m["content"] for m in kernel.log if m["msg_type"] == "comm_open"
             and m["content"].get("target_name") == "jupyter.widget"]
    opened = {c["comm_id"] for c in opens if c["data"]["state"].get("_model_name") == "AnyModel"}
    closed = {m["content"]["comm_id"] for m in kernel.log if m["msg_type"] == "comm_close"}
    assert len(opened) == 20 and {c["comm_id"] for c in opens} <= closed
    # Each display was first the live view, then replaced (same display id) by the static view.
    shown = [m for m in kernel.log if m["msg_type"] == "display_data" and WIDGET_VIEW in m["content"]["data"]]
    updates = [m for m in kernel.log if m["msg_type"] == "update_display_data"]
    assert len(shown) == 20
    final = {m["content"]["transient"]["display_id"]: m["content"]["data"] for m in updates}
    assert set(final) == {m["content"]["transient"]["display_id"] for m in shown}
    for data in final.values():
        assert WIDGET_VIEW not in data and "data-status='completed'" in data["text/html"]
    # The close comes after the update that replaced the view, never before.
    for comm_id in opened:
        close_at = next(i for i, m in enumerate(kernel.log) if m["msg_type"] == "comm_close"
                        and m["content"]["comm_id"] == comm_id)
        assert any(m["msg_type"] == "update_display_data" for m in kernel.log[:close_at])


def test_runs_show_displays_static_views_without_a_comm(kernel: Kernel) -> None:
    kernel.ok("%%run_assistant -t past --wait\nfirst")
    kernel.ok("%%run_assistant -t past --wait\nsecond")
    msgs = kernel.ok("%runs show past")
    assert not [m for m in msgs if m["msg_type"].startswith("comm_")]
    shown = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data"]
    assert len(shown) == 2
    assert all(WIDGET_VIEW not in d and "A short reply." in d["text/html"] for d in shown)
    assert "first" in shown[0]["text/html"] and "second" in shown[1]["text/html"]


def test_a_dropped_widget_is_collected() -> None:
    """Nothing global keeps a RunWidget alive (anywidget holds every instance of a widget whose
    ``_esm`` is a Path, for hot reload; ours is the bundle's text)."""
    import gc
    import weakref

    from jupyter_runs.widget import RunWidget

    refs = []
    for _ in range(5):
        w = RunWidget(live=False)
        w.set_prompt("hello")
        w.finish()
        refs.append(weakref.ref(w))
        del w
    gc.collect()
    assert [r() for r in refs] == [None] * 5
