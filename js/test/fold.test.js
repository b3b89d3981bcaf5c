import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createStore, mergeDelta, messageText, stepToolCalls } from "../src/fold.js";
import { textDelta } from "./helpers.js";

// vitest runs from js/; the repaired spec examples live with the Python tests.
const examples = path.resolve(process.cwd(), "../tests/fixtures/examples") + "/";

function parseSse(text) {
  return text
    .split(/\n\n/)
    .map((block) => {
      const ev = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      return ev && data ? { event: ev[1], data: data[1] } : null;
    })
    .filter(Boolean);
}

describe("mergeDelta (same rules as jupyter_runs/events.py)", () => {
  it("appends strings, merges dicts, merges lists by index", () => {
    const target = { content: [{ index: 0, type: "text", text: { value: "Hel", annotations: [] } }] };
    mergeDelta(target, { content: [{ index: 0, type: "text", text: { value: "lo" } }] });
    mergeDelta(target, { content: [{ index: 1, type: "text", text: { value: "!" } }] });
    expect(target.content).toHaveLength(2);
    expect(target.content[0].text.value).toBe("Hello");
    expect(messageText(target)).toBe("Hello!");
  });

  it("replaces identity keys instead of appending them", () => {
    const target = { id: "call_1", type: "function", status: "in_progress", role: "assistant", index: 0 };
    mergeDelta(target, { id: "call_1", type: "function", status: "completed", role: "assistant", index: 0 });
    expect(target).toEqual({ id: "call_1", type: "function", status: "completed", role: "assistant", index: 0 });
  });

  it("finds list items by index when they are out of position and appends items without one", () => {
    const target = { list: [{ index: 3, v: "a" }], plain: [1] };
    mergeDelta(target, { list: [{ index: 3, v: "b" }, { index: 0, v: "x" }], plain: [2] });
    expect(target.list).toEqual([{ index: 3, v: "ab" }, { index: 0, v: "x" }]);
    expect(target.plain).toEqual([1, 2]);
  });

  it("never aliases the delta it merged", () => {
    const delta = { step_details: { tool_calls: [{ index: 0, function: { arguments: "{" } }] } };
    const target = {};
    mergeDelta(target, delta);
    mergeDelta(target, { step_details: { tool_calls: [{ index: 0, function: { arguments: "}" } }] } });
    expect(delta.step_details.tool_calls[0].function.arguments).toBe("{");
    expect(stepToolCalls({ ...target, step_details: { type: "tool_calls", ...target.step_details } })[0].function.arguments).toBe("{}");
  });

  it("folds the spec's example stream into the reply the deltas spell", () => {
    const events = parseSse(readFileSync(`${examples}createRun.streaming.sse`, "utf8"));
    const messages = {};
    let expected = "";
    for (const { event, data } of events) {
      if (event !== "thread.message.delta") continue;
      const d = JSON.parse(data);
      messages[d.id] ||= { id: d.id, content: [] };
      mergeDelta(messages[d.id], d.delta);
      expected += d.delta.content.map((p) => p.text?.value || "").join("");
    }
    const [msg] = Object.values(messages);
    expect(expected.length).toBeGreaterThan(0);
    expect(messageText(msg)).toBe(expected);
  });
});

describe("createStore", () => {
  const snapshot = (seq, text) => ({
    seq,
    run: { id: "run_1", status: "in_progress" },
    messages: [{ id: "msg_1", role: "assistant", status: "in_progress", content: [{ index: 0, type: "text", text: { value: text } }] }],
    steps: [],
  });

  it("ignores deltas already inside the snapshot (catch-up without duplicated text)", () => {
    const store = createStore();
    store.apply({ type: "deltas", seq: 1, deltas: [textDelta("msg_1", "Hello")] });
    store.apply({ type: "deltas", seq: 2, deltas: [textDelta("msg_1", " wor")] });
    // A second view / reload: the snapshot already holds seq 1..2; seq 2 arrives again late.
    store.reset(snapshot(2, "Hello wor"));
    expect(store.apply({ type: "deltas", seq: 2, deltas: [textDelta("msg_1", " wor")] })).toBe(false);
    store.apply({ type: "deltas", seq: 3, deltas: [textDelta("msg_1", "ld")] });
    expect(messageText(store.state.messages[0])).toBe("Hello world");
    expect(store.state.seq).toBe(3);
  });

  it("asks for a fresh snapshot on a gap and replays held batches after it", () => {
    const gaps = [];
    const store = createStore({ onGap: (have, got) => gaps.push([have, got]) });
    store.reset(snapshot(4, "abc"));
    expect(store.apply({ type: "deltas", seq: 7, deltas: [textDelta("msg_1", "g")] })).toBe(false);
    expect(gaps).toEqual([[4, 7]]);
    expect(messageText(store.state.messages[0])).toBe("abc");
    store.reset(snapshot(6, "abcdef"));
    expect(messageText(store.state.messages[0])).toBe("abcdefg");
    expect(store.state.seq).toBe(7);
  });

  it("keeps a delta that was applied before an older snapshot landed", () => {
    const store = createStore();
    store.reset(snapshot(1, "Hello"));
    store.apply({ type: "deltas", seq: 2, deltas: [textDelta("msg_1", " there")] });
    store.reset(snapshot(1, "Hello")); // the state update sent before seq 2, applied late
    expect(messageText(store.state.messages[0])).toBe("Hello there");
    expect(store.state.seq).toBe(2);
    store.reset(snapshot(2, "Hello there")); // and a snapshot that includes it: no doubling
    expect(messageText(store.state.messages[0])).toBe("Hello there");
  });

  it("creates a message it has not seen yet from its first delta", () => {
    const store = createStore();
    store.apply({ type: "deltas", seq: 1, t: 1.5, deltas: [textDelta("msg_9", "Hi")] });
    expect(store.state.messages[0]).toMatchObject({ id: "msg_9", role: "assistant" });
    expect(store.state.elapsed).toBe(1.5);
  });

  it("folds streamed tool-call arguments into the step", () => {
    const store = createStore();
    store.reset({
      seq: 0,
      steps: [{ id: "step_1", type: "tool_calls", status: "in_progress",
        step_details: { type: "tool_calls", tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }] } }],
    });
    const d = (seq, s) => ({ type: "deltas", seq, deltas: [{ kind: "step", id: "step_1", delta: { step_details: { type: "tool_calls", tool_calls: [{ index: 0, type: "function", function: { arguments: s } }] } } }] });
    store.apply(d(1, '{"region"'));
    store.apply(d(2, ': "north"}'));
    expect(stepToolCalls(store.state.steps[0])[0].function.arguments).toBe('{"region": "north"}');
  });
});
