// Following the stream the way chat UIs do. The view has no scroll region of its own (a nested
// capped region is what hid the timeline), so it follows in whatever scrolls it: the notebook's
// scroller, or the page. Rule: while the widget's bottom edge is on screen, growth keeps it there;
// once the user scrolls it off screen (up, or away to another cell) the view stops following, and
// it starts again when they bring the bottom back. It never scrolls a notebook whose reader is
// elsewhere, never moves focus, and tells its own scroll writes apart from the user's.

const SLACK = 6; // px: a bottom edge this close to the viewport's counts as "at the bottom"

function scrolls(el) {
  const oy = getComputedStyle(el).overflowY;
  return (oy === "auto" || oy === "scroll" || oy === "overlay") && el.scrollHeight > el.clientHeight + 1;
}

/** The nearest ancestor that actually scrolls vertically, the page's scroller, or null. */
export function findScroller(el) {
  for (let n = el.parentElement; n && n !== document.body && n !== document.documentElement; n = n.parentElement) {
    if (scrolls(n)) return n;
  }
  const page = document.scrollingElement || document.documentElement;
  return page && page.scrollHeight > page.clientHeight + 1 ? page : null;
}

/**
 * `after()` runs after each paint's DOM writes (one layout read, at most one scroll write);
 * `pause()` stops following (the user unfolded something to read it); `following` says whether
 * the view follows now.
 */
export function createFollower(root, { slack = SLACK } = {}) {
  let following = null; // unknown until the widget is first laid out
  let scroller = null;
  let target = null; // where scroll events come from: the element, or window for the page
  let expected = null; // the scrollTop we wrote last
  const isPage = (sc) => sc === document.scrollingElement || sc === document.documentElement;

  const viewport = () => {
    if (!scroller || isPage(scroller)) return { top: 0, bottom: window.innerHeight };
    const r = scroller.getBoundingClientRect();
    return { top: Math.max(0, r.top), bottom: Math.min(window.innerHeight, r.bottom) };
  };
  const edgeVisible = () => {
    const r = root.getBoundingClientRect();
    const v = viewport();
    return r.bottom <= v.bottom + slack && r.bottom >= v.top;
  };

  const onScroll = () => {
    if (expected !== null && Math.abs(scroller.scrollTop - expected) <= 1) return;
    expected = null;
    following = edgeVisible();
  };
  const onWheel = (ev) => {
    if (ev.deltaY < 0) following = false; // before the scroll lands, so no frame pulls back
  };

  function attach(sc) {
    if (sc === scroller) return;
    detach();
    scroller = sc;
    if (!sc) return;
    target = isPage(sc) ? window : sc;
    target.addEventListener("scroll", onScroll, { passive: true });
    target.addEventListener("wheel", onWheel, { passive: true });
  }
  function detach() {
    if (target) {
      target.removeEventListener("scroll", onScroll);
      target.removeEventListener("wheel", onWheel);
    }
    scroller = target = null;
  }

  return {
    get following() {
      return following === true;
    },
    pause() {
      following = false;
    },
    after() {
      if (!root.isConnected) return;
      if (!scroller || !scroller.isConnected || scroller.scrollHeight <= scroller.clientHeight + 1) {
        attach(findScroller(root));
      }
      const r = root.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) return; // not laid out (a hidden tab): decide later
      if (following === null) {
        following = !scroller || edgeVisible();
        return;
      }
      if (!following || !scroller) return;
      const over = r.bottom - viewport().bottom;
      if (over > 0.5) {
        scroller.scrollTop += Math.ceil(over);
        expected = scroller.scrollTop;
      }
    },
    destroy() {
      detach();
    },
  };
}
