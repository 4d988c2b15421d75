"""Throughput and latency of one or more models, measured so that a comparison holds.

Models run as users run them: a SavedModel through ``tf.saved_model.load(...).signatures[k]``,
a GraphDef in a ``Session``, each model in its own process (a fresh TensorFlow runtime, so
load order cannot bias the result). With several models, iterations are interleaved in rounds
(A B A B ...), so machine noise hits every model alike; each round gives a throughput per
model and a ratio to the first model, and the table reports medians with the ratio's spread.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError, first_line
from tfopt.loader import DEFAULT_SIGNATURE, detect_kind, pick_signatures
from tfopt.model import TensorInfo
from tfopt.verify import DEFAULT_INT_RANGE, load_inputs, make_inputs, open_session


@dataclass
class Settings:
    batch_size: int = 1
    num_iter: int = 50
    num_warmup: int = 10
    rounds: int = 5
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    disable_optimize: bool = False
    signature: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs_file: str | None = None
    int_range: tuple[int, int] = DEFAULT_INT_RANGE


@dataclass
class ModelResult:
    model: str
    batch_size: int
    iterations: int
    throughput: float          # samples/s = batch / mean latency
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    round_throughputs: list[float]
    median_throughput: float   # median over rounds
    ratio: float = 1.0         # median over rounds of throughput / first model's
    ratio_min: float = 1.0
    ratio_max: float = 1.0


@dataclass
class BenchmarkResult:
    models: list[ModelResult]
    environment: dict
    schedule: list[tuple[int, int]] = field(default_factory=list)  # (round, model) run order

    def to_dict(self) -> dict:
        return {"environment": self.environment, "models": [asdict(m) for m in self.models],
                "schedule": self.schedule}

    def table(self) -> str:
        headers = ["model", "samples/s", "median/s", "mean ms", "p50 ms", "p90 ms", "p99 ms",
                   "ratio", "ratio range"]
        rows = [[m.model, f"{m.throughput:.2f}", f"{m.median_throughput:.2f}",
                 f"{m.latency_mean_ms:.2f}", f"{m.latency_p50_ms:.2f}",
                 f"{m.latency_p90_ms:.2f}", f"{m.latency_p99_ms:.2f}", f"{m.ratio:.3f}x",
                 f"{m.ratio_min:.3f}-{m.ratio_max:.3f}"] for m in self.models]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                           for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
        for row in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        env = self.environment
        lines.append(f"TensorFlow {env['tensorflow']}, batch {env['batch_size']}, threads "
                     f"intra={env['intra_op_threads'] or 'default'} "
                     f"inter={env['inter_op_threads'] or 'default'}, Grappler "
                     f"{'off' if env['disable_optimize'] else 'on'}, CPU: {env['cpu']}, "
                     f"{env['rounds']} interleaved rounds")
        return "\n".join(lines)

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def write_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            fields = [k for k in asdict(self.models[0]) if k != "round_throughputs"]
            writer.writerow(fields)
            for m in self.models:
                d = asdict(m)
                writer.writerow([d[k] for k in fields])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(settings: Settings) -> dict:
    return {"tensorflow": tf.__version__, "batch_size": settings.batch_size,
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
            "disable_optimize": settings.disable_optimize, "cpu": cpu_model(),
            "cpus": os.cpu_count(), "rounds": settings.rounds, "num_iter": settings.num_iter,
            "num_warmup": settings.num_warmup}


@dataclass
class Runner:
    """One loaded model: its input specs and a zero-argument call on prepared inputs."""

    name: str
    inputs: dict[str, TensorInfo]
    prepare: Callable[[dict[str, np.ndarray]], Callable[[], object]]
    owner: object = None  # what must stay alive while ``prepare``'s calls run


def _session_config(settings: Settings) -> tf.compat.v1.ConfigProto:
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=settings.intra_op_threads,
                                      inter_op_parallelism_threads=settings.inter_op_threads)
    if settings.disable_optimize:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


def _saved_model_runner(path: str, settings: Settings) -> Runner:
    try:
        obj = tf.saved_model.load(path)
    except Exception as err:
        raise TfoptError(f"{path}: cannot load the model: {first_line(err)}") from None
    key = pick_signatures(list(obj.signatures.keys()), settings.signature, False, path)[0]
    fn = obj.signatures[key]
    specs = fn.structured_input_signature[1]
    inputs = {k: TensorInfo(k, s.dtype, None if s.shape.rank is None else tuple(s.shape.as_list()))
              for k, s in specs.items()}

    def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        tensors = {k: tf.constant(v) for k, v in feeds.items()}
        return lambda: fn(**tensors)

    return Runner(path, inputs, prepare, owner=obj)


def _graph_def_runner(path: str, settings: Settings) -> Runner:
    from tfopt.loader import load_model

    model = load_model(path)
    sig = model.signatures[DEFAULT_SIGNATURE]
    sess = open_session(sig, _session_config(settings))
    fetches = [t.tensor for t in sig.outputs.values()]

    def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        feed_dict = {sig.inputs[k].tensor: v for k, v in feeds.items()}
        callable_fn = sess.make_callable(fetches, feed_list=list(feed_dict))
        values = list(feed_dict.values())
        return lambda: callable_fn(*values)

    return Runner(path, sig.inputs, prepare)


def load_runner(path: str, settings: Settings) -> Runner:
    kind = detect_kind(path)
    if kind == "saved_model":
        return _saved_model_runner(path, settings)
    if kind == "graph_def":
        return _graph_def_runner(path, settings)
    return _keras_runner(path)


def _keras_runner(path: str) -> Runner:
    """A Keras file runs as its traced call function (inputs by name), as Keras serves it."""
    from tfopt.loader import load_model

    model = load_model(path)
    sig = model.signatures[DEFAULT_SIGNATURE]

    def prepare(feeds: dict[str, np.ndarray]) -> Callable[[], object]:
        return lambda: model.reference(DEFAULT_SIGNATURE, feeds)

    return Runner(path, sig.inputs, prepare)


def configure_runtime(settings: Settings) -> None:
    """Thread and Grappler settings for eager/function execution; must run before any op."""
    try:
        if settings.intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
        if settings.inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)
    except RuntimeError:
        pass  # runtime already initialised (library use): keep its settings
    tf.config.optimizer.set_experimental_options(
        {"disable_meta_optimizer": settings.disable_optimize})


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _worker(conn, path: str, settings: Settings) -> None:
    """One model in its own process: load, take inputs, warm up, then time what it is told."""
    try:
        configure_runtime(settings)
        runner = load_runner(path, settings)
    except Exception as err:
        conn.send(("error", first_line(err) if isinstance(err, TfoptError) else
                   f"{path}: cannot load the model: {first_line(err)}"))
        return
    conn.send(("inputs", runner.inputs))
    feeds = conn.recv()
    try:
        call = runner.prepare(feeds)
        for _ in range(max(settings.num_warmup, 1)):
            call()
    except Exception as err:
        conn.send(("error", f"{path}: fails on the generated inputs: {first_line(err)} (give "
                            "inputs with --inputs-file, --input-shape or --int-range)"))
        return
    conn.send(("ready", None))
    while (count := conn.recv()) is not None:
        times = []
        for _ in range(count):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        conn.send(("times", times))


class _ModelProcess:
    """Parent's handle on a ``_worker``: every model gets a fresh TensorFlow runtime, so one
    model's thread pools, caches and allocator state cannot favour or slow another (measured
    here: a TF1 SavedModel ran 20% slower when loaded after another model in one process)."""

    def __init__(self, path: str, settings: Settings, ctx):
        self.path = path
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, path, settings), daemon=True)
        self.proc.start()
        child.close()

    def _died(self) -> TfoptError:
        self.proc.join(timeout=5)
        return TfoptError(f"{self.path}: the benchmark process died (exit code "
                          f"{self.proc.exitcode}); TensorFlow crashed running the model")

    def recv(self):
        while not self.conn.poll(0.2):
            if not self.proc.is_alive():
                raise self._died()
        try:
            kind, value = self.conn.recv()
        except (EOFError, ConnectionError):
            raise self._died() from None
        if kind == "error":
            raise TfoptError(value)
        return value

    def send(self, value) -> None:
        self.conn.send(value)

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()


def benchmark(paths: list[str], settings: Settings,
              progress: Callable[[int], None] | None = None,
              labels: list[str] | None = None) -> BenchmarkResult:
    """Benchmark ``paths`` interleaved, each in its own process; the first is the baseline."""
    import multiprocessing

    if settings.num_iter < 1 or settings.num_warmup < 0 or settings.batch_size < 1:
        raise TfoptError("--num-iter and --batch-size must be >= 1, --num-warmup >= 0")
    for path in paths:
        detect_kind(path)  # fail fast, before any process starts
    labels = labels or paths
    ctx = multiprocessing.get_context("spawn")
    workers = [_ModelProcess(p, settings, ctx) for p in paths]
    try:
        specs = [w.recv() for w in workers]
        first = specs[0]
        if settings.inputs_file:
            feeds = load_inputs(settings.inputs_file, first)
        else:
            feeds = make_inputs(first, settings.batch_size, settings.input_shapes,
                                settings.int_range)
        values = list(feeds.values())
        batch = values[0].shape[0] if values and values[0].ndim else 1
        for worker, spec in zip(workers, specs, strict=True):
            if set(spec) <= set(feeds):
                worker.send({k: feeds[k] for k in spec})
            elif len(spec) == len(first):
                # Same inputs under other keys (a .pb's node names vs a SavedModel's keys).
                worker.send(dict(zip(spec, values, strict=True)))
            else:
                raise TfoptError(f"{worker.path}: inputs {', '.join(sorted(spec))} differ from "
                                 f"{workers[0].path}'s; models compared must share a signature")
        for worker in workers:
            worker.recv()  # warmed up

        rounds = max(1, min(settings.rounds, settings.num_iter))
        per_round = [settings.num_iter // rounds + (1 if r < settings.num_iter % rounds else 0)
                     for r in range(rounds)]
        latencies: list[list[float]] = [[] for _ in workers]
        round_tp: list[list[float]] = [[] for _ in workers]
        schedule: list[tuple[int, int]] = []
        for r in range(rounds):
            for m, worker in enumerate(workers):
                schedule.append((r, m))
                worker.send(per_round[r])
                times = worker.recv()
                latencies[m].extend(times)
                round_tp[m].append(batch * len(times) / sum(times))
                if progress:
                    progress(per_round[r])
    finally:
        for worker in workers:
            worker.close()

    results = []
    for m, label in enumerate(labels):
        lat = latencies[m]
        mean = statistics.fmean(lat)
        ratios = [a / b for a, b in zip(round_tp[m], round_tp[0], strict=True)]
        results.append(ModelResult(
            model=label, batch_size=int(batch), iterations=len(lat), throughput=batch / mean,
            latency_mean_ms=mean * 1e3, latency_p50_ms=_percentile(lat, 50) * 1e3,
            latency_p90_ms=_percentile(lat, 90) * 1e3, latency_p99_ms=_percentile(lat, 99) * 1e3,
            round_throughputs=round_tp[m], median_throughput=statistics.median(round_tp[m]),
            ratio=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios)))
    env = environment(settings)
    env["batch_size"] = int(batch)
    env["isolation"] = "one process per model"
    return BenchmarkResult(results, env, schedule)


def chart_png(result: BenchmarkResult) -> bytes:
    """Throughput per model: median over rounds, with the rounds' min-max as error bars."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [os.path.basename(m.model.rstrip("/")) or m.model for m in result.models]
    medians = [m.median_throughput for m in result.models]
    low = [m.median_throughput - min(m.round_throughputs) for m in result.models]
    high = [max(m.round_throughputs) - m.median_throughput for m in result.models]
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(names)), 4))
    bars = ax.bar(names, medians, yerr=[low, high], capsize=6,
                  color=["#9e9e9e"] + ["#ff7f0e"] * (len(names) - 1))
    for bar, m in zip(bars, result.models, strict=True):
        ax.annotate(f"{m.ratio:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", xytext=(0, 8), textcoords="offset points")
    env = result.environment
    ax.set_ylabel("samples/s (median of rounds)")
    ax.set_title(f"batch {env['batch_size']}, TF {env['tensorflow']}, {env['rounds']} rounds",
                 fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
