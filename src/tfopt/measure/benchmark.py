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

from collections.abc import Callable

import numpy as np

from tfopt.errors import TfoptError
from tfopt.measure import stats
from tfopt.measure.results import (
    BenchmarkResult,
    ModelResult,
    Settings,
    environment,
    runtime_label_of,
)
from tfopt.measure.worker import feeds_for, hints, run_round
from tfopt.model.formats import detect
from tfopt.model.paths import read_metadata
from tfopt.model.signature import TensorInfo
from tfopt.verify.inputs import load_inputs, make_inputs


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


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
        runtime=runtime_label_of(path, settings))


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
                                              hints=hints(paths[m], spec, settings)))
        return feeds_for(spec, made["feeds"], made["spec"], paths[m], paths[0])

    facts: dict = {}
    for r in range(rounds):
        order = [(r + i) % n for i in range(n)]
        if progress:
            progress(0, f"round {r + 1}/{rounds}: {', '.join(labels[m] for m in order)}")
        counts = [per_round[r] // blocks + (1 if b < per_round[r] % blocks else 0)
                  for b in range(blocks)]
        facts, timed = run_round(paths, order, settings, feeds_of,
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
