"""A real browser attacking ``jupyter-runs serve`` (no key) the two ways a web page can: a page on
another loopback port sending "simple" cross-site requests (a ``no-cors`` fetch and an
auto-submitted ``<form enctype=text/plain>``), and a page whose name was rebound to 127.0.0.1
reading the API as its own origin. Chromium maps ``evil.example`` to 127.0.0.1 itself
(``--host-resolver-rules``), so no DNS is involved and all traffic stays on loopback."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import CHROMIUM, _has_module, _need
from tests.served import ServerProcess

pytestmark = pytest.mark.browser

ATTACK = """<!doctype html><title>loading</title>
<iframe name="sink"></iframe>
<form id="form" method="POST" action="{api}/assistants" enctype="text/plain" target="sink">
  <input name='{{"model": "scripted:form.json", "name": "form", "metadata": {{"k": "' value='"}}}}'>
</form>
<script>
  const api = "{api}";
  const sends = [
    fetch(api + "/assistants", {{mode: "no-cors", method: "POST",
                                body: '{{"model": "scripted:fetch.json", "name": "fetch"}}'}}),
    fetch(api + "/threads", {{mode: "no-cors", method: "POST",
                             body: '{{"messages": [{{"role": "user", "content": "csrf"}}]}}'}}),
  ];
  document.querySelector("iframe").addEventListener("load", () => {{ window.formDone = true; }});
  Promise.allSettled(sends).then(() => {{
    window.fetchesDone = true;
    document.getElementById("form").submit();
  }});
</script>"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Chromium resolving ``evil.example`` to 127.0.0.1 (the rebinding, without DNS)."""
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        _need("Chromium", "apt-get install chromium (Debian's package provides /usr/bin/chromium)")
    if not _has_module("playwright"):
        _need("Playwright", "pip install playwright (its browsers are not needed)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run",
                  "--host-resolver-rules=MAP evil.example 127.0.0.1"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    # access log on: it shows that the browser's requests did arrive (and what they got)
    proc = ServerProcess("--store", ":memory:", "--log-level", "info").start()
    try:
        yield proc
    finally:
        if proc.proc and proc.proc.poll() is None:
            proc.stop()


class _Page(http.server.BaseHTTPRequestHandler):
    html = b""

    def do_GET(self) -> None:  # the stdlib names it
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(self.html)))
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args: Any) -> None:
        return None


def test_a_cross_site_page_creates_nothing(chromium, server):
    handler = type("Attack", (_Page,), {"html": ATTACK.format(api=server.url).encode()})
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page = chromium.new_page()
        page.goto(f"http://127.0.0.1:{site.server_address[1]}/")
        page.wait_for_function("window.fetchesDone === true", timeout=30_000)
        page.wait_for_function("window.formDone === true", timeout=30_000)
        page.close()
    finally:
        site.shutdown()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.get("/assistants").json()["data"] == []
        assert api.get("/threads").json()["data"] == []
    server.stop()
    log = server.stdout
    posts = re.findall(r'"POST /v1/(assistants|threads) HTTP/1.1" (\d+)', log)
    assert len(posts) == 3, log[-3000:]  # both fetches and the form reached the server ...
    assert {status for _, status in posts} <= {"403", "415"}, posts  # ... and were refused


def test_a_rebound_name_cannot_read_the_threads(chromium, server):
    with httpx.Client(base_url=server.url, timeout=30) as api:
        thread = api.post("/threads", json={"metadata": {"note": "private-notes"}}).json()
    port = server.url.split(":")[2].split("/")[0]
    page = chromium.new_page()
    try:
        own = page.goto(f"http://127.0.0.1:{port}/v1/threads")
        assert own.status == 200 and thread["id"] in page.content()  # the control: it is there
        rebound = page.goto(f"http://evil.example:{port}/v1/threads")
        assert rebound.status == 400
        assert thread["id"] not in page.content() and "private-notes" not in page.content()
        # nor can the rebound page write, with a same-origin JSON POST it is allowed to make
        status = page.evaluate("""async () => (await fetch("/v1/threads", {method: "POST",
            headers: {"content-type": "application/json"}, body: "{}"})).status""")
        assert status == 400
    finally:
        page.close()
    with httpx.Client(base_url=server.url, timeout=30) as api:
        assert [t["id"] for t in api.get("/threads").json()["data"]] == [thread["id"]]
