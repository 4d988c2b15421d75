"""Throughput and latency of one or more models, measured so that a comparison holds.

Models run as users run them: a SavedModel through ``tf.saved_model.load(...).signatures[k]``,
a GraphDef in a ``Session``. On a small shared machine the same model in two processes differs
by 10-20%, and the load changes from second to second, so neither one process nor one stretch
of time is the whole measurement. Every round is a *fresh* process (a new TensorFlow runtime,
thread pools and allocator) holding every model, which one loads first rotating between
rounds; inside it the models are called in alternating blocks (A B, B A, ...), each block at
least a share of ``--min-round-seconds``, so a block and its neighbours see the same load.
Statistics are in :mod:`tfopt.measure.stats`: throughput is the median over rounds; a ratio is
the median of the block-pair ratios with a two-level bootstrap interval (rounds, then blocks
within them), and an interval containing 1.0 is reported as "no difference measurable".
``optimize``'s own timings (speed check, ``--xla auto``, ``--precision auto``) use the same
worker (:func:`time_interleaved`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
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
    blocks: int = 4  # alternating blocks per model and round (the ratio's pairs)

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
    block_rates: list[list[float]]  # calls/s of each block, per round (the ratio's pairs)
    noise: float               # per-round spread of throughput (MAD / median)
    ratio: float = 1.0         # throughput / baseline throughput
    ratio_low: float = 1.0     # confidence interval of the ratio
    ratio_high: float = 1.0
    verdict: str = "baseline"
    precision: str = "fp32"    # what the model computes in (tfopt.json of a tfopt output)
    runtime: str = ""          # a LiteRT / OpenVINO model: the runtime that ran it

    def interval(self, confidence: float = 0.95) -> stats.Ratio:
        """The ratio to the baseline with its interval, as :mod:`tfopt.measure.stats` defines it."""
        return stats.Ratio(self.ratio, self.ratio_low, self.ratio_high, confidence)

    def against(self, other: ModelResult, confidence: float = 0.95) -> stats.Ratio:
        """This model's speed over ``other``'s (both timed in one :func:`benchmark`), paired
        block by block like the ratio to the baseline."""
        return stats.paired_ratio(self.block_rates, other.block_rates, confidence)


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
                f"{env['rounds']} rounds x fresh process holding every model, blocks alternating")

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
        base = self.models[0]
        for m in self.models[1:]:
            lines.append(f"{m.model} vs {base.model}: {m.verdict}{_disagreement(m, base)}")
        lines.extend(f"{m.model} runs in {m.runtime} (the rest in TensorFlow)"
                     for m in self.models if m.runtime)
        lines.append(self.setup_line())
        lines.append("samples/s: median over rounds; ratio: median of the block-pair ratios "
                     "(each block beside the baseline's in the same process); noise: spread "
                     "of a model's per-round throughput (MAD/median)")
        return "\n".join(lines)

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=2)

    def write_csv(self, path: str) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            fields = [k for k in asdict(self.models[0])
                      if k not in ("round_throughputs", "block_rates")]
            writer.writerow(fields)
            for m in self.models:
                d = asdict(m)
                writer.writerow([d[k] for k in fields])


def _runtime_label(path: str, settings: Settings) -> str:
    """What runs a model converted for another runtime ("" for TensorFlow's own formats)."""
    from tfopt.runtimes import detect as runtime_format
    from tfopt.runtimes import runtime

    fmt = runtime_format(path)
    return runtime(fmt).label(settings.threads()[0]) if fmt else ""


def _disagreement(m: ModelResult, base: ModelResult) -> str:
    """When the rounds' throughputs point the other way from the measured ratio, say which to
    read: the ratio compares blocks run side by side in one process, the samples/s medians
    whole rounds, between which the machine's speed moves (load from elsewhere)."""
    ratio = m.interval()
    if not ratio.measurable or (m.throughput > base.throughput) == ratio.faster:
        return ""
    return (f"; the samples/s column points the other way ({m.throughput:.1f} vs "
            f"{base.throughput:.1f}): the machine's speed moved between rounds, and the ratio, "
            "from blocks run side by side, is the measurement to trust")


def environment(settings: Settings, facts: dict) -> dict:
    intra, inter = settings.threads()
    return {**facts, "batch_size": settings.batch_size, "intra_op_threads": intra,
            "inter_op_threads": inter, "disable_optimize": settings.disable_optimize,
            "rounds": settings.rounds, "num_iter": settings.num_iter,
            "num_warmup": settings.num_warmup, "confidence": settings.confidence,
            "round_seconds": settings.round_seconds,
            "isolation": "fresh process per round holding every model, blocks alternating"}


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


def _group_worker(conn, paths: list[str], settings: Settings) -> None:
    """The models of one round in one fresh process, timed in alternating blocks: load each,
    take its inputs, warm it up, then answer each request ``(calls, seconds)`` with one block
    per entry of ``calls``: every model in turn (the order rotating from block to block) makes
    at least that many calls and runs at least ``seconds``; the answer is, per block and
    model, the seconds of each call."""
    configure_runtime(settings)
    runners = []
    for path in paths:
        try:
            runners.append(detect(path).open(settings.signature, _session_config(settings)))
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

    while (request := conn.recv()) is not None:
        counts, seconds = request
        blocks = []
        for b, count in enumerate(counts):
            times: list[list[float]] = [[] for _ in calls]
            for i in range(len(calls)):
                m = (b + i) % len(calls)
                times[m] = block(calls[m], count, seconds)
            blocks.append(times)
        conn.send(("blocks", blocks))


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


@contextlib.contextmanager
def _without_callers_main() -> Iterator[None]:
    """Start children from tfopt's own modules only. multiprocessing re-runs the caller's
    ``__main__`` script in every child it starts (as ``__mp_main__``), so a user's script that
    calls ``tfopt.optimize`` at top level, as the README's example does, ran again in each
    timing child (and failed there). The worker and its arguments live in tfopt's modules,
    so the children need nothing of ``__main__``."""
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


class _ModelProcess:
    """Parent's handle on :func:`_group_worker` in a fresh process (a new TensorFlow runtime)
    holding ``models``."""

    def __init__(self, models: list[str], settings: Settings, ctx):
        self.path = " / ".join(models)
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_group_worker, args=(child, models, settings),
                                daemon=True)
        with _pinned_runtime(settings.runtime), _without_callers_main():
            self.proc.start()
        child.close()

    def _died(self) -> TfoptError:
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        if code is not None and code < 0:
            how = f"TensorFlow crashed ({signal.Signals(-code).name}) running the model"
        else:
            how = f"it exited with code {code} before answering (its error is printed above)"
        return TfoptError(f"{self.path}: the benchmark process died: {how}")

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
    """Valid ranges for integer inputs (ids) and the features of string inputs parsed as
    tf.train.Example, read from the model's frozen graph."""
    strings = any(i.dtype == tf.string for i in spec.values())
    ints = any(i.dtype.is_integer for i in spec.values()) and not settings.int_range
    if not (strings or ints):  # (--int-range decides integer inputs; features need the graph)
        return {}
    model = load_model(path, [settings.signature] if settings.signature else None)
    sig = model.signatures[pick_signature(list(model.signatures), settings.signature, path)]
    return input_hints(sig)


def _run_round(paths: list[str], order: list[int], settings: Settings, ctx,
               feeds_of: Callable[[dict[str, TensorInfo], int], dict[str, np.ndarray]],
               plan: Callable[[float], tuple[list[int], float]]
               ) -> tuple[dict, list[list[list[float]]]]:
    """One fresh process holding ``paths`` loaded in ``order``: ``feeds_of(spec, m)`` gives
    model ``m`` its inputs, ``plan(seconds per call of the slowest)`` the calls per block and
    a block's least seconds. Returns the runtime's facts and, per model (in ``paths`` order),
    per block, the seconds of each call."""
    worker = _ModelProcess([paths[m] for m in order], settings, ctx)
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


def _check(paths: list[str], settings: Settings) -> None:
    """Settings that cannot time anything, and paths that hold no model: refused in one line
    before any process starts."""
    if settings.num_iter < 1 or settings.num_warmup < 0 or settings.batch_size < 1:
        raise TfoptError("--num-iter and --batch-size must be >= 1, --num-warmup >= 0")
    if not 0.5 <= settings.confidence < 1:
        raise TfoptError("--confidence must be in [0.5, 1)")
    if settings.rounds < 1 or settings.round_seconds < 0:
        raise TfoptError("--rounds must be >= 1 and --min-round-seconds >= 0")
    if min(settings.intra_op_threads or 0, settings.inter_op_threads or 0) < 0:
        raise TfoptError("--intra-op-threads and --inter-op-threads must be >= 0 (0: one "
                         "per CPU core)")
    for path in paths:
        detect(path)


def _model_result(path: str, label: str, settings: Settings, batch: int,
                  times: list[list[float]], round_tp: list[float], rates: list[list[float]],
                  base_rates: list[list[float]], baseline: bool) -> ModelResult:
    """One model's row: throughput (median over rounds), latency percentiles over every call,
    and its ratio over the baseline's from paired blocks."""
    lat = [x for t in times for x in t]
    ratio = (stats.Ratio(1.0, 1.0, 1.0, settings.confidence) if baseline else
             stats.paired_ratio(rates, base_rates, settings.confidence))
    return ModelResult(
        model=label, batch_size=batch, iterations=len(lat), throughput=stats.median(round_tp),
        latency_mean_ms=float(np.mean(lat)) * 1e3, latency_p50_ms=_percentile(lat, 50) * 1e3,
        latency_p90_ms=_percentile(lat, 90) * 1e3, latency_p99_ms=_percentile(lat, 99) * 1e3,
        round_throughputs=round_tp, block_rates=rates, noise=stats.spread(round_tp),
        ratio=ratio.value, ratio_low=ratio.low, ratio_high=ratio.high,
        verdict="baseline" if baseline else ratio.verdict(),
        precision=(read_metadata(path) or {}).get("precision", "fp32"),
        runtime=_runtime_label(path, settings))


def benchmark(paths: list[str], settings: Settings,
              progress: Callable[[int, str], None] | None = None,
              labels: list[str] | None = None) -> BenchmarkResult:
    """Benchmark ``paths`` (the first is the baseline). Every round is a fresh process that
    loads every model (which one first rotates between rounds) and calls them in alternating
    blocks, so that the models of a round share the machine's state second by second.
    ``progress`` is called as a round starts (0 iterations, "round 2/5: loading ...") and ends
    (its timed iterations, with each model's throughput), so long runs are never silent."""
    _check(paths, settings)
    labels = labels or paths
    ctx = _process_context(settings.runtime)
    n = len(paths)
    rounds = max(1, min(settings.rounds, settings.num_iter))
    per_round = [settings.num_iter // rounds + (1 if r < settings.num_iter % rounds else 0)
                 for r in range(rounds)]
    blocks = max(1, min(settings.blocks, min(per_round)))  # the same in every round (pairs)
    times: list[list[list[float]]] = [[] for _ in paths]  # model -> block -> call seconds
    round_tp: list[list[float]] = [[] for _ in paths]
    rates: list[list[list[float]]] = [[] for _ in paths]  # model -> round -> block rates
    schedule: list[tuple[int, int]] = []
    made: dict = {}  # the feeds, made once from the baseline's inputs

    def feeds_of(spec: dict[str, TensorInfo], m: int) -> dict[str, np.ndarray]:
        if not made:
            made["spec"] = spec
            made["feeds"] = (load_inputs(settings.inputs_file, spec) if settings.inputs_file
                             else make_inputs(spec, settings.batch_size, settings.input_shapes,
                                              settings.int_range,
                                              hints=_hints(paths[m], spec, settings)))
        return _feeds_for(spec, made["feeds"], made["spec"], paths[m], paths[0])

    facts: dict = {}
    for r in range(rounds):
        order = [(r + i) % n for i in range(n)]
        if progress:
            progress(0, f"round {r + 1}/{rounds}: {', '.join(labels[m] for m in order)}")
        counts = [per_round[r] // blocks + (1 if b < per_round[r] % blocks else 0)
                  for b in range(blocks)]
        facts, timed = _run_round(paths, order, settings, ctx, feeds_of,
                                  lambda _slowest, c=counts: (c, settings.round_seconds / blocks))
        schedule += [(r, m) for m in order]
        values = list(made["feeds"].values())
        batch = int(values[0].shape[0]) if values and values[0].ndim else 1
        for m, model_blocks in enumerate(timed):
            times[m] += model_blocks
            rates[m].append([stats.round_throughput(t, 1) for t in model_blocks])
            round_tp[m].append(stats.round_throughput([x for t in model_blocks for x in t], batch))
        if progress:
            progress(per_round[r] * n, f"round {r + 1}/{rounds}: " + ", ".join(
                f"{labels[m]} {round_tp[m][-1]:.1f}" for m in range(n)) + " samples/s")

    results = [_model_result(paths[m], label, settings, batch, times[m], round_tp[m],
                             rates[m], rates[0], baseline=m == 0)
               for m, label in enumerate(labels)]
    env = environment(settings, facts)
    env["batch_size"] = batch
    return BenchmarkResult(results, env, schedule)


INTERLEAVED_PROCESSES = 3  # per set; which model loads first alternates between them
INTERLEAVED_BLOCKS = 10    # alternating blocks per model and process (at most)
BLOCK_SECONDS = 0.25       # each block at least this long (and at least one call)
INTERLEAVED_BUDGET = 40.0  # seconds of timed blocks in all: fewer blocks for a slow model
MIN_BLOCKS = 4


def blocks_for(seconds_per_call: float, processes: int = INTERLEAVED_PROCESSES,
               models: int = 2) -> int:
    """Blocks per model and process: :data:`INTERLEAVED_BLOCKS` while a block is a quarter
    second of calls (~15 s of timing in all), fewer for a model whose one call is longer, so
    that the timing stays near :data:`INTERLEAVED_BUDGET` (a 2 s call: 3 blocks would do,
    4 are kept for the interval; before, 10 blocks of two such calls were 4 minutes)."""
    block = max(BLOCK_SECONDS, seconds_per_call)
    fit = int(INTERLEAVED_BUDGET / (models * processes * block))
    return max(MIN_BLOCKS, min(INTERLEAVED_BLOCKS, fit))


def time_interleaved(paths: list[str], key: str, feeds: dict,
                     say: Callable[[str], None] | None = None,
                     processes: int = INTERLEAVED_PROCESSES
                     ) -> tuple[list[list[float]], ...]:
    """Calls/s of signature ``key`` of two (or more) models on ``feeds``, in alternating
    blocks inside each of ``processes`` fresh processes holding them all: per model, one list
    of block rates per process, paired block by block (:func:`stats.paired_ratio`). Several
    candidates timed at once against the first (``--format auto``'s runtimes) share one set
    of processes and blocks, so their ratios are comparable and the timing costs one run.

    This is how ``optimize`` times two models (the speed check against the original,
    ``--xla auto``, ``--precision auto``), with the same worker as :func:`benchmark`: on a
    shared machine the load changes from second to second and a process's placement moves a
    model by 10-20% (an A/A of one model with a fresh process per model and round measured
    0.86x [0.82-0.96] here), so a process per model let a disturbed round or two decide
    (BERT's compiled cluster: 0.80x [0.75-1.25] in one optimize, 1.24x [1.13-1.47] in
    another). Blocks a quarter of a second apart in one process see the same load and
    placement; the processes, loading the models in alternating order, keep a process's luck
    from deciding. Blocks per process follow the call's length (:func:`blocks_for`)."""
    ctx = _process_context(None)
    settings = Settings(num_warmup=3, signature=key)
    rates: list[list[list[float]]] = [[] for _ in paths]
    chosen: list[int] = []  # blocks, chosen in the first process from a warm call's length

    def plan(slowest: float) -> tuple[list[int], float]:
        if not chosen:
            chosen.append(blocks_for(slowest, processes, len(paths)))
        return [1] * chosen[0], BLOCK_SECONDS

    n = len(paths)
    for p in range(processes):
        order = [(p + i) % n for i in range(n)]  # which model loads first rotates
        # ``feeds`` are keyed like the first model's inputs (the original's signature)
        _, timed = _run_round(paths, order, settings, ctx,
                              lambda spec, m: _feeds_for(spec, feeds, feeds, paths[m], paths[0]),
                              plan)
        for m in range(n):
            rates[m].append([stats.round_throughput(t, 1) for t in timed[m]])
        if say:
            ratios = ", ".join(
                f"{stats.median([b / a for a, b in zip(rates[0][-1], rates[m][-1], strict=True)]):.2f}x"
                for m in range(1, n))
            say(f"  process {p + 1}/{processes}: {ratios} over {chosen[0]} block pairs")
    return tuple(rates)


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
