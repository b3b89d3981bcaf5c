"""A traitlets type for keys: the value works as the plain string it is, but never shows itself.

``%config RunAssistantMagics`` prints every trait's current value with ``repr`` (traitlets'
``class_get_trait_help``), and ``%config RunAssistantMagics.api_key`` displays the value's repr as
the cell's output; both would put the key on screen and into the saved notebook. A ``str``
subclass whose ``repr`` masks covers every such place without touching the code that uses the key.
"""

from __future__ import annotations

from typing import Any

from traitlets import Unicode


def mask(value: str) -> str:
    """``****`` plus the last four characters of a long key, so two keys can be told apart."""
    value = str.__str__(value) if isinstance(value, str) else str(value)
    return "" if not value else "****" + value[-4:] if len(value) > 12 else "****"


class SecretStr(str):
    """A key: equal to, and usable as, its plain text; its ``repr`` is masked."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask(self))


class Secret(Unicode):  # type: ignore[type-arg]
    """A ``Unicode`` trait whose value is a :class:`SecretStr`."""

    info_text = "a secret string (never shown)"

    def validate(self, obj: Any, value: Any) -> Any:
        value = super().validate(obj, value)
        return SecretStr(value) if isinstance(value, str) and value else value

    def error(self, obj: Any, value: Any, error: Exception | None = None, info: str | None = None) -> Any:
        # The default message quotes the rejected value, which may be the key itself.
        from traitlets import TraitError

        raise TraitError(f"The {self.name!r} trait of {type(obj).__name__} expected a string, "
                         f"not {type(value).__name__}") from error


__all__ = ["Secret", "SecretStr", "mask"]
