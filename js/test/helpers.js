// A fake model for the store/view: what the kernel would send, built from the wire shapes.
export function fakeModel(initial = {}) {
  const attrs = { run: null, messages: [], steps: [], records: {}, approvals: [], prompt: "", meta: { seq: 0 }, ...initial };
  const handlers = {};
  const sent = [];
  return {
    sent,
    get: (k) => attrs[k],
    set(values) {
      Object.assign(attrs, values);
      for (const k of Object.keys(values)) for (const fn of handlers[`change:${k}`] || []) fn();
    },
    on: (ev, fn) => (handlers[ev] ||= []).push(fn),
    off: (ev, fn) => (handlers[ev] = (handlers[ev] || []).filter((f) => f !== fn)),
    send: (msg) => sent.push(msg),
    emit: (msg) => (handlers["msg:custom"] || []).forEach((fn) => fn(msg)),
  };
}

export const textDelta = (id, value, index = 0) => ({
  kind: "message",
  id,
  delta: { content: [{ index, type: "text", text: { value } }] },
});

export function manualFrames() {
  const queue = [];
  return {
    requestAnimationFrame: (cb) => {
      queue.push(cb);
      return queue.length;
    },
    cancelAnimationFrame: () => {},
    now: () => 0,
    flush() {
      const cbs = queue.splice(0);
      cbs.forEach((cb) => cb());
      return cbs.length;
    },
    get pending() {
      return queue.length;
    },
  };
}
