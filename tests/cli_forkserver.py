"""Run the entry points (``train.py``, ``eval.py``, ``scripts/*.py``) as new processes forked from one that has
already imported what every run imports (torch, Lightning, Hydra, dllabs), so a test's command line does not pay
the ~3-6 s of imports each time.

Each command still runs as a user runs it: its own process (a real pid, killable, its own exit status), the
script executed as ``__main__`` with its ``sys.argv``, working folder, environment and ``sys.path[0]``, its
stdout and stderr captured apart. What differs from ``python script.py`` is only that the modules imported by
``import dllabs.cli, dllabs.entry, lightning`` are loaded already, which no run can tell apart: those imports read
nothing from the command line or the working folder. Variables read while those modules are imported (``PYTHON*``
such as ``PYTHONWARNINGS``, OpenMP's and MKL's thread settings, ``DLLABS_CONF_DIR``, Hugging Face's) cannot be
changed after the fact, so :func:`run` answers ``None`` for a command whose environment differs from the server's
in any of them, and the caller starts a plain ``python`` process instead. So does a second command while one runs.

Server: this file run as a script. It reads one JSON request per line on stdin (argv, cwd, env, stdout and stderr
file paths), forks, answers ``{"pid": ...}`` at once and ``{"rc": ...}`` when the command has ended (as
``subprocess`` reports it: the exit status, or minus the signal that killed it).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

PRELOAD = ("dllabs.cli", "dllabs.entry", "lightning")  # what train.py imports, then what every run imports
# variables read while the preloaded modules are imported: a command that sets them differently needs a new process
IMPORT_TIME_ENV = re.compile(r"^(PYTHON|OMP_|MKL_|KMP_|GOMP_|TORCH|DLLABS_CONF_DIR$|LD_|MALLOC_|HF_|TRANSFORMERS_|"
                             r"TOKENIZERS_|TQDM_|CUDA_)")


def _serve() -> None:
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # anything the server itself prints goes to its log, never into the protocol
    for module in PRELOAD:  # in the server only: the test process imports this file as the client
        importlib.import_module(module)

    requests = os.fdopen(protocol_in, "r")
    answers = os.fdopen(protocol_out, "w")
    for line in requests:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(protocol_in)
            os.close(protocol_out)
            _run_child(request)  # never returns
        answers.write(json.dumps({"pid": pid}) + "\n")
        answers.flush()
        _, status = os.waitpid(pid, 0)
        answers.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        answers.flush()


def _run_child(request: dict) -> None:
    import atexit
    import random
    import runpy
    import traceback

    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, as the command's children are killed with it on a timeout
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        script = request["argv"][0]
        sys.argv = list(request["argv"])
        sys.path[0] = os.path.dirname(os.path.realpath(script))
        random.seed()  # a new process's own random state, not the server's
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exit_:
            if exit_.code is None or isinstance(exit_.code, int):
                code = exit_.code or 0
            else:
                print(exit_.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001  (any uncaught exception: printed as the interpreter prints it)
            sys.excepthook(*sys.exc_info())
            code = 1
        threading._shutdown()  # as at interpreter exit: wait for the command's non-daemon threads
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001  (the child must end here, never return into the server's loop)
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class ForkServer:
    """One server per test process, started on first use."""

    def __init__(self) -> None:
        self.env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        log, self.log = tempfile.mkstemp(prefix="cli_forkserver_", suffix=".log")
        self.process = subprocess.Popen(
            [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            env=self.env, text=True,
        )
        os.close(log)
        self.lock = threading.Lock()

    def accepts(self, env: Mapping[str, str]) -> bool:
        keys = {k for k in {*env, *self.env} if IMPORT_TIME_ENV.match(k)}
        return self.process.poll() is None and all(env.get(k) == self.env.get(k) for k in keys)

    def _answer(self, deadline: float | None) -> dict | None:
        ready, _, _ = select.select([self.process.stdout], [], [], deadline)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the CLI fork server ended; its log: {self.log}")
        return json.loads(line)

    def run(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float | None):
        if not self.lock.acquire(blocking=False):
            return None
        try:
            with tempfile.TemporaryDirectory(prefix="cli_") as folder:
                out, err = Path(folder) / "stdout", Path(folder) / "stderr"
                request = {"argv": list(argv), "cwd": str(cwd), "env": dict(env), "stdout": str(out),
                           "stderr": str(err)}
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                pid = self._answer(None)["pid"]
                answer = self._answer(timeout)
                if answer is None:  # as subprocess.run: kill it, then say it timed out
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self._answer(None)
                    raise subprocess.TimeoutExpired([sys.executable, *argv], timeout, out.read_text(), err.read_text())
                return subprocess.CompletedProcess(
                    [sys.executable, *argv], answer["rc"], out.read_text(errors="replace"),
                    err.read_text(errors="replace"),
                )
        finally:
            self.lock.release()


_server: ForkServer | None = None


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float | None):
    """``subprocess.run([python, *argv], ...)``'s result for a script command line, or None when it needs a plain
    new interpreter (not a script, import-time variables changed, or another command of this process running)."""
    global _server
    if not argv or not str(argv[0]).endswith(".py") or not (Path(cwd) / argv[0]).is_file():
        return None
    if _server is None or _server.process.poll() is not None:
        _server = ForkServer()
    if not _server.accepts(env):
        return None
    return _server.run(argv, cwd, env, timeout)


if __name__ == "__main__":
    _serve()
