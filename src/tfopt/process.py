"""One way to run work in a fresh process: a :class:`Worker` under a pinned CPU runtime,
answering requests.

Verification (a model's answers under each runtime), the kernel probe (which fused kernels a
runtime runs) and timing (models called in alternating blocks) all need a process of their
own: the runtime (oneDNN on or off) is fixed when TensorFlow starts, by
``TF_ENABLE_ONEDNN_OPTS``; a native abort (a ``CHECK`` failure in a kernel) ends the whole
process with SIGABRT, which in a child becomes an ordinary error naming what crashed; and a
timing needs a TensorFlow runtime, thread pools and allocator that nothing else touched.

A request is ``(kind, payload)``; the worker runs the handler :data:`HANDLERS` names for
``kind`` and answers ``("ok", value, peak_kib)`` or ``("error", message, peak_kib)``. A
handler may hold a conversation on the connection before it answers (the timing worker takes
its inputs and its plan that way). The parent's :class:`Worker` turns a dead child into a
:class:`ChildFailed` that says how it died (signal, the ``Check failed`` line, the kernel's
out-of-memory killer), and records each child's peak memory (:data:`CHILD_PEAK`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator

from tfopt.errors import first_line
from tfopt.runtime import RUNTIMES, runtime_label

# kind -> "module:function(conn, payload)"; imported in the child, when first asked for
HANDLERS = {
    "outputs": "tfopt.verify.isolate:outputs",
    "probe": "tfopt.graph.probe:probe_request",
    "time": "tfopt.measure.worker:time_models",
}
TIMEOUT_S = 1800


class ChildFailed(Exception):
    """The child process crashed or failed; the message says how. ``killed``: it was killed
    from outside (SIGKILL: the kernel's out-of-memory killer, most likely), which says
    nothing about the model's answers."""

    def __init__(self, message: str, killed: bool = False) -> None:
        super().__init__(message)
        self.killed = killed


class _PeakMemory:
    """The largest resident-memory high-water mark a finished child reported (KiB).

    The kernel's ``RUSAGE_CHILDREN`` cannot give it: a child's ``ru_maxrss`` counts the
    parent's pages it shared between fork and exec, so it reads as the parent's peak. Each
    child reports its own ``VmHWM``; like ``ru_maxrss``, this is per process and only grows.
    """

    def __init__(self) -> None:
        self.kib = 0

    def saw(self, kib: int) -> None:
        self.kib = max(self.kib, kib)


CHILD_PEAK = _PeakMemory()


def own_peak_kib() -> int:
    """This process's resident-memory high-water mark (``VmHWM``; 0 where /proc has none)."""
    try:
        with open("/proc/self/status") as f:
            line = next((ln for ln in f if ln.startswith("VmHWM:")), "VmHWM: 0 kB")
    except OSError:
        return 0
    return int(line.split()[1])


def failure(returncode: int, stderr: str, runtime: str | None) -> ChildFailed:
    """How a child that ended with ``returncode`` failed, from the tail of its ``stderr``."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    where = f" ({runtime_label(runtime)})" if runtime else ""
    if returncode == -signal.SIGKILL:
        return ChildFailed(f"the process running it was killed (SIGKILL){where}, most likely "
                           "by the kernel for lack of memory", killed=True)
    if returncode < 0:
        name = signal.Signals(-returncode).name
        check = [ln for ln in lines if "Check failed" in ln]
        detail = check[-1].split("]", 1)[-1].strip() if check else (lines[-1] if lines else "")
        return ChildFailed(f"TensorFlow crashed ({name}) running it{where}: {detail}".strip())
    return ChildFailed((lines[-1] if lines else f"exit code {returncode}") + where)


def serve(conn, stderr_path: str | None) -> None:
    """The child's side: answer requests until told to stop (None)."""
    if stderr_path:  # what TensorFlow says goes where the parent reads a crash's reason
        fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(fd, 2)
        os.close(fd)
    while (request := conn.recv()) is not None:
        kind, payload = request
        module, _, name = HANDLERS[kind].partition(":")
        try:
            value = getattr(importlib.import_module(module), name)(conn, payload)
        except Exception as err:  # the parent raises it as one line
            conn.send(("error", f"{type(err).__name__}: {first_line(err)}", own_peak_kib()))
            continue
        conn.send(("ok", value, own_peak_kib()))


class Worker:
    """A fresh process under ``runtime`` (None: this process's environment) answering
    requests. ``fast``: started from a fork server that has imported TensorFlow (~0.15 s
    instead of ~3.5 s; only for the environment's own runtime), as the timing worker is;
    its stderr is the parent's. Otherwise spawned, its stderr kept to explain a crash."""

    def __init__(self, runtime: str | None = None, fast: bool = False):
        import multiprocessing

        self.runtime = runtime
        fork_server = fast and runtime is None and \
            "forkserver" in multiprocessing.get_all_start_methods()
        if fork_server:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(["tensorflow", "tfopt.measure.worker"])
        else:
            ctx = multiprocessing.get_context("spawn")
        self._tmp = None if fork_server else tempfile.TemporaryDirectory(prefix="tfopt-child-")
        self._stderr = os.path.join(self._tmp.name, "stderr") if self._tmp else None
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(child, self._stderr), daemon=True)
        with pinned_runtime(runtime, quiet=not fork_server), without_callers_main():
            self.proc.start()
        child.close()

    def send(self, value) -> None:
        self.conn.send(value)

    def request(self, kind: str, payload) -> None:
        """Ask for ``kind`` of work (answered by :meth:`answer`, after any conversation)."""
        self.conn.send((kind, payload))

    def recv(self, timeout: float = TIMEOUT_S):
        """The next message of a conversation; a dead child raises :class:`ChildFailed`."""
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.2):
            if not self.proc.is_alive():
                raise self._died()
            if time.monotonic() > deadline:
                self.proc.kill()
                raise ChildFailed(f"no answer in {timeout:.0f}s"
                                  + (f" ({runtime_label(self.runtime)})" if self.runtime else ""))
        try:
            return self.conn.recv()
        except (EOFError, ConnectionError):
            raise self._died() from None

    def answer(self, timeout: float = TIMEOUT_S):
        """The value the request ended with; its error as :class:`ChildFailed`."""
        status, value, peak = self.recv(timeout)
        CHILD_PEAK.saw(peak)
        if status == "error":
            where = f" ({runtime_label(self.runtime)})" if self.runtime else ""
            raise ChildFailed(value + where)
        return value

    def call(self, kind: str, payload, timeout: float = TIMEOUT_S):
        """One request and its answer."""
        self.request(kind, payload)
        return self.answer(timeout)

    def _died(self) -> ChildFailed:
        self.proc.join(timeout=5)
        code = self.proc.exitcode if self.proc.exitcode is not None else 1
        stderr = ""
        if self._stderr and os.path.exists(self._stderr):
            with open(self._stderr, errors="replace") as f:
                stderr = f.read()[-20000:]
        return failure(code, stderr, self.runtime)

    def close(self) -> None:
        """Stop the worker. Its work is answered by then: a child that takes long to tear its
        TensorFlow down (measured: 2.5 s after its last answer) is killed, not waited for."""
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=0.1)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def pinned_runtime(runtime: str | None, quiet: bool = False) -> Iterator[None]:
    """Spawned children read TF_ENABLE_ONEDNN_OPTS (and, ``quiet``, TensorFlow's log level:
    its start-up chatter, not a crash's ``Check failed`` line) from the environment they start
    with."""
    from tfopt.errors import TfoptError
    from tfopt.runtime import runtime_env

    if runtime is not None and runtime not in RUNTIMES:
        raise TfoptError(f"unknown runtime {runtime!r} (choose {', '.join(RUNTIMES)})")
    wanted = runtime_env(runtime) if quiet else (
        {"TF_ENABLE_ONEDNN_OPTS": RUNTIMES[runtime]} if runtime else {})
    wanted = {k: v for k, v in wanted.items() if os.environ.get(k) != v}
    old = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def without_callers_main() -> Iterator[None]:
    """Start children from tfopt's own modules only. multiprocessing re-runs the caller's
    ``__main__`` script in every child it starts (as ``__mp_main__``), so a user's script that
    calls ``tfopt.optimize`` at top level, as the README's example does, ran again in each
    child (and failed there). The handlers and their arguments live in tfopt's modules, so the
    children need nothing of ``__main__``."""
    from multiprocessing import spawn

    prepare = spawn.get_preparation_data

    def without_main(name: str) -> dict:
        data = prepare(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    spawn.get_preparation_data = without_main
    try:
        yield
    finally:
        spawn.get_preparation_data = prepare
