"""SSE decoding: the WHATWG rules, the Assistants additions, and the spec examples' defects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jupyter_runs.errors import StreamError
from jupyter_runs.sse import SSEDecoder, aiter_events, decode, iter_events
from jupyter_runs.wire import Event

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "examples"
ORIGINALS = EXAMPLES / "spec"  # verbatim copies of the spec's examples, defects included
NAMES = [
    "createRun.streaming",
    "createThreadAndRun.streaming",
    "createThreadAndRun.streaming-with-functions",
    "submitToolOutputs.streaming",
]


def repaired(name: str) -> bytes:
    return (EXAMPLES / f"{name}.sse").read_bytes()


def original(name: str) -> bytes:
    return (ORIGINALS / f"{name}.sse").read_bytes()


def names(events: list[Event]) -> list[str]:
    return [e.event for e in events]


# -- WHATWG line and field rules ----------------------------------------------------------------


def test_multiline_data_is_joined_with_newlines():
    events = decode(b'event: x\ndata: {"text":\ndata:  "hi",\ndata: "n": 1}\n\n')
    assert events == [Event("x", {"text": "hi", "n": 1})]
    with pytest.raises(StreamError) as info:
        decode(b"event: x\ndata: one\ndata: two\n\n")
    assert info.value.data == "one\ntwo"


def test_comments_are_ignored_anywhere():
    body = b': keep-alive\nevent: a\n:another\ndata: {"n":1}\n\n:\n\n'
    assert decode(body) == [Event("a", {"n": 1})]


def test_id_and_retry_fields_are_kept_on_the_decoder():
    decoder = SSEDecoder()
    events = list(decoder.iter([b'id: 7\nretry: 1500\nevent: a\ndata: {}\n\nid: 8\0x\nretry: 2s\n\n']))
    assert events == [Event("a", {})]
    assert decoder.last_event_id == "7"  # an id with NUL is ignored
    assert decoder.retry == 1500  # a retry that is not all digits is ignored


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending_decodes_the_same(eol):
    body = b"event: a" + eol + b'data: {"n":1}' + eol + eol + b"event: b" + eol + b"data: 2" + eol + eol
    assert decode(body) == [Event("a", {"n": 1}), Event("b", 2)]


def test_crlf_split_across_chunks_is_one_line_ending():
    chunks = [b"event: a\r", b"\ndata: 1\r", b"\n\r", b"\nevent: b\r", b"\ndata: 2\r\n\r\n"]
    assert list(iter_events(chunks)) == [Event("a", 1), Event("b", 2)]


def test_byte_by_byte_chunks_give_the_same_events_as_one_chunk():
    body = repaired("submitToolOutputs.streaming").replace(b"weather", "wétter ☀".encode())
    whole = decode(body)
    assert list(iter_events(body[i : i + 1] for i in range(len(body)))) == whole
    assert any("wétter ☀" in json.dumps(e.data, ensure_ascii=False) for e in whole)


def test_final_event_without_blank_line_is_dispatched():
    assert decode(b'event: a\ndata: {"n":1}') == [Event("a", {"n": 1})]
    assert decode(b'event: a\ndata: {"n":1}\n') == [Event("a", {"n": 1})]


def test_leading_bom_is_dropped():
    assert decode("\ufeffevent: a\ndata: 1\n\n".encode()) == [Event("a", 1)]


def test_field_without_space_or_colon():
    assert decode(b"event:a\ndata:1\n\n") == [Event("a", 1)]
    # "data" alone is a data line with an empty value, so the two lines join to "\n5"
    assert decode(b"event: a\ndata\ndata: 5\n\n") == [Event("a", 5)]


def test_unnamed_event_is_a_message_event():
    assert decode(b'data: {"choices": []}\n\n') == [Event("message", {"choices": []})]


def test_event_without_data_is_dropped_unless_strict():
    assert decode(b"event: ping\n\nevent: a\ndata: 1\n\n", strict=False) == [Event("a", 1)]
    with pytest.raises(StreamError, match=r"'ping' has no data: line"):
        decode(b"event: ping\n\nevent: a\ndata: 1\n\n")


def test_unknown_field_is_an_error_only_when_strict():
    body = b"event: a\nfoo: bar\ndata: 1\n\n"
    assert decode(body, strict=False) == [Event("a", 1)]
    with pytest.raises(StreamError, match=r"malformed SSE line 2 in SSE event 'a': 'foo: bar'"):
        decode(body)


# -- Assistants additions ------------------------------------------------------------------------


def test_done_ends_the_stream_and_later_bytes_are_ignored():
    decoder = SSEDecoder()
    events = list(decoder.iter([b"event: a\ndata: 1\n\nevent: done\ndata: [DONE]\n\n", b"garbage\n"]))
    assert events == [Event("a", 1), Event("done", "[DONE]")]
    assert decoder.done
    assert decode(b"data: [DONE]\n\ndata: 2\n\n") == [Event("done", "[DONE]")]


def test_invalid_json_names_the_event_and_shows_an_excerpt():
    with pytest.raises(StreamError) as info:
        decode(b'event: a\ndata: {"n":1}\n\nevent: thread.run.created\ndata: {"id":"run_1"}}\n\n')
    err = info.value
    assert err.event == "thread.run.created"
    assert "invalid JSON" in str(err) and "'thread.run.created'" in str(err)
    assert "SSE line 5" in str(err)
    assert '{"id":"run_1"}}' in str(err)


def test_excerpt_of_a_long_payload_is_short():
    payload = '{"text": "' + "x" * 5000 + '"}}'
    with pytest.raises(StreamError) as info:
        decode(f"event: a\ndata: {payload}\n\n")
    assert len(str(info.value)) < 300
    assert str(info.value).count("x") < 100


@pytest.mark.parametrize(
    "data",
    [
        {"error": {"message": "The server had an error", "code": "server_error", "type": "server_error"}},
        {"code": "server_error", "message": "The server had an error"},
    ],
    ids=["wrapped", "bare"],
)
def test_error_event_raises_with_message_and_code(data):
    body = sse("thread.run.created", {"id": "run_1"}) + sse("error", data)
    decoder = SSEDecoder()
    seen = []
    with pytest.raises(StreamError) as info:
        for event in decoder.iter([body]):
            seen.append(event)
    assert seen == [Event("thread.run.created", {"id": "run_1"})]  # events before it arrive first
    assert info.value.message == "The server had an error"
    assert info.value.code == "server_error"
    assert info.value.event == "error"


def test_error_event_without_message_still_says_what_came():
    with pytest.raises(StreamError, match="error event"):
        decode(sse("error", {"code": "x"}))


def test_unnamed_error_object_raises():
    with pytest.raises(StreamError, match="overloaded"):
        decode(b'data: {"error": {"message": "overloaded", "code": "429"}}\n\n')


def test_unknown_event_name_is_passed_on():
    assert decode(sse("thread.run.heartbeat", {"t": 1})) == [Event("thread.run.heartbeat", {"t": 1})]


async def test_async_iterator_of_byte_chunks():
    body = repaired("createRun.streaming")

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 97):
            yield body[i : i + 97]

    events = [e async for e in aiter_events(chunks())]
    assert events == decode(body)
    assert events[-1] == Event("done", "[DONE]")


def test_many_events_in_big_chunks():
    one = sse("thread.message.delta", {"id": "m", "delta": {"content": [{"index": 0, "text": {"value": "w"}}]}})
    body = one * 20_000 + b"event: done\ndata: [DONE]\n\n"
    events = list(iter_events(body[i : i + 65536] for i in range(0, len(body), 65536)))
    assert len(events) == 20_001
    assert events[12_345].data["delta"]["content"][0]["text"]["value"] == "w"


# -- the spec's example streams ------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_repaired_example_decodes_clean(name):
    events = decode(repaired(name))
    assert events[-1] == Event("done", "[DONE]")
    assert all(isinstance(e.data, dict) for e in events[:-1])
    assert any(e.event.startswith("thread.run.") for e in events)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("createRun.streaming", r"invalid JSON in the data of SSE event 'thread.run.created'.*Extra data"),
        ("createThreadAndRun.streaming", r"malformed SSE line 28: '\.\.\.' is not an SSE field"),
        ("createThreadAndRun.streaming-with-functions", r"invalid JSON .* 'thread.run.created'"),
        ("submitToolOutputs.streaming", r"invalid JSON .* 'thread.run.queued'"),
    ],
)
def test_defective_example_gives_a_clear_error(name, message):
    with pytest.raises(StreamError, match=message):
        decode(original(name))


def test_ellipsis_line_alone_is_an_error():
    body = repaired("createRun.streaming").replace(b"\n\nevent: thread.message.delta", b"\n\n...\n\nevent: thread.message.delta", 1)
    with pytest.raises(StreamError, match=r"'\.\.\.' is not an SSE field"):
        decode(body)
    assert decode(body, strict=False) == decode(repaired("createRun.streaming"))


def test_extra_brace_alone_is_an_error():
    body = repaired("submitToolOutputs.streaming").replace(
        b'"parallel_tool_calls":true}\n\nevent: done', b'"parallel_tool_calls":true}}\n\nevent: done'
    )
    with pytest.raises(StreamError) as info:
        decode(body)
    assert info.value.event == "thread.run.completed"
    assert "Extra data" in str(info.value)


def test_missing_data_prefix_alone_is_an_error():
    good = repaired("createThreadAndRun.streaming")
    body = good.replace(b'event: thread.run.completed\ndata: {"id"', b'event: thread.run.completed\n{"id"')
    assert body != good
    with pytest.raises(StreamError, match=r"in SSE event 'thread.run.completed': '\{\"id\":"):
        decode(body)
    # Plain WHATWG would silently lose the run's final event; that is why strict is the default.
    lenient = names(decode(body, strict=False))
    assert "thread.run.completed" not in lenient
    assert lenient[-1] == "done"


def sse(event: str, data: object) -> bytes:
    return Event(event, data).to_sse()


def test_take_appends_the_events_before_a_fault_then_raises():
    chunk = b'event: a\ndata: {"n":1}\n\nevent: b\ndata: {"n":2}\n\nbogus line\n\n'
    out: list = []
    with pytest.raises(StreamError, match="malformed SSE line 7"):
        SSEDecoder().take(chunk, out)
    assert [(e.event, e.data) for e in out] == [("a", {"n": 1}), ("b", {"n": 2})]
    seen = []
    with pytest.raises(StreamError, match="malformed SSE line 7"):
        for event in SSEDecoder().feed(chunk):
            seen.append(event)
    assert seen == out
