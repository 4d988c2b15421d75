"""What a benchmark is asked (:class:`Settings`) and what it found: per model, throughput
and latency with the ratio to the baseline; the table, JSON and CSV forms of it."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import asdict, dataclass, field

from tfopt.measure import stats
from tfopt.runtime import runtime_label


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


def runtime_label_of(path: str, settings: Settings) -> str:
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
