"""``jupyter-runs`` (and ``python -m jupyter_runs``): the command line.

``jupyter-runs serve`` serves the embedded engine as the Assistants HTTP API. The API key may come
from ``--api-key`` or, better (it stays out of the process list and shell history), from
``JUPYTER_RUNS_API_KEY``. The key is never printed; the URL is, on one line, so scripts and tests
can read the port when ``--port 0`` picked one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jupyter-runs", description="Assistant runs in Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve the embedded engine as the Assistants HTTP API",
        description="Serve the embedded engine (threads in SQLite) as the Assistants HTTP API "
        "under /v1.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="interface to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8321, help="port (default 8321; 0 picks a free one)")
    serve.add_argument("--store", default=None,
                       help="SQLite file for threads and runs (default: in the Jupyter data dir)")
    serve.add_argument("--api-key", default=None,
                       help="require 'Authorization: Bearer KEY' (default: $JUPYTER_RUNS_API_KEY; "
                       "none means no auth)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from ORIGIN (repeatable; '*' for any). Off by default.")
    serve.add_argument("--model-deadline", type=float, default=None, metavar="SECONDS",
                       help="stop a model call that has not finished after SECONDS "
                       "(default 1800; 0: no limit)")
    serve.add_argument("--model-idle-timeout", type=float, default=None, metavar="SECONDS",
                       help="stop a model call that sent no content for SECONDS, keep-alives "
                       "aside (default 300; 0: no limit)")
    serve.add_argument("--log-level", default="info",
                       choices=("critical", "error", "warning", "info", "debug"))
    return parser


def _model_config(args: argparse.Namespace) -> dict[str, float]:
    """The deadlines given on the command line, as model config (what every HTTP adapter reads)."""
    config = {}
    if args.model_deadline is not None:
        config["deadline"] = args.model_deadline
    if args.model_idle_timeout is not None:
        config["idle_timeout"] = args.model_idle_timeout
    return config


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from .server import serve

        api_key = args.api_key or os.environ.get("JUPYTER_RUNS_API_KEY") or None
        if not 0 <= args.port <= 65535:
            print(f"jupyter-runs: --port must be 0..65535, got {args.port}", file=sys.stderr)
            return 2

        def ready(url: str, store: str) -> None:
            auth = "bearer key required" if api_key else "no auth"
            print(f"jupyter-runs: serving the Assistants API at {url} (store {store}; {auth})",
                  flush=True)

        try:
            serve(args.host, args.port, args.store, api_key, cors_origins=args.cors_origin,
                  log_level=args.log_level, on_ready=ready, model_config=_model_config(args))
        except OSError as exc:
            print(f"jupyter-runs: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
