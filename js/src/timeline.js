// The step timeline: one row per run step, in order, each with a duration bar on an axis shared by
// the whole run so a slow step stands out at a glance. A step is a <details>: finished steps fold
// to their one-line summary so a run of 30 tool calls stays compact, while the running step and a
// step waiting for approval stay open; a click (or Enter/Space on the focused summary) overrides
// that for good. The static finished view emits the same <details>/<summary> structure and
// classes, so the two look alike and collapse alike without any script.
// Everything the model or a tool produced goes in as text; only a tool's own text/html display is
// sanitized HTML.
import { stepToolCalls } from "./fold.js";
import { sanitize, renderMarkdown } from "./markdown.js";
import { createReasoningView, isReasoningStep } from "./reasoning.js";

/** Long texts show this much until "Show more": a tool that returns a megabyte stays readable. */
export const CLIP_CHARS = 800;
export const CLIP_LINES = 12;
/** Steps with at most this many calls open every card when the step opens. */
const OPEN_CARDS_UP_TO = 3;

export function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = text;
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setData(el, key, value) {
  if (value === null || value === undefined || value === false) {
    if (key in el.dataset) delete el.dataset[key];
  } else if (el.dataset[key] !== String(value)) {
    el.dataset[key] = String(value);
  }
}

export function formatSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "";
  if (s < 0.001) return "<1 ms";
  if (s < 1) return `${Math.max(0, Math.round(s * 1000))} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${Math.round(s - m * 60)}s`;
}

/** Pretty JSON when the text parses (one line when short), else the text as it is (streaming). */
export function prettyArgs(args) {
  if (args === null || args === undefined) return "";
  let value = args;
  if (typeof args === "string") {
    if (!args.trim()) return "";
    try {
      value = JSON.parse(args);
    } catch {
      return args;
    }
  }
  const pretty = JSON.stringify(value, null, 2);
  const flat = pretty.replace(/\n\s*/g, " ");
  return flat.length <= 72 ? flat : pretty;
}

/** The first `CLIP_LINES` lines / `CLIP_CHARS` characters of `text`, or null when it fits. */
export function clipText(text) {
  let cut = text.length > CLIP_CHARS ? CLIP_CHARS : -1;
  let pos = -1;
  for (let i = 0; i < CLIP_LINES; i++) {
    pos = text.indexOf("\n", pos + 1);
    if (pos < 0) break;
  }
  if (pos >= 0 && pos < text.length - 1 && (cut < 0 || pos < cut)) cut = pos;
  return cut < 0 ? null : text.slice(0, cut);
}

/**
 * A <pre> that shows a long text clipped, with a "Show more" toggle. Returns
 * { el, set(text) }; `el` holds the pre and the button.
 */
export function createClipped(cls) {
  const el = h("div", "jr-clip");
  const pre = h("pre", `jr-pre ${cls}`);
  const more = h("button", "jr-link jr-more");
  more.type = "button";
  el.append(pre, more);
  let full = null;
  let expanded = false;
  const paint = () => {
    const clipped = clipText(full);
    setText(pre, clipped !== null && !expanded ? `${clipped}…` : full);
    more.hidden = clipped === null;
    more.setAttribute("aria-expanded", expanded ? "true" : "false");
    const rest = clipped === null ? 0 : full.length - clipped.length;
    setText(more, expanded ? "Show less" : `Show more (${rest.toLocaleString()} more characters)`);
  };
  more.addEventListener("click", () => {
    expanded = !expanded;
    paint();
  });
  return {
    el,
    pre,
    set(text) {
      text = text ?? "";
      if (text === full) return;
      full = text;
      paint();
    },
  };
}

function renderDisplays(box, displays) {
  box.textContent = "";
  for (const bundle of displays || []) {
    const item = h("div", "jr-display");
    const img = ["image/png", "image/jpeg", "image/gif"].find((t) => typeof bundle[t] === "string");
    if (img) {
      const el = h("img", "jr-display-img");
      el.alt = "tool display";
      el.src = `data:${img};base64,${bundle[img].replace(/\s/g, "")}`;
      item.append(el);
    } else if (typeof bundle["image/svg+xml"] === "string") {
      // An <img> never runs script inside the SVG.
      const el = h("img", "jr-display-img");
      el.alt = "tool display";
      el.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(bundle["image/svg+xml"])}`;
      item.append(el);
    } else if (typeof bundle["text/html"] === "string") {
      const el = h("div", "jr-display-html");
      el.innerHTML = sanitize(bundle["text/html"]);
      item.append(el);
    } else if (typeof bundle["text/markdown"] === "string") {
      const el = h("div", "jr-display-md jr-md");
      el.innerHTML = renderMarkdown(bundle["text/markdown"]);
      item.append(el);
    } else if (bundle["text/plain"] !== undefined) {
      item.append(h("pre", "jr-pre", String(bundle["text/plain"])));
    } else {
      continue;
    }
    box.append(item);
  }
}

/**
 * Open state of a <details> that follows `auto` until the user toggles it; from then on the
 * user's choice stands (a step that finishes must not fold away under the reader's eyes). The
 * choices live in `ctxRef.ui`, keyed by step or call id, which the widget keeps per model: a view
 * the front end renders again (a re-displayed output) opens what the reader had opened.
 */
function foldable(details, summary, ctxRef) {
  let key = null;
  summary.addEventListener("click", () => {
    // The click comes before the toggle, so the new state is the opposite of the current one.
    const next = !details.open;
    if (key) ctxRef.ui.set(key, next);
    summary.setAttribute("aria-expanded", next ? "true" : "false");
    if (ctxRef.onUser) ctxRef.onUser(next);
  });
  details.addEventListener("toggle", () => summary.setAttribute("aria-expanded", details.open ? "true" : "false"));
  return (auto, k) => {
    key = k;
    const open = ctxRef.ui.get(k) ?? auto;
    if (details.open !== open) details.open = open;
    const aria = open ? "true" : "false";
    if (summary.getAttribute("aria-expanded") !== aria) summary.setAttribute("aria-expanded", aria);
  };
}

function toolStatus(call, record, approvals) {
  const fn = call.function || {};
  const asked = approvals?.get(call.id);
  if (record?.error && (!record.status || record.status === "completed")) return "failed";
  return record?.status
    || (fn.output !== undefined && fn.output !== null ? "completed" : null)
    || (asked && asked.status === "pending" ? "awaiting approval" : asked?.status === "denied" ? "denied" : "running");
}

const ERROR_STATES = new Set(["failed", "error", "denied", "timeout", "cancelled"]);

function createToolCallView(ctxRef) {
  const el = h("details", "jr-tool-call");
  const head = h("summary", "jr-tool-head");
  const name = h("span", "jr-tool-name");
  const brief = h("span", "jr-tool-brief");
  const status = h("span", "jr-pill jr-tool-status");
  const dur = h("span", "jr-tool-dur");
  head.append(name, brief, status, dur);
  const body = h("div", "jr-tool-body");
  const argsLabel = h("div", "jr-label", "args");
  const args = createClipped("jr-tool-args");
  const outLabel = h("div", "jr-label", "output");
  const output = createClipped("jr-tool-output-text");
  output.el.classList.add("jr-tool-output");
  const stdoutLabel = h("div", "jr-label", "stdout");
  const stdout = createClipped("jr-tool-stdout");
  const stderrLabel = h("div", "jr-label", "stderr");
  const stderr = createClipped("jr-tool-stderr");
  const error = h("div", "jr-tool-error");
  error.setAttribute("role", "note");
  const displays = h("div", "jr-tool-displays");
  body.append(argsLabel, args.el, outLabel, output.el, stdoutLabel, stdout.el, stderrLabel, stderr.el, error, displays);
  el.append(head, body);
  const setOpen = foldable(el, head, ctxRef);
  let displaysKey = null;
  return {
    el,
    update(call, record, ctx = {}) {
      const fn = call.function || {};
      const toolName = fn.name || record?.name || call.type || "tool";
      setData(el, "name", toolName);
      setData(el, "id", call.id || "");
      const st = toolStatus(call, record, ctx.approvals);
      setData(el, "status", st);
      const failed = ERROR_STATES.has(st) || !!record?.error;
      setData(el, "error", failed ? "true" : null);
      setText(name, toolName);
      setText(status, st);
      setData(status, "status", st);
      const d = record && record.started_at != null && record.ended_at != null ? record.ended_at - record.started_at : null;
      setText(dur, formatSeconds(d));
      const a = record && record.arguments !== undefined && record.arguments !== null && typeof record.arguments !== "string"
        ? record.arguments
        : fn.arguments;
      const pretty = prettyArgs(a);
      args.set(pretty);
      const flat = pretty.replace(/\s*\n\s*/g, " ");
      setText(brief, flat.length > 120 ? `${flat.slice(0, 120)}…` : flat);
      const out = fn.output ?? record?.output ?? null;
      const hasOut = out !== null && out !== undefined;
      outLabel.hidden = output.el.hidden = !hasOut;
      if (hasOut) output.set(String(out));
      setText(error, record?.error || "");
      error.hidden = !record?.error;
      stdout.set(record?.stdout || "");
      stdoutLabel.hidden = stdout.el.hidden = !record?.stdout;
      stderr.set(record?.stderr || "");
      stderrLabel.hidden = stderr.el.hidden = !record?.stderr;
      const key = JSON.stringify(record?.displays || []).length + ":" + (record?.displays || []).length;
      if (key !== displaysKey) {
        displaysKey = key;
        renderDisplays(displays, record?.displays);
      }
      displays.hidden = !(record?.displays || []).length;
      const live = st === "running" || st === "awaiting approval" || st === "in_progress";
      setOpen(live || failed || (ctx.callCount || 0) <= OPEN_CARDS_UP_TO, `call:${call.id || call.index}`);
      return { live, failed, pending: st === "awaiting approval" };
    },
  };
}

function stepKind(step) {
  return (step.type || step.step_details?.type) === "tool_calls" ? "tool_calls" : "message_creation";
}

function createStepView(kind, ctxRef) {
  // A reply step has nothing to unfold: a plain row. A tool step folds.
  const tools = kind === "tool_calls";
  const el = h(tools ? "details" : "div", "jr-step");
  const head = h(tools ? "summary" : "div", "jr-step-head");
  const icon = h("span", "jr-step-icon");
  icon.setAttribute("aria-hidden", "true");
  const label = h("span", "jr-step-label");
  const count = h("span", "jr-step-count");
  const state = h("span", "jr-step-state");
  const track = h("span", "jr-bar-track");
  track.setAttribute("aria-hidden", "true");
  const bar = h("span", "jr-bar");
  track.append(bar);
  const dur = h("span", "jr-step-dur");
  head.append(icon, label, count, state, track, dur);
  el.append(head);
  const body = h("div", "jr-step-body");
  if (tools) el.append(body);
  const setOpen = tools ? foldable(el, head, ctxRef) : () => {};
  const calls = new Map();
  return {
    el,
    kind,
    update(step, ctx) {
      setData(el, "type", kind);
      const status = step.status || "in_progress";
      setData(el, "status", status);
      setData(el, "id", step.id);
      const toolCalls = stepToolCalls(step);
      if (tools) {
        const counts = new Map();
        for (const c of toolCalls) {
          const n = c.function?.name || c.type;
          if (n) counts.set(n, (counts.get(n) || 0) + 1);
        }
        const names = [...counts].map(([n, k]) => (k > 1 ? `${n} ×${k}` : n));
        setText(label, names.length ? names.join(", ") : "Tool calls");
        setText(count, toolCalls.length === 1 ? "1 call" : `${toolCalls.length} calls`);
      } else {
        setText(label, status === "in_progress" ? "Writing reply" : "Reply");
        setText(count, "");
      }
      // Shared axis: [0, ctx.total] seconds since the run began.
      const [start, end0] = ctx.timings[step.id] || [null, null];
      const end = end0 ?? (ctx.terminal ? start : ctx.now);
      if (start !== null && ctx.total > 0) {
        const left = Math.min(100, (start / ctx.total) * 100);
        const width = Math.max(0.8, Math.min(100 - left, ((end - start) / ctx.total) * 100));
        bar.style.left = `${left.toFixed(2)}%`;
        bar.style.width = `${width.toFixed(2)}%`;
        setText(dur, formatSeconds(end - start));
      } else {
        setText(dur, "");
      }
      const seen = new Set();
      let live = status === "in_progress" && !ctx.terminal;
      let pending = false;
      let failures = 0;
      const callCtx = { ...ctx, callCount: toolCalls.length };
      for (const call of toolCalls) {
        const key = call.id || `i${call.index}`;
        seen.add(key);
        let view = calls.get(key);
        if (!view) {
          view = createToolCallView(ctxRef);
          calls.set(key, view);
          body.append(view.el);
        }
        const r = view.update(call, ctx.records[call.id], callCtx);
        if (r.pending) pending = true;
        if (r.live && !ctx.terminal) live = true;
        if (r.failed) failures += 1;
      }
      for (const [key, view] of calls) {
        if (!seen.has(key)) {
          view.el.remove();
          calls.delete(key);
        }
      }
      const stateText = pending ? "needs approval" : failures ? `${failures} failed` : status.replace(/_/g, " ");
      setText(state, stateText);
      setData(state, "status", pending ? "requires_action" : failures ? "failed" : status);
      setData(el, "error", failures ? "true" : null);
      body.hidden = calls.size === 0;
      setOpen(live || pending, `step:${step.id}`);
    },
  };
}

/** The timeline of a run's steps; `update(steps, ctx)` reconciles rows by step id.
 * `options.onUser(open)` hears every fold/unfold the user makes (the view stops following);
 * `options.ui` is a Map that keeps those choices (shared by the views of one widget model). */
export function createTimeline(el, options = {}) {
  const rows = new Map();
  const ctxRef = { onUser: options.onUser || null, ui: options.ui || new Map() };
  return {
    update(steps, ctx) {
      let prev = null;
      const seen = new Set();
      for (const [i, step] of steps.entries()) {
        seen.add(step.id);
        let row = rows.get(step.id);
        const kind = isReasoningStep(step) ? "reasoning" : stepKind(step);
        if (row && row.kind !== kind) {
          row.el.remove(); // a row made before the step's type was known
          row = null;
        }
        if (!row) {
          row = kind === "reasoning" ? createReasoningView() : createStepView(kind, ctxRef);
          rows.set(step.id, row);
        }
        row.update(step, ctx, steps[i + 1]);
        const want = prev ? prev.nextSibling : el.firstChild;
        if (want !== row.el) el.insertBefore(row.el, want);
        prev = row.el;
      }
      for (const [id, row] of rows) {
        if (!seen.has(id)) {
          row.el.remove();
          rows.delete(id);
        }
      }
      el.hidden = steps.length === 0;
    },
  };
}
