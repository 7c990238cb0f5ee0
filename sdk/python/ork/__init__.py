"""Ork Python task SDK: mark a function with @task (or a class with @executor); the worker runs it through
``python -m ork.runner`` or a child of the warm fork-server (``ork.forkserver``)."""

from .context import Context, Logger, Metrics, TaskError, executor, task

__all__ = ["task", "executor", "Context", "TaskError", "Logger", "Metrics"]
__version__ = "0.1.0"
