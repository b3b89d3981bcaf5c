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
    // Every closed block is frozen once; the live tail holds at most the last paragraph.
    expect(el.querySelectorAll(".jr-md-frozen strong")).toHaveLength(40);
    expect(view.live.textContent.length).toBeLessThan(60);
    expect(el.textContent).not.toMatch(/Paragraph 3 has.*Paragraph 3 has/);
  });

  it("keeps a code fence with blank lines open until it closes", () => {
    const el = document.createElement("div");
    const view = createMarkdownView(el);
    const text = "Intro\n\n```python\nx = 1\n\ny = 2\n";
    view.update(text);
    expect(view.live.querySelector("pre code")?.textContent).toContain("x = 1\n\ny = 2");
    view.update(`${text}\`\`\`\n\nDone.`);
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
