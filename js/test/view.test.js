// The run view's reading aids: folding steps, clipping long outputs, copy buttons, error cards,
// following the stream, and the end of a stream patching the DOM in place.
import { afterEach, describe, expect, it, vi } from "vitest";
import { mountRunView } from "../src/view.js";
import { createStore } from "../src/fold.js";
import { createFollower } from "../src/follow.js";
import { CLIP_CHARS } from "../src/timeline.js";
import { manualFrames, textDelta } from "./helpers.js";

afterEach(() => {
  document.body.textContent = "";
  vi.restoreAllMocks();
});

function mount(snapshot) {
  const store = createStore();
  store.reset(snapshot);
  const frames = manualFrames();
  const el = document.createElement("div");
  document.body.append(el);
  const view = mountRunView(el, store, frames);
  frames.flush();
  return { el, view, frames, store };
}

const call = (i, extra = {}) => ({
  index: i, id: `c${i}`, type: "function",
  function: { name: i % 2 ? "percent_change" : "load_sales", arguments: JSON.stringify({ region: `r${i}` }), output: `[${i}]`, ...extra },
});
const toolStep = (id, status, calls) => ({ id, type: "tool_calls", status, step_details: { type: "tool_calls", tool_calls: calls } });
const replyStep = (status) => ({ id: "s_reply", type: "message_creation", status, step_details: { type: "message_creation", message_creation: { message_id: "m1" } } });

function snapshot({ status = "in_progress", steps = [], records = {}, approvals = [], text = "", msgStatus = "in_progress" } = {}) {
  return {
    seq: 0,
    run: { id: "r1", status, model: "scripted:x", usage: status === "completed" ? { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } : null },
    prompt: "go",
    messages: text ? [{ id: "m1", role: "assistant", status: msgStatus, content: [{ index: 0, type: "text", text: { value: text } }] }] : [],
    steps,
    records,
    approvals,
    timings: Object.fromEntries(steps.map((s, i) => [s.id, [i, i + 0.5]])),
    elapsed: 3,
  };
}

describe("folding steps", () => {
  it("folds a finished tool step to one summary line and unfolds it on click", () => {
    const calls = Array.from({ length: 30 }, (_, i) => call(i));
    const { el, frames, store } = mount(snapshot({ steps: [toolStep("s1", "completed", calls), replyStep("in_progress")], text: "Hi" }));
    const step = el.querySelector('.jr-step[data-type="tool_calls"]');
    expect(step.tagName).toBe("DETAILS");
    expect(step.open).toBe(false);
    const summary = step.querySelector(":scope > summary.jr-step-head");
    expect(summary.getAttribute("aria-expanded")).toBe("false");
    expect(summary.querySelector(".jr-step-label").textContent).toBe("load_sales ×15, percent_change ×15");
    expect(summary.querySelector(".jr-step-count").textContent).toBe("30 calls");
    expect(summary.querySelector(".jr-step-state").textContent).toBe("completed");
    expect(summary.querySelector(".jr-step-dur").textContent).toBe("500 ms");
    // 30 calls: the cards fold too, so the open step is 30 one-line rows.
    summary.click();
    expect(step.open).toBe(true);
    expect(summary.getAttribute("aria-expanded")).toBe("true");
    expect([...step.querySelectorAll(".jr-tool-call")].filter((c) => c.open)).toHaveLength(0);
    // The user's choice survives later repaints.
    store.apply({ type: "deltas", seq: 1, deltas: [textDelta("m1", " there")] });
    frames.flush();
    expect(step.open).toBe(true);
    summary.click();
    expect(step.open).toBe(false);
  });

  it("keeps the running step and a step waiting for approval open, and opens few cards", () => {
    const running = mount(snapshot({ steps: [toolStep("s1", "in_progress", [call(0, { output: undefined })])] }));
    const step = running.el.querySelector(".jr-step");
    expect(step.open).toBe(true);
    expect(step.querySelector(".jr-tool-call").open).toBe(true);
    expect(step.querySelector(".jr-tool-call").dataset.status).toBe("running");

    const waiting = mount(snapshot({
      status: "requires_action",
      steps: [toolStep("s2", "in_progress", [call(1, { output: undefined })])],
      approvals: [{ id: "c1", name: "percent_change", arguments: "{}", status: "pending" }],
    }));
    const s2 = waiting.el.querySelector('.jr-step[data-id="s2"]');
    expect(s2.open).toBe(true);
    expect(s2.querySelector(".jr-step-state").textContent).toBe("needs approval");
  });

  it("folds the step when it finishes unless the user opened it", () => {
    const { el, store, frames } = mount(snapshot({ steps: [toolStep("s1", "in_progress", [call(0, { output: undefined })])] }));
    expect(el.querySelector(".jr-step").open).toBe(true);
    store.reset(snapshot({ steps: [toolStep("s1", "completed", [call(0)]), replyStep("in_progress")], text: "x" }));
    frames.flush();
    expect(el.querySelector(".jr-step").open).toBe(false);
  });
});

describe("tool cards", () => {
  it("marks a failed call as an error, open, with its message", () => {
    const { el } = mount(snapshot({
      status: "completed",
      steps: [toolStep("s1", "completed", [call(0, { output: "error: boom" })])],
      records: { c0: { status: "failed", error: "ValueError: boom", started_at: 0, ended_at: 0.2 } },
    }));
    const card = el.querySelector(".jr-tool-call");
    expect(card.dataset.error).toBe("true");
    expect(card.dataset.status).toBe("failed");
    expect(card.open).toBe(true);
    expect(card.querySelector(".jr-tool-error").textContent).toBe("ValueError: boom");
    expect(el.querySelector(".jr-step").dataset.error).toBe("true");
    expect(el.querySelector(".jr-step-state").textContent).toBe("1 failed");
  });

  it("clips a long output with a Show more toggle", () => {
    const long = "x".repeat(CLIP_CHARS * 3);
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}`).join("\n");
    const { el } = mount(snapshot({
      status: "completed",
      steps: [toolStep("s1", "completed", [call(0, { output: long })])],
      records: { c0: { status: "completed", stdout: lines } },
    }));
    const out = el.querySelector(".jr-tool-output");
    const pre = out.querySelector("pre");
    const more = out.querySelector(".jr-more");
    expect(pre.textContent.length).toBe(CLIP_CHARS + 1);
    expect(more.hidden).toBe(false);
    expect(more.textContent).toContain(`${(CLIP_CHARS * 2).toLocaleString()} more characters`);
    more.click();
    expect(pre.textContent).toBe(long);
    expect(more.getAttribute("aria-expanded")).toBe("true");
    const stdout = el.querySelector("pre.jr-tool-stdout");
    expect(stdout.textContent.split("\n").length).toBeLessThan(30);
    expect(stdout.parentElement.querySelector(".jr-more").hidden).toBe(false);
  });
});

describe("copy buttons", () => {
  it("copies a code block and the whole reply through the Clipboard API", async () => {
    const writes = [];
    Object.defineProperty(navigator, "clipboard", { value: { writeText: async (t) => writes.push(t) }, configurable: true });
    const text = "Try:\n\n```python\nprint('hi')\n```\n\nDone.";
    const { el } = mount(snapshot({ status: "completed", text, msgStatus: "completed" }));
    const btn = el.querySelector(".jr-code > .jr-copy-code");
    expect(btn).not.toBeNull();
    btn.click();
    el.querySelector(".jr-copy-reply").click();
    await new Promise((r) => setTimeout(r, 0));
    expect(writes).toEqual(["print('hi')\n", text]);
    expect(btn.textContent).toBe("Copied");
    delete navigator.clipboard;
  });

  it("falls back to execCommand when the Clipboard API is missing", async () => {
    Object.defineProperty(navigator, "clipboard", { value: undefined, configurable: true });
    document.execCommand = vi.fn(() => true);
    const { el } = mount(snapshot({ status: "completed", text: "```\ncode\n```", msgStatus: "completed" }));
    const btn = el.querySelector(".jr-copy-code");
    btn.focus();
    btn.click();
    await new Promise((r) => setTimeout(r, 0));
    expect(document.execCommand).toHaveBeenCalledWith("copy");
    expect(document.activeElement).toBe(btn); // focus handed back
    expect(el.querySelector("textarea")).toBeNull();
    delete navigator.clipboard;
  });
});

describe("the end of a stream", () => {
  it("patches the reply in place: the streamed nodes stay, nothing is rebuilt", () => {
    const { el, store, frames } = mount(snapshot({ steps: [replyStep("in_progress")], text: "First paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |" }));
    const p = el.querySelector(".jr-message[data-role='assistant'] p");
    const table = el.querySelector(".jr-message[data-role='assistant'] table");
    const root = el.querySelector(".jr-run");
    const header = el.querySelector(".jr-header");
    store.reset(snapshot({ status: "completed", steps: [replyStep("completed")], text: "First paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |", msgStatus: "completed" }));
    frames.flush();
    expect(el.querySelector(".jr-run")).toBe(root);
    expect(el.querySelector(".jr-header")).toBe(header);
    expect(el.querySelector(".jr-message[data-role='assistant'] p")).toBe(p);
    expect(el.querySelector(".jr-message[data-role='assistant'] table")).toBe(table);
    expect(el.querySelector(".jr-caret")).toBeNull();
    expect(root.dataset.status).toBe("completed");
  });

  it("keeps the elapsed time ticking while the run runs", () => {
    vi.useFakeTimers();
    let now = 0;
    const store = createStore();
    store.reset(snapshot());
    const frames = { ...manualFrames(), now: () => now };
    const el = document.createElement("div");
    document.body.append(el);
    mountRunView(el, store, frames);
    frames.flush();
    expect(el.querySelector(".jr-elapsed").textContent).toBe("3.00 s");
    now = 2000;
    vi.advanceTimersByTime(1000);
    frames.flush();
    expect(el.querySelector(".jr-elapsed").textContent).toBe("5.00 s");
    vi.useRealTimers();
  });
});

describe("following the stream", () => {
  // jsdom has no layout: a scroller of 500 px over content whose bottom edge we place by hand.
  function rig() {
    const scroller = document.createElement("div");
    scroller.style.overflowY = "auto";
    const root = document.createElement("div");
    scroller.append(root);
    document.body.append(scroller);
    let contentHeight = 400;
    Object.defineProperty(scroller, "clientHeight", { get: () => 500 });
    Object.defineProperty(scroller, "scrollHeight", { get: () => Math.max(500, contentHeight) });
    scroller.getBoundingClientRect = () => ({ top: 0, bottom: 500, left: 0, right: 800, width: 800, height: 500 });
    root.getBoundingClientRect = () => {
      const bottom = contentHeight - scroller.scrollTop;
      return { top: bottom - contentHeight, bottom, left: 0, right: 800, width: 800, height: contentHeight };
    };
    window.innerHeight = 800;
    const follower = createFollower(root);
    const grow = (px) => {
      contentHeight += px;
      follower.after();
    };
    const userScroll = (top) => {
      scroller.scrollTop = top;
      scroller.dispatchEvent(new Event("scroll"));
    };
    return { scroller, follower, grow, userScroll };
  }

  it("keeps the bottom edge in view while the reader is at the bottom", () => {
    const { scroller, follower, grow } = rig();
    follower.after(); // first layout: the widget's bottom is on screen
    expect(follower.following).toBe(true);
    grow(300); // 700 px of content in a 500 px scroller
    expect(scroller.scrollTop).toBe(200);
    grow(50);
    expect(scroller.scrollTop).toBe(250);
  });

  it("stops when the reader scrolls up and starts again when they come back", () => {
    const { scroller, follower, grow, userScroll } = rig();
    follower.after();
    grow(300);
    userScroll(20); // the reader goes up: the bottom edge leaves the screen
    expect(follower.following).toBe(false);
    grow(100);
    expect(scroller.scrollTop).toBe(20); // nothing moves under the reader
    userScroll(300); // back at the bottom (content 800, viewport 500)
    expect(follower.following).toBe(true);
    grow(40);
    expect(scroller.scrollTop).toBe(340);
  });

  it("stops at the first upward wheel, before the scroll lands", () => {
    const { scroller, follower, grow } = rig();
    follower.after();
    grow(300);
    scroller.dispatchEvent(Object.assign(new Event("wheel"), { deltaY: -40 }));
    grow(100);
    expect(scroller.scrollTop).toBe(200);
  });

  it("never scrolls a notebook whose reader is elsewhere", () => {
    const { scroller, follower, grow } = rig();
    grow(2000); // the widget's bottom is far below the fold at its first layout
    expect(follower.following).toBe(false);
    grow(100);
    expect(scroller.scrollTop).toBe(0);
  });

  it("does not count its own scroll writes as the reader's", () => {
    const { scroller, follower, grow } = rig();
    follower.after();
    grow(300);
    scroller.dispatchEvent(new Event("scroll")); // the echo of our own write
    expect(follower.following).toBe(true);
  });
});

describe("a view rendered again", () => {
  it("paints at once and reopens what the reader unfolded", () => {
    const store = createStore();
    store.reset(snapshot({ status: "completed", steps: [toolStep("s1", "completed", [call(0)]), replyStep("completed")], text: "ok", msgStatus: "completed" }));
    const ui = new Map();
    const first = document.createElement("div");
    document.body.append(first);
    const v1 = mountRunView(first, store, { ...manualFrames(), ui });
    first.querySelector(".jr-step > summary").click();
    v1.destroy();
    const second = document.createElement("div");
    document.body.append(second);
    mountRunView(second, store, { ...manualFrames(), ui }); // no frame flushed: painted already
    expect(second.querySelector(".jr-message[data-role='assistant']").textContent).toContain("ok");
    expect(second.querySelector(".jr-step").open).toBe(true);
  });
});

describe("a brand-new widget", () => {
  it("paints before the kernel has set any trait", () => {
    const store = createStore();
    store.reset({ seq: 0, run: null, messages: null, steps: undefined, approvals: null, records: null });
    const el = document.createElement("div");
    document.body.append(el);
    expect(() => mountRunView(el, store, manualFrames())).not.toThrow();
    expect(el.querySelector(".jr-run").dataset.status).toBe("queued");
  });
});
