// Streaming markdown, at every character boundary: whatever way the text is cut into deltas, the
// finished DOM equals the one-shot render, tables render as soon as their header and delimiter
// rows are in, and an open fence shows as code.
import { afterEach, describe, expect, it } from "vitest";
import { createMarkdownView, renderMarkdown } from "../src/markdown.js";
import { decorateCode } from "../src/copy.js";

afterEach(() => {
  document.body.textContent = "";
});

const SAMPLES = {
  table: "Numbers:\n\n| region | q1 | q2 |\n| --- | ---: | :-: |\n| north | 100 | 112 |\n| south | 100 | 104 |\n\nDone.",
  tableAfterParagraph: "Here it is:\n| a | b |\n|---|---|\n| 1 | 2 |\nafter",
  fence: "Run this:\n\n```python\ndef f(x):\n\n    return x * 2\n```\n\nThen `f(2)`.",
  tildeFence: "~~~\nraw <b>html</b>\n~~~\n",
  lists: "- one\n- two\n  - nested *em*\n\n1. first\n2. second\n\n   more\n3. third",
  emphasis: "Some **bold**, *em*, ***both***, `code`, __under__ and ~~strike~~ text. A [link](https://example.org).",
  mixed: "# Title\n\n> quote *x*\n> more\n\n    indented\n\nend\r\nline",
};

function oneShot(text) {
  const div = document.createElement("div");
  div.innerHTML = renderMarkdown(text);
  return div;
}

/** The view's blocks as HTML, without the copy buttons the view adds as chrome. */
function viewHtml(el) {
  const clone = el.cloneNode(true);
  for (const b of clone.querySelectorAll(".jr-copy")) b.remove();
  const blocks = clone.querySelectorAll(".jr-md-block > *");
  return [...blocks].map((n) => n.outerHTML).join("");
}
const oneShotHtml = (text) => [...oneShot(text).children].map((n) => n.outerHTML).join("");

describe("streaming markdown at every character boundary", () => {
  for (const [name, text] of Object.entries(SAMPLES)) {
    it(`${name}: char by char, the final DOM equals the one-shot render`, () => {
      const el = document.createElement("div");
      const view = createMarkdownView(el, { decorate: decorateCode });
      for (let i = 1; i <= text.length; i++) view.update(text.slice(0, i));
      view.finish(text);
      expect(viewHtml(el)).toBe(oneShotHtml(text));
    });

    it(`${name}: cut into two deltas at each boundary, the final DOM equals the one-shot render`, () => {
      const want = oneShotHtml(text);
      for (let cut = 0; cut <= text.length; cut++) {
        const el = document.createElement("div");
        const view = createMarkdownView(el, { decorate: decorateCode });
        if (cut > 0) view.update(text.slice(0, cut));
        view.update(text);
        view.finish(text);
        expect(viewHtml(el), `cut at ${cut}`).toBe(want);
      }
    });

    it(`${name}: stopped at each boundary (a cancelled run), the DOM equals the one-shot render of the prefix`, () => {
      for (let cut = 1; cut <= text.length; cut++) {
        const el = document.createElement("div");
        const view = createMarkdownView(el);
        const prefix = text.slice(0, cut);
        for (let i = Math.max(1, cut - 3); i <= cut; i++) view.update(text.slice(0, i));
        view.finish(prefix);
        expect(viewHtml(el), `stopped at ${cut}`).toBe(oneShotHtml(prefix));
      }
    });
  }
});

describe("partial constructs while streaming", () => {
  it("renders a table once its header and delimiter rows have arrived", () => {
    const text = SAMPLES.table;
    const delimiterEnd = text.indexOf("| --- | ---: | :-: |") + "| --- | ---: | :-: |".length;
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    for (let i = 1; i <= text.length; i++) {
      view.update(text.slice(0, i));
      if (i >= delimiterEnd) {
        expect(el.querySelector("table"), `at ${i}`).not.toBeNull();
        expect(el.textContent, `no raw delimiter row at ${i}`).not.toContain("| ---");
      }
    }
    // Body rows show up cell by cell as they stream.
    view.update(text.slice(0, text.indexOf("| south") + "| south | 1".length));
    expect([...el.querySelectorAll("td")].map((td) => td.textContent)).toContain("south");
  });

  it("renders an unclosed code fence as code, with its blank lines", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    const text = "Intro\n\n```python\nx = 1\n\ny = 2";
    for (let i = 1; i <= text.length; i++) view.update(text.slice(0, i));
    const code = el.querySelector("pre code");
    expect(code.textContent).toBe("x = 1\n\ny = 2");
    expect(el.querySelector(".jr-code > pre")).not.toBeNull();
  });
});

describe("images from model text", () => {
  it("shows a remote image as a link and never as an <img>", () => {
    const el = document.createElement("div");
    el.innerHTML = renderMarkdown("![chart](https://evil.example/leak?q=secret) and ![x](//evil.example/p.png)");
    expect(el.querySelector("img")).toBeNull();
    const links = [...el.querySelectorAll("a.jr-img-link")];
    expect(links.map((a) => a.getAttribute("href"))).toEqual(["https://evil.example/leak?q=secret", "//evil.example/p.png"]);
    expect(links[0].textContent).toBe("chart");
  });

  it("keeps a data: image", () => {
    const el = document.createElement("div");
    el.innerHTML = renderMarkdown("![dot](data:image/png;base64,iVBORw0KGgo=)");
    expect(el.querySelector("img").getAttribute("src")).toMatch(/^data:image\/png/);
  });

  it("strips remote sources from a tool's HTML display", async () => {
    const { sanitize } = await import("../src/markdown.js");
    const el = document.createElement("div");
    el.innerHTML = sanitize('<img src="https://evil.example/x.png"><img srcset="https://e.example/a.png 2x"><video poster="https://e.example/p"></video><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">');
    const srcs = [...el.querySelectorAll("img")].map((i) => i.getAttribute("src"));
    expect(srcs.filter(Boolean)).toEqual(["data:image/gif;base64,R0lGODlhAQABAAAAACw="]);
    expect(el.innerHTML).not.toContain("evil.example");
    expect(el.innerHTML).not.toContain("e.example");
  });
});
