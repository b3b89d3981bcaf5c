// Untrusted model text -> safe DOM. markdown-it runs with raw HTML off (tags show as text), its
// link validator drops javascript:/vbscript:/data: links, and DOMPurify sanitizes the result
// anyway, because one layer is one bug away from an XSS. While a message streams only the last,
// still-open block is re-rendered: closed blocks are frozen once, so a long reply costs O(new text)
// per frame instead of re-parsing everything 30 times a second.
import MarkdownIt from "markdown-it";
import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/core";
import python from "highlight.js/lib/languages/python";
import json from "highlight.js/lib/languages/json";
import bash from "highlight.js/lib/languages/bash";
import sql from "highlight.js/lib/languages/sql";
import javascript from "highlight.js/lib/languages/javascript";

hljs.registerLanguage("python", python);
hljs.registerLanguage("json", json);
hljs.registerLanguage("bash", bash);
hljs.registerLanguage("sql", sql);
hljs.registerLanguage("javascript", javascript);
hljs.registerAliases(["py"], { languageName: "python" });
hljs.registerAliases(["sh", "shell", "console", "zsh"], { languageName: "bash" });
hljs.registerAliases(["js", "mjs", "node"], { languageName: "javascript" });
// Every class we emit is jr- prefixed so notebook themes and our CSS never collide.
hljs.configure({ classPrefix: "jr-hl-" });

const escapeHtml = (s) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const md = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: false,
  highlight(code, lang) {
    const name = (lang || "").trim().toLowerCase();
    if (name && hljs.getLanguage(name)) {
      try {
        return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
      } catch {
        /* fall through to plain text */
      }
    }
    return escapeHtml(code);
  },
});

const purifier = DOMPurify;
let hooked = false;
function ensureHooks() {
  if (hooked) return;
  hooked = true;
  purifier.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
}

const PURIFY = {
  ADD_ATTR: ["target"],
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed", "svg", "math"],
  FORBID_ATTR: ["style"],
  ALLOW_DATA_ATTR: false,
};

/** Sanitize an HTML string (markdown output, or a tool's text/html display). */
export function sanitize(html) {
  ensureHooks();
  return purifier.sanitize(html, PURIFY);
}

/** Render markdown to sanitized HTML. */
export function renderMarkdown(text) {
  return sanitize(md.render(text || ""));
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/**
 * A markdown view that grows with a streaming text. `update(text)` freezes the blocks that can no
 * longer change (followed by a blank line, outside a code fence) and re-renders only the tail;
 * `finish(text)` renders the whole text once as one document so cross-block constructs (loose
 * lists, reference links) come out exactly as markdown-it would render them.
 */
export function createMarkdownView(el) {
  const frozen = document.createElement("div");
  frozen.className = "jr-md-frozen";
  const live = document.createElement("div");
  live.className = "jr-md-live";
  el.append(frozen, live);
  let text = "";
  let stableEnd = 0; // chars [0, stableEnd) are rendered into `frozen`
  let scanPos = 0; // line scan position for fence tracking
  let fence = null; // the open fence marker, or null
  let lastBoundary = 0; // last blank-line boundary outside a fence
  let liveText = null;
  let renders = 0;

  function scan() {
    // Walk whole lines only; a partial last line may still become a fence.
    while (true) {
      const nl = text.indexOf("\n", scanPos);
      if (nl < 0) break;
      const line = text.slice(scanPos, nl);
      const m = FENCE.exec(line);
      if (m) {
        if (fence === null) fence = m[1];
        else if (m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = null;
      } else if (fence === null && line.trim() === "" && nl > 0) {
        lastBoundary = nl + 1;
      }
      scanPos = nl + 1;
    }
  }

  function setLive(tail) {
    if (tail === liveText) return;
    liveText = tail;
    live.innerHTML = renderMarkdown(tail);
    renders += 1;
  }

  return {
    update(next) {
      if (!next.startsWith(text)) {
        // Not an append (a snapshot replaced the text): start over.
        frozen.textContent = "";
        text = "";
        stableEnd = scanPos = lastBoundary = 0;
        fence = null;
        liveText = null;
      }
      text = next;
      scan();
      if (lastBoundary > stableEnd) {
        const chunk = document.createElement("div");
        chunk.className = "jr-md-block";
        chunk.innerHTML = renderMarkdown(text.slice(stableEnd, lastBoundary));
        frozen.append(chunk);
        stableEnd = lastBoundary;
        renders += 1;
      }
      setLive(text.slice(stableEnd));
    },
    finish(next) {
      text = next;
      frozen.textContent = "";
      stableEnd = scanPos = lastBoundary = next.length;
      fence = null;
      liveText = null;
      setLive(next);
      // Treat everything as stable from here on; a later append restarts from the full text.
      frozen.innerHTML = live.innerHTML;
      live.textContent = "";
      liveText = "";
      stableEnd = next.length;
    },
    get live() {
      return live;
    },
    get renders() {
      return renders;
    },
    get text() {
      return text;
    },
  };
}
