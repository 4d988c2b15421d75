"""What every benchmark script here shares, so that each script says only which models and
which variants it times.

The command line (``--models --batch --num-iter --rounds --out``), a work directory removed
afterwards, TensorFlow's own chain (freeze + ``optimize_for_inference``) as a comparison
column, timing a list of variants of one model in one interleaved run with the original timed
again as an A/A column (a fresh process per model and round, order alternating: see
:mod:`tfopt.measure.benchmark`), and Markdown tables. Scripts import it as ``harness`` (they run
as ``python benchmarks/<script>.py``, so this folder is on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from tfopt.measure import stats
from tfopt.measure.benchmark import benchmark
from tfopt.measure.results import ModelResult, Settings
from tfopt.model.paths import size_on_disk
from tfopt.runtime import summary_line

HERE = os.path.dirname(os.path.abspath(__file__))
AA = "original again"  # the label of the A/A column: the original timed once more


def arguments(doc: str, out: str, models: Sequence[str], batch: str = "1",
              num_iter: int = 30, rounds: int = 5,
              extra: Sequence[tuple[str, dict]] = ()) -> argparse.Namespace:
    """The scripts' shared command line; ``extra`` adds script-specific flags."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--models", default=",".join(models))
    parser.add_argument("--batch", default=batch, help="batch sizes, comma-separated")
    parser.add_argument("--num-iter", type=int, default=num_iter)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--out", default=os.path.join(HERE, out))
    for flag, options in extra:
        parser.add_argument(flag, **options)
    args = parser.parse_args()
    if not os.path.dirname(args.out):  # a bare file name, as the docs spell it: beside us
        args.out = os.path.join(HERE, args.out)
    args.model_list = [m for m in args.models.split(",") if m]
    args.batches = [int(b) for b in args.batch.split(",") if b]
    return args


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tf_chain(src: str, dst: str) -> None:
    """TensorFlow's own tools: freeze, then optimize_for_inference.

    The result is written as a SavedModel with the same signature (tfopt's saver), so that it
    is loaded and run exactly like the other columns: only the graph differs.
    """
    from tensorflow.python.tools import optimize_for_inference_lib

    from tfopt.model.formats import load_model
    from tfopt.model.saver import write_saved_model

    model = load_model(src, ["serving_default"])  # for the signature's names
    sig = model.signatures["serving_default"]
    ins = [t.tensor.split(":")[0] for t in sig.inputs.values()]
    outs = [t.tensor.split(":")[0] for t in sig.outputs.values()]
    frozen = sig.graph_def  # TF1: the v1 session freeze, which is TF's own
    if model.kind == "saved_model_tf2":
        # TF2: convert_variables_to_constants_v2 as a user calls it (control flow lowered)
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,
        )

        loaded = tf.saved_model.load(src)
        graph = convert_variables_to_constants_v2(loaded.signatures["serving_default"]).graph
        names = {n.name for n in graph.as_graph_def().node}
        if set(ins) | set(outs) <= names:
            frozen = graph.as_graph_def()
    gd = optimize_for_inference_lib.optimize_for_inference(
        frozen, ins, outs, [t.dtype.as_datatype_enum for t in sig.inputs.values()])
    write_saved_model({sig.key: sig.with_graph(gd)}, dst)


def size_mb(path: str) -> float:
    """Size on disk of a model directory (or file), in MB."""
    return size_on_disk(path) / 1e6


def at_batch(shapes: dict[str, tuple[int, ...]] | None, batch: int) -> dict[str, tuple]:
    """Input shapes with their first (batch) dimension set to ``batch``."""
    return {k: (batch, *v[1:]) for k, v in (shapes or {}).items()}


@dataclass
class Row:
    """One model at one batch size: each variant's timing (the first is the baseline) and
    whatever else the script reports about it."""

    model: str
    batch: int
    results: dict[str, ModelResult | None]
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def baseline(self) -> ModelResult:
        return next(iter(self.results.values()))

    def ratio(self, label: str) -> float | None:
        result = self.results.get(label)
        return result.ratio if result is not None else None

    def ci(self, label: str) -> str:
        """``1.32x [1.25-1.40]`` against the baseline, or why there is no number."""
        result = self.results.get(label)
        return result.interval().short() if result is not None else "n/a"

    def between(self, label: str, other: str) -> str:
        """``label`` against ``other`` (not the baseline) with its interval."""
        a, b = self.results[label], self.results[other]
        return a.against(b).short()


def time_variants(model: str, batch: int, variants: dict[str, str | None],
                  settings: Settings, aa: bool = True) -> Row:
    """Time ``variants`` (label -> path; None: not available) in one interleaved run; with
    ``aa`` the first is timed once more as the A/A column (this run's noise)."""
    present = {label: path for label, path in variants.items() if path}
    if aa:
        present[AA] = next(iter(present.values()))
    result = benchmark(list(present.values()), settings, labels=list(present))
    timed = dict(zip(present, result.models, strict=True))
    row = Row(model, batch, {label: timed.get(label) for label in [*variants, *present]})
    print(f"{model} b{batch}: " + "; ".join(f"{label} {row.ci(label)}"
                                           for label in list(row.results)[1:]), flush=True)
    return row


def between_line(rows: list[Row], label: str, other: str, batch: int, what: str,
                 keep: Callable[[Row], bool] = lambda _r: True, name_models: bool = False
                 ) -> str:
    """``"<what>, batch <b>[, <models>]: geometric mean 1.23x."``: ``label`` over ``other``
    on the rows of ``batch`` that ``keep`` admits and that timed both ("" when none)."""
    sel = [r for r in rows if r.batch == batch and keep(r)
           and label in r.results and other in r.results]
    if not sel:
        return ""
    models = f", {', '.join(r.model for r in sel)}" if name_models else ""
    value = stats.geomean([r.ratio(label) / r.ratio(other) for r in sel])
    return f"{what}, batch {batch}{models}: geometric mean {value:.2f}x."


def geomean_line(rows: list[Row], label: str, batch: int, what: str = "") -> str:
    ratios = [r.ratio(label) for r in rows if r.batch == batch and r.ratio(label)]
    if not ratios:
        return ""
    return (f"Geometric mean of {label} over the original{what}, batch {batch}: "
            f"{stats.geomean(ratios):.2f}x ({len(ratios)} models).")


def table(headers: Sequence[str], body: Sequence[Sequence[object]],
          numeric: Sequence[bool] | None = None) -> list[str]:
    """A Markdown table; ``numeric`` columns are right-aligned."""
    numeric = numeric or [False] * len(headers)
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return lines


def write_markdown(path: str, title: str, setup: str, sections: Sequence[Sequence[str]]) -> None:
    """``# title``, the machine and method line, then each section; also printed."""
    lines = [f"# {title}", "", f"Machine: {summary_line()}. {setup}"]
    for section in sections:
        if section:
            lines += ["", *section]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(text)


METHOD = ("Threads = cores, Grappler on (as users run models). {rounds} rounds, each a fresh "
          "process holding every model, called in alternating blocks; throughput = median over "
          "rounds (samples/s); ratios to the original = median of block-pair ratios with 95% "
          "bootstrap intervals; the A/A column is the original timed again in the same run "
          "(its noise).")
