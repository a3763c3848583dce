"""ECS services: the operations (operations.py) and the scheduler that keeps each service's
tasks as its record says (scheduler.py)."""

from .operations import Services
from .scheduler import ServiceScheduler

__all__ = ["ServiceScheduler", "Services"]
