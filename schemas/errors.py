"""The exception tree: every error carries enough context to act on."""

from __future__ import annotations


class KapparecError(Exception):
    """Base of every error kapparec raises on purpose."""


class DecodeError(KapparecError):
    """A payload that cannot become an event: the dead-letter reason.

    ``code`` is a stable machine-readable reason (``not_json``, ``missing_field``, ...),
    ``field`` the offending field when there is one.
    """

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field

    def __str__(self) -> str:
        text = super().__str__()
        return (
            f"{self.code}: {text}" if self.field is None else f"{self.code} [{self.field}]: {text}"
        )
