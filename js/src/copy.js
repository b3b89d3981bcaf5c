// Copy buttons: on every code block of a reply and on the whole reply. The Clipboard API needs a
// secure context (JupyterLab over plain http on another host is not one), so a hidden textarea
// with execCommand("copy") is the fallback; the button says whether it worked.
import { h } from "./timeline.js";

const FEEDBACK_MS = 1500;

function fallbackCopy(text) {
  const ta = document.createElement("textarea");
  ta.value = text;
  ta.setAttribute("readonly", "");
  ta.setAttribute("aria-hidden", "true");
  Object.assign(ta.style, { position: "fixed", top: "0", left: "-9999px", opacity: "0" });
  const active = document.activeElement;
  document.body.append(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  ta.remove();
  // The textarea took focus for the copy; hand it back without scrolling anything.
  if (active && typeof active.focus === "function") active.focus({ preventScroll: true });
  return ok;
}

function feedback(button, ok) {
  if (!button) return;
  if (!button.dataset.label) button.dataset.label = button.textContent;
  button.textContent = ok ? "Copied" : "Copy failed";
  button.dataset.copied = ok ? "true" : "false";
  clearTimeout(button._jrCopyTimer);
  button._jrCopyTimer = setTimeout(() => {
    button.textContent = button.dataset.label;
    delete button.dataset.copied;
  }, FEEDBACK_MS);
}

/** Copy `text`; resolves to true when it reached the clipboard. */
export async function copyText(text, button) {
  let ok = false;
  try {
    if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch {
    ok = false;
  }
  if (!ok) ok = fallbackCopy(text);
  feedback(button, ok);
  return ok;
}

/** Add a copy button to every code box of a freshly rendered fragment. */
export function decorateCode(root) {
  for (const box of root.querySelectorAll(".jr-code")) {
    if (box.querySelector(":scope > .jr-copy-code")) continue;
    const btn = h("button", "jr-button jr-copy jr-copy-code", "Copy");
    btn.type = "button";
    btn.setAttribute("aria-label", "Copy code");
    box.prepend(btn);
  }
}
