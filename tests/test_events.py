"""The event fold on the spec's example streams, and its merge rules."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from jupyter_runs.events import RunState, fold, merge_delta, message_text, step_tool_calls
from jupyter_runs.sse import decode
from jupyter_runs.wire import Event

EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "examples"


def events_of(name: str) -> list[Event]:
    return decode((EXAMPLES / f"{name}.sse").read_bytes())


def fold_all(events: list[Event], until: str | None = None) -> RunState:
    """Fold ``events``; with ``until``, stop before the first event of that name."""
    state = RunState()
    for event in events:
        if event.event == until:
            break
        fold(state, event.event, event.data)
    return state


# -- the four example streams --------------------------------------------------------------------


def test_create_run_stream_assembles_the_reply_then_keeps_the_final_message():
    events = events_of("createRun.streaming")
    streaming = fold_all(events, until="thread.message.completed")
    assert message_text(streaming.messages["msg_001"]) == "Hello today?"
    assert streaming.messages["msg_001"]["status"] == "in_progress"  # the created snapshot's fields stay

    state = fold_all(events)
    assert message_text(state.messages["msg_001"]) == "Hello! How can I assist you today?"
    assert state.run["status"] == "completed"
    assert state.run["usage"]["total_tokens"] == 31
    assert state.steps["step_001"]["status"] == "completed"
    assert state.steps["step_001"]["step_details"]["message_creation"]["message_id"] == "msg_001"
    assert state.done and state.error is None
    assert state.events == len(events)


def test_create_thread_and_run_stream_keeps_the_thread():
    state = fold_all(events_of("createThreadAndRun.streaming"))
    assert state.thread == {"id": "thread_123", "object": "thread", "created_at": 1710348075, "metadata": {}}
    assert state.run["status"] == "completed"
    assert list(state.messages) == ["msg_001"]
    assert message_text(state.messages["msg_001"]) == "Hello! How can I assist you today?"


def test_function_call_stream_assembles_arguments_and_requires_action():
    state = fold_all(events_of("createThreadAndRun.streaming-with-functions"))
    step = state.steps["step_001"]
    (call,) = step_tool_calls(step)
    assert call["id"] == "call_XXNp8YGaFrjrSjgqxtC8JJ1B"  # from the first delta, not replaced by later ones
    assert call["type"] == "function"  # repeated in every delta, but an identity key: not "functionfunction..."
    assert call["function"]["name"] == "get_current_weather"
    # the deltas that remain once the spec's "..." is removed, appended in order
    assert call["function"]["arguments"] == '{"locationahrenheit"}'

    assert state.run["status"] == "requires_action"
    (required,) = state.run["required_action"]["submit_tool_outputs"]["tool_calls"]
    assert required["id"] == call["id"]
    assert json.loads(required["function"]["arguments"]) == {"location": "San Francisco, CA", "unit": "fahrenheit"}
    assert state.done


def test_submit_tool_outputs_stream_continues_to_completion():
    events = events_of("submitToolOutputs.streaming")
    streaming = fold_all(events, until="thread.message.completed")
    assert message_text(streaming.messages["msg_002"]) == "The current weather sunny."

    state = fold_all(events)
    (call,) = step_tool_calls(state.steps["step_001"])
    assert call["function"]["output"] == "70 degrees and sunny."
    assert list(state.steps) == ["step_001", "step_002"]
    assert message_text(state.messages["msg_002"]) == "The current weather in San Francisco, CA is 70 degrees Fahrenheit and sunny."
    assert state.run["status"] == "completed"


# -- merge rules ---------------------------------------------------------------------------------


def test_strings_append_and_dicts_merge():
    target = {"a": "x", "d": {"k": "1", "keep": True}}
    merge_delta(target, {"a": "y", "d": {"k": "2", "new": 3}, "b": "z"})
    assert target == {"a": "xy", "d": {"k": "12", "keep": True, "new": 3}, "b": "z"}


def test_lists_merge_by_index_in_any_order():
    target = {"content": []}
    merge_delta(target, {"content": [{"index": 1, "type": "text", "text": {"value": "B"}}]})
    merge_delta(target, {"content": [{"index": 0, "type": "text", "text": {"value": "A"}}]})
    merge_delta(target, {"content": [{"index": 1, "type": "text", "text": {"value": "b"}},
                                     {"index": 0, "type": "text", "text": {"value": "a"}}]})
    by_index = {part["index"]: part["text"]["value"] for part in target["content"]}
    assert by_index == {0: "Aa", 1: "Bb"}
    assert len(target["content"]) == 2


def test_identity_keys_replace_instead_of_appending():
    target = {}
    for _ in range(3):
        merge_delta(target, {"id": "call_1", "type": "function", "index": 0, "object": "x", "status": "in_progress"})
    merge_delta(target, {"status": "completed"})
    assert target == {"id": "call_1", "type": "function", "index": 0, "object": "x", "status": "completed"}


def test_code_interpreter_input_appends_and_outputs_merge_by_index():
    state = RunState()
    def delta(tool_call):
        fold(state, "thread.run.step.delta", {"id": "step_1", "object": "thread.run.step.delta",
                                              "delta": {"step_details": {"type": "tool_calls", "tool_calls": [tool_call]}}})
    delta({"index": 0, "id": "ci_1", "type": "code_interpreter", "code_interpreter": {"input": "", "outputs": []}})
    delta({"index": 0, "type": "code_interpreter", "code_interpreter": {"input": "import math\n"}})
    delta({"index": 0, "type": "code_interpreter", "code_interpreter": {"input": "print(math.pi)"}})
    delta({"index": 0, "type": "code_interpreter",
           "code_interpreter": {"outputs": [{"index": 0, "type": "logs", "logs": "3.14"}]}})
    delta({"index": 0, "type": "code_interpreter",
           "code_interpreter": {"outputs": [{"index": 0, "type": "logs", "logs": "159"},
                                            {"index": 1, "type": "image", "image": {"file_id": "file_1"}}]}})
    (call,) = step_tool_calls(state.steps["step_1"])
    assert call["id"] == "ci_1"
    assert call["code_interpreter"]["input"] == "import math\nprint(math.pi)"
    assert call["code_interpreter"]["outputs"] == [
        {"index": 0, "type": "logs", "logs": "3.14159"},
        {"index": 1, "type": "image", "image": {"file_id": "file_1"}},
    ]


def test_annotations_merge_by_index():
    state = RunState()
    def delta(text):
        fold(state, "thread.message.delta", {"id": "msg_1", "delta": {"content": [{"index": 0, "type": "text", "text": text}]}})
    delta({"value": "See ", "annotations": []})
    delta({"value": "[1]", "annotations": [{"index": 0, "type": "file_citation", "text": "[1]",
                                            "start_index": 4, "end_index": 7, "file_citation": {"file_id": "f1"}}]})
    delta({"value": " and [2]", "annotations": [{"index": 1, "type": "file_path", "text": "[2]",
                                                 "start_index": 12, "end_index": 15}]})
    part = state.messages["msg_1"]["content"][0]
    assert part["text"]["value"] == "See [1] and [2]"
    assert [(a["index"], a["type"], a["start_index"]) for a in part["text"]["annotations"]] == [
        (0, "file_citation", 4), (1, "file_path", 12)]


def test_deltas_given_to_callbacks_are_never_changed_by_later_events():
    state = RunState()
    handed_out = []
    for event in events_of("createThreadAndRun.streaming-with-functions") + events_of("createRun.streaming"):
        fold(state, event.event, event.data)
        if event.event.endswith(".delta"):
            handed_out.append((event.data, copy.deepcopy(event.data)))
    assert len(handed_out) > 5
    for seen, as_it_was in handed_out:
        assert seen == as_it_was


def test_snapshot_events_replace_the_folded_snapshot():
    state = RunState()
    fold(state, "thread.message.delta", {"id": "m", "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "par"}}]}})
    final = {"id": "m", "object": "thread.message", "status": "completed",
             "content": [{"type": "text", "text": {"value": "partial, then whole", "annotations": []}}]}
    assert fold(state, "thread.message.completed", final) is final
    assert message_text(state.messages["m"]) == "partial, then whole"


@pytest.mark.parametrize("name", ["ping", "response.created", "thread.run.heartbeat", "thread.message.reaction"])
def test_unknown_events_are_ignored(name):
    state = fold_all(events_of("createRun.streaming"))
    before = copy.deepcopy((state.run, state.thread, state.messages, state.steps))
    assert fold(state, name, {"id": "msg_001", "status": "bogus"}) is None
    assert (state.run, state.thread, state.messages, state.steps) == before


def test_error_and_done_are_recorded():
    state = RunState()
    assert fold(state, "error", {"message": "boom"}) is None
    assert fold(state, "done", "[DONE]") is None
    assert state.error == {"message": "boom"} and state.done


# -- the fast paths for text and tool-argument deltas ----------------------------------------------


def _shaped(value: object) -> object:
    """``value`` with every dict as its list of items: equality that also compares key order."""
    if isinstance(value, dict):
        return [(k, _shaped(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_shaped(v) for v in value]
    return (type(value).__name__, value)


def _random_text_event(rng: random.Random, mid: str) -> dict:
    """A message delta, usually the common one-word shape, often something near it."""
    if rng.random() < 0.7:
        word = {"index": rng.choice([0, 0, 1]), "type": "text", "text": {"value": rng.choice(["w ", "x", ""])}}
        return {"id": mid, "object": "thread.message.delta", "delta": {"content": [word]}}
    part: dict = {"index": rng.choice([0, 0, 0, 1, 2, -1, True, 0.0, "0"]),
                  "type": rng.choice(["text", "text", "image_file", None, 3]),
                  "text": rng.choice([{"value": "w "}, {"value": "x"}, {"value": ""}, {"value": None},
                                      {"value": "v", "annotations": []}, {"annotations": [{"index": 0}]},
                                      "str", None, {"value": ["l"]}])}
    for key in list(part):
        if rng.random() < 0.08:
            del part[key]
    if rng.random() < 0.08:
        part = {"text": part.pop("text", None), **part}  # same keys, another order
    if rng.random() < 0.05:
        part["extra"] = {"k": [1]}
    content = [part] if rng.random() < 0.85 else rng.choice([[], [part, copy.deepcopy(part)], "c", None])
    delta: dict = {"content": content}
    if rng.random() < 0.05:
        delta["role"] = "assistant"
    if rng.random() < 0.03:
        delta = rng.choice([{}, {"content": [{"type": "text"}]}, {"status": "x", "content": content}])
    return {"id": mid, "object": "thread.message.delta", "delta": delta}


def _random_call_event(rng: random.Random, sid: str) -> dict:
    """A step delta, usually one tool call's next piece of arguments, often something near it."""
    if rng.random() < 0.7:
        call = {"index": rng.choice([0, 1]), "type": "function", "function": {"arguments": rng.choice(['{"a', "1"])}}
        return {"id": sid, "object": "thread.run.step.delta",
                "delta": {"step_details": {"type": "tool_calls", "tool_calls": [call]}}}
    function = rng.choice([{"arguments": '{"a'}, {"arguments": "1"}, {"arguments": ""}, {"arguments": None},
                           {"name": "f", "arguments": ""}, {"output": "o"}, {"arguments": {"x": 1}}, None])
    call: dict = {"index": rng.choice([0, 0, 1, 1, 2, -1, False, 1.0]),
                  "type": rng.choice(["function", "function", "code_interpreter", None]),
                  "function": function}
    if rng.random() < 0.1:
        call["id"] = f"call_{rng.randrange(3)}"
    for key in list(call):
        if rng.random() < 0.06:
            del call[key]
    details: dict = {"type": rng.choice(["tool_calls", "tool_calls", "message_creation", None]),
                     "tool_calls": [call] if rng.random() < 0.85 else rng.choice([[], [call, dict(call)], {}])}
    if rng.random() < 0.06:
        del details[rng.choice(["type", "tool_calls"])]
    delta: dict = {"step_details": details}
    if rng.random() < 0.04:
        delta["usage"] = {"total_tokens": 1}
    return {"id": sid, "object": "thread.run.step.delta", "delta": delta}


def _general_fold(state: RunState, event: str, data: dict) -> None:
    """What fold does for a delta, through the general merge only (the reference)."""
    if event == "thread.message.delta":
        target = state.messages.setdefault(data["id"], {"id": data["id"], "object": "thread.message", "content": []})
    else:
        target = state.steps.setdefault(data["id"], {"id": data["id"], "object": "thread.run.step"})
    merge_delta(target, data.get("delta") or {})


@pytest.mark.parametrize("seed", range(40))
def test_delta_fast_paths_fold_exactly_like_the_general_merge(seed):
    rng = random.Random(seed)
    fast, general = RunState(), RunState()
    starts = [
        ("thread.message.created", {"id": "msg_1", "object": "thread.message", "role": "assistant", "content": []}),
        ("thread.message.created", {"id": "msg_2", "object": "thread.message", "content": [
            {"type": "text", "index": 0, "text": {"annotations": [], "value": "hi "}}]}),
        ("thread.message.created", {"id": "msg_3", "object": "thread.message", "content": None}),
        ("thread.run.step.created", {"id": "step_1", "object": "thread.run.step",
                                     "step_details": {"type": "tool_calls", "tool_calls": []}}),
        ("thread.run.step.created", {"id": "step_2", "object": "thread.run.step", "step_details": {
            "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}],
            "type": "tool_calls"}}),
    ]
    for name, data in starts:
        fold(fast, name, copy.deepcopy(data))
        fold(general, name, copy.deepcopy(data))
    handed: list[tuple[dict, dict]] = []  # (delta as a callback saw it, a copy taken then)
    for _ in range(400):
        if rng.random() < 0.6:
            name, data = "thread.message.delta", _random_text_event(rng, rng.choice(["msg_1", "msg_2", "msg_3", "msg_4"]))
        else:
            name, data = "thread.run.step.delta", _random_call_event(rng, rng.choice(["step_1", "step_2", "step_3"]))
        outcomes = []
        for state, apply in ((fast, fold), (general, _general_fold)):
            try:
                apply(state, name, data)
                outcomes.append(None)
            except Exception as exc:  # odd shapes may fail; then both must fail alike
                outcomes.append(type(exc))
        assert outcomes[0] == outcomes[1]
        handed.append((data, copy.deepcopy(data)))
        assert _shaped(fast.messages) == _shaped(general.messages)
        assert _shaped(fast.steps) == _shaped(general.steps)
    assert all(data == seen for data, seen in handed)  # no delta was changed by a later event


def test_common_deltas_take_the_fast_path_and_grow_the_text():
    from jupyter_runs.events import _fold_arguments_delta, _fold_text_delta

    message = {"id": "m", "content": [{"index": 0, "type": "text", "text": {"value": "a", "annotations": []}}]}
    assert _fold_text_delta(message, {"content": [{"index": 0, "type": "text", "text": {"value": "b"}}]})
    assert message["content"][0]["text"] == {"value": "ab", "annotations": []}
    assert not _fold_text_delta(message, {"content": [{"index": 1, "type": "text", "text": {"value": "c"}}]})
    step = {"step_details": {"type": "tool_calls", "tool_calls": [
        {"index": 0, "id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}]}}
    assert _fold_arguments_delta(step, {"step_details": {"type": "tool_calls", "tool_calls": [
        {"index": 0, "type": "function", "function": {"arguments": "}"}}]}})
    assert step["step_details"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert message["content"][0]["text"]["value"] == "ab"  # untouched by a miss
