// One rendered view of a run. Views never fold anything themselves: they read the shared store and
// repaint on requestAnimationFrame, so a burst of 30 delta batches costs one DOM write per frame.
import { TERMINAL, messageText } from "./fold.js";
import { createMarkdownView } from "./markdown.js";
import { createTimeline, formatSeconds, h } from "./timeline.js";
import { copyText, decorateCode } from "./copy.js";
import { createFollower } from "./follow.js";
import { usageLine } from "./reasoning.js";

const STATUS_LABEL = {
  queued: "Queued",
  waiting: "Waiting for the previous run",
  in_progress: "Running",
  requires_action: "Waiting for tools",
  cancelling: "Stopping",
  cancelled: "Stopped",
  completed: "Completed",
  incomplete: "Incomplete",
  failed: "Failed",
  expired: "Expired",
};

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function createMessageView(role) {
  const el = h("div", "jr-message");
  el.dataset.role = role;
  const who = h("div", "jr-role", role === "user" ? "You" : "Assistant");
  const body = h("div", "jr-md");
  el.append(who, body);
  const md = createMarkdownView(body, { decorate: decorateCode });
  let copyReply = null;
  if (role !== "user") {
    const actions = h("div", "jr-message-actions");
    copyReply = h("button", "jr-button jr-copy jr-copy-reply", "Copy reply");
    copyReply.type = "button";
    copyReply.title = "Copy the reply as markdown";
    copyReply.hidden = true;
    copyReply.addEventListener("click", () => copyText(md.text, copyReply));
    actions.append(copyReply);
    el.append(actions);
  }
  const caret = h("span", "jr-caret");
  caret.setAttribute("aria-hidden", "true");
  let finished = false;
  let shown = null;
  return {
    el,
    update(text, streaming) {
      if (!streaming) {
        if (!finished || text !== shown) md.finish(text);
        finished = true;
      } else {
        if (finished && !text.startsWith(shown)) finished = false;
        if (text !== shown) md.update(text);
        finished = false;
      }
      const changed = text !== shown || el.dataset.streaming !== (streaming ? "true" : "false");
      if (copyReply) copyReply.hidden = !text;
      shown = text;
      el.dataset.streaming = streaming ? "true" : "false";
      if (streaming) {
        // Put the caret at the end of the last text-bearing block so it sits on the last line.
        let host = md.live;
        while (host.lastElementChild && /^(P|UL|OL|LI|H[1-6]|BLOCKQUOTE|PRE|CODE)$|^DIV$/.test(host.lastElementChild.tagName)
          && (host.lastElementChild.tagName !== "DIV" || host.lastElementChild.classList.contains("jr-code"))) {
          host = host.lastElementChild;
        }
        if (caret.parentNode !== host || host.lastChild !== caret) host.append(caret);
      } else if (caret.parentNode) {
        caret.remove();
      }
      return changed;
    },
  };
}

function createApprovalView(item, onApprove, onDeny) {
  const el = h("div", "jr-approval");
  const title = h("div", "jr-approval-title");
  title.append(h("span", "jr-approval-kicker", "Approve tool call"), h("span", "jr-tool-name", item.name));
  const args = h("textarea", "jr-approval-args");
  args.spellcheck = false;
  args.setAttribute("aria-label", `Arguments for ${item.name}`);
  let text = item.arguments;
  if (typeof text !== "string") text = JSON.stringify(text ?? {}, null, 2);
  else {
    try {
      text = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      /* keep as typed */
    }
  }
  args.value = text;
  args.rows = Math.min(12, Math.max(3, text.split("\n").length));
  const problem = h("div", "jr-approval-problem");
  problem.setAttribute("role", "alert");
  const actions = h("div", "jr-actions");
  const approve = h("button", "jr-button jr-primary jr-approve", "Approve");
  const deny = h("button", "jr-button jr-deny", "Deny");
  approve.type = deny.type = "button";
  const verdict = h("span", "jr-approval-verdict");
  actions.append(approve, deny, verdict);
  el.append(title, args, problem, actions);
  approve.addEventListener("click", () => {
    try {
      JSON.parse(args.value || "{}");
    } catch (err) {
      problem.textContent = `Arguments are not valid JSON: ${err.message}`;
      return;
    }
    problem.textContent = "";
    el.dataset.status = "sent";
    onApprove(item.id, args.value);
  });
  deny.addEventListener("click", () => {
    el.dataset.status = "sent";
    onDeny(item.id, "denied by the user");
  });
  return {
    el,
    update(next) {
      const status = next.status || "pending";
      if (el.dataset.status !== "sent" || status !== "pending") el.dataset.status = status;
      const open = status === "pending" && el.dataset.status !== "sent";
      approve.disabled = deny.disabled = args.readOnly = !open;
      setText(verdict, status === "approved" ? "Approved" : status === "denied" ? "Denied" : status === "cancelled" ? "Not run: the run was stopped" : el.dataset.status === "sent" ? "Sending…" : "");
    },
  };
}

/**
 * Mount a run view into `el`. `actions` gets onStop(), onApprove(id, argumentsJson),
 * onDeny(id, reason). Returns { destroy, frames } where frames counts painted animation frames.
 */
export function mountRunView(el, store, actions = {}) {
  const onStop = actions.onStop || (() => {});
  const onApprove = actions.onApprove || (() => {});
  const onDeny = actions.onDeny || (() => {});
  const raf = actions.requestAnimationFrame || ((cb) => window.requestAnimationFrame(cb));
  const caf = actions.cancelAnimationFrame || ((id) => window.cancelAnimationFrame(id));
  const perfNow = actions.now || (() => performance.now());

  const root = h("div", "jr-run");
  root.dataset.status = "queued";
  const header = h("div", "jr-header");
  const badge = h("span", "jr-badge");
  badge.setAttribute("role", "status");
  const dot = h("span", "jr-dot");
  const badgeText = h("span", "jr-badge-text");
  badge.append(dot, badgeText);
  const meta = h("span", "jr-meta");
  const model = h("span", "jr-model");
  const elapsed = h("span", "jr-elapsed");
  const usage = h("span", "jr-usage");
  meta.append(model, elapsed, usage);
  const stop = h("button", "jr-button jr-stop", "Stop");
  stop.type = "button";
  stop.title = "Cancel this run (the reply so far is kept)";
  header.append(badge, meta, stop);
  const error = h("div", "jr-error");
  error.setAttribute("role", "alert");
  const body = h("div", "jr-body");
  const prompt = h("div", "jr-prompt");
  const timeline = h("div", "jr-timeline");
  const approvals = h("div", "jr-approvals");
  const messages = h("div", "jr-messages");
  body.append(prompt, timeline, approvals, messages);
  root.append(header, error, body);
  el.append(root);

  const follower = createFollower(root);
  const tl = createTimeline(timeline, { onUser: () => follower.pause(), ui: actions.ui });
  root.addEventListener("click", (ev) => {
    const btn = ev.target.closest && ev.target.closest(".jr-copy-code");
    if (!btn || !root.contains(btn)) return;
    const pre = btn.closest(".jr-code")?.querySelector("pre");
    if (pre) copyText(pre.textContent, btn);
  });
  const messageViews = new Map();
  const approvalViews = new Map();
  let promptView = null;
  let frame = null;
  let frames = 0;
  let stopping = false;
  let clockBase = { elapsed: 0, at: perfNow() };
  let lastElapsed = null;

  stop.addEventListener("click", () => {
    if (stop.disabled) return;
    stopping = true;
    stop.disabled = true;
    setText(stop, "Stopping…");
    onStop();
  });

  const currentElapsed = (state, terminal) => {
    if (state.elapsed !== lastElapsed) {
      lastElapsed = state.elapsed;
      clockBase = { elapsed: state.elapsed || 0, at: perfNow() };
    }
    if (terminal) return state.elapsed || 0;
    return clockBase.elapsed + (perfNow() - clockBase.at) / 1000;
  };

  function paint() {
    frame = null;
    frames += 1;
    const state = store.state;
    const run = state.run || {};
    const status = run.status || (state.error ? "failed" : "queued");
    const terminal = TERMINAL.has(status);

    root.dataset.status = status;
    setText(badgeText, STATUS_LABEL[status] || status);
    setText(model, run.model || "");
    const now = currentElapsed(state, terminal);
    setText(elapsed, state.run ? formatSeconds(now) : "");
    const u = run.usage;
    setText(usage, usageLine(u, state.prices, run.model));
    stop.hidden = terminal || !state.stoppable; // nothing in the kernel listens: no button
    if (!stopping) stop.disabled = terminal || !state.run;
    const err = run.last_error?.message || (status === "failed" || !state.run ? state.error?.message : "") || "";
    const incomplete = run.incomplete_details?.reason ? `Incomplete: ${run.incomplete_details.reason}` : "";
    setText(error, err || incomplete);
    error.hidden = !(err || incomplete);

    // The user's prompt (from the widget, or the run's user message when the stream carried it).
    const promptText = state.prompt || "";
    if (promptText && !promptView) {
      promptView = createMessageView("user");
      prompt.append(promptView.el);
    }
    if (promptView) promptView.update(promptText, false);

    tl.update(state.steps, {
      timings: state.timings || {},
      records: state.records || {},
      approvals: new Map((state.approvals || []).map((a) => [a.id, a])),
      now,
      total: Math.max(now, ...Object.values(state.timings || {}).map(([a, b]) => b ?? a ?? 0), 0.001),
      terminal,
    });

    const seenApprovals = new Set();
    for (const item of state.approvals || []) {
      seenApprovals.add(item.id);
      let view = approvalViews.get(item.id);
      if (!view) {
        view = createApprovalView(item, onApprove, onDeny);
        approvalViews.set(item.id, view);
        approvals.append(view.el);
      }
      view.update(item);
    }
    for (const [id, view] of approvalViews) {
      if (!seenApprovals.has(id)) {
        view.el.remove();
        approvalViews.delete(id);
      }
    }
    approvals.hidden = approvalViews.size === 0;

    for (const msg of state.messages) {
      if (msg.role === "user" && promptText && messageText(msg).trim() === promptText.trim()) continue;
      let view = messageViews.get(msg.id);
      if (!view) {
        view = createMessageView(msg.role || "assistant");
        messageViews.set(msg.id, view);
        messages.append(view.el);
      }
      const streaming = !terminal && (msg.status || "in_progress") === "in_progress";
      view.update(messageText(msg), streaming);
    }

    // After the writes: one layout read per frame, then at most one scroll write.
    follower.after();
    if (!terminal && state.run) tick();
  }

  let ticker = null;
  function tick() {
    // Keep the elapsed time moving between kernel messages, once a second, only while running.
    if (ticker !== null) return;
    ticker = setTimeout(() => {
      ticker = null;
      schedule();
    }, 1000);
  }

  function schedule() {
    if (frame === null) frame = raf(paint);
  }

  const unsubscribe = store.subscribe(schedule);
  // The first paint is synchronous: a view the front end renders again (an output re-displayed
  // by display id) must not show one empty frame before its content (a flash).
  paint();

  return {
    root,
    get frames() {
      return frames;
    },
    destroy() {
      unsubscribe();
      follower.destroy();
      if (frame !== null) caf(frame);
      if (ticker !== null) clearTimeout(ticker);
      frame = ticker = null;
      root.remove();
    },
  };
}
