"""Every error creative-hub raises, and what to do about it.

The tree::

    HubError                      anything the hub refuses or cannot do
    ├── ValidationError           bad input: names the field and the rule
    │   └── PayloadTooLarge       an event over the size limit
    ├── AccessDenied              the principal may not do this
    ├── NotFound                  no such event / topic / group
    └── LogError                  the log (engine) failed
        ├── UnknownEngine         a log URL whose scheme no engine serves
        ├── EngineUnavailable     the broker or file cannot be reached
        ├── IdConflict            an id seen before, with different content
        ├── PositionGone          a position already removed by retention
        └── LogClosed             the log was used after close()

Each engine translates its driver's errors into these at one place, so the
same failure reads the same on every engine.  Every error carries its data as
attributes, so the CLI can print it and exit non-zero.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "EngineUnavailable",
    "HubError",
    "IdConflict",
    "LogClosed",
    "LogError",
    "NotFound",
    "PayloadTooLarge",
    "PositionGone",
    "UnknownEngine",
    "ValidationError",
]


class HubError(Exception):
    """Base of every error the hub raises on purpose."""

    #: process exit code the CLI uses for this kind of error
    exit_code = 1


class ValidationError(HubError):
    """Bad input. ``field`` is a dotted path into the event, ``rule`` the rule it broke.

    ``index`` is the position of the offending event in a batch, when there is one.
    """

    exit_code = 2

    def __init__(self, field: str, rule: str, *, index: int | None = None) -> None:
        self.field = field
        self.rule = rule
        self.index = index
        where = f"event[{index}].{field}" if index is not None else field
        super().__init__(f"{where}: {rule}")

    def at(self, index: int) -> ValidationError:
        """The same error, located at ``index`` in a batch."""
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        ValidationError.__init__(err, self.field, self.rule, index=index)
        return err


class PayloadTooLarge(ValidationError):
    """An encoded event bigger than the hub's ``max_event_bytes``."""

    def __init__(self, size: int, limit: int, *, index: int | None = None) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            "event",
            f"{size} bytes encoded exceeds the limit of {limit} bytes "
            "(max_event_bytes; store large content elsewhere and link to it)",
            index=index,
        )

    def at(self, index: int) -> PayloadTooLarge:
        return PayloadTooLarge(self.size, self.limit, index=index)


class AccessDenied(HubError):
    """The principal is not allowed to do this."""

    exit_code = 3


class NotFound(HubError):
    """No such thing (event, topic, group)."""

    exit_code = 4


class LogError(HubError):
    """The log failed to do what was asked."""

    exit_code = 5


class UnknownEngine(LogError):
    """A log URL that no installed engine serves."""

    def __init__(self, url: str, known: list[str]) -> None:
        self.url = url
        self.known = known
        super().__init__(
            f"log URL {url!r}: no engine for this scheme; use one of " + ", ".join(f"{k}://" for k in known)
        )


class EngineUnavailable(LogError):
    """The broker (or database file) cannot be reached or refused the operation."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"log at {url}: {reason}")


class IdConflict(LogError):
    """An event id that is already in the topic with different content.

    Retrying a publish with the same id and the same content is safe (it is
    stored once); reusing an id for different content is refused.
    """

    def __init__(self, topic: str, id: str) -> None:
        self.topic = topic
        self.id = id
        super().__init__(
            f"id {id!r} is already in topic {topic!r} with different content; "
            "give the new event a new id (or set supersedes= to revise the old one)"
        )


class PositionGone(LogError):
    """A read from a position that retention has already removed."""

    def __init__(self, topic: str, position: str, earliest: str | None) -> None:
        self.topic = topic
        self.position = position
        self.earliest = earliest
        super().__init__(
            f"topic {topic!r}: position {position} is gone (removed by retention); "
            f"the earliest retained position is {earliest}"
        )


class LogClosed(LogError):
    """The log (or subscription) was used after ``close()``."""

    def __init__(self, what: str = "log") -> None:
        super().__init__(f"{what} is closed")
