"""One exception tree for the whole package.

Modelled on httpx: transport problems (connection, timeout) are separate from status errors, and
status errors are subclassed by HTTP status so callers can catch what they can act on. Every error
keeps the status, code and message of the API's error body; none ever holds the API key, because
the key is never passed in (request ids and paths are, secrets are not).
"""

from __future__ import annotations

from typing import Any


class JupyterRunsError(Exception):
    """Base of every error this package raises on purpose."""


class APIError(JupyterRunsError):
    """An error reported by an Assistants API (remote server or the embedded engine).

    ``type`` and ``param`` mirror the API's error body (``{"error": {"message", "type", "param",
    "code"}}``) so the server can send an engine error back out unchanged.
    """

    status: int | None = None
    default_type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code = code
        self.type = type or self.default_type
        self.param = param
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        parts = [self.message]
        detail = ", ".join(
            f"{k}={v}" for k, v in (("status", self.status), ("code", self.code)) if v is not None
        )
        if detail:
            parts.append(f"({detail})")
        if self.request_id:
            parts.append(f"[request {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r})"

    def to_body(self) -> dict[str, Any]:
        """The API's error body for this error (what the server sends)."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class BadRequestError(APIError):
    status = 400
    default_type = "invalid_request_error"


class AuthenticationError(APIError):
    status = 401
    default_type = "authentication_error"


class PermissionDeniedError(APIError):
    status = 403
    default_type = "permission_error"


class NotFoundError(APIError):
    status = 404
    default_type = "invalid_request_error"


class ConflictError(APIError):
    status = 409
    default_type = "invalid_request_error"


class UnprocessableEntityError(APIError):
    status = 422
    default_type = "invalid_request_error"


class RateLimitError(APIError):
    status = 429
    default_type = "rate_limit_error"


class InternalServerError(APIError):
    status = 500
    default_type = "server_error"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_status(status: int) -> type[APIError]:
    """The APIError subclass for an HTTP status (5xx share InternalServerError)."""
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, APIError)


class APIConnectionError(JupyterRunsError):
    """The server could not be reached, or the connection dropped mid-response."""

    def __init__(self, message: str = "Connection error.", *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url


class APITimeoutError(APIConnectionError):
    """No response (or no further bytes of a stream) within the timeout."""

    def __init__(self, message: str = "Request timed out.", *, url: str | None = None) -> None:
        super().__init__(message, url=url)


class StreamError(JupyterRunsError):
    """A stream could not be decoded: malformed SSE, invalid JSON in ``data:``, or an ``error`` event.

    ``code`` and ``message`` come from the error event when there was one.
    """

    def __init__(
        self, message: str, *, code: str | None = None, event: str | None = None, data: Any = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.event = event
        self.data = data


class RunError(JupyterRunsError):
    """A run ended in a status other than ``completed`` (failed, cancelled, expired, incomplete),
    or a wait for it timed out. ``run`` is the last snapshot, so the run stays identified."""

    def __init__(self, message: str, *, run: Any = None, status: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.run = run
        self.status = status

    @classmethod
    def from_run(cls, run: Any) -> RunError:
        """The error for a run that ended unsuccessfully, naming its status and why."""
        status = run.get("status")
        why = ""
        if run.get("last_error"):
            err = run["last_error"]
            why = f": {err.get('code')}: {err.get('message')}"
        elif run.get("incomplete_details"):
            why = f": {run['incomplete_details'].get('reason')}"
        return cls(f"run {run.get('id')} ended {status}{why}", run=run, status=status)


class RunTimeoutError(RunError):
    """``wait(timeout=...)`` ran out; the run is still going (or stuck) and ``run`` identifies it."""


class ToolError(JupyterRunsError):
    """A callable could not be made into a tool (bad signature), or a tool definition is invalid."""


class ModelError(JupyterRunsError):
    """A model adapter failed; ``code`` is the run's ``last_error.code``
    (``server_error``, ``rate_limit_exceeded`` or ``invalid_prompt``)."""

    def __init__(self, message: str, *, code: str = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
