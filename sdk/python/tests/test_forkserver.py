"""ork.forkserver: a real server process on a unix socket, driven with the worker's protocol (length-prefixed JSON
plus the stdout/stderr descriptors over SCM_RIGHTS)."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    def __init__(self, folder, idle=30, preload=""):
        self.sock = os.path.join(folder, "srv.sock")
        r, w = os.pipe()
        env = dict(os.environ, PYTHONPATH=SDK + os.pathsep + os.path.join(folder, "proj"),
                   ORK_PYTHON_PRELOAD=preload)
        self.log = open(os.path.join(folder, "srv.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ork.forkserver", "--socket", self.sock, "--idle", str(idle), "--ready-fd", str(w)],
            pass_fds=[w], env=env, stdout=subprocess.DEVNULL, stderr=self.log, cwd=folder)
        os.close(w)
        with os.fdopen(r) as f:
            self.ready = f.readline().strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


class ForkServerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.proj = os.path.join(cls.tmp.name, "proj")
        os.makedirs(os.path.join(cls.proj, "tasks"))
        with open(os.path.join(cls.proj, "preloaded_mod.py"), "w") as f:
            f.write("VALUE = 1\n")
        cls.server = Server(cls.tmp.name, preload="preloaded_mod")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def write(self, rel, text):
        with open(os.path.join(self.proj, rel), "w") as f:
            f.write(textwrap.dedent(text))

    def start(self, task_file, input=None, env=None):
        """Sends one request; returns (socket file, stdout read end, stderr read end, result path, pid)."""
        req_path = os.path.join(self.tmp.name, "req-%d.json" % time.monotonic_ns())
        res_path = req_path.replace("req-", "res-")
        with open(req_path, "w") as f:
            json.dump({"file": task_file, "input": input or {}, "context": {"task_name": "t"}}, f)
        task_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "ORK_TASK_REQUEST": req_path,
                    "ORK_TASK_RESULT": res_path, "PYTHONPATH": SDK + os.pathsep + self.proj}
        task_env.update(env or {})
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.server.sock)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        payload = json.dumps({"env": task_env, "cwd": self.proj}).encode()
        socket.send_fds(s, [struct.pack(">I", len(payload)) + payload], [out_w, err_w])
        os.close(out_w)
        os.close(err_w)
        f = s.makefile("r")
        first = json.loads(f.readline())
        self.assertIn("pid", first)
        return s, f, out_r, err_r, res_path, first["pid"]

    def run_task(self, task_file, input=None, env=None):
        s, f, out_r, err_r, res_path, pid = self.start(task_file, input, env)
        end = json.loads(f.readline())
        f.close()
        s.close()
        out = _read_all(out_r)
        err = _read_all(err_r)
        result = None
        if os.path.exists(res_path):
            with open(res_path) as rf:
                result = json.load(rf)
        return end, out, err, result, pid

    def test_server_got_ready(self):
        self.assertEqual(self.server.ready, "ready")

    def test_runs_a_task_in_its_own_process_group_with_output_captured(self):
        self.write("tasks/hello.py", """
            import os, sys
            from ork import task
            @task
            def main(i, ctx):
                print("out-line")
                print("err-line", file=sys.stderr)
                ctx.log.info("logged")
                return {"leader": os.getpgrp() == os.getpid(), "n": i["n"] + 1, "stdin": sys.stdin.read()}
        """)
        end, out, err, result, pid = self.run_task("tasks/hello.py", {"n": 1})
        self.assertEqual(end, {"exit_code": 0})
        self.assertNotEqual(pid, self.server.proc.pid)
        self.assertIn("out-line", out)
        self.assertIn("err-line", err)
        self.assertIn("[info] logged", err)
        self.assertEqual(result["output"], {"leader": True, "n": 2, "stdin": ""})

    def test_environment_cwd_and_sys_path_are_the_tasks(self):
        self.write("tasks/env.py", """
            import os, sys
            from ork import task
            @task
            def main(i):
                return {"env": sorted(os.environ), "cwd": os.getcwd(), "path0": sys.path[0],
                        "tz": __import__("time").tzname[0], "argv0": os.path.basename(sys.argv[0])}
        """)
        end, _, err, result, _ = self.run_task("tasks/env.py", env={"ONLY_HERE": "1", "TZ": "UTC"})
        self.assertEqual(end, {"exit_code": 0}, err)
        out = result["output"]
        self.assertIn("ONLY_HERE", out["env"])
        self.assertNotIn("ORK_PYTHON_PRELOAD", out["env"], "the server's environment is not the task's")
        self.assertEqual(out["cwd"], self.proj)
        self.assertEqual(out["path0"], self.proj)
        self.assertEqual(out["tz"], "UTC")
        self.assertEqual(out["argv0"], "runner.py")

    def test_module_state_does_not_leak_between_tasks(self):
        self.write("counter_mod.py", "count = 0\n")
        self.write("tasks/state.py", """
            import sys
            import ork.context
            from ork import task
            @task
            def main(i):
                fresh = "counter_mod" not in sys.modules
                import counter_mod
                counter_mod.count += 1
                before = getattr(ork.context, "MARK", None)
                ork.context.MARK = "set by a task"
                return {"fresh": fresh, "count": counter_mod.count, "mark": before,
                        "preloaded": "preloaded_mod" in sys.modules}
        """)
        first = self.run_task("tasks/state.py")[3]["output"]
        second = self.run_task("tasks/state.py")[3]["output"]
        self.assertEqual(first, second)
        self.assertEqual(second["count"], 1)
        self.assertTrue(second["fresh"])
        self.assertIsNone(second["mark"])

    def test_preloaded_module_is_imported_once_in_the_server(self):
        self.write("tasks/pre.py", """
            import sys
            from ork import task
            @task
            def main(i):
                return "preloaded_mod" in sys.modules
        """)
        self.assertTrue(self.run_task("tasks/pre.py")[3]["output"])

    def test_exit_status_of_crashing_tasks(self):
        self.write("tasks/crash.py", """
            import os, signal
            from ork import task
            @task
            def main(i):
                if i["how"] == "exit":
                    os._exit(3)
                os.kill(os.getpid(), signal.SIGSEGV)
        """)
        self.assertEqual(self.run_task("tasks/crash.py", {"how": "exit"})[0], {"exit_code": 3})
        self.assertEqual(self.run_task("tasks/crash.py", {"how": "segv"})[0], {"signal": signal.SIGSEGV})

    def test_group_leftovers_are_killed_when_the_task_ends(self):
        self.write("tasks/daemon.py", """
            import subprocess
            from ork import task
            @task
            def main(i):
                return subprocess.Popen(["sleep", "30"]).pid
        """)
        end, _, _, result, _ = self.run_task("tasks/daemon.py")
        self.assertEqual(end, {"exit_code": 0})
        self.assertTrue(_gone(result["output"]), "the task's background process was killed")

    def test_disconnecting_client_kills_the_task(self):
        self.write("tasks/sleep.py", """
            import time
            from ork import task
            @task
            def main(i):
                time.sleep(30)
        """)
        s, f, out_r, err_r, _, pid = self.start("tasks/sleep.py")
        f.close()
        s.close()
        self.assertTrue(_gone(pid))
        os.close(out_r)
        os.close(err_r)

    def test_bad_requests_are_refused(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.server.sock)
        payload = b'{"env": {}}'
        s.sendall(struct.pack(">I", len(payload)) + payload)
        self.assertIn("expected 2 descriptors", json.loads(s.makefile().readline())["error"])
        s.close()


class IdleExitTest(unittest.TestCase):
    def test_server_exits_when_idle_and_removes_its_socket(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "proj"))
            server = Server(d, idle=0.5)
            try:
                self.assertEqual(server.ready, "ready")
                self.assertTrue(os.path.exists(server.sock))
                self.assertEqual(server.proc.wait(timeout=20), 0)
                self.assertFalse(os.path.exists(server.sock))
            finally:
                server.stop()

    def test_a_silent_client_is_dropped_and_the_server_still_idles_out(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "proj"))
            os.environ["ORK_PYTHON_FORKSERVER_REQUEST_TIMEOUT"] = "0.5"
            try:
                server = Server(d, idle=1)
            finally:
                del os.environ["ORK_PYTHON_FORKSERVER_REQUEST_TIMEOUT"]
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(server.sock)
                s.settimeout(10)
                self.assertIn("no complete request", json.loads(s.makefile().readline())["error"])
                s.close()
                self.assertEqual(server.proc.wait(timeout=20), 0)
            finally:
                server.stop()

    def test_a_start_error_is_reported_on_the_ready_fd(self):
        with tempfile.TemporaryDirectory() as d:
            r, w = os.pipe()
            proc = subprocess.Popen(
                [sys.executable, "-m", "ork.forkserver", "--socket", os.path.join(d, "missing", "x.sock"),
                 "--ready-fd", str(w)], pass_fds=[w], env=dict(os.environ, PYTHONPATH=SDK),
                stderr=subprocess.DEVNULL)
            os.close(w)
            with os.fdopen(r) as f:
                line = f.readline()
            self.assertNotEqual(proc.wait(timeout=30), 0)
            self.assertTrue(line.startswith("error:"), line)


def _read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode()


def _gone(pid, within=5.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


if __name__ == "__main__":
    unittest.main()
