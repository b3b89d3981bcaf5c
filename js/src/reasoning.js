// The model's reasoning summary as its own timeline item, and the run's usage and cost line.
//
// The engine carries reasoning as a run step of type "reasoning" (step_details.reasoning.summary,
// streamed by step deltas; see README "Reasoning"). While it streams the item is open, so the
// user sees what the model is doing during what used to be a silent gap; once the step is done it
// collapses to one line with its duration and reasoning-token count (the user can reopen it).
// Summary text is model output: it goes through the same markdown renderer (html off, DOMPurify)
// as the reply.
import { renderMarkdown } from "./markdown.js";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function isReasoningStep(step) {
  return (step?.type || step?.step_details?.type) === "reasoning";
}

export function reasoningText(step) {
  const text = step?.step_details?.reasoning?.summary;
  return typeof text === "string" ? text : "";
}

/**
 * Reasoning tokens of a reasoning step, or null until known. Models report them at the end of the
 * call, after the reasoning step is done, so the engine puts them in the usage of the step the
 * reasoning led to (`next`: the reply or the tool calls), as completion_tokens_details.
 */
export function reasoningTokens(step, next) {
  for (const u of [step?.usage, next?.usage]) {
    const n = u?.completion_tokens_details?.reasoning_tokens;
    if (Number.isFinite(n)) return n;
  }
  return null;
}

function seconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "";
  if (s < 1) return `${Math.max(0, Math.round(s * 1000))} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m}m ${Math.round(s - m * 60)}s`;
}

/** A timeline row for a reasoning step: a step view's `{el, update(step, ctx)}` shape, plus
 * the step after it (`next`), which carries the reasoning-token count. */
export function createReasoningView() {
  const root = el("details", "jr-step jr-reasoning");
  root.open = true;
  const head = el("summary", "jr-step-head jr-reasoning-head");
  const icon = el("span", "jr-step-icon");
  icon.setAttribute("aria-hidden", "true");
  const label = el("span", "jr-step-label jr-reasoning-label");
  const track = el("span", "jr-bar-track");
  const bar = el("span", "jr-bar");
  track.append(bar);
  const dur = el("span", "jr-step-dur");
  head.append(icon, label, track, dur);
  const body = el("div", "jr-reasoning-text jr-md");
  root.append(head, body);
  let shown = null;
  let collapsed = false; // collapsed once, when the step finished; after that the user decides
  return {
    el: root,
    kind: "reasoning",
    update(step, ctx, next) {
      const status = step.status || "in_progress";
      const done = status !== "in_progress";
      root.dataset.type = "reasoning";
      root.dataset.status = status;
      root.dataset.id = step.id;
      const [start, end0] = ctx.timings?.[step.id] || [null, null];
      const end = end0 ?? (ctx.terminal ? start : ctx.now);
      const took = start !== null && end !== null ? end - start : null;
      const tokens = reasoningTokens(step, next);
      const bits = [done ? (took !== null ? `Thought for ${seconds(took)}` : "Thought") : "Thinking…"];
      if (tokens !== null) bits.push(`${tokens.toLocaleString()} reasoning tokens`);
      setText(label, bits.join(" · "));
      root.dataset.tokens = tokens === null ? "" : String(tokens);
      if (start !== null && ctx.total > 0) {
        const left = Math.min(100, (start / ctx.total) * 100);
        const width = Math.max(0.8, Math.min(100 - left, ((end - start) / ctx.total) * 100));
        bar.style.left = `${left.toFixed(2)}%`;
        bar.style.width = `${width.toFixed(2)}%`;
      }
      setText(dur, seconds(took));
      const text = reasoningText(step);
      if (text !== shown) {
        shown = text;
        body.innerHTML = renderMarkdown(text);
      }
      if (done && !collapsed) {
        collapsed = true;
        root.open = false;
      }
    },
  };
}

/** The price entry for a model id: the whole id, else its name part, else "*". */
export function priceFor(prices, model) {
  if (!prices || typeof prices !== "object" || !model) return null;
  const name = String(model).includes(":") ? String(model).split(":").slice(1).join(":") : model;
  return prices[model] || prices[name] || prices["*"] || null;
}

/** Dollars for `usage` at `price` (per million tokens: input, cached_input, output), or null. */
export function runCost(usage, price) {
  if (!usage || !price) return null;
  const input = Number(price.input) || 0;
  const cachedRate = price.cached_input ?? price.input;
  const output = Number(price.output) || 0;
  const cached = usage.prompt_tokens_details?.cached_tokens || 0;
  const prompt = usage.prompt_tokens || 0;
  const completion = usage.completion_tokens || 0;
  return ((prompt - cached) * input + cached * (Number(cachedRate) || 0) + completion * output) / 1e6;
}

export function formatCost(dollars) {
  if (dollars === null || !Number.isFinite(dollars)) return "";
  if (dollars === 0) return "$0";
  if (dollars < 0.01) return `$${dollars.toPrecision(3)}`;
  return `$${dollars.toFixed(dollars < 1 ? 3 : 2)}`;
}

/** "1,200 in · 400 cached · 300 out · 250 reasoning · 1,500 tokens · $0.0042" */
export function usageLine(usage, prices, model) {
  if (!usage) return "";
  const n = (v) => (v ?? 0).toLocaleString();
  const parts = [`${n(usage.prompt_tokens)} in`];
  const cached = usage.prompt_tokens_details?.cached_tokens;
  if (cached) parts.push(`${n(cached)} cached`);
  parts.push(`${n(usage.completion_tokens)} out`);
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  if (reasoning) parts.push(`${n(reasoning)} reasoning`);
  parts.push(`${n(usage.total_tokens)} tokens`);
  const cost = formatCost(runCost(usage, priceFor(prices, model)));
  if (cost) parts.push(cost);
  return parts.join(" · ");
}
