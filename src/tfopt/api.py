"""``tfopt.optimize``: the public entry point. It builds the options and takes the road in
:mod:`tfopt.optimizer.stages` (load -> passes -> write -> verify -> report)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence

from tfopt.optimizer.report import Report, SignatureReport
from tfopt.optimizer.stages import run
from tfopt.options import OptimizeOptions
from tfopt.passes.pipeline import Log

__all__ = ["Report", "SignatureReport", "optimize"]


def optimize(src: str, dst: str, *, signatures: str | Sequence[str] | None = None,
             inputs: str | Sequence[str] | None = None,
             outputs: str | Sequence[str] | None = None,
             passes: Sequence[str] | None = None, skip: Sequence[str] | None = None,
             verify: bool = True, tolerance: float | None = None,
             input_shapes: Mapping[str, Sequence[int]] | Sequence[str] | None = None,
             inputs_file: str | None = None, batch_size: int | None = None,
             int_range: tuple[int, int] | None = None, format: str = "saved_model",
             target: str = "portable", xla: str | None = None, overwrite: bool = False,
             precision: str = "fp32", force_precision: bool = False,
             labels: str | None = None, calibration_file: str | None = None,
             calibration_method: str = "minmax", max_accuracy_drop: float | None = None,
             time: bool | None = None, runtimes: Sequence[str] | None = None,
             log: Log | None = None) -> Report:
    """Optimize the model at ``src`` for inference, verify it, and write it to ``dst``.

    Parameters mirror ``tfopt optimize`` (same names, ``-`` as ``_``):

    src, dst: a SavedModel directory (TF2 or TF1), frozen ``.pb``/``.pbtxt`` or ``.keras``
        file; ``dst`` is written atomically (parent directories are created).
    signatures: signature keys to keep (default: all of them).
    inputs, outputs: node names for a bare GraphDef (default: placeholders / sinks).
    passes, skip: run only / skip these passes (``tfopt passes`` lists them).
    verify: compare the written model with the original on the same inputs (default on),
        under both CPU runtimes (oneDNN on and off).
    tolerance: allowed ``max|optimized - original| / max|original|`` per float output
        (default 1e-4; with ``precision="bf16"``, 2e-2 on the relative RMS difference).
    input_shapes: shapes for inputs with unknown dimensions, ``{"images": (1, 224, 224, 3)}``.
    inputs_file: ``.npz`` of real inputs keyed by input name (overrides generated ones).
    labels: ``.npy`` of the true class of each sample in ``inputs_file``: class-score outputs
        then report the task accuracy of the original and of the optimized model.
    batch_size: batch size of generated inputs (default 1; 8 with ``precision="bf16"``, so
        that top-1 agreement of class scores is measured over several samples).
    int_range: ``(low, high)`` for generated integer inputs; default: derived from the graph
        (embedding table sizes, one-hot depths), else ``(0, 10)``.
    format: ``"saved_model"``, ``"pb"`` (a frozen GraphDef), ``"litert"`` (``dst/model.tflite``)
        or ``"openvino"`` (``dst/1/model.xml``): the model converted for that runtime from
        tfopt's graph or the original, whichever verified form is faster, verified and timed
        in that runtime; ``"auto"``: the fastest verified of the SavedModel and the installed
        runtimes' conversions (``runtimes`` limits them: ``["tf", "litert", "openvino"]``).
    target: ``"portable"`` (runs with oneDNN on and off), ``"native"`` (may use fused
        kernels only this machine's runtime has; recorded in ``tfopt.json``) or ``"generic"``
        (public ops only).
    xla: ``"auto"`` (the default when ``verify`` and ``time`` are on, else ``"off"``):
        compile the convolution- and loop-free part with XLA when it holds at least half the
        model's FLOPs (a transformer: all of them) and keep it only if the timed model is
        measurably faster; ``"on"`` keeps it without timing, ``"off"`` never tries.
    overwrite: replace ``dst`` if it exists.
    precision: ``"fp32"`` (default) or ``"bf16"``: convolutions, matmuls and the element-wise
        ops between them in bfloat16, weights stored as bfloat16 (half the size on disk);
        verified against the bf16 budget (``tolerance`` on the relative RMS difference, and
        top-1 agreement >= 99% on outputs that look like class scores); refused on a CPU
        without AVX512_BF16/AMX unless ``force_precision``. ``"int8"``: convolutions and
        matmuls in int8 (weights per output channel, activations in ranges calibrated on
        ``calibration_file``), verified against a 5e-2 relative RMS budget and 99% top-1
        agreement; refused on a CPU without VNNI/AMX unless ``force_precision``. ``"auto"``:
        bf16 only where it meets that budget and is measurably faster than float32 (timed, as
        ``xla="auto"``), else float32; the notes say why.
    calibration_file: ``.npz`` of real samples keyed by input name (a few hundred): they set
        the int8 activation ranges (``precision="int8"`` needs it).
    calibration_method: ``"minmax"`` (default) or ``"percentile"`` (the 99.99th percentile:
        outliers clipped).
    max_accuracy_drop: with ``labels``, the most the task accuracy may drop (0.01: one
        percentage point); int8 returns its most sensitive layers to float32 until the budget
        holds (the notes name them), or refuses.
    time: time the written model against the original (alternating blocks in fresh processes) and
        state the speedup; a pass that makes it measurably slower is found and switched off,
        and a model that stays slower is not written. Default on (``TFOPT_TIME=off`` in the
        environment turns the default off, as the test suite does).
    log: called with progress lines (e.g. ``print``).

    Returns a :class:`Report` (``str(report)`` is the CLI's summary, ``report.to_dict()`` the
    JSON). Raises :class:`TfoptError` for bad input, :class:`VerificationError` when no
    correct optimized model could be produced (nothing is written then).

    Example::

        report = tfopt.optimize("resnet50", "resnet50_fast", input_shapes={"x": (1, 224, 224, 3)})
        print(report)
    """
    options = OptimizeOptions.build(
        src, dst, signatures=signatures, inputs=inputs, outputs=outputs, passes=passes,
        skip=skip, verify=verify, tolerance=tolerance, input_shapes=input_shapes,
        inputs_file=inputs_file, batch_size=batch_size, int_range=int_range, format=format,
        target=target, xla=xla, overwrite=overwrite, precision=precision,
        force_precision=force_precision, labels=labels, calibration_file=calibration_file,
        calibration_method=calibration_method, max_accuracy_drop=max_accuracy_drop,
        runtimes=list(runtimes) if runtimes else None,
        **({} if time is None else {"time": time}))
    with _tensorflow_warnings_quiet():
        return run(options, log)


@contextlib.contextmanager
def _tensorflow_warnings_quiet() -> Iterator[None]:
    """TensorFlow's Python deprecation warnings about the APIs tfopt calls on the user's
    behalf (TF1 loaders, reference variables: ~100 lines for a TF1 model) say nothing to the
    caller; errors still show, and the caller's own level comes back afterwards."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        logger.setLevel(level)


def load(path: str, signature: str | None = None):
    """The model at ``path`` as a callable, whatever its format (a SavedModel, a frozen
    GraphDef, or the LiteRT / OpenVINO model ``--format litert|openvino`` wrote): it takes the
    signature's inputs by name (arrays) and returns its outputs by name (NumPy arrays), run by
    the model's own runtime (LiteRT and OpenVINO with one thread per core).

    >>> run = tfopt.load("model_fast")
    >>> run(images=batch)["probabilities"]
    """
    import numpy as np

    from tfopt.model.formats import detect
    from tfopt.model.graph_def_file import FrozenGraphDef

    fmt = detect(path)
    if isinstance(fmt, FrozenGraphDef):
        from tfopt.model.formats import load_model

        model = load_model(path)
        key = signature or next(iter(model.signatures))

        def run_graph(**inputs) -> dict[str, np.ndarray]:
            return {k: np.asarray(v) for k, v in model.reference(key, inputs).items()}
        return run_graph
    opened = fmt.open(signature, None)

    def run(**inputs) -> dict[str, np.ndarray]:
        missing = sorted(set(opened.inputs) - set(inputs))
        if missing:
            from tfopt.errors import TfoptError

            raise TfoptError(f"{path}: missing input(s) {', '.join(missing)} (inputs: "
                             f"{', '.join(opened.inputs)})")
        outputs = opened.prepare({k: np.asarray(inputs[k]) for k in opened.inputs})()
        return {k: np.asarray(v) for k, v in outputs.items()}
    return run
