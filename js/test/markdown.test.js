import { afterEach, describe, expect, it } from "vitest";
import { createMarkdownView, renderMarkdown, sanitize } from "../src/markdown.js";

afterEach(() => {
  delete window.__jrPwned;
  document.body.textContent = "";
});

const VECTORS = [
  "<script>window.__jrPwned = 1</script>",
  '<img src=x onerror="window.__jrPwned = 1">',
  "[click](javascript:window.__jrPwned=1)",
  "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
  '<svg onload="window.__jrPwned = 1"><script>window.__jrPwned=1</script></svg>',
  '<iframe src="javascript:window.__jrPwned=1"></iframe>',
  "![x](javascript:window.__jrPwned=1)",
  '<a href="javascript:window.__jrPwned=1">a</a>',
  "<math><mtext><table><mglyph><style><img src=x onerror=window.__jrPwned=1>",
];

describe("sanitization", () => {
  it.each(VECTORS)("renders %s without active content", (vector) => {
    const el = document.createElement("div");
    document.body.append(el);
    el.innerHTML = renderMarkdown(`Here: ${vector}\n\nafter`);
    expect(el.querySelector("script, iframe, svg, object, embed, math, style")).toBeNull();
    for (const node of el.querySelectorAll("*")) {
      for (const attr of node.attributes) {
        expect(attr.name.startsWith("on")).toBe(false);
        expect(attr.value.replace(/\s/g, "").toLowerCase()).not.toContain("javascript:");
      }
    }
    expect(window.__jrPwned).toBeUndefined();
  });

  it("shows raw HTML from the model as text", () => {
    const el = document.createElement("div");
    el.innerHTML = renderMarkdown("<script>alert(1)</script>");
    expect(el.textContent).toContain("<script>alert(1)</script>");
  });

  it("opens links in a new tab without an opener", () => {
    const el = document.createElement("div");
    el.innerHTML = renderMarkdown("see [docs](https://example.org) and https://example.com");
    const links = [...el.querySelectorAll("a")];
    expect(links).toHaveLength(2);
    for (const a of links) {
      expect(a.getAttribute("target")).toBe("_blank");
      expect(a.getAttribute("rel")).toContain("noopener");
    }
  });

  it("highlights code with jr- prefixed classes", () => {
    const el = document.createElement("div");
    el.innerHTML = renderMarkdown("```python\ndef f(x):\n    return 1\n```");
    expect(el.querySelector("pre code .jr-hl-keyword")?.textContent).toBe("def");
  });

  it("sanitizes a tool's html display too", () => {
    const el = document.createElement("div");
    el.innerHTML = sanitize('<table><tr><td onclick="x()">1</td></tr></table><script>x()</script>');
    expect(el.querySelector("td").getAttribute("onclick")).toBeNull();
    expect(el.querySelector("script")).toBeNull();
  });
});

describe("streaming markdown", () => {
  it("re-renders only the open block while text streams in", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    let text = "";
    const paragraphs = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} has **bold** words.`);
    for (const p of paragraphs) {
      for (const word of `${p}\n\n`.split(/(?<= )/)) {
        text += word;
        view.update(text);
      }
    }
    // Every closed block is frozen once; the live tail holds only the last, still open paragraph.
    expect(el.querySelectorAll(".jr-md-frozen strong")).toHaveLength(39);
    expect(view.live.querySelectorAll("strong")).toHaveLength(1);
    expect(view.live.textContent.length).toBeLessThan(60);
    expect(el.textContent).not.toMatch(/Paragraph 3 has.*Paragraph 3 has/);
  });

  it("keeps a code fence with blank lines open until it closes", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    const text = "Intro\n\n```python\nx = 1\n\ny = 2\n";
    view.update(text);
    expect(view.live.querySelector("pre code")?.textContent).toContain("x = 1\n\ny = 2");
    view.update(`${text}\`\`\`\n\nDone.\n`);
    expect(el.querySelectorAll("pre")).toHaveLength(1);
    expect(view.live.textContent.trim()).toBe("Done.");
  });

  it("renders the whole text once when the message finishes", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    view.update("1. one\n\n2. two");
    view.finish("1. one\n\n2. two");
    expect(el.querySelectorAll("ol")).toHaveLength(1);
    expect(el.querySelectorAll("li")).toHaveLength(2);
  });
});

// Markdown whose blocks interact: loose lists split by blank lines, setext headings, tables, fences
// with blank lines, nested lists, block quotes, indented code, CRLF line ends.
const MIXED = [
  "# Title\n\nIntro with **bold**, `code` and https://example.com.\n\n",
  "1. one\n\n2. two\n\n   continued\n3. three\n\n",
  "Setext\n------\n\n- a\n  - nested\n\n- b\n\n",
  "| x | y |\n|---|--:|\n| 1 | 2 |\n\n",
  "```python\ndef f():\n\n    return 1\n```\n\n",
  "> quote\nlazy line\n\n> second\n\n",
  "    indented code\n\n    more code\n\nText after.\r\nCRLF line\r\n\r\nLast *words*",
];

function streamInto(view, text, sizes = [1, 3, 7, 2, 11, 5]) {
  let pos = 0;
  let k = 0;
  while (pos < text.length) {
    pos = Math.min(text.length, pos + sizes[k++ % sizes.length]);
    view.update(text.slice(0, pos));
  }
}

function fullRender(text) {
  const div = document.createElement("div");
  div.innerHTML = renderMarkdown(text);
  return div;
}

const blockHtml = (el) => [...el.querySelectorAll(".jr-md-block > *")].map((n) => n.outerHTML).join("");

describe("incremental completion", () => {
  it("gives the same DOM as rendering the finished text at once", () => {
    const text = MIXED.join("");
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    streamInto(view, text);
    view.finish(text);
    const full = fullRender(text);
    expect(el.textContent).toBe(full.textContent);
    expect(blockHtml(el)).toBe([...full.children].map((n) => n.outerHTML).join(""));
    expect(el.querySelectorAll("ol")).toHaveLength(1); // the loose list stays one list
  });

  it("keeps the finished blocks' DOM and renders only the tail on completion", () => {
    const text = MIXED.join("");
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    streamInto(view, text);
    const firstHeading = el.querySelector(".jr-md-frozen h1");
    const table = el.querySelector(".jr-md-frozen table");
    const before = view.renders;
    const lastLive = view.live.lastElementChild;
    view.finish(text);
    // The live render of the tail already was its final render: its nodes move over, unrendered.
    expect(view.renders).toBe(before);
    expect(el.querySelector(".jr-md-frozen").contains(lastLive)).toBe(true);
    expect(el.querySelector("h1")).toBe(firstHeading);
    expect(el.querySelector("table")).toBe(table);
    expect(view.live.childNodes).toHaveLength(0);
  });

  it("re-renders in later tasks when reference definitions reach across blocks", () => {
    const text = "See [the docs][d] and [home].\n\nMore text.\n\n[d]: https://example.org/docs\n[home]: https://example.org\n\nEnd";
    const tasks = [];
    const el = document.createElement("div");
    const view = createMarkdownView(el, { schedule: (fn) => tasks.push(fn) });
    streamInto(view, text);
    view.finish(text);
    expect(tasks.length).toBeGreaterThan(0); // the full pass is not done inside finish()
    while (tasks.length) tasks.shift()();
    const full = fullRender(text);
    expect(el.textContent).toBe(full.textContent);
    expect(blockHtml(el)).toBe([...full.children].map((n) => n.outerHTML).join(""));
    expect(el.querySelector('a[href="https://example.org/docs"]').textContent).toBe("the docs");
  });

  it("starts over when the text is replaced rather than extended", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    streamInto(view, "# One\n\nfirst\n\nsecond\n\n");
    view.finish("# Two\n\nother");
    expect(el.textContent).toBe(fullRender("# Two\n\nother").textContent);
    expect(el.textContent).not.toContain("One");
  });
});

describe("sanitization of streamed blocks", () => {
  it("applies to every frozen block, the live tail and the finished tail", () => {
    const text = VECTORS.map((v, i) => `Block ${i}: ${v}\n\n`).join("") + `Tail: ${VECTORS[1]}`;
    const el = document.createElement("div");
    document.body.append(el);
    const view = createMarkdownView(el);
    const check = () => {
      expect(el.querySelector("script, iframe, svg, object, embed, math, style, img[onerror]")).toBeNull();
      for (const node of el.querySelectorAll("*")) {
        for (const attr of node.attributes) {
          expect(attr.name.startsWith("on")).toBe(false);
          expect(attr.value.replace(/\s/g, "").toLowerCase()).not.toContain("javascript:");
        }
      }
    };
    let pos = 0;
    while (pos < text.length) {
      pos = Math.min(text.length, pos + 9);
      view.update(text.slice(0, pos));
      check();
    }
    expect(el.querySelectorAll(".jr-md-frozen p").length).toBeGreaterThanOrEqual(VECTORS.length - 1);
    view.finish(text);
    check();
    expect(el.textContent).toContain("Tail: ");
    expect(window.__jrPwned).toBeUndefined();
  });
});
