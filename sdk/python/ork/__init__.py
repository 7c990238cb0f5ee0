"""Ork Python task SDK: mark a function with @task; the worker runs it through `python -m ork.runner`."""

from .context import Context, Logger, Metrics, TaskError, task

__all__ = ["task", "Context", "TaskError", "Logger", "Metrics"]
__version__ = "0.1.0"
