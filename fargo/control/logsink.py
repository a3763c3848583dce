"""The seam between what captures containers' output (the awslogs driver's shipper, EKS's log
router) and CloudWatch Logs' store: log groups and streams by name, and a batch of events
appended together with how far its source has been read, in one transaction, so that a
restart resumes at exactly the next unread byte (no line lost, none twice)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Event:
    timestamp: int  # milliseconds since the epoch, when the line was written
    message: str


class LogSink(Protocol):
    def group_exists(self, region: str, group: str) -> bool: ...

    def ensure_group(self, region: str, group: str) -> None:
        """Create the group if it is not there (awslogs-create-group, auto_create_group)."""

    def ensure_stream(self, region: str, group: str, stream: str) -> None:
        """Create the stream if it is not there; model.errors.ResourceNotFoundException
        ("The specified log group does not exist.") when the group is not."""

    def shipped(self, source: str) -> int:
        """The committed read offset of a source ("TASKID/CONTAINER"), 0 if none yet."""

    def ship(self, region: str, group: str, stream: str, events: Sequence[Event],
             source: str, offset: int) -> None:
        """Append the events to the stream and record the source's new offset, atomically.
        Events already past the group's retention are dropped, as CloudWatch drops them.
        ResourceNotFoundException when the group or stream is gone (deleted by a user)."""

    def forget_source(self, source: str) -> None:
        """The source is gone for good (its task was forgotten): drop its offset."""
