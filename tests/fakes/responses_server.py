"""A fake Responses API server (``POST /v1/responses``) on a real loopback socket.

The same raw HTTP server as :mod:`tests.fakes.chat_server` (so it can drop a connection
mid-body, answer 429 with ``retry-after``, or trickle keep-alives), speaking the Responses
streaming protocol: named SSE events (``event: response.output_text.delta``) whose data carries the
same ``type`` and a ``sequence_number``, no ``[DONE]``, and a terminal ``response.completed`` /
``response.incomplete`` / ``response.failed``. The builders below follow the streaming event
reference (the order OpenAI sends: ``output_item.added``, parts, deltas, ``.done`` events,
``output_item.done``); ``tests/test_responses.py`` checks every event they make against
openai-python's own ``ResponseStreamEvent`` types, so the fake cannot drift from the reference.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.chat_server import FakeChatServer, Reply, error_reply

MODEL = "fake-reasoner"
__all__ = ["FakeResponsesServer", "Reply", "error_reply", "text_reply", "tool_calls_reply",
           "failed_reply", "incomplete_reply", "error_event_reply", "Events"]


class FakeResponsesServer(FakeChatServer):
    """``POST /v1/responses`` answering the queued replies; everything else is a 404."""

    route = "/v1/responses"

    def __init__(self) -> None:
        super().__init__()
        self.default = text_reply("Hello", " from", " the", " fake", " model.")

    def frame(self, item: Any) -> str:
        if isinstance(item, str):
            return item if item.endswith("\n\n") else f"data: {item}\n\n"
        return f"event: {item['type']}\ndata: {json.dumps(item)}\n\n"


def _response(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
              **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_fake1", "object": "response", "created_at": 1, "status": status,
        "model": MODEL, "output": output, "usage": usage, "error": None,
        "incomplete_details": None, "instructions": None, "metadata": {},
        "parallel_tool_calls": True, "temperature": 1.0, "top_p": 1.0, "tool_choice": "auto",
        "tools": [], "store": False, **extra,
    }


def _usage(prompt: int, completion: int, reasoning: int = 0, cached: int = 0) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


class Events:
    """Builds one response's event stream in order, numbering the events."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []
        self.add("response.created", response=_response("in_progress", []))
        self.add("response.in_progress", response=_response("in_progress", []))

    def add(self, type: str, **fields: Any) -> None:
        self.events.append({"type": type, "sequence_number": len(self.events), **fields})

    def reasoning(self, *parts: list[str]) -> Events:
        """A reasoning item whose summary has one part per argument, each streamed in pieces."""
        index, item_id = len(self.output), f"rs_{len(self.output)}"
        self.add("response.output_item.added", output_index=index,
                 item={"id": item_id, "type": "reasoning", "summary": []})
        summary = []
        for k, pieces in enumerate(parts):
            self.add("response.reasoning_summary_part.added", item_id=item_id, output_index=index,
                     summary_index=k, part={"type": "summary_text", "text": ""})
            for piece in pieces:
                self.add("response.reasoning_summary_text.delta", item_id=item_id,
                         output_index=index, summary_index=k, delta=piece)
            text = "".join(pieces)
            self.add("response.reasoning_summary_text.done", item_id=item_id, output_index=index,
                     summary_index=k, text=text)
            self.add("response.reasoning_summary_part.done", item_id=item_id, output_index=index,
                     summary_index=k, part={"type": "summary_text", "text": text})
            summary.append({"type": "summary_text", "text": text})
        item = {"id": item_id, "type": "reasoning", "summary": summary}
        self.add("response.output_item.done", output_index=index, item=item)
        self.output.append(item)
        return self

    def text(self, *pieces: str, done: bool = True) -> Events:
        index, item_id = len(self.output), f"msg_{len(self.output)}"
        self.add("response.output_item.added", output_index=index,
                 item={"id": item_id, "type": "message", "role": "assistant",
                       "status": "in_progress", "content": []})
        self.add("response.content_part.added", item_id=item_id, output_index=index,
                 content_index=0, part={"type": "output_text", "text": "", "annotations": []})
        for piece in pieces:
            self.add("response.output_text.delta", item_id=item_id, output_index=index,
                     content_index=0, delta=piece, logprobs=[])
        if not done:
            return self
        text = "".join(pieces)
        part = {"type": "output_text", "text": text, "annotations": []}
        self.add("response.output_text.done", item_id=item_id, output_index=index,
                 content_index=0, text=text, logprobs=[])
        self.add("response.content_part.done", item_id=item_id, output_index=index,
                 content_index=0, part=part)
        item = {"id": item_id, "type": "message", "role": "assistant", "status": "completed",
                "content": [part]}
        self.add("response.output_item.done", output_index=index, item=item)
        self.output.append(item)
        return self

    def calls(self, calls: list[tuple[str, str, str]], split: int = 2,
              interleave: bool = False) -> Events:
        """Function calls ``(call_id, name, arguments)``, arguments in ``split`` pieces. With
        ``interleave`` every call is added first and their argument pieces alternate, as a model
        streaming parallel calls may."""
        started = []
        for call_id, name, args in calls:
            index = len(self.output) + len(started)
            item_id = f"fc_{index}"
            step = max(1, -(-len(args) // split))
            pieces = [args[i:i + step] for i in range(0, len(args), step)] or [""]
            started.append((index, item_id, call_id, name, args, pieces))
        queue: list[tuple[int, str, str]] = []

        def add_item(index: int, item_id: str, call_id: str, name: str) -> None:
            self.add("response.output_item.added", output_index=index,
                     item={"id": item_id, "type": "function_call", "call_id": call_id,
                           "name": name, "arguments": "", "status": "in_progress"})

        def finish(index: int, item_id: str, call_id: str, name: str, args: str) -> None:
            self.add("response.function_call_arguments.done", item_id=item_id,
                     output_index=index, arguments=args)
            item = {"id": item_id, "type": "function_call", "call_id": call_id, "name": name,
                    "arguments": args, "status": "completed"}
            self.add("response.output_item.done", output_index=index, item=item)
            self.output.append(item)

        if interleave:
            for index, item_id, call_id, name, _args, _pieces in started:
                add_item(index, item_id, call_id, name)
            longest = max(len(p) for *_x, p in started)
            for k in range(longest):
                for index, item_id, _c, _n, _a, pieces in started:
                    if k < len(pieces):
                        queue.append((index, item_id, pieces[k]))
            for index, item_id, piece in queue:
                self.add("response.function_call_arguments.delta", item_id=item_id,
                         output_index=index, delta=piece)
            for index, item_id, call_id, name, args, _pieces in started:
                finish(index, item_id, call_id, name, args)
            return self
        for index, item_id, call_id, name, args, pieces in started:
            add_item(index, item_id, call_id, name)
            for piece in pieces:
                self.add("response.function_call_arguments.delta", item_id=item_id,
                         output_index=index, delta=piece)
            finish(index, item_id, call_id, name, args)
        return self

    def completed(self, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        self.add("response.completed", response=_response("completed", self.output, usage))
        return self.events

    def incomplete(self, reason: str, usage: dict[str, Any] | None) -> list[dict[str, Any]]:
        self.add("response.incomplete", response=_response(
            "incomplete", self.output, usage, incomplete_details={"reason": reason}))
        return self.events

    def failed(self, code: str, message: str) -> list[dict[str, Any]]:
        self.add("response.failed", response=_response(
            "failed", self.output, None, error={"code": code, "message": message}))
        return self.events


def text_reply(*pieces: str, usage: tuple[int, ...] | None = (7, 3),
               reasoning: list[list[str]] | None = None, delay: float = 0.0) -> Reply:
    """A streamed text answer; ``reasoning`` summary parts (each a list of pieces) stream first.
    ``usage``: ``(input, output[, reasoning[, cached]])``."""
    events = Events()
    if reasoning:
        events.reasoning(*reasoning)
    events.text(*pieces)
    return Reply(events.completed(_usage(*usage) if usage else None), end="eof", delay=delay)


def tool_calls_reply(calls: list[tuple[str, str, str]], *, split: int = 2, interleave: bool = False,
                     usage: tuple[int, ...] | None = (11, 5),
                     reasoning: list[list[str]] | None = None, **_chat_only: Any) -> Reply:
    """Streamed function calls ``(call_id, name, arguments_json)``. Accepts (and ignores) the
    Chat-only ``index_zero`` so run-flow tests call both fakes alike."""
    events = Events()
    if reasoning:
        events.reasoning(*reasoning)
    events.calls(calls, split=split, interleave=interleave)
    return Reply(events.completed(_usage(*usage) if usage else None), end="eof")


def incomplete_reply(*pieces: str, reason: str = "max_output_tokens",
                     usage: tuple[int, ...] = (7, 16)) -> Reply:
    events = Events().text(*pieces, done=False)
    return Reply(events.incomplete(reason, _usage(*usage)), end="eof")


def failed_reply(message: str, code: str = "server_error", *pieces: str) -> Reply:
    events = Events()
    if pieces:
        events.text(*pieces, done=False)
    return Reply(events.failed(code, message), end="eof")


def error_event_reply(message: str, code: str = "server_error") -> Reply:
    """A stream that reports an ``error`` event (how a server says it broke mid-stream)."""
    events = Events()
    events.add("error", code=code, message=message, param=None)
    return Reply(events.events, end="eof")
