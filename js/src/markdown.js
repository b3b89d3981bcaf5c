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

// Code blocks sit in a `.jr-code` box: the <pre> inside scrolls sideways while the box holds the
// copy button still. It is part of the rendered HTML (not added by the view) so a streamed render
// and a one-shot render give the same DOM, and the static finished view can emit the same box.
for (const rule of ["fence", "code_block"]) {
  const base = md.renderer.rules[rule];
  md.renderer.rules[rule] = (tokens, idx, opts, env, self) => `<div class="jr-code">${base(tokens, idx, opts, env, self)}</div>\n`;
}

// An image from model text would be fetched the moment it renders: a request to a URL the model
// chose (data exfiltration through the query string). Only data: images (which markdown-it's
// validator limits to gif/png/jpeg/webp) load; any other image becomes a link to its URL.
const baseImage = md.renderer.rules.image;
md.renderer.rules.image = (tokens, idx, opts, env, self) => {
  const token = tokens[idx];
  const src = token.attrGet("src") || "";
  if (/^data:image\//i.test(src)) return baseImage(tokens, idx, opts, env, self);
  const alt = self.renderInlineAsText(token.children || [], opts, env) || src;
  return `<a class="jr-img-link" href="${escapeHtml(src)}">${escapeHtml(alt)}</a>`;
};

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
    // Nothing that renders may fetch a remote URL (a tool's HTML display included): keep only
    // data: sources, drop the rest; links stay, since following one takes a click.
    for (const name of FETCHING_ATTRS) {
      const value = node.getAttribute && node.getAttribute(name);
      if (value !== null && value !== undefined && !(name === "src" && /^\s*data:image\//i.test(value))) node.removeAttribute(name);
    }
  });
}

const FETCHING_ATTRS = ["src", "srcset", "poster", "background", "xlink:href", "lowsrc", "dynsrc"];

const PURIFY = {
  ADD_ATTR: ["target"],
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed", "svg", "math", "video", "audio", "source", "track", "picture", "link", "meta", "base"],
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

/** Sanitized markdown as a DOM fragment: skips serializing DOMPurify's tree to a string only for
 * innerHTML to parse it again, on every flush. */
function renderFragment(text, env) {
  ensureHooks();
  return purifier.sanitize(md.render(text || "", env), { ...PURIFY, RETURN_DOM_FRAGMENT: true });
}

// markdown-it normalizes line ends and NUL before parsing; we slice the text by lines, so we do too.
const normalize = (s) => s.replace(/\r\n?/g, "\n").replace(/\0/g, "\uFFFD");
// A line that may be (the start of) a reference-style link definition, at any container depth.
const REF_DEF = /^[ \t>*+\-0-9.)]*\[[^\]\n]+\]:/m;
// Frozen blocks are grouped so `content-visibility: auto` has a few dozen boxes to skip, not
// thousands (each one costs an intersection check per frame).
const GROUP_CHARS = 3000;
// Time budget of one task of the background full re-render.
const SLICE_MS = 12;

/** Top-level block boundaries of `src` (line indexes where each top-level block starts). */
function blockStarts(src) {
  const tokens = [];
  md.block.parse(src, md, {}, tokens);
  const starts = [];
  for (const t of tokens) if (t.level === 0 && t.nesting !== -1 && t.map) starts.push(t.map[0]);
  return starts;
}

/** Character offset of the start of line `line` in `src`. */
function lineOffset(src, line) {
  let pos = 0;
  for (let i = 0; i < line; i++) pos = src.indexOf("\n", pos) + 1;
  return pos;
}

const defaultSchedule = (fn) =>
  typeof requestAnimationFrame === "function" ? requestAnimationFrame(() => setTimeout(fn, 0)) : setTimeout(fn, 0);

/**
 * A markdown view that grows with a streaming text. Every top-level block that markdown-it has
 * closed (a later block began on a complete line: CommonMark never reopens a closed block) is
 * rendered once and frozen; only the open last block is re-rendered per update. Rendering the
 * top-level blocks one by one gives the same HTML as rendering the text at once, so `finish(text)`
 * renders just the tail too. The one exception is reference-style link definitions, which reach
 * across blocks: when the text has any, finish re-renders the frozen chunks with every definition
 * known, a few per task so no task is long. `options.schedule(fn)` runs fn in a later task;
 * `options.decorate(fragment)` adds view chrome (copy buttons) to each rendered fragment.
 */
export function createMarkdownView(el, options = {}) {
  const schedule = options.schedule || defaultSchedule;
  const decorate = options.decorate || null;
  const render = (src, e) => {
    const frag = renderFragment(src, e);
    if (decorate) decorate(frag);
    return frag;
  };
  const frozen = document.createElement("div");
  frozen.className = "jr-md-frozen";
  const live = document.createElement("div");
  live.className = "jr-md-live";
  el.append(frozen, live);
  let text = ""; // what the caller passed, raw
  let norm = ""; // normalize(text[0, used))
  let used = 0;
  let stable = 0; // norm[0, stable) is rendered into `frozen` (always a line start)
  let parsedTo = -1; // norm length of complete lines last searched for closed blocks
  let env = {}; // markdown-it env shared by the chunks: collects reference definitions in order
  let refs = false; // a reference definition may be in the text
  let chunks = []; // { src, nodes } per frozen chunk, in order
  let group = null; // the frozen group new blocks go into
  let groupChars = 0;
  let liveText = null;
  let renders = 0;
  let generation = 0; // bumps on reset so a pending background re-render stops

  function reset() {
    frozen.textContent = "";
    live.textContent = "";
    frozen.classList.remove("jr-md-done");
    text = norm = "";
    used = stable = 0;
    parsedTo = -1;
    env = {};
    refs = false;
    chunks = [];
    group = null;
    groupChars = 0;
    liveText = null;
    generation += 1;
  }

  function absorb(next, all) {
    let end = next.length;
    // A trailing "\r" may be the first half of "\r\n": wait for the next character.
    if (!all && end > used && next.charCodeAt(end - 1) === 13) end -= 1;
    if (end > used) {
      const added = normalize(next.slice(used, end));
      if (!refs && REF_DEF.test(norm.slice(norm.lastIndexOf("\n", norm.length - 1) + 1) + added)) refs = true;
      norm += added;
      used = end;
    }
    text = next;
  }

  function freeze(src) {
    if (!src) return;
    const frag = render(src, env);
    renders += 1;
    adopt(src, [...frag.childNodes]);
  }

  function adopt(src, nodes) {
    chunks.push({ src, nodes, group: openGroup() });
    for (const node of nodes) {
      const g = openGroup();
      g.append(node);
      groupChars += node.textContent.length;
    }
  }

  function openGroup() {
    if (!group || groupChars > GROUP_CHARS) {
      group = document.createElement("div");
      group.className = "jr-md-block";
      groupChars = 0;
      frozen.append(group);
    }
    return group;
  }

  function setLive(tail) {
    if (tail === liveText) return;
    liveText = tail;
    // A copy: definitions in the open block are collected when it is frozen, in document order.
    live.replaceChildren(render(tail, { references: { ...env.references } }));
    renders += 1;
  }

  /** Freeze every closed top-level block of the complete lines after `stable`. */
  function advance() {
    const complete = norm.lastIndexOf("\n") + 1;
    if (complete <= stable || complete === parsedTo) return;
    parsedTo = complete;
    const src = norm.slice(stable, complete);
    const starts = blockStarts(src);
    if (starts.length < 2) return;
    const cut = lineOffset(src, starts[starts.length - 1]);
    freeze(src.slice(0, cut));
    stable += cut;
  }

  /** Re-render the frozen chunks with every reference definition known, a slice per task. */
  function rerenderAll() {
    const mine = generation;
    const queue = [...chunks];
    const step = () => {
      if (mine !== generation) return;
      const start = performance.now();
      while (queue.length && performance.now() - start < SLICE_MS) {
        const chunk = queue.shift();
        const frag = render(chunk.src, env);
        renders += 1;
        const nodes = [...frag.childNodes];
        const anchor = chunk.nodes[0];
        if (anchor && anchor.parentNode) anchor.parentNode.insertBefore(frag, anchor);
        else chunk.group.append(frag);
        for (const n of chunk.nodes) n.remove();
        chunk.nodes = nodes;
      }
      if (queue.length) schedule(step);
    };
    schedule(step);
  }

  return {
    update(next) {
      if (!next.startsWith(text) || frozen.classList.contains("jr-md-done")) reset();
      absorb(next, false);
      advance();
      const tail = norm.slice(stable) + (used < next.length ? "\n" : "");
      setLive(tail);
    },
    finish(next) {
      const fresh = !next.startsWith(text) || frozen.classList.contains("jr-md-done");
      if (fresh) reset();
      const hadChunks = chunks.length > 0;
      absorb(next, true);
      const tail = norm.slice(stable);
      if (tail && tail === liveText && !refs) {
        // The live render already is the final render of the tail: move its nodes over instead
        // of rendering them again, so the end of a stream changes nothing on screen.
        adopt(tail, [...live.childNodes]);
      } else {
        freeze(tail);
        if (refs && hadChunks) rerenderAll();
      }
      stable = norm.length;
      live.textContent = "";
      liveText = null;
      frozen.classList.add("jr-md-done");
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
