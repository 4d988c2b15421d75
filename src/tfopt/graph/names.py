"""How a graph names things: ``node``, ``node:port``, ``^node`` (one parser for all)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputRef:
    """One entry of ``NodeDef.input``: ``name``, ``name:3`` or ``^name``."""

    node: str
    port: int = 0
    control: bool = False

    @classmethod
    def parse(cls, text: str) -> InputRef:
        if text.startswith("^"):
            return cls(text[1:], 0, True)
        name, sep, port = text.rpartition(":")
        if sep and port.isdigit():
            return cls(name, int(port))
        return cls(text, 0)

    def __str__(self) -> str:
        if self.control:
            return "^" + self.node
        return self.node if self.port == 0 else f"{self.node}:{self.port}"

    @property
    def tensor(self) -> str:
        """Canonical ``name:port`` form, as used in feeds and signatures."""
        return f"{self.node}:{self.port}"


def node_of(tensor_or_input: str) -> str:
    """Node name of ``name``, ``name:N`` or ``^name``."""
    return InputRef.parse(tensor_or_input).node


def canonical_tensor(name: str) -> str:
    return InputRef.parse(name).tensor
