"""The timing worker: in a fresh :class:`tfopt.process.Worker` (a new TensorFlow runtime),
load models, take their inputs, warm them up and time them in alternating blocks on request."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError, first_line
from tfopt.measure.results import Settings
from tfopt.model.format import pick_signature
from tfopt.model.formats import detect, load_model
from tfopt.model.signature import TensorInfo
from tfopt.process import ChildFailed, Worker
from tfopt.runtime import describe
from tfopt.verify.inputs import input_hints


def session_config(settings: Settings) -> tf.compat.v1.ConfigProto:
    intra, inter = settings.threads()
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra,
                                      inter_op_parallelism_threads=inter)
    if settings.disable_optimize:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def configure_runtime(settings: Settings) -> None:
    """Thread and Grappler settings for eager/function execution; must run before any op."""
    intra, inter = settings.threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        pass  # runtime already initialised (library use): keep its settings
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": settings.disable_optimize})


def time_models(conn, payload: tuple[list[str], Settings]) -> None:
    """The models of one round in one fresh process, timed in alternating blocks: load each,
    take its inputs, warm it up, then answer each request ``(calls, seconds)`` with one block
    per entry of ``calls``: every model in turn (the order rotating from block to block) makes
    at least that many calls and runs at least ``seconds``; the answer is, per block and
    model, the seconds of each call; ``("done",)`` ends it. The worker's side of
    :data:`tfopt.process.HANDLERS` "time"."""
    paths, settings = payload
    configure_runtime(settings)
    runners = []
    for path in paths:
        try:
            runners.append(detect(path).open(settings.signature, session_config(settings)))
        except Exception as err:
            conn.send(("error", first_line(err) if isinstance(err, TfoptError) else
                       f"{path}: cannot load the model: {first_line(err)}"))
            return
    conn.send(("inputs", ([r.inputs for r in runners], describe())))
    feeds = conn.recv()
    calls, slowest = [], 0.0
    for path, runner, feed in zip(paths, runners, feeds, strict=True):
        try:
            call = runner.prepare(feed)
            for _ in range(max(settings.num_warmup, 1)):
                start = time.perf_counter()
                call()
            slowest = max(slowest, time.perf_counter() - start)
        except Exception as err:
            conn.send(("error", f"{path}: fails on the generated inputs: {first_line(err)} "
                                "(give inputs with --inputs-file, --input-shape or "
                                "--int-range)"))
            return
        calls.append(call)
    conn.send(("ready", slowest))  # seconds per call of the slowest model, warm

    def block(call, count: int, seconds: float) -> list[float]:
        times: list[float] = []
        spent = 0.0  # a running sum: summing the list each call was quadratic, and a 6 us
        while len(times) < count or spent < seconds:  # LiteRT call's block took 40 s
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
            spent += times[-1]
        return times

    while (request := conn.recv()) != ("done",):
        counts, seconds = request
        blocks = []
        for b, count in enumerate(counts):
            times: list[list[float]] = [[] for _ in calls]
            for i in range(len(calls)):
                m = (b + i) % len(calls)
                times[m] = block(calls[m], count, seconds)
            blocks.append(times)
        conn.send(("blocks", blocks))


class ModelProcess:
    """Parent's handle on :func:`time_models` in a fresh :class:`tfopt.process.Worker` (a new
    TensorFlow runtime; from the fork server unless a runtime is pinned) holding ``models``."""

    def __init__(self, models: list[str], settings: Settings):
        self.path = " / ".join(models)
        self.worker = Worker(settings.runtime, fast=True)
        self.worker.request("time", (models, settings))
        self.talking = True  # the worker's handler is in the conversation

    def recv(self):
        try:
            kind, value, *_ = self.worker.recv()
        except ChildFailed as err:
            raise TfoptError(f"{self.path}: the benchmark process died: {err}") from None
        if kind == "error":  # the handler has left the conversation
            self.talking = False
            raise TfoptError(value)
        return value

    def send(self, value) -> None:
        self.worker.send(value)

    def close(self) -> None:
        if self.talking:
            try:
                self.worker.send(("done",))
            except (BrokenPipeError, OSError):
                pass
        self.worker.close()


def feeds_for(spec: dict[str, TensorInfo], feeds: dict[str, np.ndarray], first: dict,
               path: str, first_path: str) -> dict[str, np.ndarray]:
    if set(spec) <= set(feeds):
        return {k: feeds[k] for k in spec}
    if len(spec) == len(first):  # same inputs under other keys (a .pb's node names)
        return dict(zip(spec, feeds.values(), strict=True))
    raise TfoptError(f"{path}: inputs {', '.join(sorted(spec))} differ from {first_path}'s; "
                     "models compared must share a signature")


def hints(path: str, spec: dict[str, TensorInfo], settings: Settings) -> dict:
    """Valid ranges for integer inputs (ids) and the features of string inputs parsed as
    tf.train.Example, read from the model's frozen graph."""
    strings = any(i.dtype == tf.string for i in spec.values())
    ints = any(i.dtype.is_integer for i in spec.values()) and not settings.int_range
    if not (strings or ints):  # (--int-range decides integer inputs; features need the graph)
        return {}
    model = load_model(path, [settings.signature] if settings.signature else None)
    sig = model.signatures[pick_signature(list(model.signatures), settings.signature, path)]
    return input_hints(sig)


def run_round(paths: list[str], order: list[int], settings: Settings,
               feeds_of: Callable[[dict[str, TensorInfo], int], dict[str, np.ndarray]],
               plan: Callable[[float], tuple[list[int], float]]
               ) -> tuple[dict, list[list[list[float]]]]:
    """One fresh process holding ``paths`` loaded in ``order``: ``feeds_of(spec, m)`` gives
    model ``m`` its inputs, ``plan(seconds per call of the slowest)`` the calls per block and
    a block's least seconds. Returns the runtime's facts and, per model (in ``paths`` order),
    per block, the seconds of each call."""
    worker = ModelProcess([paths[m] for m in order], settings)
    try:
        specs, facts = worker.recv()
        worker.send([feeds_of(spec, m) for spec, m in zip(specs, order, strict=True)])
        worker.send(plan(worker.recv()))
        blocks = worker.recv()
    finally:
        worker.close()
    per_model: list[list[list[float]]] = [[] for _ in paths]
    for times in blocks:
        for i, m in enumerate(order):
            per_model[m].append(times[i])
    return facts, per_model
