"""The @task decorator, TaskError and the Context a task receives (pure Python, no third-party imports)."""

import sys


def task(fn=None, **options):
    """Marks a function as the task entry point; the function stays callable as normal Python.

    Usable bare (``@task``) or with options (``@task(name="x")``); options are kept for tooling.
    """

    def mark(f):
        f.__ork_task__ = dict(options)
        return f

    return mark(fn) if fn is not None else mark


def executor(cls=None, **options):
    """Marks a class as a custom executor: ``__init__(self, config)`` gets its `ork.yaml` config (validated when
    annotated with a pydantic model), ``run(self, config_file, ctx, upstream={})`` runs one task and returns its
    output. A workflow task selects it with ``executor: <name>`` where ork.yaml has ``executors: {<name>: {type:
    "module:Class", config: {...}}}``.

    Usable bare (``@executor``) or with options (``@executor(name="x")``); options are kept for tooling.
    """

    def mark(c):
        if not isinstance(c, type):
            raise TypeError("@executor marks a class, got %r" % (c,))
        if not callable(getattr(c, "run", None)):
            raise TypeError("@executor class %s needs a run(self, config_file, ctx, upstream) method" % c.__name__)
        c.__ork_executor__ = dict(options)
        return c

    return mark(cls) if cls is not None else mark


class TaskError(Exception):
    """A failure the task reports on purpose: becomes error {type: "task_error", message, details}."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = str(message)
        self.details = details


class Logger:
    """Writes one line per call to stderr, e.g. ``[info] message``; the worker stores it in the task log."""

    def _emit(self, level, msg, *args):
        if args:
            try:
                msg = msg % args
            except (TypeError, ValueError):
                msg = " ".join([str(msg)] + [str(a) for a in args])
        sys.stderr.write("[%s] %s\n" % (level, msg))
        sys.stderr.flush()

    def debug(self, msg, *args):
        self._emit("debug", msg, *args)

    def info(self, msg, *args):
        self._emit("info", msg, *args)

    def warning(self, msg, *args):
        self._emit("warning", msg, *args)

    warn = warning

    def error(self, msg, *args):
        self._emit("error", msg, *args)


class Metrics:
    """Collects metrics; the runner returns them to the worker with the result."""

    def __init__(self):
        self.records = []

    def record(self, name, value, labels=None):
        self.records.append({"name": str(name), "value": value, "labels": dict(labels) if labels else {}})


class Context:
    """Execution metadata of one task attempt (attempt starts at 1)."""

    def __init__(self, task_id=None, run_id=None, task_name=None, workflow_name=None, attempt=1,
                 parallel_index=None, parallel_count=None):
        self.task_id = task_id
        self.run_id = run_id
        self.task_name = task_name
        self.workflow_name = workflow_name
        self.attempt = attempt
        self.parallel_index = parallel_index
        self.parallel_count = parallel_count
        self.log = Logger()
        self.metrics = Metrics()

    @classmethod
    def from_dict(cls, d):
        d = d or {}
        return cls(task_id=d.get("task_id"), run_id=d.get("run_id"), task_name=d.get("task_name"),
                   workflow_name=d.get("workflow_name"), attempt=d.get("attempt") or 1,
                   parallel_index=d.get("parallel_index"), parallel_count=d.get("parallel_count"))

    def __repr__(self):
        return "Context(task_name=%r, run_id=%r, attempt=%r)" % (self.task_name, self.run_id, self.attempt)
