"""Stored objects -> the events a stream would have carried.

Polled runs (``--poll``) and past runs (``%runs show``) are shown by the same widget as live ones;
rather than teach the widget a second input format, we replay their objects as the Assistants
events a stream would have produced. Order: the run, then each step in creation order followed by
the message it created, then the run's current status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .wire import Event

_STEP_EVENTS = {"in_progress", "completed", "failed", "cancelled", "expired"}
_MESSAGE_EVENTS = {"in_progress": "in_progress", "completed": "completed", "incomplete": "incomplete"}


def run_events(
    run: Mapping[str, Any],
    steps: Iterable[Mapping[str, Any]] = (),
    messages: Iterable[Mapping[str, Any]] = (),
) -> list[Event]:
    """Events that rebuild ``run`` with its ``steps`` and the ``messages`` they created (plus any
    ``messages`` without a step, e.g. the user's prompt, which come first)."""
    by_id = {m["id"]: m for m in messages}
    created = {
        (s.get("step_details") or {}).get("message_creation", {}).get("message_id")
        for s in steps
        if s.get("type") == "message_creation"
    }
    events: list[Event] = [Event("thread.run.created", dict(run))]
    for msg in sorted(by_id.values(), key=lambda m: m.get("created_at") or 0):
        if msg["id"] not in created:
            events.append(_message_event(msg))
    for step in sorted(steps, key=lambda s: s.get("created_at") or 0):
        status = step.get("status")
        name = status if status in _STEP_EVENTS else "in_progress"
        events.append(Event(f"thread.run.step.{name}", dict(step)))
        if step.get("type") == "message_creation":
            msg = by_id.get(step["step_details"]["message_creation"]["message_id"])
            if msg is not None:
                events.append(_message_event(msg))
    events.append(Event(f"thread.run.{run.get('status', 'queued')}", dict(run)))
    return events


def _message_event(msg: Mapping[str, Any]) -> Event:
    return Event(f"thread.message.{_MESSAGE_EVENTS.get(msg.get('status', ''), 'completed')}", dict(msg))
