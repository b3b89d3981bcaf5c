// anywidget front end of jupyter_runs.RunWidget. One store per widget model lives in this
// factory's closure, fed by `initialize` (which anywidget runs once per model, before any view),
// so no delta is missed while no view exists and every view renders the same folded state.
import { createStore } from "./fold.js";
import { mountRunView } from "./view.js";
import { mountContext } from "./context.js";

const TRAITS = ["run", "messages", "steps", "records", "approvals", "prompt", "prices"];

/** The kernel's snapshot: `meta` (seq, elapsed, timings, ...) plus the structure traits. */
export function readSnapshot(model) {
  const snap = { ...(model.get("meta") || {}) };
  for (const name of TRAITS) snap[name] = model.get(name);
  return snap;
}

export default () => {
  let store = null;
  // What the reader unfolded, per model: outlives a view the front end throws away and renders
  // again, so the new view opens the same steps.
  const ui = new Map();
  return {
    initialize({ model }) {
      let syncing = false;
      store = createStore({
        onGap: () => {
          // A view that joined mid-stream missed deltas: ask the kernel for a fresh snapshot.
          if (syncing) return;
          syncing = true;
          model.send({ type: "sync" });
        },
      });
      const onSnapshot = () => {
        syncing = false;
        store.reset(readSnapshot(model));
      };
      const onCustom = (msg) => {
        if (msg && msg.type === "deltas") store.apply(msg);
      };
      store.reset(readSnapshot(model));
      // The kernel sets `meta` last inside hold_sync, and Backbone fires change events only after
      // every attribute of the message is set, so this sees one consistent snapshot.
      model.on("change:meta", onSnapshot);
      model.on("msg:custom", onCustom);
      return () => {
        model.off("change:meta", onSnapshot);
        model.off("msg:custom", onCustom);
      };
    },
    render({ model, el }) {
      const view = mountRunView(el, store, {
        onStop: () => model.send({ type: "stop" }),
        onApprove: (id, args) => model.send({ type: "approve", id, arguments: args }),
        onDeny: (id, reason) => model.send({ type: "deny", id, reason }),
        ui,
      });
      const unmountContext = mountContext(el, model);
      return () => {
        unmountContext();
        view.destroy();
      };
    },
  };
};
