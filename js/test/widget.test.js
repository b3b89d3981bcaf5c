import { afterEach, describe, expect, it } from "vitest";
import { mountRunView } from "../src/view.js";
import { createStore } from "../src/fold.js";
import widgetFactory from "../src/widget.js";
import { fakeModel, manualFrames, textDelta } from "./helpers.js";

afterEach(() => {
  document.body.textContent = "";
  delete window.__jrPwned;
});

function mount(store, extra = {}) {
  const frames = manualFrames();
  const el = document.createElement("div");
  document.body.append(el);
  const view = mountRunView(el, store, { ...frames, ...extra });
  return { el, view, frames };
}

const started = (seq = 0) => ({
  seq,
  run: { id: "run_1", status: "in_progress", model: "scripted:demo" },
  messages: [{ id: "msg_1", role: "assistant", status: "in_progress", content: [] }],
  steps: [],
  prompt: "Which region grew fastest?",
});

describe("run view", () => {
  it("batches many delta batches into one paint per animation frame", () => {
    const store = createStore();
    store.reset(started());
    const { el, view, frames } = mount(store);
    frames.flush();
    const before = view.frames;
    for (let i = 1; i <= 200; i++) store.apply({ type: "deltas", seq: i, deltas: [textDelta("msg_1", `w${i} `)] });
    expect(frames.pending).toBe(1);
    frames.flush();
    expect(view.frames).toBe(before + 1);
    const reply = el.querySelector('.jr-message[data-role="assistant"]');
    expect(reply.textContent).toContain("w1 w2");
    expect(reply.textContent).toContain("w200");
    expect(reply.querySelector(".jr-caret")).not.toBeNull();
  });

  it("shows the stable hooks: status, roles, steps, tool calls with args and output", () => {
    const store = createStore();
    store.reset({
      seq: 0,
      prompt: "hi",
      run: { id: "run_1", status: "completed", usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } },
      messages: [{ id: "msg_1", role: "assistant", status: "completed", content: [{ index: 0, type: "text", text: { value: "Done **now**" } }] }],
      steps: [
        { id: "s1", type: "tool_calls", status: "completed", step_details: { type: "tool_calls", tool_calls: [
          { index: 0, id: "c1", type: "function", function: { name: "load_sales", arguments: '{"region":"north"}', output: "[1, 2]" } }] } },
        { id: "s2", type: "message_creation", status: "completed", step_details: { type: "message_creation", message_creation: { message_id: "msg_1" } } },
      ],
      records: { c1: { status: "completed", stdout: "loading north\n", started_at: 0.1, ended_at: 0.4 } },
      timings: { s1: [0, 0.5], s2: [0.5, 1] },
      elapsed: 1,
    });
    const { el, frames } = mount(store);
    frames.flush();
    expect(el.querySelector(".jr-run").dataset.status).toBe("completed");
    expect(el.querySelector('.jr-message[data-role="user"]').textContent).toContain("hi");
    expect(el.querySelector('.jr-message[data-role="assistant"] strong').textContent).toBe("now");
    expect(el.querySelector('.jr-message[data-role="assistant"] .jr-caret')).toBeNull();
    expect(el.querySelectorAll(".jr-step")).toHaveLength(2);
    expect(el.querySelector('.jr-step[data-type="tool_calls"][data-status="completed"]')).not.toBeNull();
    const call = el.querySelector('.jr-tool-call[data-name="load_sales"]');
    expect(JSON.parse(call.querySelector(".jr-tool-args").textContent)).toEqual({ region: "north" });
    expect(call.querySelector(".jr-tool-args").textContent).toBe('{ "region": "north" }'); // short: one line
    expect(call.querySelector(".jr-tool-output").textContent).toContain("[1, 2]");
    expect(call.querySelector(".jr-tool-stdout").textContent).toContain("loading north");
    expect(el.querySelector(".jr-usage").textContent).toContain("12 tokens");
    expect(el.querySelector(".jr-stop").hidden).toBe(true);
  });

  it("shows no Stop button when nothing in the kernel listens to it", () => {
    const store = createStore();
    store.reset(started());
    const { el, frames } = mount(store);
    frames.flush();
    expect(el.querySelector(".jr-stop").hidden).toBe(true);
  });

  it("inserts tool arguments and outputs as text, never HTML", () => {
    const store = createStore();
    store.reset({
      seq: 0,
      run: { id: "r", status: "completed" },
      steps: [{ id: "s1", type: "tool_calls", status: "completed", step_details: { type: "tool_calls", tool_calls: [
        { index: 0, id: "c1", type: "function", function: { name: "f", arguments: '"<img src=x onerror=window.__jrPwned=1>"', output: "<script>window.__jrPwned=1</script>" } }] } }],
    });
    const { el, frames } = mount(store);
    frames.flush();
    expect(el.querySelector(".jr-tool-call img, .jr-tool-call script")).toBeNull();
    expect(el.querySelector(".jr-tool-output").textContent).toContain("<script>");
    expect(window.__jrPwned).toBeUndefined();
  });

  it("sends stop and approval answers, refusing invalid JSON", () => {
    const store = createStore();
    const s = started();
    s.approvals = [{ id: "c1", name: "drop_table", arguments: '{"name": "t"}', status: "pending" }];
    s.steps = [{ id: "s1", type: "tool_calls", status: "in_progress", step_details: { type: "tool_calls", tool_calls: [
      { index: 0, id: "c1", type: "function", function: { name: "drop_table", arguments: '{"name": "t"}' } }] } }];
    s.run.status = "requires_action";
    s.stoppable = true;
    store.reset(s);
    const sent = [];
    const { el, frames } = mount(store, {
      onStop: () => sent.push(["stop"]),
      onApprove: (id, args) => sent.push(["approve", id, JSON.parse(args)]),
      onDeny: (id) => sent.push(["deny", id]),
    });
    frames.flush();
    expect(el.querySelector(".jr-stop").hidden).toBe(false);
    expect(el.querySelector('.jr-tool-call[data-name="drop_table"]').dataset.status).toBe("awaiting approval");
    const args = el.querySelector(".jr-approval-args");
    args.value = "{not json";
    el.querySelector(".jr-approve").click();
    expect(sent).toEqual([]);
    expect(el.querySelector(".jr-approval-problem").textContent).toMatch(/not valid JSON/);
    args.value = '{"name": "t2"}';
    el.querySelector(".jr-approve").click();
    el.querySelector(".jr-stop").click();
    expect(sent).toEqual([["approve", "c1", { name: "t2" }], ["stop"]]);
    expect(el.querySelector(".jr-stop").disabled).toBe(true);
  });
});

describe("anywidget module", () => {
  it("registers its listener in initialize so deltas before any view are kept", async () => {
    const model = fakeModel({ ...started(), meta: { seq: 0 } });
    const widget = widgetFactory();
    widget.initialize({ model });
    model.emit({ type: "deltas", seq: 1, deltas: [textDelta("msg_1", "early ")] });
    const el = document.createElement("div");
    document.body.append(el);
    const cleanup = widget.render({ model, el });
    model.emit({ type: "deltas", seq: 2, deltas: [textDelta("msg_1", "late")] });
    await new Promise((r) => requestAnimationFrame(r));
    await new Promise((r) => requestAnimationFrame(r));
    expect(el.querySelector('.jr-message[data-role="assistant"]').textContent).toContain("early late");
    // A second view of the same model shows the same text once.
    const el2 = document.createElement("div");
    document.body.append(el2);
    widget.render({ model, el: el2 });
    await new Promise((r) => requestAnimationFrame(r));
    expect(el2.querySelector('.jr-message[data-role="assistant"] .jr-md').textContent.trim()).toBe("early late");
    cleanup();
    expect(el.querySelector(".jr-run")).toBeNull();
  });

  it("rebuilds from a newer snapshot and skips deltas it already holds", async () => {
    const model = fakeModel({ ...started(), meta: { seq: 0 } });
    const widget = widgetFactory();
    widget.initialize({ model });
    model.emit({ type: "deltas", seq: 1, deltas: [textDelta("msg_1", "Hello")] });
    const snap = started();
    snap.messages[0].content = [{ index: 0, type: "text", text: { value: "Hello world" } }];
    model.set({ messages: snap.messages, meta: { seq: 2 } });
    model.emit({ type: "deltas", seq: 2, deltas: [textDelta("msg_1", " world")] });
    model.emit({ type: "deltas", seq: 3, deltas: [textDelta("msg_1", "!")] });
    const el = document.createElement("div");
    document.body.append(el);
    widget.render({ model, el });
    await new Promise((r) => requestAnimationFrame(r));
    expect(el.querySelector('.jr-message[data-role="assistant"] .jr-md').textContent.trim()).toBe("Hello world!");
  });

  it("asks the kernel for a snapshot when it joins after missed deltas", () => {
    const model = fakeModel({ ...started(), meta: { seq: 3 } });
    const widget = widgetFactory();
    widget.initialize({ model });
    model.emit({ type: "deltas", seq: 6, deltas: [textDelta("msg_1", "x")] });
    model.emit({ type: "deltas", seq: 7, deltas: [textDelta("msg_1", "y")] });
    expect(model.sent).toEqual([{ type: "sync" }]);
  });
});

describe("tool arguments", () => {
  it("pretty-prints long JSON, keeps short JSON on one line and shows partial JSON raw", async () => {
    const { prettyArgs } = await import("../src/timeline.js");
    expect(prettyArgs('{"a":1}')).toBe('{ "a": 1 }');
    const long = { rows: Array.from({ length: 12 }, (_, i) => `row-${i}`) };
    expect(prettyArgs(JSON.stringify(long))).toContain('\n  "rows": [\n');
    expect(prettyArgs('{"region": "no')).toBe('{"region": "no');
  });
});
