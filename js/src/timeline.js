// The step timeline: one row per run step, in order, each with a duration bar on an axis shared by
// the whole run so a slow step stands out at a glance. Tool calls show name, arguments (pretty JSON
// once they parse; raw while they stream in), output, stdout/stderr and displays. Everything the
// model or a tool produced goes in as text; only a tool's own text/html display is sanitized HTML.
import { stepToolCalls } from "./fold.js";
import { sanitize, renderMarkdown } from "./markdown.js";
import { createReasoningView, isReasoningStep } from "./reasoning.js";

const OUTPUT_PREVIEW = 1200;

export function h(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined && text !== null) el.textContent = text;
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
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

function createToolCallView() {
  const el = h("div", "jr-tool-call");
  const head = h("div", "jr-tool-head");
  const name = h("span", "jr-tool-name");
  const status = h("span", "jr-pill jr-tool-status");
  const dur = h("span", "jr-tool-dur");
  head.append(name, status, dur);
  const argsLabel = h("div", "jr-label", "args");
  const args = h("pre", "jr-pre jr-tool-args");
  const outLabel = h("div", "jr-label", "output");
  const output = h("div", "jr-tool-output");
  const outText = h("pre", "jr-pre jr-tool-output-text");
  const more = h("button", "jr-link jr-more", "Show more");
  more.type = "button";
  output.append(outText, more);
  const stdoutLabel = h("div", "jr-label", "stdout");
  const stdout = h("pre", "jr-pre jr-tool-stdout");
  const stderrLabel = h("div", "jr-label", "stderr");
  const stderr = h("pre", "jr-pre jr-tool-stderr");
  const error = h("div", "jr-tool-error");
  const displays = h("div", "jr-tool-displays");
  el.append(head, argsLabel, args, outLabel, output, stdoutLabel, stdout, stderrLabel, stderr, error, displays);
  let expanded = false;
  let fullOutput = "";
  let displaysKey = null;
  const paintOutput = () => {
    const long = fullOutput.length > OUTPUT_PREVIEW;
    setText(outText, long && !expanded ? `${fullOutput.slice(0, OUTPUT_PREVIEW)}…` : fullOutput);
    more.hidden = !long;
    setText(more, expanded ? "Show less" : `Show more (${fullOutput.length.toLocaleString()} chars)`);
  };
  more.addEventListener("click", () => {
    expanded = !expanded;
    paintOutput();
  });
  return {
    el,
    update(call, record, ctx = {}) {
      const fn = call.function || {};
      const toolName = fn.name || record?.name || call.type || "tool";
      el.dataset.name = toolName;
      el.dataset.id = call.id || "";
      const asked = ctx.approvals?.get(call.id);
      const st = record?.status
        || (fn.output !== undefined && fn.output !== null ? "completed" : null)
        || (asked && asked.status === "pending" ? "awaiting approval" : asked?.status === "denied" ? "denied" : "running");
      el.dataset.status = st;
      setText(name, toolName);
      setText(status, st);
      status.dataset.status = st;
      const d = record && record.started_at != null && record.ended_at != null ? record.ended_at - record.started_at : null;
      setText(dur, formatSeconds(d));
      const a = record && record.arguments !== undefined && record.arguments !== null && typeof record.arguments !== "string"
        ? record.arguments
        : fn.arguments;
      setText(args, prettyArgs(a));
      const out = fn.output ?? record?.output ?? null;
      const hasOut = out !== null && out !== undefined;
      outLabel.hidden = output.hidden = !hasOut;
      if (hasOut && String(out) !== fullOutput) {
        fullOutput = String(out);
        paintOutput();
      }
      setText(error, record?.error || "");
      error.hidden = !record?.error;
      setText(stdout, record?.stdout || "");
      stdoutLabel.hidden = stdout.hidden = !record?.stdout;
      setText(stderr, record?.stderr || "");
      stderrLabel.hidden = stderr.hidden = !record?.stderr;
      const key = JSON.stringify(record?.displays || []).length + ":" + (record?.displays || []).length;
      if (key !== displaysKey) {
        displaysKey = key;
        renderDisplays(displays, record?.displays);
      }
      displays.hidden = !(record?.displays || []).length;
    },
  };
}

function createStepView() {
  const el = h("div", "jr-step");
  const head = h("div", "jr-step-head");
  const icon = h("span", "jr-step-icon");
  icon.setAttribute("aria-hidden", "true");
  const label = h("span", "jr-step-label");
  const track = h("span", "jr-bar-track");
  const bar = h("span", "jr-bar");
  track.append(bar);
  const dur = h("span", "jr-step-dur");
  head.append(icon, label, track, dur);
  const body = h("div", "jr-step-body");
  el.append(head, body);
  const calls = new Map();
  return {
    el,
    update(step, ctx) {
      const type = step.type || step.step_details?.type || "message_creation";
      el.dataset.type = type;
      el.dataset.status = step.status || "in_progress";
      el.dataset.id = step.id;
      const toolCalls = stepToolCalls(step);
      if (type === "tool_calls") {
        const counts = new Map();
        for (const c of toolCalls) {
          const n = c.function?.name || c.type;
          if (n) counts.set(n, (counts.get(n) || 0) + 1);
        }
        const names = [...counts].map(([n, k]) => (k > 1 ? `${n} ×${k}` : n));
        setText(label, names.length ? names.join(", ") : "Tool calls");
      } else {
        setText(label, step.status === "in_progress" ? "Writing reply" : "Reply");
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
      for (const call of toolCalls) {
        const key = call.id || `i${call.index}`;
        seen.add(key);
        let view = calls.get(key);
        if (!view) {
          view = createToolCallView();
          calls.set(key, view);
          body.append(view.el);
        }
        view.update(call, ctx.records[call.id], ctx);
      }
      for (const [key, view] of calls) {
        if (!seen.has(key)) {
          view.el.remove();
          calls.delete(key);
        }
      }
      body.hidden = calls.size === 0;
    },
  };
}

/** The timeline of a run's steps; `update(state, ctx)` reconciles rows by step id. */
export function createTimeline(el) {
  const rows = new Map();
  return {
    update(steps, ctx) {
      let prev = null;
      const seen = new Set();
      for (const [i, step] of steps.entries()) {
        seen.add(step.id);
        let row = rows.get(step.id);
        const reasoning = isReasoningStep(step);
        if (row && (row.kind === "reasoning") !== reasoning) {
          row.el.remove(); // a row made before the step's type was known
          row = null;
        }
        if (!row) {
          row = reasoning ? createReasoningView() : createStepView();
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
