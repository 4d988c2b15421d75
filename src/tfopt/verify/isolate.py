"""Run a model in a child process: under a chosen CPU runtime, and safe from native aborts.

Two reasons to run the *optimized* model out of process:

* TensorFlow's C++ checks (``CHECK`` failures in Grappler or a kernel) end the whole process
  with SIGABRT, not a Python exception. In a child, a crash becomes an ordinary error that names
  what crashed, and the pipeline can go on to find the pass responsible.
* The runtime (oneDNN on or off) is fixed when TensorFlow starts, by ``TF_ENABLE_ONEDNN_OPTS``.
  Only a child started with that variable pinned can show how the model runs on a machine whose
  default differs from this one's.

Several signatures run in one child (one TensorFlow start per runtime), and children for
different runtimes run in parallel (one after the other for a SavedModel with over 1 GiB of
variables: memory).

Usage (internal): ``python -m tfopt.verify.isolate JOB.pickle OUT.pickle``.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable

import numpy as np

from tfopt.errors import first_line
from tfopt.model.signature import SignatureGraph
from tfopt.runtime import runtime_env, runtime_label

TIMEOUT_S = 1800


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

Outputs = dict[str, np.ndarray]


class ChildFailed(Exception):
    """The child process crashed or failed; the message says how. ``killed``: it was killed
    from outside (SIGKILL: the kernel's out-of-memory killer, most likely), which says
    nothing about the model's answers."""

    def __init__(self, message: str, killed: bool = False) -> None:
        super().__init__(message)
        self.killed = killed


def _failure(returncode: int, stderr: str, runtime: str | None) -> ChildFailed:
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


class _Child:
    """One started child; ``result()`` waits for it."""

    def __init__(self, job: dict, runtime: str | None):
        self.runtime = runtime
        self.tmp = tempfile.TemporaryDirectory(prefix="tfopt-run-")
        job_path = os.path.join(self.tmp.name, "job.pickle")
        self.out_path = os.path.join(self.tmp.name, "out.pickle")
        with open(job_path, "wb") as f:
            pickle.dump(job, f)  # written and read by tfopt only, in a private temp dir
        env = runtime_env(runtime)
        self.proc = subprocess.Popen([sys.executable, "-m", "tfopt.verify.isolate", job_path,
                                      self.out_path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, env=env)

    def result(self):
        try:
            _, stderr = self.proc.communicate(timeout=TIMEOUT_S)
            if self.proc.returncode != 0:
                raise _failure(self.proc.returncode, stderr, self.runtime)
            with open(self.out_path, "rb") as f:
                done = pickle.load(f)
            CHILD_PEAK.saw(done["peak_kib"])
            return done["outputs"]
        finally:
            self.tmp.cleanup()


def _gather(children: dict, say: Callable[[str], None] | None = None) -> dict:
    """Results per key; a failed child's value is its ChildFailed. ``say`` hears as each
    child ends (they run at once; loading a big model can take a minute)."""
    began = time.perf_counter()
    out = {}
    for key, child in children.items():
        try:
            out[key] = child.result()
        except ChildFailed as err:
            out[key] = err
        if say:
            outcome = "failed" if isinstance(out[key], ChildFailed) else "ran"
            say(f"  {runtime_label(key)}: {outcome} ({time.perf_counter() - began:.1f}s)")
    return out


def run_saved_model_under(path: str, feeds: dict[str, dict[str, np.ndarray]],
                          runtimes: Iterable[str | None] = (None,),
                          say: Callable[[str], None] | None = None
                          ) -> dict[str | None, dict[str, Outputs] | ChildFailed]:
    """Run signatures ``feeds`` keys of the SavedModel at ``path`` with plain
    ``tf.saved_model.load``, once per runtime (None: this process's environment)."""
    job = {"mode": "saved_model", "path": path, "feeds": feeds}
    if variables_bytes(path) < ONE_AT_A_TIME_BYTES:
        return _gather({rt: _Child(job, rt) for rt in runtimes}, say)
    out: dict = {}
    for rt in runtimes:  # each child holds the weights: not all of them at once
        out.update(_gather({rt: _Child(job, rt)}, say))
    return out


# Children loading a SavedModel with at least this many bytes of variables run one after the
# other: each holds about the weights (GPT-2 24x1024, 1.3 GiB: 2.3 GB per child) beside the
# optimize process that holds several times them.
ONE_AT_A_TIME_BYTES = 1 << 30


def variables_bytes(path: str) -> int:
    """Bytes of a SavedModel's ``variables/`` checkpoint (0 without one)."""
    folder = os.path.join(path, "variables")
    if not os.path.isdir(folder):
        return 0
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def run_in_runtime(path: str, fmt: str, feeds: dict[str, dict[str, np.ndarray]],
                   threads: int) -> dict[str, Outputs] | ChildFailed:
    """Run a model converted for runtime ``fmt`` (LiteRT, OpenVINO) in a child, per
    signature: its outputs by name, or how the child failed."""
    job = {"mode": "runtime", "runtime": fmt, "path": path, "feeds": feeds, "threads": threads}
    return _gather({None: _Child(job, None)})[None]


def run_graph_def_under(sigs: dict[str, SignatureGraph], feeds: dict[str, dict[str, np.ndarray]],
                        runtimes: Iterable[str | None] = (None,),
                        say: Callable[[str], None] | None = None
                        ) -> dict[str | None, dict[str, Outputs] | ChildFailed]:
    """Run frozen signature graphs in a Session, once per runtime (a child gets each graph
    with its values in place: a weight store stays in this process)."""
    job = {"mode": "graph_def", "sigs": {k: s.inlined() for k, s in sigs.items()},
           "feeds": feeds}
    return _gather({rt: _Child(job, rt) for rt in runtimes}, say)


def run_written(path: str, fmt: str, sigs: dict[str, SignatureGraph],
                feeds: dict[str, dict[str, np.ndarray]], runtimes: Iterable[str | None],
                say: Callable[[str], None] | None = None
                ) -> dict[str | None, dict[str, Outputs] | ChildFailed]:
    """Run a model tfopt wrote (``fmt`` "saved_model" or "pb") as a user would, per runtime."""
    feeds = {key: feeds[key] for key in sigs}
    if fmt == "pb":
        return run_graph_def_under(sigs, feeds, runtimes, say)
    return run_saved_model_under(path, feeds, runtimes, say)


def _unwrap(value):
    if isinstance(value, ChildFailed):
        raise value
    return value


def run_saved_model(path: str, key: str, feeds: dict[str, np.ndarray],
                    runtime: str | None = None) -> Outputs:
    return _unwrap(run_saved_model_under(path, {key: feeds}, [runtime])[runtime])[key]


def run_graph_def(sig: SignatureGraph, feeds: dict[str, np.ndarray],
                  runtime: str | None = None) -> Outputs:
    return _unwrap(run_graph_def_under({sig.key: sig}, {sig.key: feeds}, [runtime])[runtime])[
        sig.key]


def _child(job_path: str, out_path: str) -> None:
    """The child's side: the same runners verification uses in-process, on the same data."""
    from tfopt.verify import runners

    with open(job_path, "rb") as f:
        job = pickle.load(f)
    outputs = {}
    if job["mode"] == "saved_model":
        import tensorflow as tf

        obj = tf.saved_model.load(job["path"])
        for key, feeds in job["feeds"].items():
            outputs[key] = runners.call_signature(obj, key, feeds)
    elif job["mode"] == "runtime":  # a model converted for LiteRT or OpenVINO
        from tfopt.runtimes import runtime

        module = runtime(job["runtime"])
        for key, feeds in job["feeds"].items():
            *_, prepare, _owner = module.open_signature(job["path"], key, job["threads"])
            outputs[key] = {k: np.asarray(v) for k, v in prepare(feeds)().items()}
    else:
        for key, feeds in job["feeds"].items():
            outputs[key] = runners.run_graph_def(job["sigs"][key], feeds)
    with open(out_path, "wb") as f:
        pickle.dump({"outputs": outputs, "peak_kib": own_peak_kib()}, f)


if __name__ == "__main__":
    try:
        _child(*sys.argv[1:])
    except Exception as err:  # the parent reports stderr's last line: make it the reason
        print(f"{type(err).__name__}: {first_line(err)}", file=sys.stderr)
        sys.exit(1)
