"""ork.runner: task files and `function:` calls, pydantic input/output, TaskError, exceptions, result files."""

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

from ork import runner

try:
    import pydantic
    PYDANTIC = int(pydantic.VERSION.split(".")[0])
except ImportError:
    PYDANTIC = 0


class RunnerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        old = os.getcwd()
        os.chdir(self.dir.name)
        self.addCleanup(os.chdir, old)
        sys.path.insert(0, self.dir.name)
        self.addCleanup(sys.path.remove, self.dir.name)

    def write(self, rel, text):
        os.makedirs(os.path.dirname(rel) or ".", exist_ok=True)
        with open(rel, "w") as f:
            f.write(textwrap.dedent(text))

    def test_task_file_with_context(self):
        self.write("tasks/t.py", """
            from ork import task, Context
            @task
            def main(data: dict, ctx: Context):
                ctx.metrics.record("n", len(data))
                return {"keys": sorted(data), "task": ctx.task_name, "i": ctx.parallel_index}
        """)
        res = runner.execute({"file": "tasks/t.py", "input": {"b": 1, "a": 2},
                              "context": {"task_name": "x", "parallel_index": 3}})
        self.assertEqual(res["output"], {"keys": ["a", "b"], "task": "x", "i": 3})
        self.assertEqual(res["metrics"][0]["value"], 2)

    @unittest.skipUnless(PYDANTIC, "pydantic is not installed")
    def test_pydantic_models_in_and_out(self):
        self.write("tasks/m.py", """
            from typing import Optional
            from ork import task
            from pydantic import BaseModel
            class In(BaseModel):
                n: int
            class Out(BaseModel):
                doubled: int
                note: Optional[str] = None
            @task
            def main(inp: In) -> Out:
                return {"doubled": inp.n * 2}
        """)
        res = runner.execute({"file": "tasks/m.py", "input": {"n": "21"}, "context": {}})
        self.assertEqual(res["output"], {"doubled": 42, "note": None})
        bad = runner.execute({"file": "tasks/m.py", "input": {"n": "many"}, "context": {}})
        self.assertEqual(bad["error"]["type"], "input_validation")
        self.assertEqual(bad["error"]["details"]["model"], "In")

    def test_function_mode_maps_input_to_arguments(self):
        self.write("pkg/__init__.py", "")
        self.write("pkg/ops.py", """
            def add(a, b=10, ctx=None):
                return {"sum": a + b, "has_ctx": ctx is not None}
        """)
        res = runner.execute({"function": "pkg.ops:add", "input": {"a": 1, "zzz": 0}, "context": {}})
        self.assertEqual(res["output"], {"sum": 11, "has_ctx": True})
        res = runner.execute({"function": "pkg.ops:add", "input": {}, "context": {}})
        self.assertEqual(res["error"]["type"], "input_validation")
        self.assertEqual(res["error"]["details"], {"missing": ["a"]})

    def test_errors(self):
        self.write("tasks/e.py", """
            from ork import task, TaskError
            @task
            def main(i):
                if i.get("kind") == "task":
                    raise TaskError("nope", details={"k": [1]})
                if i.get("kind") == "exit":
                    raise SystemExit(4)
                raise KeyError("boom")
        """)
        res = runner.execute({"file": "tasks/e.py", "input": {"kind": "task"}, "context": {}})
        self.assertEqual(res["error"], {"type": "task_error", "message": "nope", "details": {"k": [1]}})
        res = runner.execute({"file": "tasks/e.py", "input": {"kind": "exit"}, "context": {}})
        self.assertEqual(res["error"]["type"], "exit_code")
        self.assertEqual(res["error"]["details"], {"exit_code": 4})
        with contextlib.redirect_stderr(io.StringIO()) as err:  # the traceback is printed for the log
            res = runner.execute({"file": "tasks/e.py", "input": {}, "context": {}})
        self.assertIn("KeyError: 'boom'", err.getvalue())
        self.assertEqual(res["error"]["type"], "exception")
        self.assertIn("KeyError", res["error"]["details"]["traceback"])
        res = runner.execute({"file": "tasks/none.py", "context": {}})
        self.assertEqual(res["error"]["type"], "spec_error")

    def test_main_writes_the_result_file(self):
        self.write("tasks/ok.py", "from ork import task\n@task\ndef main(i):\n    print('to stdout')\n    return [i]\n")
        with open("req.json", "w") as f:
            json.dump({"file": "tasks/ok.py", "input": 5, "context": {}}, f)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(runner.__file__)))
        p = subprocess.run([sys.executable, "-m", "ork.runner", "req.json", "res.json"], env=env,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("to stdout", p.stdout)
        with open("res.json") as f:
            self.assertEqual(json.load(f), {"ok": True, "output": [5], "metrics": []})


if __name__ == "__main__":
    unittest.main()
