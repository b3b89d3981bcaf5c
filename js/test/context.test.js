import { afterEach, describe, expect, it } from "vitest";
import { mountContext, renderContextChips } from "../src/context.js";
import { fakeModel } from "./helpers.js";

afterEach(() => {
  document.body.textContent = "";
  delete window.__jrPwned;
});

const chip = (name, text) => ({ name, kind: "DataFrame 2×1", bytes: text.length, label: `${name} · DataFrame 2×1 · ${text.length} B`, text });

describe("context chips", () => {
  it("render one expandable chip per attachment with the exact text", () => {
    const el = document.createElement("div");
    renderContextChips(el, [chip("df", "<context name=\"df\">\n| a |\n</context>"), chip("error", "Traceback")]);
    const chips = el.querySelectorAll("details.jr-chip");
    expect(chips).toHaveLength(2);
    expect(chips[0].querySelector("summary").textContent).toBe(`df · DataFrame 2×1 · ${"<context name=\"df\">\n| a |\n</context>".length} B`);
    expect(chips[0].querySelector("pre").textContent).toBe("<context name=\"df\">\n| a |\n</context>");
    expect(chips[0].open).toBe(false);
    expect(el.hidden).toBe(false);
  });

  it("insert attachment text as text, never HTML", () => {
    const el = document.createElement("div");
    document.body.append(el);
    renderContextChips(el, [chip("x", "<img src=x onerror=\"window.__jrPwned=1\">")]);
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector("pre").textContent).toContain("<img");
    expect(window.__jrPwned).toBeUndefined();
  });

  it("hide when there is no context and follow the trait", () => {
    const root = document.createElement("div");
    const prompt = document.createElement("div");
    prompt.className = "jr-prompt";
    root.append(prompt, document.createElement("div"));
    const model = fakeModel({ context: [] });
    const unmount = mountContext(root, model);
    const box = root.querySelector(".jr-context");
    expect(box.previousElementSibling).toBe(prompt);
    expect(box.hidden).toBe(true);
    model.set({ context: [chip("df", "t")] });
    expect(box.hidden).toBe(false);
    expect(box.querySelectorAll(".jr-chip")).toHaveLength(1);
    unmount();
    expect(root.querySelector(".jr-context")).toBeNull();
  });
});
