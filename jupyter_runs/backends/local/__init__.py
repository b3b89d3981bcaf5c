"""The embedded engine: SQLite store, run state machine, model adapters."""
