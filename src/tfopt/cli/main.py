"""The ``tfopt`` command line. Every user error ends as one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import sys

import click

from tfopt.errors import TfoptError, first_line


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfopt")
def cli() -> None:
    """Make pre-trained TensorFlow models fast for inference, and prove it."""


@cli.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--signature", "signatures", multiple=True,
              help="Keep only this signature (repeatable; default: every signature).")
@click.option("--all-signatures", is_flag=True, hidden=True, help="Every signature (default).")
@click.option("--inputs", help="GraphDef input nodes, comma-separated (default: placeholders).")
@click.option("--outputs", help="GraphDef output nodes, comma-separated (default: sinks).")
@click.option("--passes", help="Run only these passes (comma-separated; see `tfopt passes`).")
@click.option("--skip", help="Skip these passes (comma-separated).")
@click.option("--no-verify", is_flag=True, help="Do not compare outputs with the original.")
@click.option("--tolerance", type=float,
              help="Allowed max|diff| / max|original| per float output (default 1e-4; with "
                   "--precision bf16: 2e-2 on rms(diff) / rms(original)).")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,...",
              help="Shape for an input with unknown dimensions (repeatable).")
@click.option("--inputs-file", type=click.Path(), help=".npz of real inputs, keyed by input name.")
@click.option("--batch-size", type=int,
              help="Batch size for generated verification inputs, and so of the speed "
                   "check and of every timed choice (--format auto, --precision auto, --xla "
                   "auto): give the batch you serve (default 1; 8 with --precision bf16).")
@click.option("--int-range", metavar="LOW,HIGH",
              help="Range [LOW, HIGH) for generated integer inputs (default: from the graph: "
                   "embedding table rows, one-hot depth, masks; else 0,10).")
@click.option("--runtimes", help="--format auto: the runtimes to choose from, comma-separated "
                                 "(tf, litert, openvino; default: TensorFlow and every one "
                                 "installed).")
@click.option("--format", type=click.Choice(["saved_model", "pb", "litert", "openvino", "auto"]),
              default="saved_model", show_default=True,
              help="Write a SavedModel, a frozen GraphDef, or the model converted for LiteRT "
                   "(OUT/model.tflite) or OpenVINO (OUT/1/model.xml): converted from tfopt's "
                   "graph or the original, whichever verified form is faster, run and verified "
                   "in that runtime (needs tfopt[litert] / tfopt[openvino]). auto: the "
                   "fastest verified of the SavedModel and those conversions.")
@click.option("--target", type=click.Choice(["portable", "native", "generic"]),
              default="portable", show_default=True,
              help="Which runtimes the output must run on. portable: every CPU build of this "
                   "TensorFlow, oneDNN on or off (verified under both); native: also fused "
                   "kernels only this machine's runtime has (recorded in tfopt.json); generic: "
                   "public ops only, for other TensorFlow builds.")
@click.option("--portable", is_flag=True, hidden=True, help="Old name of --target generic.")
@click.option("--xla", type=click.Choice(["off", "auto", "on"]),
              help="Compile the convolution- and loop-free part (attention, MLP) with XLA. "
                   "auto (the default unless --no-verify or --no-time): when it holds at least "
                   "half the model's FLOPs, and only if timing shows a measurable gain.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "int8", "auto"]),
              default="fp32", show_default=True,
              help="bf16: convolutions, matmuls and the element-wise ops between them in "
                   "bfloat16, weights stored as bfloat16; verified against a 2e-2 relative RMS "
                   "budget and 99% top-1 agreement on class scores. Fast with oneDNN on a CPU "
                   "with AVX512_BF16 or AMX. int8: convolutions and matmuls in int8 (needs "
                   "--calibration-file; 5e-2 relative RMS budget, 99% top-1 agreement); fast "
                   "with oneDNN on a CPU with VNNI or AMX. auto: bf16, or int8 when "
                   "--calibration-file is given, only where it meets its budget and timing "
                   "shows a gain whose interval lies above 1.0 (the faster of the two if both "
                   "do), else float32. With --format openvino/auto, bf16 and auto also "
                   "apply to OpenVINO (its bf16 inference precision, same budget).")
@click.option("--calibration-file", type=click.Path(),
              help="--precision int8: .npz of real samples keyed by input name (a few hundred) "
                   "that set the activation ranges; keep them apart from --inputs-file's.")
@click.option("--calibration-method", type=click.Choice(["minmax", "percentile"]),
              default="minmax", show_default=True,
              help="How an activation's range is taken from the calibration samples: their "
                   "min and max, or the 99.99th percentile (outliers clipped).")
@click.option("--labels", type=click.Path(),
              help=".npy of the true class of each --inputs-file sample: the report gives the "
                   "task accuracy of the original and of the optimized model.")
@click.option("--max-accuracy-drop", type=float,
              help="With --labels: the task accuracy may drop at most this much (0.01: one "
                   "percentage point); int8 returns its most sensitive layers to float32 until "
                   "it holds, or refuses.")
@click.option("--force-precision", is_flag=True,
              help="Write --precision bf16/int8 even on a CPU without bfloat16 / int8 "
                   "dot-product instructions.")
@click.option("--no-time", is_flag=True,
              help="Do not time the written model against the original. By default it is "
                   "timed (both models in three fresh processes, alternating blocks, ~30 s), a "
                   "pass that makes it slower is switched off, and a model that stays slower "
                   "is not written.")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option("--json", "json_path", type=click.Path(), help="Write the full report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only print the summary line.")
def optimize(src, dst, signatures, all_signatures, inputs, outputs, passes, skip, no_verify,
             tolerance, input_shapes, inputs_file, batch_size, int_range, runtimes, format, target,
             portable, xla, precision, calibration_file, calibration_method, labels,
             max_accuracy_drop, force_precision, no_time, overwrite, json_path,
             quiet) -> None:
    """Optimize the model SRC for inference and write it to DST.

    SRC is a SavedModel directory (TF2 or TF1), a frozen .pb/.pbtxt GraphDef or a .keras
    file. The result is verified against SRC on the same inputs unless --no-verify.
    """
    from tfopt.options import OptimizeOptions, parse_int_range

    # Flag errors before TensorFlow is even imported: the options check themselves.
    options = OptimizeOptions.build(
        src, dst, signatures=list(signatures) or None, inputs=inputs, outputs=outputs,
        passes=_split(passes), skip=_split(skip), verify=not no_verify, tolerance=tolerance,
        input_shapes=list(input_shapes), inputs_file=inputs_file, batch_size=batch_size,
        int_range=parse_int_range(int_range) if int_range else None, format=format,
        target="generic" if portable else target, xla=xla, overwrite=overwrite,
        precision=precision, force_precision=force_precision, labels=labels,
        calibration_file=calibration_file, calibration_method=calibration_method,
        max_accuracy_drop=max_accuracy_drop, runtimes=_split(runtimes) or None,
        **({"time": False} if no_time else {}))
    from tfopt.optimizer.stages import run

    report = run(options, None if quiet else _echo_err)
    if not quiet:
        click.echo(report.table())
    click.echo(report.summary())
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2, default=str)


@cli.command()
@click.argument("models", nargs=-1, required=True, type=click.Path())
@click.option("--num-iter", type=int, default=50, show_default=True,
              help="Timed iterations per model (warm-up runs not counted).")
@click.option("--num-warmup", type=int, default=10, show_default=True,
              help="Untimed warm-up iterations per model.")
@click.option("--rounds", type=int, default=5, show_default=True,
              help="Rounds the iterations are split into; each round is a fresh process "
                   "holding every model, called in alternating blocks (A B, B A, ...).")
@click.option("--min-round-seconds", type=float, default=1.0, show_default=True,
              help="A round also runs until each model has this much time timed (split "
                   "over its blocks): a 2 ms model's 10 calls would be 20 ms, within the "
                   "scheduler's noise.")
@click.option("--batch-size", type=int, default=1, show_default=True,
              help="Batch size of generated inputs (dynamic batch dimension).")
@click.option("--input-shape", multiple=True, metavar="NAME=D1,D2,...",
              help="Shape for an input with unknown dimensions (repeatable).")
@click.option("--inputs-file", type=click.Path(), help=".npz of real inputs, keyed by input name.")
@click.option("--int-range", metavar="LOW,HIGH",
              help="Range [LOW, HIGH) for generated integer inputs (default: from the graph).")
@click.option("--signature", help="Signature key (default: serving_default).")
@click.option("--intra-op-threads", type=int, default=0, show_default=True,
              help="Threads inside one op (0: one per CPU core; always set and reported).")
@click.option("--inter-op-threads", type=int, default=0, show_default=True,
              help="Ops run in parallel (0: one per CPU core; always set and reported).")
@click.option("--runtime", type=click.Choice(["onednn", "eigen"]),
              help="Pin the CPU runtime: onednn (TF_ENABLE_ONEDNN_OPTS=1) or eigen (=0). "
                   "Default: this machine's default, reported either way.")
@click.option("--confidence", type=float, default=0.95, show_default=True,
              help="Confidence level of the ratio intervals.")
@click.option("--disable-optimize", is_flag=True,
              help="Switch TensorFlow's graph optimizer (Grappler) off, so that the model's own "
                   "graph is what gets timed, not what Grappler makes of it at load time.")
@click.option("--json", "json_path", type=click.Path(), help="Write results as JSON.")
@click.option("--csv", "csv_path", type=click.Path(), help="Write results as CSV.")
@click.option("--chart", type=click.Path(), help="Write a throughput bar chart (PNG).")
@click.option("--profile", is_flag=True,
              help="Also show which op types take the time (per-op kernel times of each "
                   "model's frozen graph in a Session, TensorFlow's tracer).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def benchmark(models, num_iter, num_warmup, rounds, min_round_seconds, batch_size, input_shape,
              inputs_file,
              int_range, signature, intra_op_threads, inter_op_threads, runtime, confidence,
              disable_optimize, json_path, csv_path, chart, profile, quiet) -> None:
    """Measure throughput and latency of MODELS, with ratios to the first and their intervals.

    Give the same model twice (tfopt benchmark M M) for an A/A check of the noise floor.
    """
    from tfopt.model.paths import model_kind
    from tfopt.options import parse_int_range, parse_shapes

    shapes = parse_shapes(input_shape)
    ints = parse_int_range(int_range) if int_range else None
    for path in models:
        model_kind(path)  # before TensorFlow loads
    if inputs_file:
        _exists(inputs_file, "inputs file")
    from tfopt.measure.benchmark import benchmark as run
    from tfopt.measure.results import Settings

    settings = Settings(batch_size=batch_size, num_iter=num_iter, num_warmup=num_warmup,
                        rounds=rounds, intra_op_threads=intra_op_threads,
                        inter_op_threads=inter_op_threads, disable_optimize=disable_optimize,
                        signature=signature, input_shapes=shapes,
                        inputs_file=inputs_file,
                        int_range=ints,
                        runtime=runtime, confidence=confidence,
                        round_seconds=min_round_seconds)
    with _RoundsBar(num_iter * len(models), quiet) as progress:
        result = run(list(models), settings, progress=progress)
    click.echo(result.table())
    if profile:
        _profile_each(models, settings, signature, inputs_file)
    if json_path:
        result.write_json(json_path)
    if csv_path:
        result.write_csv(csv_path)
    if chart:
        from tfopt.measure.chart import chart_png

        with open(chart, "wb") as f:
            f.write(chart_png(result))


class _RoundsBar:
    """The benchmark's progress bar, created at the first round's start (after the paths were
    checked); its label says which round and model runs, so loading and warm-up are not
    silent."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.bar = total, quiet, None

    def __enter__(self):
        return self

    def __call__(self, done: int, what: str) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=self.total, file=sys.stderr, hidden=self.quiet,
                                         label=what, show_pos=True).__enter__()
        self.bar.label = what
        self.bar.update(done)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _profile_each(models, settings, signature: str | None, inputs_file: str | None) -> None:
    """``--profile``: where each model's time goes, per op type (its frozen graph in a
    Session, TensorFlow's tracer), on the benchmark's inputs."""
    from tfopt.measure.profile import profile_graph
    from tfopt.model.format import pick_signature
    from tfopt.model.formats import load_model
    from tfopt.runtime import current_runtime, runtime_label
    from tfopt.verify.inputs import input_hints, load_inputs, make_inputs

    where = runtime_label(current_runtime())
    if settings.runtime and settings.runtime != current_runtime():
        where += f"; the benchmark above ran with {runtime_label(settings.runtime)}"
    for path in models:
        model = load_model(path, [signature] if signature else None)
        sig = model.signatures[pick_signature(list(model.signatures), signature, path)]
        feeds = (load_inputs(inputs_file, sig.inputs) if inputs_file else
                 make_inputs(sig.inputs, settings.batch_size, settings.input_shapes,
                             settings.int_range, hints=input_hints(sig)))
        click.echo(f"\n{path}: where the time goes (frozen graph, Session, Grappler on, "
                   f"{where})")
        click.echo(profile_graph(sig, feeds).table())


@cli.command()
@click.argument("model", type=click.Path())
@click.option("--compare", "other", type=click.Path(), help="A second model: before/after table.")
@click.option("--signature", help="Count only what this signature runs (default: the whole "
              "stored graph; facts use serving_default).")
@click.option("--functions", is_flag=True, help="Per-function op breakdown (TF2 models).")
@click.option("--top", type=int, help="Show only the N most frequent op types.")
@click.option("--chart", type=click.Path(), help="Write the op-type bar chart (compute ops) as PNG.")
@click.option("--html", "html_path", type=click.Path(), help="Write a self-contained HTML report.")
@click.option("--json", "json_path", type=click.Path(), help="Write the analysis as JSON.")
def analyze(model, other, signature, functions, top, chart, html_path, json_path) -> None:
    """Show what MODEL is made of: op types, shares, parameters, FLOPs."""
    from tfopt.model.paths import model_kind

    for path in (model, other):
        if path:
            model_kind(path)  # before TensorFlow loads
    from tfopt.report import analyze as az

    for path in (chart, html_path, json_path):
        az.check_writable(path)
    first = az.analyze(model, signature)
    analyses = [("model", first)]
    if other:
        analyses = [("before", first), ("after", az.analyze(other, signature))]
    for _, a in analyses:
        click.echo(az.text_report(a, top, functions))
        click.echo("")
    if other:
        click.echo(az.compare_report(analyses[0][1], analyses[1][1]))
    if chart:
        az.write_chart(chart, analyses)
        click.echo(f"chart written to {chart}")
    if html_path:
        az.write_html(html_path, f"tfopt analyze: {model}", analyses)
        click.echo(f"HTML report written to {html_path}")
    if json_path:
        az.write_json(json_path, analyses)


@cli.command()
@click.option("--out", "out_dir", default="tfopt-demo", show_default=True, type=click.Path(),
              help="Directory for the models and the HTML report (must be new or empty).")
@click.option("--num-iter", type=int, default=160, show_default=True,
              help="Benchmark iterations per model.")
@click.option("--rounds", type=int, default=8, show_default=True,
              help="Benchmark rounds (each a fresh process holding the models).")
@click.option("--overwrite", is_flag=True, help="Replace the contents of --out.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto",
              show_default=True,
              help="auto: add a bf16 column where this CPU has bfloat16 instructions and "
                   "oneDNN is on; bf16: add it anyway; fp32: float32 only.")
def demo(out_dir, num_iter, rounds, overwrite, precision) -> None:
    """Build an SSD detector, optimize, verify, benchmark, profile and analyze it (no
    download)."""
    from tfopt.cli.demo import run_demo

    run_demo(out_dir, num_iter=num_iter, rounds=rounds, overwrite=overwrite,
             precision=precision, say=click.echo)


@cli.group()
def zoo() -> None:
    """Models built locally with random weights: list them, build one."""


@zoo.command("list")
def zoo_list() -> None:
    """List the models tfopt can build."""
    from tfopt.zoo.builders import zoo_names

    for name, text in zoo_names().items():
        click.echo(f"{name:<16} {text}")


@zoo.command("build")
@click.argument("name")
@click.argument("out", type=click.Path())
@click.option("--seed", type=int, default=0, show_default=True)
def zoo_build(name, out, seed) -> None:
    """Build zoo model NAME as a SavedModel at OUT."""
    from tfopt.model.paths import atomic_output, check_output_path
    from tfopt.zoo.builders import build

    check_output_path(out, overwrite=False)
    with atomic_output(out, overwrite=False) as tmp:
        build(name, tmp, seed)
    click.echo(f"{name} written to {out}")


@cli.command("passes")
def list_passes() -> None:
    """List the optimization passes, in pipeline order."""
    from tfopt.passes.registry import FINALIZE, REGISTRY, SIMPLIFY

    for phase, title in ((SIMPLIFY, "repeated until nothing changes"), (FINALIZE, "then once")):
        click.echo(f"# {title}")
        for spec in REGISTRY:
            if spec.phase == phase:
                bodies = " [also inside function bodies]" if spec.in_bodies else ""
                click.echo(f"{spec.name:<20} {spec.summary}{bodies}")


def _exists(path: str, what: str) -> None:
    if not os.path.isfile(path):
        raise TfoptError(f"{path}: no such {what}")


def _split(text: str | None) -> list[str] | None:
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _silence_native_logs() -> None:
    """Send TensorFlow's C++ log lines (fd 2) to /dev/null; Python's stderr keeps the terminal.

    TensorFlow prints start-up banners from native code whatever TF_CPP_MIN_LOG_LEVEL says;
    they would bury tfopt's own messages. TFOPT_TF_LOGS=1 keeps them.
    """
    if os.environ.get("TFOPT_TF_LOGS"):
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(saved, "w", buffering=1)
    except OSError:
        return
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def main() -> None:
    _silence_native_logs()
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        _echo_err("tfopt: aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except TfoptError as err:
        _echo_err(f"tfopt: error: {err}")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        _echo_err("tfopt: interrupted")
        sys.exit(130)
    except Exception as err:  # a bug of ours: still one line, the traceback on request
        if os.environ.get("TFOPT_DEBUG"):
            raise
        _echo_err(f"tfopt: internal error: {type(err).__name__}: {first_line(err, '')} "
                  "(set TFOPT_DEBUG=1 for the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
