// The front end's reducer. mergeDelta/mergeList mirror jupyter_runs/events.py exactly (strings
// append, dicts merge, lists of dicts merge by `index`, identity keys replace), so a delta means
// the same thing on both sides of the comm. createStore folds the kernel's snapshot trait and its
// sequenced delta messages into one view state that every view of the widget shares.

const REPLACE_KEYS = new Set(["index", "type", "id", "object", "status", "role"]);

const isDict = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function copy(value) {
  if (Array.isArray(value)) return value.map(copy);
  if (isDict(value)) {
    const out = {};
    for (const k of Object.keys(value)) out[k] = copy(value[k]);
    return out;
  }
  return value;
}

/** Merge `delta` into `target` in place; returns `target`. */
export function mergeDelta(target, delta) {
  for (const key of Object.keys(delta)) {
    const value = delta[key];
    const current = target[key];
    if (current === undefined || current === null || REPLACE_KEYS.has(key)) {
      target[key] = copy(value);
    } else if (typeof value === "string" && typeof current === "string") {
      target[key] = current + value;
    } else if (isDict(value) && isDict(current)) {
      mergeDelta(current, value);
    } else if (Array.isArray(value) && Array.isArray(current)) {
      mergeList(current, value);
    } else if (value !== null && value !== undefined) {
      target[key] = copy(value);
    }
  }
  return target;
}

/** Merge list items by their `index` field; items without one are appended. */
export function mergeList(target, delta) {
  for (const item of delta) {
    if (!isDict(item) || !("index" in item)) {
      target.push(copy(item));
      continue;
    }
    const i = item.index;
    const fast = target[i];
    if (isDict(fast) && fast.index === i) {
      mergeDelta(fast, item);
      continue;
    }
    const existing = target.find((t) => isDict(t) && t.index === i);
    if (existing) mergeDelta(existing, item);
    else target.push(copy(item));
  }
  return target;
}

/** The text parts of a message joined. */
export function messageText(message) {
  return (message?.content || [])
    .filter((p) => p && p.type === "text")
    .map((p) => p.text?.value || "")
    .join("");
}

/** The tool calls of a tool_calls step. */
export function stepToolCalls(step) {
  const d = step?.step_details;
  return d && d.type === "tool_calls" ? d.tool_calls || [] : [];
}

export const TERMINAL = new Set(["completed", "failed", "cancelled", "expired", "incomplete"]);

function emptyState() {
  return {
    seq: 0,
    run: null,
    prompt: "",
    messages: [],
    steps: [],
    records: {},
    approvals: [],
    timings: {},
    elapsed: 0,
    error: null,
    done: false,
    stoppable: false,
  };
}

/**
 * One store per widget model. `reset(snapshot)` replaces the state with a snapshot that includes
 * every delta up to `snapshot.seq`; `apply(msg)` folds a delta batch unless its seq is already
 * included. A seq gap (a view that joined mid-stream) asks the kernel for a fresh snapshot via
 * `onGap` instead of guessing, and holds the batch until that snapshot arrives.
 */
export function createStore({ onGap = () => {} } = {}) {
  let state = emptyState();
  let version = 0;
  let pending = []; // batches that arrived past a gap, waiting for a snapshot
  // Batches applied since the last snapshot. ipywidgets applies state updates after a promise
  // chain but fires custom messages at once, so a snapshot can land after a newer delta; replaying
  // these keeps that delta instead of losing it to the reset.
  let recent = [];
  const RECENT_MAX = 512;
  const listeners = new Set();

  const notify = (kind) => {
    version += 1;
    for (const fn of listeners) fn(kind);
  };

  const findMessage = (id) => state.messages.find((m) => m.id === id);
  const findStep = (id) => state.steps.find((s) => s.id === id);

  function applyBatch(msg) {
    for (const d of msg.deltas || []) {
      if (d.kind === "message") {
        let m = findMessage(d.id);
        if (!m) {
          m = { id: d.id, object: "thread.message", role: "assistant", status: "in_progress", content: [] };
          state.messages.push(m);
        }
        mergeDelta(m, d.delta || {});
      } else if (d.kind === "step") {
        let s = findStep(d.id);
        if (!s) {
          s = { id: d.id, object: "thread.run.step", status: "in_progress" };
          state.steps.push(s);
        }
        mergeDelta(s, d.delta || {});
      }
    }
    state.seq = msg.seq;
    if (typeof msg.t === "number") state.elapsed = msg.t;
    recent.push(msg);
    if (recent.length > RECENT_MAX) recent = recent.slice(-RECENT_MAX);
  }

  return {
    get state() {
      return state;
    },
    get version() {
      return version;
    },
    reset(snapshot) {
      const next = emptyState();
      // A trait the kernel has not set yet arrives as null/undefined: keep the empty default, so
      // a view painting a brand-new widget still finds lists where it expects lists.
      for (const [k, v] of Object.entries(copy(snapshot || {}))) if (v !== undefined && v !== null) next[k] = v;
      state = next;
      const held = [...recent, ...pending].filter((b) => b.seq > state.seq).sort((a, b) => a.seq - b.seq);
      pending = [];
      recent = [];
      for (const b of held) {
        if (b.seq === state.seq + 1) applyBatch(b);
        else pending.push(b);
      }
      notify("snapshot");
    },
    apply(msg) {
      if (!msg || msg.type !== "deltas") return false;
      if (msg.seq <= state.seq) return false; // already inside the snapshot
      if (msg.seq !== state.seq + 1) {
        pending.push(msg);
        onGap(state.seq, msg.seq);
        return false;
      }
      applyBatch(msg);
      notify("delta");
      return true;
    },
    subscribe(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}
