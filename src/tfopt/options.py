"""What the user asks for: command-line values parsed, and ``optimize``'s options as one
dataclass. Importable without TensorFlow, so flag errors come at once."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tfopt.errors import TfoptError


def parse_shapes(specs: list[str] | tuple[str, ...] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1,224,224,3", ...]`` -> ``{"x": (1, 224, 224, 3)}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name.strip()] = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise TfoptError(f"--input-shape {spec!r}: expected NAME=D1,D2,... "
                             "(e.g. images=1,224,224,3)") from None
    return shapes


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


FORMATS = ("saved_model", "pb")
TARGETS = ("portable", "native", "generic")
XLA_MODES = ("off", "auto", "on")
DEFAULT_TOLERANCE = 1e-4


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
            return {str(k): tuple(int(d) for d in v) for k, v in input_shapes.items()}
        except (TypeError, ValueError):
            raise TfoptError("input_shapes: expected {name: (d1, d2, ...)} with integer "
                             "dimensions") from None
    return parse_shapes(list(input_shapes))


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
    tolerance: float = DEFAULT_TOLERANCE
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    inputs_file: str | None = None
    batch_size: int = 1
    int_range: tuple[int, int] | None = None
    format: str = "saved_model"
    target: str = "portable"
    xla: str = "off"
    overwrite: bool = False

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

        if self.format not in FORMATS:
            raise TfoptError(f"unknown format {self.format!r} (saved_model or pb)")
        if self.xla not in XLA_MODES:
            raise TfoptError(f"unknown xla mode {self.xla!r} (off, auto or on)")
        if self.target not in TARGETS:
            raise TfoptError(f"unknown target {self.target!r} ({', '.join(TARGETS)})")
        if self.xla == "auto" and not self.verify:
            raise TfoptError("--xla auto times the model on the verification inputs; it "
                             "cannot go with --no-verify (use --xla on)")
        check_names((self.passes or []) + (self.skip or []))
        from tfopt.model.paths import check_output_path, model_kind

        model_kind(self.src)
        check_output_path(self.dst, self.overwrite, self.src)
        if self.inputs_file and not os.path.isfile(self.inputs_file):
            raise TfoptError(f"{self.inputs_file}: no such inputs file")
        return self
