"""The k8s-file log format conmon writes each container's stdout and stderr in: what a
LogChunk's bytes hold, read by the faces that show logs."""

from __future__ import annotations


def parse_log_line(line: str) -> tuple[str, str, str, bool]:
    """Split one k8s-file line: `<rfc3339> <stdout|stderr> <P|F>[:tags] <message>`.

    Returns (timestamp, stream, message, partial); partial means the message continues on the
    next line of the same stream (conmon splits long lines and lines without a newline).
    A line of another shape is a ValueError, as for any text that does not parse.
    """
    line = line.rstrip("\n")
    parts = line.split(" ", 3)
    if len(parts) < 3:
        raise ValueError(f"not a k8s-file log line: {line!r}")
    timestamp, stream, tags = parts[0], parts[1], parts[2]
    message = parts[3] if len(parts) == 4 else ""
    return timestamp, stream, message, tags.split(":")[0] == "P"
