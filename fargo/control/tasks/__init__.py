"""The task engine, in parts: admission, placement, shared pulls, start turns, the start, the
containers, pods' restarts, retention; engine.py drives each task through them."""

from .engine import TaskEngine

__all__ = ["TaskEngine"]
