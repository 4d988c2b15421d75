"""Throughput and latency of one or more models, measured so that a comparison holds.

Models run as users run them: a SavedModel through ``tf.saved_model.load(...).signatures[k]``,
a GraphDef in a ``Session``. On a small shared machine the same model in two processes differs
by 10-20%, so a process is one sample, not the whole measurement: every round starts a *fresh*
process per model (a new TensorFlow runtime, thread pools and allocator), the models run one
after the other in that round, and the order alternates between rounds (A B, B A, ...), so
neither placement nor position favours one model. Statistics are in :mod:`tfopt.measure.stats`:
throughput is the median over rounds, a ratio is the ratio of medians with a paired bootstrap
interval, and an interval containing 1.0 is reported as "no difference measurable".
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import tensorflow as tf

from tfopt.errors import TfoptError, first_line
from tfopt.measure import stats
from tfopt.model.formats import detect, load_model
from tfopt.model.loader import pick_signature
from tfopt.model.paths import read_metadata
from tfopt.model.signature import TensorInfo
from tfopt.runtime import RUNTIMES, describe, runtime_label
from tfopt.verify.inputs import input_hints, load_inputs, make_inputs


@dataclass
class Settings:
    batch_size: int = 1
    num_iter: int = 50
    num_warmup: int = 10
    rounds: int = 5
    intra_op_threads: int = 0  # 0: one per CPU core (set explicitly, and reported)
    inter_op_threads: int = 0
    disable_optimize: bool = False
    signature: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs_file: str | None = None
    int_range: tuple[int, int] | None = None  # None: derived from the graph
    runtime: str | None = None  # "onednn" / "eigen": pin TF_ENABLE_ONEDNN_OPTS; None: default
    confidence: float = 0.95
    round_seconds: float = 0.0  # > 0: a round also runs until this much time is timed

    def threads(self) -> tuple[int, int]:
        cores = os.cpu_count() or 1
        return self.intra_op_threads or cores, self.inter_op_threads or cores


@dataclass
class ModelResult:
    model: str
    batch_size: int
    iterations: int
    throughput: float          # samples/s: median over rounds (the one definition)
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    round_throughputs: list[float]
    noise: float               # per-round spread of throughput (MAD / median)
    ratio: float = 1.0         # throughput / baseline throughput
    ratio_low: float = 1.0     # confidence interval of the ratio
    ratio_high: float = 1.0
    verdict: str = "baseline"
    precision: str = "fp32"    # what the model computes in (tfopt.json of a tfopt output)

    def interval(self, confidence: float = 0.95) -> stats.Ratio:
        """The ratio to the baseline with its interval, as :mod:`tfopt.measure.stats` defines it."""
        return stats.Ratio(self.ratio, self.ratio_low, self.ratio_high, confidence)


@dataclass
class BenchmarkResult:
    models: list[ModelResult]
    environment: dict
    schedule: list[tuple[int, int]] = field(default_factory=list)  # (round, model) run order

    def to_dict(self) -> dict:
        return {"environment": self.environment, "models": [asdict(m) for m in self.models],
                "schedule": self.schedule}

    def setup_line(self) -> str:
        env = self.environment
        return (f"batch {env['batch_size']}, threads intra={env['intra_op_threads']} "
                f"inter={env['inter_op_threads']}, TensorFlow {env['tensorflow']}, "
                f"{runtime_label(env['runtime'])}, CPU {env['isa']} ({env['cpu']}, "
                f"{env['cpus']} cores), Grappler {'off' if env['disable_optimize'] else 'on'}, "
                f"{env['rounds']} rounds x fresh process per model, interleaved")

    def table(self) -> str:
        conf = f"{self.environment['confidence']:.0%} CI"
        headers = ["model", "precision", "samples/s", "mean ms", "p50 ms", "p90 ms", "p99 ms",
                   "noise", "ratio", conf]
        rows = [[m.model, m.precision, f"{m.throughput:.2f}", f"{m.latency_mean_ms:.2f}",
                 f"{m.latency_p50_ms:.2f}", f"{m.latency_p90_ms:.2f}",
                 f"{m.latency_p99_ms:.2f}", f"{m.noise:.1%}", f"{m.ratio:.3f}x",
                 f"{m.ratio_low:.3f}-{m.ratio_high:.3f}"] for m in self.models]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w)
                           for i, (h, w) in enumerate(zip(headers, widths, strict=True)))]
        for row in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        for m in self.models[1:]:
            lines.append(f"{m.model} vs {self.models[0].model}: {m.verdict}")
        lines.append(self.setup_line())
        lines.append("samples/s: median over rounds; ratio: ratio of those medians; noise: "
                     "spread of a model's per-round throughput (MAD/median)")
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


def environment(settings: Settings, facts: dict) -> dict:
    intra, inter = settings.threads()
    return {**facts, "batch_size": settings.batch_size, "intra_op_threads": intra,
            "inter_op_threads": inter, "disable_optimize": settings.disable_optimize,
            "rounds": settings.rounds, "num_iter": settings.num_iter,
            "num_warmup": settings.num_warmup, "confidence": settings.confidence,
            "round_seconds": settings.round_seconds,
            "isolation": "fresh process per model and round, order alternating"}


def _session_config(settings: Settings) -> tf.compat.v1.ConfigProto:
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


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _worker(conn, path: str, settings: Settings) -> None:
    """One model in one fresh process: load, take inputs, warm up, time what it is told."""
    try:
        configure_runtime(settings)
        runner = detect(path).open(settings.signature, _session_config(settings))
    except Exception as err:
        conn.send(("error", first_line(err) if isinstance(err, TfoptError) else
                   f"{path}: cannot load the model: {first_line(err)}"))
        return
    conn.send(("inputs", (runner.inputs, describe())))
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
        times: list[float] = []
        while len(times) < count or sum(times) < settings.round_seconds:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        conn.send(("times", times))


def _paired_worker(conn, paths: list[str], settings: Settings) -> None:
    """Two models in one fresh process, timed in alternating blocks (see
    :func:`time_interleaved`): load both, take inputs for each, warm up, then answer each
    request for N blocks with N (calls/s of the first, calls/s of the second) pairs."""
    try:
        configure_runtime(settings)
        runners = [detect(p).open(settings.signature, _session_config(settings)) for p in paths]
    except Exception as err:
        conn.send(("error", f"{' / '.join(paths)}: cannot load the models: "
                            f"{first_line(err)}"))
        return
    conn.send(("inputs", [r.inputs for r in runners]))
    feeds = conn.recv()
    try:
        calls = [r.prepare(f) for r, f in zip(runners, feeds, strict=True)]
        slowest = 0.0
        for call in calls:
            for _ in range(max(settings.num_warmup, 1)):
                start = time.perf_counter()
                call()
            slowest = max(slowest, time.perf_counter() - start)
    except Exception as err:
        conn.send(("error", f"{' / '.join(paths)}: fails on the given inputs: "
                            f"{first_line(err)}"))
        return
    conn.send(("ready", slowest))  # seconds per call of the slower model, warm

    def block(call) -> float:
        done, start = 0, time.perf_counter()
        while done < 1 or time.perf_counter() - start < settings.round_seconds:
            call()
            done += 1
        return done / (time.perf_counter() - start)

    while (count := conn.recv()) is not None:
        pairs = []
        for b in range(count):
            rate = [0.0, 0.0]
            for m in ((0, 1) if b % 2 == 0 else (1, 0)):
                rate[m] = block(calls[m])
            pairs.append(tuple(rate))
        conn.send(("pairs", pairs))


@contextlib.contextmanager
def _pinned_runtime(runtime: str | None) -> Iterator[None]:
    """Spawned children read TF_ENABLE_ONEDNN_OPTS from the environment they start with."""
    if runtime is None:
        yield
        return
    if runtime not in RUNTIMES:
        raise TfoptError(f"unknown runtime {runtime!r} (choose {', '.join(RUNTIMES)})")
    old = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = RUNTIMES[runtime]
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        else:
            os.environ["TF_ENABLE_ONEDNN_OPTS"] = old


def _process_context(runtime: str | None):
    """How fresh processes start. A spawned process spends ~3.5 s importing TensorFlow before
    it loads anything, which made a 5-round comparison of two small models take a minute. A
    fork server that has imported TensorFlow (and nothing else: no runtime, thread pool or
    model exists before the fork) starts each one in ~0.15 s, each still with its own
    TensorFlow runtime, threads and allocations. The server reads TF_ENABLE_ONEDNN_OPTS when it
    starts, so a pinned runtime spawns, as before."""
    import multiprocessing

    if runtime is None and "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["tensorflow", "tfopt.measure.benchmark"])
        return ctx
    return multiprocessing.get_context("spawn")


class _ModelProcess:
    """Parent's handle on a worker in a fresh process (a new TensorFlow runtime):
    ``_worker`` with one model, or ``_paired_worker`` with a list of two."""

    def __init__(self, models: str | list[str], settings: Settings, ctx, target=_worker):
        self.path = models if isinstance(models, str) else " / ".join(models)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, models, settings), daemon=True)
        with _pinned_runtime(settings.runtime):
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


def _feeds_for(spec: dict[str, TensorInfo], feeds: dict[str, np.ndarray], first: dict,
               path: str, first_path: str) -> dict[str, np.ndarray]:
    if set(spec) <= set(feeds):
        return {k: feeds[k] for k in spec}
    if len(spec) == len(first):  # same inputs under other keys (a .pb's node names)
        return dict(zip(spec, feeds.values(), strict=True))
    raise TfoptError(f"{path}: inputs {', '.join(sorted(spec))} differ from {first_path}'s; "
                     "models compared must share a signature")


def _hints(path: str, spec: dict[str, TensorInfo], settings: Settings) -> dict:
    """Valid ranges for integer inputs (ids), read from the model's frozen graph."""
    if settings.int_range or not any(i.dtype.is_integer for i in spec.values()):
        return {}
    model = load_model(path, [settings.signature] if settings.signature else None)
    sig = model.signatures[pick_signature(list(model.signatures), settings.signature, path)]
    return input_hints(sig)


def benchmark(paths: list[str], settings: Settings,
              progress: Callable[[int, str], None] | None = None,
              labels: list[str] | None = None) -> BenchmarkResult:
    """Benchmark ``paths`` (the first is the baseline): every round, a fresh process per model,
    the models one after the other, the order alternating between rounds. ``progress`` is
    called as each model's run starts (0 iterations, "round 2/5: optimized") and ends (its
    timed iterations, with the round's throughput), so long runs are never silent."""
    if settings.num_iter < 1 or settings.num_warmup < 0 or settings.batch_size < 1:
        raise TfoptError("--num-iter and --batch-size must be >= 1, --num-warmup >= 0")
    if not 0.5 <= settings.confidence < 1:
        raise TfoptError("--confidence must be in [0.5, 1)")
    for path in paths:
        detect(path)  # fail fast, before any process starts
    labels = labels or paths
    ctx = _process_context(settings.runtime)
    rounds = max(1, min(settings.rounds, settings.num_iter))
    per_round = [settings.num_iter // rounds + (1 if r < settings.num_iter % rounds else 0)
                 for r in range(rounds)]
    latencies: list[list[float]] = [[] for _ in paths]
    round_tp: list[list[float]] = [[] for _ in paths]
    schedule: list[tuple[int, int]] = []
    feeds: dict[str, np.ndarray] | None = None
    first_spec: dict = {}
    facts: dict = {}
    batch = settings.batch_size
    for r in range(rounds):
        order = list(range(len(paths)))
        if r % 2:
            order.reverse()
        for m in order:
            if progress:
                progress(0, f"round {r + 1}/{rounds}: {labels[m]}")
            worker = _ModelProcess(paths[m], settings, ctx)
            try:
                spec, facts = worker.recv()
                if feeds is None:
                    first_spec = spec
                    feeds = (load_inputs(settings.inputs_file, spec) if settings.inputs_file
                             else make_inputs(spec, settings.batch_size, settings.input_shapes,
                                              settings.int_range,
                                              hints=_hints(paths[m], spec, settings)))
                    values = list(feeds.values())
                    batch = int(values[0].shape[0]) if values and values[0].ndim else 1
                worker.send(_feeds_for(spec, feeds, first_spec, paths[m], paths[order[0]]))
                worker.recv()  # warmed up
                worker.send(per_round[r])
                times = worker.recv()
            finally:
                worker.close()
            schedule.append((r, m))
            latencies[m].extend(times)
            round_tp[m].append(stats.round_throughput(times, batch))
            if progress:
                progress(per_round[r], f"round {r + 1}/{rounds}: {labels[m]} "
                                       f"{round_tp[m][-1]:.1f} samples/s")

    results = []
    for m, label in enumerate(labels):
        lat = latencies[m]
        ratio = stats.ratio(round_tp[m], round_tp[0], settings.confidence)
        results.append(ModelResult(
            model=label, batch_size=batch, iterations=len(lat),
            throughput=stats.median(round_tp[m]),
            latency_mean_ms=float(np.mean(lat)) * 1e3, latency_p50_ms=_percentile(lat, 50) * 1e3,
            latency_p90_ms=_percentile(lat, 90) * 1e3, latency_p99_ms=_percentile(lat, 99) * 1e3,
            round_throughputs=round_tp[m], noise=stats.spread(round_tp[m]),
            ratio=ratio.value, ratio_low=ratio.low, ratio_high=ratio.high,
            verdict="baseline" if m == 0 else ratio.verdict(),
            precision=(read_metadata(paths[m]) or {}).get("precision", "fp32")))
    env = environment(settings, facts)
    env["batch_size"] = batch
    return BenchmarkResult(results, env, schedule)


PROMISING = 1.10  # a timed candidate this much faster, undecided, is timed a second time
INTERLEAVED_PROCESSES = 3  # per set; which model loads first alternates between them
INTERLEAVED_BLOCKS = 10    # alternating blocks per model and process (at most)
BLOCK_SECONDS = 0.25       # each block at least this long (and at least one call)
INTERLEAVED_BUDGET = 40.0  # seconds of timed blocks in all: fewer blocks for a slow model
MIN_BLOCKS = 4


def blocks_for(seconds_per_call: float, processes: int = INTERLEAVED_PROCESSES) -> int:
    """Blocks per model and process: :data:`INTERLEAVED_BLOCKS` while a block is a quarter
    second of calls (~15 s of timing in all), fewer for a model whose one call is longer, so
    that the timing stays near :data:`INTERLEAVED_BUDGET` (a 2 s call: 3 blocks would do,
    4 are kept for the interval; before, 10 blocks of two such calls were 4 minutes)."""
    block = max(BLOCK_SECONDS, seconds_per_call)
    fit = int(INTERLEAVED_BUDGET / (2 * processes * block))
    return max(MIN_BLOCKS, min(INTERLEAVED_BLOCKS, fit))


def time_interleaved(paths: list[str], key: str, feeds: dict,
                     say: Callable[[str], None] | None = None,
                     processes: int = INTERLEAVED_PROCESSES
                     ) -> tuple[list[list[float]], list[list[float]]]:
    """Calls/s of signature ``key`` of two models on ``feeds``, in alternating blocks inside
    each of ``processes`` fresh processes holding both: ``(first's, second's)``, one list of
    block rates per process, paired block by block (:func:`stats.paired_ratio`).

    This is how ``optimize`` times two models (the speed check against the original,
    ``--xla auto``, ``--precision auto``): on a shared machine the load changes from second
    to second and a process's placement moves a model by 10-20% (an A/A of one model in
    fresh processes measured 0.86x [0.82-0.96] here), so a process per model and round let a
    disturbed round or two decide (BERT's compiled cluster: 0.80x [0.75-1.25] in one
    optimize, 1.24x [1.13-1.47] in another). Blocks a quarter of a second apart in one
    process see the same load and placement; the processes, loading the models in
    alternating order, keep a process's luck from deciding. ``tfopt benchmark`` keeps a
    fresh process per model and round: it measures models, not a choice between two."""
    ctx = _process_context(None)
    settings = Settings(num_warmup=3, signature=key, round_seconds=BLOCK_SECONDS)
    first: list[list[float]] = []
    second: list[list[float]] = []
    blocks = 0  # chosen in the first process from how long a call takes (the same for all)
    for p in range(processes):
        order = [0, 1] if p % 2 == 0 else [1, 0]
        worker = _ModelProcess([paths[m] for m in order], settings, ctx, _paired_worker)
        try:
            specs = worker.recv()
            # ``feeds`` are keyed like the first model's inputs (the original's signature)
            worker.send([_feeds_for(spec, feeds, feeds, paths[m], paths[0])
                         for spec, m in zip(specs, order, strict=True)])
            seconds_per_call = worker.recv()  # warmed up
            blocks = blocks or blocks_for(seconds_per_call, processes)
            worker.send(blocks)
            pairs = worker.recv()
        finally:
            worker.close()
        rates = {m: [pair[i] for pair in pairs] for i, m in enumerate(order)}
        first.append(rates[0])
        second.append(rates[1])
        if say:
            ratio = stats.median([b / a for a, b in zip(rates[0], rates[1], strict=True)])
            say(f"  process {p + 1}/{processes}: {ratio:.2f}x over {blocks} block pairs")
    return first, second


def time_candidate(plain, candidate, key: str, tags: tuple[str, ...], feeds: dict,
                   say: Callable[[str], None] | None = None) -> stats.Ratio:
    """Time signature ``key`` of two graph forms (``SignatureGraph``s) written as SavedModels,
    on ``feeds`` (:func:`time_interleaved`): the candidate's throughput over the plain one's,
    with its interval (how ``--xla auto`` and ``--precision auto`` decide)."""
    import tempfile

    from tfopt.model.saver import write_saved_model

    with tempfile.TemporaryDirectory(prefix="tfopt-time-") as tmp:
        paths = [os.path.join(tmp, "plain"), os.path.join(tmp, "candidate")]
        for path, sig in zip(paths, (plain, candidate), strict=True):
            write_saved_model({key: sig}, path, tags)
        plain_rates, rates = time_interleaved(paths, key, feeds, say)
        first = stats.paired_ratio(rates, plain_rates)
        if first.measurable or first.value < PROMISING:
            return first
        # A gain worth having whose interval still reaches 1.0: one process's luck may
        # decide that. As many processes again, and the decision on all of them.
        if say:
            say(f"  {first.short()}: not decided by {INTERLEAVED_PROCESSES} processes; "
                f"{INTERLEAVED_PROCESSES} more ...")
        more_plain, more = time_interleaved(paths, key, feeds, say)
    return stats.paired_ratio(rates + more, plain_rates + more_plain)


def chart_png(result: BenchmarkResult) -> bytes:
    """Horizontal bars: median throughput per model, whiskers from its slowest to its fastest
    round, and the ratio with its interval written right of the whisker (never on it)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = result.models
    names = [os.path.basename(m.model.rstrip("/")) or m.model for m in models]
    medians = [m.throughput for m in models]
    lows = [m.throughput - min(m.round_throughputs) for m in models]
    highs = [max(m.round_throughputs) - m.throughput for m in models]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.7 * len(models)))
    y = list(range(len(models)))[::-1]
    ratios = [m.interval(result.environment["confidence"]) for m in models]
    colors = ["#9e9e9e"] + ["#1f77b4" if r.faster else "#d62728" if r.measurable else "#bdbdbd"
                            for r in ratios[1:]]
    ax.barh(y, medians, xerr=[lows, highs], capsize=5, color=colors, height=0.6)
    right = max(max(m.round_throughputs) for m in models)
    for yi, m, r in zip(y, models, ratios, strict=True):
        text = ("baseline" if m is models[0] else
                r.short() + ("" if r.measurable else " n.s."))
        ax.text(max(m.round_throughputs) + right * 0.02, yi, text, va="center", fontsize=9)
    ax.set_xlim(0, right * 1.45)
    ax.set_yticks(y, names)
    ax.set_xlabel("samples/s (median of rounds; whiskers: slowest-fastest round)")
    ax.set_title(result.setup_line(), fontsize=7, wrap=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
