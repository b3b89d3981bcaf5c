// The --context attachments as chips ("df · DataFrame 1,000×12 · 3.1 KB"), each expandable to the
// exact text the model received. Kept apart from view.js: the data comes from the widget's own
// `context` trait (set once, before the run starts), so the chips need none of the stream fold.
// Everything is inserted as text, never HTML: a DataFrame's cells are user data.
import { h } from "./timeline.js";

/** Replace `container`'s children with one chip per attachment `{name, kind, bytes, label, text}`. */
export function renderContextChips(container, items) {
  const list = Array.isArray(items) ? items : [];
  container.replaceChildren();
  container.hidden = list.length === 0;
  for (const item of list) {
    const chip = h("details", "jr-chip");
    chip.dataset.name = String(item?.name ?? "");
    const summary = h("summary", "jr-chip-label", String(item?.label ?? item?.name ?? ""));
    summary.title = "Show the exact text the model received";
    const text = h("pre", "jr-chip-text", String(item?.text ?? ""));
    chip.append(summary, text);
    container.append(chip);
  }
  return container;
}

/** Mount chips under the run view's prompt in `el`, following the model's `context` trait. */
export function mountContext(el, model) {
  const container = h("div", "jr-context");
  container.setAttribute("aria-label", "Context attached to the message");
  const prompt = el.querySelector(".jr-prompt");
  if (prompt) prompt.after(container);
  else el.prepend(container);
  const paint = () => renderContextChips(container, model.get("context"));
  paint();
  model.on("change:context", paint);
  return () => {
    model.off("change:context", paint);
    container.remove();
  };
}
