"""The ``tfopt`` command line. Every user error ends as one line on stderr and exit code 2."""

from __future__ import annotations

import json
import os
import sys

import click

from tfopt.errors import TfoptError


def _echo_err(msg: str) -> None:
    click.echo(msg, err=True)


def _int_range(text: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in text.split(","))
        if high <= low:
            raise ValueError
        return low, high
    except ValueError:
        raise click.BadParameter("expected LOW,HIGH with LOW < HIGH, e.g. 0,1000") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tfopt")
def cli() -> None:
    """Make pre-trained TensorFlow models fast for inference, and prove it."""


@cli.command()
@click.argument("src", type=click.Path())
@click.argument("dst", type=click.Path())
@click.option("--signature", help="Signature key to optimize (default: serving_default).")
@click.option("--all-signatures", is_flag=True, help="Optimize every signature of a SavedModel.")
@click.option("--inputs", help="GraphDef input nodes, comma-separated (default: placeholders).")
@click.option("--outputs", help="GraphDef output nodes, comma-separated (default: sinks).")
@click.option("--passes", help="Run only these passes (comma-separated; see `tfopt passes`).")
@click.option("--skip", help="Skip these passes (comma-separated).")
@click.option("--no-verify", is_flag=True, help="Do not compare outputs with the original.")
@click.option("--tolerance", type=float, default=1e-4, show_default=True,
              help="Allowed max|diff| / max|original| per float output.")
@click.option("--input-shape", multiple=True, metavar="NAME=D1,D2,...",
              help="Shape for an input with unknown dimensions (repeatable).")
@click.option("--inputs-file", type=click.Path(), help=".npz of real inputs, keyed by input name.")
@click.option("--batch-size", type=int, default=1, show_default=True,
              help="Batch size for generated verification inputs.")
@click.option("--int-range", default="0,10", show_default=True,
              help="LOW,HIGH (exclusive) for generated integer inputs such as ids.")
@click.option("--format", "fmt", type=click.Choice(["saved_model", "pb"]), default="saved_model",
              show_default=True, help="Write a SavedModel or a frozen GraphDef.")
@click.option("--portable", is_flag=True,
              help="Emit only public ops (no _FusedConv2D...) for runtimes built without them.")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.option("--json", "json_path", type=click.Path(), help="Write the full report as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only print the summary line.")
def optimize(src, dst, signature, all_signatures, inputs, outputs, passes, skip, no_verify,
             tolerance, input_shape, inputs_file, batch_size, int_range, fmt, portable,
             overwrite, json_path, quiet) -> None:
    """Optimize the model SRC for inference and write it to DST.

    SRC is a SavedModel directory (TF2 or TF1), a frozen .pb/.pbtxt GraphDef or a .keras
    file. The result is verified against SRC on the same inputs unless --no-verify.
    """
    from tfopt.api import optimize as run

    log = None if quiet else _echo_err
    report = run(src, dst, signature=signature, all_signatures=all_signatures, inputs=inputs,
                 outputs=outputs, passes=_split(passes), skip=_split(skip),
                 verify=not no_verify, tolerance=tolerance, input_shapes=list(input_shape),
                 inputs_file=inputs_file, batch_size=batch_size, int_range=_int_range(int_range),
                 fmt=fmt, portable=portable, overwrite=overwrite, log=log)
    if not quiet:
        for key, sig in report.signatures.items():
            click.echo(f"signature {key}: {sig.nodes_before} -> {sig.nodes_after} nodes")
            for rec in sig.passes:
                if rec.changed or rec.skipped:
                    status = f"SKIPPED ({rec.skipped})" if rec.skipped else rec.delta_text()
                    click.echo(f"  {rec.name:<18} {rec.nodes_before:>6} -> {rec.nodes_after:<6} "
                               f"{rec.seconds:6.2f}s  {status}")
            for check in sig.checks:
                click.echo(f"  output {check.describe()}")
        for note in report.notes:
            click.echo(f"note: {note}")
    click.echo(report.summary())
    if json_path:
        with open(json_path, "w") as f:
            json.dump(report.to_dict(), f, indent=2, default=str)


@cli.command("passes")
def list_passes() -> None:
    """List the optimization passes, in pipeline order."""
    from tfopt.passes import FINALIZE, SIMPLIFY

    for group, title in ((SIMPLIFY, "repeated until nothing changes"),
                         (FINALIZE, "then once")):
        if group:
            click.echo(f"# {title}")
        for p in group:
            click.echo(f"{p.name:<20} {p.summary}")


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
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


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
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        _echo_err(f"tfopt: internal error: {type(err).__name__}: {first} "
                  "(set TFOPT_DEBUG=1 for the traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
