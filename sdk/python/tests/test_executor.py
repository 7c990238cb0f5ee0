"""@executor classes: decoration, config validation, run() parameter mapping and the errors (runner.execute)."""

import os
import sys
import tempfile
import textwrap
import unittest

import ork
from ork import runner

try:
    import pydantic  # noqa: F401
    HAVE_PYDANTIC = True
except ImportError:
    HAVE_PYDANTIC = False


class ExecutorDecorator(unittest.TestCase):
    def test_marks_a_class_bare_or_with_options(self):
        @ork.executor
        class A:
            def run(self, config_file, ctx):
                return None

        @ork.executor(name="b")
        class B:
            def run(self, config_file, ctx):
                return None

        self.assertEqual(A.__ork_executor__, {})
        self.assertEqual(B.__ork_executor__, {"name": "b"})
        self.assertIsInstance(A(), A)

    def test_refuses_functions_and_classes_without_run(self):
        with self.assertRaises(TypeError):
            ork.executor(lambda: None)
        with self.assertRaisesRegex(TypeError, "needs a run"):
            @ork.executor
            class NoRun:
                pass


EXECUTORS = '''
from pathlib import Path
from ork import executor, Context, TaskError
{models}

@executor
class Echo:
    def __init__(self, config{config_ann}):
        self.config = config

    def run(self, config_file: str, ctx: Context, upstream: dict = {{}}){ret_ann}:
        text = Path(config_file).read_text().strip() if config_file else None
        ctx.metrics.record("calls", 1)
        prefix = self.config.prefix if hasattr(self.config, "prefix") else self.config.get("prefix")
        return {{"text": "%s%s" % (prefix, text), "upstream": sorted(upstream), "task": ctx.task_name,
                "scale": getattr(self.config, "scale", None)}}

@executor
class WithInput:
    def run(self, input, ctx):
        return {{"got": input, "attempt": ctx.attempt}}

@executor
class Failing:
    def run(self, ctx):
        raise TaskError("quota exceeded", details={{"bytes": 5}})

@executor
class NeedsOther:
    def run(self, config_file, warehouse):
        return 1

class NotMarked:
    def run(self, config_file, ctx):
        return 1

@executor
class NoConfig:
    def run(self, ctx):
        return "ok"
'''

MODELS = '''
from pydantic import BaseModel

class Config(BaseModel):
    prefix: str
    scale: float = 1.0

class Output(BaseModel):
    text: str
    upstream: list
    task: str
    scale: float
'''


class ExecutorRuns(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.old_cwd = os.getcwd()
        os.chdir(self.dir.name)
        self.addCleanup(os.chdir, self.old_cwd)
        sys.path.insert(0, self.dir.name)
        self.addCleanup(sys.path.remove, self.dir.name)
        os.makedirs("executors")
        open("executors/__init__.py", "w").close()
        typed = HAVE_PYDANTIC
        with open("executors/echo.py", "w") as f:
            f.write(textwrap.dedent(EXECUTORS.format(
                models=MODELS if typed else "", config_ann=": Config" if typed else "",
                ret_ann=" -> Output" if typed else "")))
        with open("task.yaml", "w") as f:
            f.write("hello\n")
        for name in list(sys.modules):
            if name == "executors" or name.startswith("executors."):
                del sys.modules[name]

    def request(self, cls, config=None, **extra):
        req = {"executor": {"name": "x", "type": "executors.echo:" + cls, "config": config},
               "config_file": "task.yaml", "upstream": {"stage_users": {"n": 1}, "stage_orders": None},
               "input": {"k": 1}, "context": {"task_name": "build_facts", "attempt": 2}}
        req.update(extra)
        return runner.execute(req)

    def test_config_and_context_and_upstream_reach_run(self):
        res = self.request("Echo", {"prefix": ">", "scale": 2})
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["output"]["text"], ">hello")
        self.assertEqual(res["output"]["upstream"], ["stage_orders", "stage_users"])
        self.assertEqual(res["output"]["task"], "build_facts")
        if HAVE_PYDANTIC:
            self.assertEqual(res["output"]["scale"], 2.0)
        self.assertEqual(res["metrics"], [{"name": "calls", "value": 1, "labels": {}}])

    @unittest.skipUnless(HAVE_PYDANTIC, "pydantic is not installed")
    def test_bad_config_is_a_config_validation_error(self):
        res = self.request("Echo", {"scale": "big"})
        self.assertFalse(res["ok"])
        self.assertEqual(res["error"]["type"], "config_validation")
        self.assertIn("Config", res["error"]["message"])
        self.assertEqual(res["error"]["details"]["model"], "Config")
        locs = sorted(tuple(e["loc"]) for e in res["error"]["details"]["errors"])
        self.assertEqual(locs, [("prefix",), ("scale",)])

    def test_input_parameter_gets_the_task_input(self):
        res = self.request("WithInput")
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["output"], {"got": {"k": 1}, "attempt": 2})

    def test_task_error_keeps_message_and_details(self):
        res = self.request("Failing")
        self.assertEqual(res["error"], {"type": "task_error", "message": "quota exceeded", "details": {"bytes": 5}})

    def test_spec_errors(self):
        cases = {
            "NeedsOther": "parameter 'warehouse'",
            "NotMarked": "not a class marked @executor",
            "Missing": "function 'Missing' not found",
        }
        for cls, text in cases.items():
            res = self.request(cls)
            self.assertEqual(res["error"]["type"], "spec_error", res)
            self.assertIn(text, res["error"]["message"])
        res = self.request("NoConfig", {"a": 1})
        self.assertEqual(res["error"]["type"], "spec_error")
        self.assertIn("takes no config", res["error"]["message"])
        self.assertTrue(self.request("NoConfig")["ok"])
        res = runner.execute({"executor": {"type": "executors.echo.Echo"}, "context": {}})
        self.assertEqual(res["error"]["type"], "spec_error")
        self.assertIn("module:Class", res["error"]["message"])

    def test_type_may_name_a_file(self):
        res = runner.execute({"executor": {"type": "executors/echo.py:WithInput"}, "input": [1], "context": {}})
        self.assertTrue(res["ok"], res)
        self.assertEqual(res["output"]["got"], [1])


if __name__ == "__main__":
    unittest.main()
