"""The one error type of the query layer.

Every problem with a target expression -- a syntax error, an unknown
function, a wrong argument, a function that cannot compute its result --
raises `QueryError`. The HTTP layer turns it into a 400 answer whose body is
the message. `position` is the 0-based character offset in the target where
the problem is (None when it is not tied to one place); messages that name a
position say "column N" with N = position + 1.
"""

from __future__ import annotations

from cyclone.series import CycloneError


class QueryError(CycloneError):
    """A bad or uncomputable Graphite target expression."""

    def __init__(self, message: str, position: int | None = None, target: str | None = None):
        super().__init__(message)
        self.message = message
        self.position = position
        self.target = target

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"QueryError({self.message!r}, position={self.position!r})"
