"""Warm fork-server for Python tasks: ``python -m ork.forkserver --socket PATH [--idle SECONDS] [--ready-fd N]``.

Imports pydantic, ``ork`` and the modules listed in ORK_PYTHON_PRELOAD once, listens on a unix socket and forks one
child per request, so a task pays neither interpreter start-up nor those imports. ork-worker starts it on demand.

Protocol (one request per connection): the client sends a 4-byte big-endian length and that many bytes of JSON
``{"env": {...}, "cwd": "..."}``, with the task's stdout and stderr descriptors attached to the first bytes
(SCM_RIGHTS). The server answers with JSON lines: ``{"pid": N}`` once the child runs (the child leads its own process
group N), then ``{"exit_code": N}`` or ``{"signal": N}`` when it ends; ``{"error": "..."}`` if it could not start one.
When the client disconnects first, the child's process group is killed.

The child gets a fresh environment, cwd, sys.path (cwd, the task's PYTHONPATH, then the interpreter's own entries)
and runs ``ork.runner`` exactly like ``python -m ork.runner``; the task's modules are imported in the child only.
The server exits after ``--idle`` seconds without a running child (default 60).
"""

import errno
import fcntl
import gc
import importlib
import io
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
import traceback

_MAX_REQUEST = 64 << 20
# Seconds a client has to send its whole request (a silent client must not keep the server from idling out).
_REQUEST_TIMEOUT = float(os.environ.get("ORK_PYTHON_FORKSERVER_REQUEST_TIMEOUT") or 10)


def _log(msg):
    sys.stderr.write("[ork.forkserver %d] %s\n" % (os.getpid(), msg))
    sys.stderr.flush()


_WARM_UP = """
from typing import Optional
from ork import task, Context
from pydantic import BaseModel

class WarmIn(BaseModel):
    item: int
    name: Optional[str] = None

class WarmOut(BaseModel):
    square: int

@task
def main(input: WarmIn, ctx: Context) -> WarmOut:
    return WarmOut(square=input.item * input.item)
"""


def _warm_up(have_pydantic):
    """Runs one in-memory task through the runner, so what the first task would pay once (pydantic's schema builder,
    typing and json internals) is paid here, once for all children."""
    import types
    from . import runner
    from .context import Context
    src = _WARM_UP if have_pydantic else "from ork import task\n@task\ndef main(input: dict, ctx) -> dict:\n    return input\n"
    module = types.ModuleType("ork_forkserver_warm_up")
    exec(compile(src, "<ork.forkserver warm-up>", "exec"), module.__dict__)
    result, _ = runner.call_task(module.main, {"item": 3}, Context())
    json.dumps(runner.to_json(result))


def preload(modules):
    """Imports pydantic (when installed), the SDK and `modules`; returns the names that failed, with the reason."""
    failed = []
    try:
        import pydantic  # noqa: F401 - warms the import; BaseModel is lazy in pydantic 2
        getattr(pydantic, "BaseModel")
        have_pydantic = True
    except ImportError:
        have_pydantic = False
    from . import runner  # noqa: F401
    try:
        _warm_up(have_pydantic)
    except Exception as e:  # noqa: BLE001 - only a speed-up
        failed.append("warm-up (%s: %s)" % (type(e).__name__, e))
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - a bad preload is reported, never fatal
            failed.append("%s (%s: %s)" % (name, type(e).__name__, e))
    return failed


class _Conn:
    """One client connection: reads the request, then tracks its child."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.fds = []
        self.pid = None
        self.deadline = time.monotonic() + _REQUEST_TIMEOUT  # for the whole request

    def send(self, obj):
        try:
            self.sock.sendall((json.dumps(obj) + "\n").encode())
        except OSError:
            pass

    def close(self):
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []
        self.sock.close()


class Server:
    def __init__(self, path, idle, listener, inode, base_path):
        self.path = path
        self.base_path = base_path  # the interpreter's own sys.path entries (stdlib, site-packages)
        self.idle = idle
        self.listener = listener
        self.inode = inode
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # socket fd -> _Conn
        self.children = {}  # pid -> _Conn
        self.last_busy = time.monotonic()
        self.closing = False
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r, self.wake_w = r, w

    # ---- the child ----

    def _child(self, conn, req):
        """In the forked child: becomes the task process; never returns."""
        code = 1
        try:
            os.setpgid(0, 0)
            signal.set_wakeup_fd(-1)
            for s in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(s, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            out_fd, err_fd = conn.fds
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            for fd in (out_fd, err_fd):
                if fd > 2:
                    os.close(fd)
            conn.fds = []
            os.close(self.wake_r)
            os.close(self.wake_w)
            for c in list(self.conns.values()):
                c.close()
            self.sel.close()
            self.listener.close()
            env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
            os.environ.clear()
            os.environ.update(env)
            time.tzset()
            os.chdir(req.get("cwd") or "/")
            enc = env.get("PYTHONIOENCODING", "utf-8").split(":")[0] or "utf-8"
            sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding=enc, errors="strict",
                                          line_buffering=True, write_through=True)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding=enc, errors="backslashreplace",
                                          line_buffering=True, write_through=True)
            sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=enc)
            task_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
            sys.path[:] = [os.getcwd()] + task_path + [p for p in self.base_path if p not in task_path]
            importlib.invalidate_caches()
            from . import runner
            sys.argv = [runner.__file__]
            code = runner.main([])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - the child must end here, never return into the server loop
            try:
                traceback.print_exc()
            except Exception:  # noqa: BLE001
                pass
        _finish(code)

    # ---- the server loop ----

    def _accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                _log("accept: %s" % e)
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, conn)
            self.last_busy = time.monotonic()

    def _drop(self, conn):
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        conn.close()

    def _readable(self, conn):
        if conn.pid is not None:  # the client went away (or sent junk) while its child runs
            try:
                data = conn.sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                _killpg(conn.pid, signal.SIGKILL)
                self._drop(conn)
                conn.pid = None
            return
        try:
            data, fds, _, _ = socket.recv_fds(conn.sock, 65536, 4)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        conn.fds.extend(fds)
        if not data:
            self._drop(conn)
            return
        conn.buf += data
        if len(conn.buf) < 4:
            return
        (size,) = struct.unpack(">I", conn.buf[:4])
        if size > _MAX_REQUEST:
            conn.send({"error": "request too large"})
            self._drop(conn)
            return
        if len(conn.buf) < 4 + size:
            return
        try:
            req = json.loads(conn.buf[4:4 + size].decode("utf-8"))
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            conn.send({"error": "bad request: %s" % e})
            self._drop(conn)
            return
        if len(conn.fds) != 2:
            conn.send({"error": "expected 2 descriptors (stdout, stderr), got %d" % len(conn.fds)})
            self._drop(conn)
            return
        self._spawn(conn, req)

    def _spawn(self, conn, req):
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            conn.send({"error": "fork: %s" % e})
            self._drop(conn)
            return
        if pid == 0:
            self._child(conn, req)  # never returns
        try:
            os.setpgid(pid, pid)  # also done in the child: the group exists before the client can signal it
        except OSError:
            pass
        for fd in conn.fds:
            os.close(fd)
        conn.fds = []
        conn.pid = pid
        self.children[pid] = conn
        conn.send({"pid": pid})

    def _reap(self):
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid == 0:
                return
            pid = info.si_pid
            _killpg(pid, signal.SIGKILL)  # leftovers of its group; the zombie leader keeps the group id reserved
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            if os.WIFSIGNALED(status):
                conn.send({"signal": os.WTERMSIG(status)})
            else:
                conn.send({"exit_code": os.WEXITSTATUS(status)})
            conn.pid = None
            self._drop(conn)
            self.last_busy = time.monotonic()

    def _try_close(self):
        """Idle: stop listening if our socket file is still ours (under the start lock), then drain the backlog."""
        lock_path = self.path[:-len(".sock")] + ".lock" if self.path.endswith(".sock") else self.path + ".lock"
        try:
            lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            lock = -1
        try:
            if lock >= 0:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    return False  # a worker is starting or checking a server: try again later
            try:
                st = os.stat(self.path)
                if st.st_ino == self.inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        finally:
            if lock >= 0:
                os.close(lock)
        self.closing = True
        self._accept()  # connections already queued are still served
        self.sel.unregister(self.listener)
        self.listener.close()
        return True

    def serve(self):
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        stop = [False]
        signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
        while True:
            now = time.monotonic()
            for c in [c for c in self.conns.values() if c.pid is None and now >= c.deadline]:
                c.send({"error": "no complete request within %g s" % _REQUEST_TIMEOUT})
                self._drop(c)
            busy = bool(self.children) or bool(self.conns)
            if self.closing and not busy:
                return
            if stop[0] and not self.closing:
                self._try_close() or self._force_close()
            timeout = None
            pending = [c.deadline - now for c in self.conns.values() if c.pid is None]
            if pending:
                timeout = max(0.0, min(pending))
            elif not busy and not self.closing:
                timeout = max(0.0, self.last_busy + self.idle - now)
                if timeout == 0.0:
                    if not self._try_close():
                        self.last_busy = time.monotonic() - self.idle + 1.0  # retry in a second
                    continue
            for key, _ in self.sel.select(timeout):
                if key.data == "listen":
                    self._accept()
                elif key.data == "wake":
                    try:
                        while os.read(self.wake_r, 512):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                    self._reap()
                else:
                    self._readable(key.data)
            self._reap()

    def _force_close(self):
        self.closing = True
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except OSError:
            pass
        self.sel.unregister(self.listener)
        self.listener.close()
        return True


def _killpg(pid, sig):
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def _finish(code):
    """Ends a child like interpreter exit: flush, join non-daemon threads, atexit handlers, then _exit."""
    try:
        import threading
        for t in threading.enumerate():
            if t is not threading.main_thread() and not t.daemon:
                t.join()
    except BaseException:  # noqa: BLE001
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def _listen(path):
    """Binds `path` (replacing a stale socket file: the caller holds the start lock) and listens."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o077)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(socket.SOMAXCONN)
    return sock, os.stat(path).st_ino


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path, idle, ready_fd = None, 60.0, -1
    it = iter(argv)
    for a in it:
        if a == "--socket":
            path = next(it, None)
        elif a == "--idle":
            idle = float(next(it, "60"))
        elif a == "--ready-fd":
            ready_fd = int(next(it, "-1"))
        else:
            sys.stderr.write("ork.forkserver: unknown argument %r\n" % a)
            return 2
    if not path:
        sys.stderr.write("usage: python -m ork.forkserver --socket PATH [--idle SECONDS] [--ready-fd N]\n")
        return 2

    def tell(msg):
        if ready_fd >= 0:
            try:
                os.write(ready_fd, (msg + "\n").encode())
            except OSError:
                pass

    own = set(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    base_path = [p for p in sys.path if p not in own]
    if base_path and base_path[0] in ("", os.getcwd()):
        base_path = base_path[1:]  # `-m` puts the server's cwd first; a task gets its own
    try:
        if not hasattr(socket, "recv_fds") or not hasattr(os, "waitid"):
            raise RuntimeError("the fork-server needs Python >= 3.9 on Linux (socket.recv_fds, os.waitid)")
        modules = [m.strip() for m in os.environ.get("ORK_PYTHON_PRELOAD", "").split(",") if m.strip()]
        started = time.monotonic()
        failed = preload(modules)
        for f in failed:
            _log("preload failed: %s" % f)
        listener, inode = _listen(path)
        _log("listening on %s (python %s, preloaded in %.0f ms, idle exit after %g s)"
             % (path, sys.version.split()[0], (time.monotonic() - started) * 1000, idle))
    except BaseException as e:  # noqa: BLE001
        tell("error: %s: %s" % (type(e).__name__, e))
        raise
    gc.collect()
    gc.freeze()  # preloaded objects move out of the collector's reach: children do not copy their pages on GC
    server = Server(path, idle, listener, inode, base_path)
    tell("ready")
    if ready_fd >= 0:
        os.close(ready_fd)
    try:
        server.serve()
    except BaseException:  # noqa: BLE001
        _log("server loop failed:\n" + traceback.format_exc())
        return 1
    _log("idle for %g s: exiting" % idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
