"""Named threads at scale: the magic finds ``-t NAME`` with one indexed page, ``%runs threads``
reads one page of the latest threads (``--limit``, ``--all``, a name prefix for more), and a
pager fetches a page only when iteration reaches it. Counted in store calls, never in time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import jupyter_runs as jr
from jupyter_runs import _portal
from jupyter_runs.backends.local import objects as obj
from jupyter_runs.backends.local.store import THREAD_NAME_KEY, Store
from jupyter_runs.thread_names import find_named_thread
from tests.test_magic import cell, ip, magics, shell  # noqa: F401  (fixtures)

THREADS = 45


def store_threads(path: str, count: int, prefix: str = "nb") -> list[str]:
    """``count`` named threads written by another connection, oldest first; their names."""
    store = Store(path)
    names = [f"{prefix}-{i:03d}" for i in range(count)]
    with store.transaction():
        for name in names:
            store.put_thread(obj.new_thread({"metadata": {THREAD_NAME_KEY: name}}))
    store.close()
    return names


@pytest.fixture
def spied(ip: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:  # noqa: F811
    """The arguments of every ``list_threads`` the magic's embedded store answers."""
    store = magics(ip)._client(None).backend.store
    calls: list[dict[str, Any]] = []
    real = store.list_threads

    def spy(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(store, "list_threads", spy)
    yield calls


def table_rows(ip: Any, line: str) -> tuple[list[str], str]:  # noqa: F811
    with capture_output() as out:
        ip.run_line_magic("runs", line)
    text = out.outputs[0].data["text/markdown"]
    return [r for r in text.splitlines() if r.startswith("| ") and "`thread_" in r], text


def test_runs_threads_reads_one_page_of_the_latest(ip: Any, spied: list[dict[str, Any]]) -> None:  # noqa: F811
    names = store_threads(magics(ip).store, THREADS)
    rows, text = table_rows(ip, "threads")
    assert len(spied) == 1 and spied[0]["limit"] == 20
    assert [r.split(" | ")[0].strip("| ") for r in rows] == names[::-1][:20]
    assert "more are stored" in text and "--all" in text


def test_runs_threads_limit_all_and_prefix_show_more(ip: Any, spied: list[dict[str, Any]]) -> None:  # noqa: F811
    store_threads(magics(ip).store, THREADS)
    store_threads(magics(ip).store, 3, prefix="other")
    rows, text = table_rows(ip, "threads --limit 5")
    assert len(rows) == 5 and len(spied) == 1 and "more are stored" in text
    spied.clear()
    rows, text = table_rows(ip, "threads --all")
    assert len(rows) == THREADS + 3 and "more are stored" not in text
    assert len(spied) == 1  # 48 threads fit one page of 100
    spied.clear()
    rows, text = table_rows(ip, "threads other")
    assert len(rows) == 3 and all("other-" in r for r in rows) and "more are stored" not in text
    assert spied == [{"name": None, "name_prefix": "other", "limit": 20, "order": "desc",
                      "after": None, "before": None}]
    rows, text = table_rows(ip, "threads zzz")
    assert rows == [] and "No stored thread name starts with zzz" in text


@pytest.mark.parametrize("line", ["threads --limit 0", "threads --limit x", "threads a b", "threads --bogus"])
def test_runs_threads_bad_options_are_usage_errors(ip: Any, line: str) -> None:  # noqa: F811
    with pytest.raises(UsageError, match="usage: %runs threads"):
        ip.run_line_magic("runs", line)


def test_a_named_thread_is_found_with_one_indexed_page(ip: Any, spied: list[dict[str, Any]],  # noqa: F811
                                                      script: Callable[..., str]) -> None:
    names = store_threads(magics(ip).store, THREADS)
    run = cell(ip, f"-m {script([{'text': 'found'}])} -t {names[7]}", "hello")
    assert run.status == "completed"
    assert [c["name"] for c in spied] == [names[7]]
    thread = jr.Client(store=magics(ip).store).threads.retrieve(run.thread_id)
    assert thread["metadata"][THREAD_NAME_KEY] == names[7]  # the stored thread, not a new one
    spied.clear()
    cell(ip, f"-m {script([{'text': 'new'}])} -t brand-new", "hello")
    assert [c["name"] for c in spied] == ["brand-new"]  # a new name costs one empty page too


def test_a_served_engine_filters_threads_by_name(served: Any) -> None:
    client = jr.Client(base_url=served.url, api_key=served.api_key)
    made = [client.threads.create(metadata={THREAD_NAME_KEY: f"s-{i}"})["id"] for i in range(5)]
    named = client.threads.list(name="s-3").to_list()
    assert [t["id"] for t in named] == [made[3]]
    assert [t["id"] for t in client.threads.list(name_prefix="s-", order="asc", limit=100)] == made
    assert _portal.call(lambda: find_named_thread(client.async_client, "s-1")) == made[1]
    assert _portal.call(lambda: find_named_thread(client.async_client, "nope")) is None
    with pytest.raises(jr.BadRequestError, match="'name'"):
        client.threads.list(name="x" * 513).to_list()


def test_an_abandoned_pager_fetched_only_its_first_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "threads.sqlite3")
    store_threads(path, 60)
    client = jr.Client(store=path)
    store = client.backend.store
    pages: list[dict[str, Any]] = []
    real = store.list_threads
    monkeypatch.setattr(store, "list_threads", lambda **kw: pages.append(kw) or real(**kw))
    first = next(iter(client.threads.list(limit=2)))
    assert first["metadata"][THREAD_NAME_KEY] == "nb-059"
    client.threads.retrieve(first["id"])  # queued behind anything the pager left running
    assert len(pages) == 1
    pager = iter(client.threads.list(limit=25))
    assert [next(pager) for _ in range(26)][-1]["metadata"][THREAD_NAME_KEY] == "nb-034"
    assert len(pages) == 3  # the second page only once the 26th item was asked for
    client.close()
