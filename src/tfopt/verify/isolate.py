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

Each child is a :class:`tfopt.process.Worker` (the one way tfopt runs work in a fresh
process); :func:`outputs` is what it runs here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import numpy as np

from tfopt.model.signature import SignatureGraph
from tfopt.process import ChildFailed, Worker
from tfopt.runtime import runtime_label

Outputs = dict[str, np.ndarray]


def _gather(jobs: dict, say: Callable[[str], None] | None = None) -> dict:
    """Each ``(runtime, job)`` run in its own worker, all at once; results per key, a failed
    child's value its ChildFailed. ``say`` hears as each child ends (loading a big model can
    take a minute)."""
    began = time.perf_counter()
    workers = {}
    for key, job in jobs.items():
        workers[key] = Worker(key)
        workers[key].request("outputs", job)
    out = {}
    for key, worker in workers.items():
        try:
            out[key] = worker.answer()
        except ChildFailed as err:
            out[key] = err
        finally:
            worker.close()
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
        return _gather({rt: job for rt in runtimes}, say)
    out: dict = {}
    for rt in runtimes:  # each child holds the weights: not all of them at once
        out.update(_gather({rt: job}, say))
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
    return _gather({None: job})[None]


def run_graph_def_under(sigs: dict[str, SignatureGraph], feeds: dict[str, dict[str, np.ndarray]],
                        runtimes: Iterable[str | None] = (None,),
                        say: Callable[[str], None] | None = None
                        ) -> dict[str | None, dict[str, Outputs] | ChildFailed]:
    """Run frozen signature graphs in a Session, once per runtime (a child gets each graph
    with its values in place: a weight store stays in this process)."""
    job = {"mode": "graph_def", "sigs": {k: s.inlined() for k, s in sigs.items()},
           "feeds": feeds}
    return _gather({rt: job for rt in runtimes}, say)


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


def outputs(_conn, job: dict) -> dict[str, Outputs]:
    """The worker's side (:data:`tfopt.process.HANDLERS` "outputs"): the same runners
    verification uses in-process, on the same data."""
    from tfopt.verify import runners

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
    return outputs
