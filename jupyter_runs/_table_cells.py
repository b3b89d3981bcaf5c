"""Text for the cells of the markdown tables ``%runs`` prints (settings, stored threads).

Its own module because both ``magic.py`` and ``thread_names.py`` build such tables, and the
helper module must not import the magic (which loads it on first use).
"""

from __future__ import annotations

import datetime as dt


def md_cell(text: str) -> str:
    """``text`` that cannot break a table row: no column separator, no line break."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def when(ts: int) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM``; ``—`` for none."""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "—"
