"""What the user asks for: command-line values parsed, and ``optimize``'s options as one
dataclass. Importable without TensorFlow, so flag errors come at once."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tfopt.errors import TfoptError
from tfopt.runtimes import RUNTIME_FORMATS


def parse_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1,224,224,3", ...]`` -> ``{"x": (1, 224, 224, 3)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise TfoptError(f"--input-shape {spec!r}: expected NAME=D1,D2,... "
                             "(e.g. images=1,224,224,3)") from None
        if name.strip() in shapes:
            raise TfoptError(f"--input-shape names {name.strip()!r} twice; give each input once")
        shapes[name.strip()] = _positive(name.strip(), shape)
    return shapes


# Generated inputs larger than this are refused: a declared dimension of 2**40 asked for
# terabytes (MemoryError), and verification inputs need not be big to prove anything.
MAX_INPUT_BYTES = 1 << 30


def _positive(name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if any(d <= 0 for d in shape):
        raise TfoptError(f"--input-shape {name}={','.join(map(str, shape))}: dimensions must "
                         "be positive (an empty batch verifies nothing)")
    return shape


# A relative tolerance this large no longer tells a correct model from a broken one (the
# reduced-precision budgets are 2e-2 and 5e-2).
MAX_TOLERANCE = 0.1


def parse_int_range(text: str) -> tuple[int, int]:
    """``"0,1000"`` -> ``(0, 1000)``: integer inputs are drawn from [low, high)."""
    try:
        low, high = (int(x) for x in text.split(","))
        if high <= low:
            raise ValueError
        return low, high
    except ValueError:
        raise TfoptError(f"--int-range {text!r}: expected LOW,HIGH with LOW < HIGH, "
                         "e.g. 0,1000") from None


def check_shape_names(shapes: dict[str, tuple[int, ...]], known) -> None:
    """Every name given a shape must be an input (of the signatures concerned)."""
    unknown = sorted(set(shapes) - set(known))
    if unknown:
        raise TfoptError(f"--input-shape names unknown input(s) {', '.join(unknown)} "
                         f"(inputs: {', '.join(sorted(known))})")


FORMATS = ("saved_model", "pb", *RUNTIME_FORMATS, "auto")
# --format auto's candidates: TensorFlow (the SavedModel) and the runtimes beside it
RUNTIME_CHOICES = ("tf", *RUNTIME_FORMATS)
TARGETS = ("portable", "native", "generic")
XLA_MODES = ("off", "auto", "on")
PRECISIONS = ("fp32", "bf16", "int8", "auto")
CALIBRATION_METHODS = ("minmax", "percentile")
DEFAULT_TOLERANCE = 1e-4
# bf16 keeps 8 significant bits (relative rounding 2**-9 ~ 2e-3 per op). On the models
# trained here on real data (zoo digits_cnn / digits_transformer, 450 test images) the bf16
# output's relative RMS difference was 4.7e-3 / 5.0e-3 with oneDNN and 5.0e-3 / 1.2e-2 without
# (Eigen's bf16 kernels round more), at 100% top-1 agreement and identical task accuracy, while
# single boundary samples' probabilities moved by up to 3-9%: so reduced precision is judged by
# the relative RMS (verify.compare), against 2e-2 (the worst measured, with room), plus top-1
# agreement. A broken rewrite lands at O(1).
BF16_TOLERANCE = 2e-2
# Outputs that look like class scores must pick the same class on this share of samples.
BF16_TOP1_AGREEMENT = 0.99
# Outputs of a selection (boxes kept by non-max suppression, top-k) under reduced precision:
# this share of the original's rows must be found, within the budget, among the optimized
# model's rows of the same sample, in any order (a near-tie may swap places or drop out).
# Measured on the demo's SSD (random weights: its 100 kept boxes are near-ties at the cut):
# 95.1-95.6% of the boxes found in bf16, each within 6.5e-4 of its original; the boxes not
# found are the last ones kept, whose scores tie with the first ones dropped.
BF16_SELECTION_MATCH = 0.9
# int8 keeps 256 levels per activation over its calibrated range and 255 per weight channel.
# On the models trained here (zoo digits, calibrated on 256 training images, judged on the 450
# test images) the relative RMS difference was 6.3e-3 (CNN, both runtimes, 100% top-1
# agreement, accuracy unchanged) and 2.3e-2 / 2.9e-2 with oneDNN on / off (transformer: 99.3%
# agreement, accuracy -0.2 points): 5e-2 is the worst measured with room; a broken rewrite lands
# at O(1). Top-1 agreement is required as for bf16.
INT8_TOLERANCE = 5e-2
# Generated verification samples for reduced precision: enough for top-1 agreement to mean
# something (when the batch dimension is free).
BF16_BATCH = 8


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value) or None


def normalise_shapes(input_shapes) -> dict[str, tuple[int, ...]]:
    """``{"x": (1, 224, 224, 3)}`` as given, or the CLI's ``["x=1,224,224,3"]``."""
    if not input_shapes:
        return {}
    if isinstance(input_shapes, Mapping):
        try:
            shapes = {str(k): tuple(int(d) for d in v) for k, v in input_shapes.items()}
        except (TypeError, ValueError):
            raise TfoptError("input_shapes: expected {name: (d1, d2, ...)} with integer "
                             "dimensions") from None
        return {k: _positive(k, v) for k, v in shapes.items()}
    return parse_shapes(list(input_shapes))


def check_tolerance(tolerance: float) -> None:
    """A tolerance must be a finite relative difference, 0 (bit-exact) to MAX_TOLERANCE."""
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        raise TfoptError(f"--tolerance {tolerance!r}: expected a number") from None
    if not math.isfinite(value) or value < 0:
        raise TfoptError(f"--tolerance {tolerance}: must be a finite number, 0 or above (a "
                         "relative difference, e.g. 1e-4; 0 asks for bit-exact answers)")
    if value > MAX_TOLERANCE:
        raise TfoptError(f"--tolerance {tolerance}: answers off by more than "
                         f"{MAX_TOLERANCE:g} of the output's scale would pass, so the check "
                         f"could not tell a broken model from a correct one (at most "
                         f"{MAX_TOLERANCE:g})")


@dataclass(frozen=True)
class OptimizeOptions:
    """Everything ``optimize`` is asked to do; the CLI, the API and the tests build this one
    object (see :func:`tfopt.optimize` for what each field means). ``checked()`` validates it
    without TensorFlow, so a bad option costs no import."""

    src: str
    dst: str
    signatures: list[str] | None = None
    inputs: str | list[str] | None = None
    outputs: str | list[str] | None = None
    passes: list[str] | None = None
    skip: list[str] | None = None
    verify: bool = True
    tolerance: float | None = None  # None: DEFAULT_TOLERANCE, or BF16_TOLERANCE for bf16
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs_file: str | None = None
    batch_size: int | None = None   # None: 1, or BF16_BATCH for bf16
    int_range: tuple[int, int] | None = None
    format: str = "saved_model"
    target: str = "portable"
    xla: str | None = None  # None: "auto" when the model is verified and timed, else "off"
    overwrite: bool = False
    precision: str = "fp32"
    force_precision: bool = False   # write bf16 even on a CPU without bf16 instructions
    labels: str | None = None       # .npy of true classes of --inputs-file's samples
    calibration_file: str | None = None  # .npz of samples that set int8 activation ranges
    calibration_method: str = "minmax"
    max_accuracy_drop: float | None = None  # with --labels: the task accuracy may drop this much
    time: bool = field(default_factory=lambda: os.environ.get("TFOPT_TIME", "on") != "off")
    runtimes: list[str] | None = None  # --format auto: the candidates' runtimes (None: all)

    def budget_for(self, precision: str) -> float:
        """The allowed relative difference per float output for a model in ``precision``."""
        if self.tolerance is not None:
            return self.tolerance
        return {"bf16": BF16_TOLERANCE, "int8": INT8_TOLERANCE}.get(precision,
                                                                     DEFAULT_TOLERANCE)

    @property
    def graph_precision(self) -> str:
        """What TensorFlow's graph computes in (or "auto"): ``--precision``, except for a
        model a converter reads, which gets the float32 graph (the runtime's own precision
        is then its candidates', :meth:`runtime_precisions`)."""
        return "fp32" if self.format in RUNTIME_FORMATS else self.precision

    def runtime_precisions(self, fmt: str) -> list[str]:
        """The precisions a runtime's candidates run in: float32, and OpenVINO's bf16 with
        ``--precision bf16`` (alone) or ``auto`` (beside float32, on a CPU with bfloat16
        instructions: elsewhere OpenVINO would run it as float32 anyway)."""
        from tfopt.runtime import bf16_hardware

        if fmt != "openvino" or self.precision not in ("bf16", "auto"):
            return ["f32"]
        if self.precision == "bf16":
            return ["bf16"]
        return ["f32", "bf16"] if bf16_hardware() else ["f32"]

    @property
    def graph_target(self) -> str:
        """Which fused kernels the passes may emit: ``--target``, or none for a model that a
        converter reads (LiteRT's and OpenVINO's converters know no ``_Fused*`` op)."""
        return "generic" if self.format in RUNTIME_FORMATS else self.target

    @property
    def xla_mode(self) -> str:
        """``xla`` as given, else "auto" when the model is verified and timed: the XLA
        decision is timed, and with verification or the speed check off there is nothing to
        time it with, so the default is then "off"."""
        if self.format in RUNTIME_FORMATS:
            return "off"
        if self.xla is not None:
            return self.xla
        return "auto" if self.verify and self.time else "off"

    @property
    def samples(self) -> int:
        """Batch size of generated verification inputs."""
        if self.batch_size is not None:
            return self.batch_size
        return BF16_BATCH if self.precision != "fp32" else 1

    @classmethod
    def build(cls, src: str, dst: str, **given) -> OptimizeOptions:
        """From the API's keywords (names as in the CLI, ``-`` as ``_``), checked."""
        given["signatures"] = _names(given.get("signatures"))
        given["passes"] = _names(given.get("passes"))
        given["skip"] = _names(given.get("skip"))
        given["input_shapes"] = normalise_shapes(given.get("input_shapes"))
        return cls(str(src), str(dst), **given).checked()

    def checked(self) -> OptimizeOptions:
        """Raise TfoptError for the first option that cannot work; return self."""
        from tfopt.passes.registry import check_names

        if self.tolerance is not None:
            check_tolerance(self.tolerance)
        if self.format not in FORMATS:
            raise TfoptError(f"unknown format {self.format!r} ({', '.join(FORMATS)})")
        if self.format in RUNTIME_FORMATS:
            self._check_runtime_format()
        if self.format == "auto":
            self._check_auto()
        if self.xla_mode not in XLA_MODES:
            raise TfoptError(f"unknown xla mode {self.xla!r} (off, auto or on)")
        if self.target not in TARGETS:
            raise TfoptError(f"unknown target {self.target!r} ({', '.join(TARGETS)})")
        if self.precision not in PRECISIONS:
            raise TfoptError(f"unknown precision {self.precision!r} ({', '.join(PRECISIONS)})")
        if self.precision != "fp32" and not self.verify:
            raise TfoptError(f"--precision {self.precision} needs verification: its accuracy "
                             "budget is checked on the verification inputs (drop --no-verify)")
        if self.precision == "bf16" and not self.force_precision:
            from tfopt.runtime import bf16_hardware, cpu_isa

            if not bf16_hardware():
                raise TfoptError(f"this CPU ({cpu_isa()}) has no bfloat16 instructions "
                                 "(AVX512_BF16 or AMX): a bf16 model would run slower here "
                                 "than float32; --force-precision writes it anyway (for "
                                 "another machine)")
        if self.precision == "int8" or self.calibration_file:
            self._check_int8()
        if self.xla_mode == "auto" and not self.verify:
            raise TfoptError("--xla auto times the model on the verification inputs; it "
                             "cannot go with --no-verify (use --xla on)")
        check_names((self.passes or []) + (self.skip or []))
        from tfopt.model.paths import check_output_path, model_kind

        model_kind(self.src)
        check_output_path(self.dst, self.overwrite, self.src)
        if self.inputs_file and not os.path.isfile(self.inputs_file):
            raise TfoptError(f"{self.inputs_file}: no such inputs file")
        if self.labels and not self.inputs_file:
            raise TfoptError("--labels are the classes of --inputs-file's samples; give both")
        if self.max_accuracy_drop is not None and not self.labels:
            raise TfoptError("--max-accuracy-drop judges task accuracy: it needs --labels (and "
                             "--inputs-file)")
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop < 1:
            raise TfoptError("--max-accuracy-drop is a share of samples (0.01: one percentage "
                             "point)")
        if self.labels and not os.path.isfile(self.labels):
            raise TfoptError(f"{self.labels}: no such labels file")
        from tfopt.verify.user_files import precheck

        precheck(self.inputs_file if self.verify else None, self.labels if self.verify else None,
                 self.calibration_file, self.src, self.signatures)
        return self

    def _check_runtime_format(self) -> None:
        from tfopt.runtimes import require

        require(self.format)
        if self.precision == "int8" or (self.format == "litert" and self.precision != "fp32"):
            held = "float32 or bf16" if self.format == "openvino" else "float32"
            raise TfoptError(f"--format {self.format} writes {held} models; --precision "
                             f"{self.precision} applies to SavedModels")
        if self.xla == "on":
            raise TfoptError(f"--xla on compiles a SavedModel's cluster; --format {self.format} "
                             "has none")

    @property
    def runtime_choices(self) -> list[str]:
        """``--format auto``'s runtimes: those asked for (``--runtimes``), else TensorFlow and
        every runtime installed here."""
        if self.runtimes:
            return list(self.runtimes)
        from tfopt.runtimes import installed

        return ["tf", *installed()]

    def _check_auto(self) -> None:
        unknown = sorted(set(self.runtimes or ()) - set(RUNTIME_CHOICES))
        if unknown:
            raise TfoptError(f"--runtimes: unknown {', '.join(unknown)} (choose from "
                             f"{', '.join(RUNTIME_CHOICES)})")
        if not self.verify or not self.time:
            raise TfoptError("--format auto keeps the fastest verified form: it needs "
                             "verification and timing (drop --no-verify / --no-time)")
        if self.precision not in ("fp32", "auto"):
            raise TfoptError(f"--format auto compares float32 forms, and with --precision "
                             f"auto reduced-precision ones too; --precision {self.precision} "
                             "applies to --format saved_model or openvino")
        from tfopt.runtimes import require

        for fmt in self.runtime_choices:
            if fmt != "tf":
                require(fmt)

    def _check_int8(self) -> None:
        from tfopt.runtime import cpu_isa, int8_hardware

        if self.calibration_method not in CALIBRATION_METHODS:
            raise TfoptError(f"unknown calibration method {self.calibration_method!r} "
                             f"({', '.join(CALIBRATION_METHODS)})")
        if not self.calibration_file:
            raise TfoptError("--precision int8 needs --calibration-file x.npz (a few hundred "
                             "real samples keyed by input name): activation ranges set from "
                             "generated inputs would fit noise, not the data the model sees")
        if not os.path.isfile(self.calibration_file):
            raise TfoptError(f"{self.calibration_file}: no such calibration file")
        if self.precision not in ("int8", "auto"):
            raise TfoptError("--calibration-file calibrates int8: it goes with --precision "
                             "int8 or auto")
        if self.precision == "int8" and not self.force_precision and not int8_hardware():
            raise TfoptError(f"this CPU ({cpu_isa()}) has no int8 dot-product instructions "
                             "(AVX512_VNNI, AVX_VNNI or AMX): an int8 model would gain little "
                             "or run slower here; --force-precision writes it anyway (for "
                             "another machine)")
