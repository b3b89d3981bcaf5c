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
                       "neither means no auth, loopback Host names only; an empty key is an error)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow browser calls from ORIGIN, e.g. http://localhost:5173 "
                       "(repeatable; '*' for any). Off by default: browser requests are refused.")
    serve.add_argument("--scripted-dir", default=None, metavar="DIR",
                       help="directory scripted:PATH models are read from; paths outside it are "
                       "refused (default: the working directory)")
    serve.add_argument("--cassette", default=None, metavar="FILE",
                       help="record/replay model calls in FILE (JSON lines; see --cassette-mode)")
    serve.add_argument("--cassette-mode", default="off", choices=("off", "record", "replay", "auto"),
                       help="off (default), record, replay (never call a model) or auto")
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
        from .server import exposure_warnings, serve

        if args.cassette_mode != "off" and not args.cassette:
            print("jupyter-runs: --cassette-mode needs --cassette FILE", file=sys.stderr)
            return 2
        env_key = os.environ.get("JUPYTER_RUNS_API_KEY")
        api_key = args.api_key if args.api_key is not None else env_key
        if api_key is not None and not api_key.strip():
            # `--api-key "$KEY"` with KEY unset must not quietly serve with no auth.
            where = "--api-key" if args.api_key is not None else "JUPYTER_RUNS_API_KEY"
            print(f"jupyter-runs: {where} is empty; give a key, or leave it out to serve without "
                  "auth (loopback only)", file=sys.stderr)
            return 2
        if not 0 <= args.port <= 65535:
            print(f"jupyter-runs: --port must be 0..65535, got {args.port}", file=sys.stderr)
            return 2
        for warning in exposure_warnings(args.host, api_key, args.cors_origin):
            print(f"jupyter-runs: {warning}", file=sys.stderr, flush=True)

        def ready(url: str, store: str) -> None:
            auth = "bearer key required" if api_key else "no auth"
            print(f"jupyter-runs: serving the Assistants API at {url} (store {store}; {auth})",
                  flush=True)

        try:
            serve(args.host, args.port, args.store, api_key, cors_origins=args.cors_origin,
                  scripted_dir=args.scripted_dir, log_level=args.log_level, on_ready=ready,
                  warn=False, cassette=args.cassette, cassette_mode=args.cassette_mode,
                  model_config=_model_config(args))
        except OSError as exc:
            print(f"jupyter-runs: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
