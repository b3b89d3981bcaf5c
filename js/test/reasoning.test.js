import { afterEach, describe, expect, it } from "vitest";
import { mountRunView } from "../src/view.js";
import { createStore } from "../src/fold.js";
import { priceFor, runCost, usageLine } from "../src/reasoning.js";
import { manualFrames } from "./helpers.js";

afterEach(() => {
  document.body.textContent = "";
  delete window.__jrPwned;
});

const reasoningStep = (status = "in_progress", extra = {}) => ({
  id: "step_r", object: "thread.run.step", type: "reasoning", status,
  step_details: { type: "reasoning", reasoning: { summary: "" } }, usage: null, ...extra,
});
const summaryDelta = (value) => ({
  kind: "step", id: "step_r", delta: { step_details: { type: "reasoning", reasoning: { summary: value } } },
});

function mount(snapshot) {
  const store = createStore();
  store.reset(snapshot);
  const frames = manualFrames();
  const el = document.createElement("div");
  document.body.append(el);
  mountRunView(el, store, frames);
  frames.flush();
  return { el, store, frames };
}

describe("reasoning item", () => {
  it("streams open, then collapses with its duration and reasoning tokens", () => {
    const { el, store, frames } = mount({
      seq: 0, run: { id: "run_1", status: "in_progress", model: "responses:o" },
      steps: [reasoningStep()], timings: { step_r: [0.1, null] }, messages: [],
    });
    store.apply({ type: "deltas", seq: 1, deltas: [summaryDelta("**Plan**: add ")] });
    store.apply({ type: "deltas", seq: 2, deltas: [summaryDelta("the numbers.")] });
    frames.flush();
    const item = el.querySelector(".jr-reasoning");
    expect(item.open).toBe(true);
    expect(item.querySelector(".jr-reasoning-label").textContent).toBe("Thinking…");
    expect(item.querySelector(".jr-reasoning-text strong").textContent).toBe("Plan");
    expect(item.querySelector(".jr-reasoning-text").textContent).toContain("add the numbers.");
    const done = reasoningStep("completed", {
      step_details: { type: "reasoning", reasoning: { summary: "**Plan**: add the numbers." } },
    });
    store.reset({ seq: 2, run: { id: "run_1", status: "in_progress", model: "responses:o" },
                  steps: [done], timings: { step_r: [0.1, 2.6] }, messages: [] });
    frames.flush();
    const closed = el.querySelector(".jr-reasoning");
    expect(closed).toBe(item); // the same row, not a new one
    expect(closed.open).toBe(false);
    expect(closed.querySelector(".jr-reasoning-label").textContent).toBe("Thought for 2.5 s");
    // the count arrives with the reply's step, which the reasoning led to
    const reply = { id: "step_m", object: "thread.run.step", type: "message_creation", status: "completed",
                    step_details: { type: "message_creation", message_creation: { message_id: "msg_1" } },
                    usage: { prompt_tokens: 9, completion_tokens: 530, total_tokens: 539,
                             completion_tokens_details: { reasoning_tokens: 512 } } };
    store.reset({ seq: 2, run: { id: "run_1", status: "completed", model: "responses:o" },
                  steps: [done, reply], timings: { step_r: [0.1, 2.6], step_m: [2.6, 3] }, messages: [] });
    frames.flush();
    expect(closed.querySelector(".jr-reasoning-label").textContent).toBe("Thought for 2.5 s · 512 reasoning tokens");
  });

  it("renders summary markdown without running any HTML in it", () => {
    const { el, store, frames } = mount({
      seq: 0, run: { id: "run_1", status: "in_progress" }, steps: [reasoningStep()], messages: [],
    });
    store.apply({ type: "deltas", seq: 1, deltas: [summaryDelta('<img src=x onerror="window.__jrPwned=1">')] });
    frames.flush();
    expect(el.querySelector(".jr-reasoning-text img")).toBeNull();
    expect(window.__jrPwned).toBeUndefined();
  });
});

describe("usage and cost", () => {
  const usage = { prompt_tokens: 1200, completion_tokens: 300, total_tokens: 1500,
                  prompt_tokens_details: { cached_tokens: 400 },
                  completion_tokens_details: { reasoning_tokens: 250 } };

  it("shows input, cached, output and reasoning tokens", () => {
    expect(usageLine(usage, null, "responses:o")).toBe(
      "1,200 in · 400 cached · 300 out · 250 reasoning · 1,500 tokens");
    expect(usageLine({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 })).toBe("7 in · 3 out · 10 tokens");
  });

  it("prices by full id, then name, then *; cached input at its own rate", () => {
    const prices = { "gpt-5": { input: 1.25, cached_input: 0.125, output: 10 }, "*": { input: 1, output: 1 } };
    expect(priceFor(prices, "responses:gpt-5")).toBe(prices["gpt-5"]);
    expect(priceFor(prices, "compat:other")).toBe(prices["*"]);
    expect(priceFor({}, "x")).toBeNull();
    // (800 * 1.25 + 400 * 0.125 + 300 * 10) / 1e6
    expect(runCost(usage, prices["gpt-5"])).toBeCloseTo(0.00405, 10);
    expect(usageLine(usage, prices, "responses:gpt-5")).toBe(
      "1,200 in · 400 cached · 300 out · 250 reasoning · 1,500 tokens · $0.00405");
  });
});
