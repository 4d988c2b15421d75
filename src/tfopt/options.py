"""Parsing of command-line values, importable without TensorFlow (flag errors come at once)."""

from __future__ import annotations

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
