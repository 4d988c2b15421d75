"""Who reads what in a graph, indexed once without copying it.

:class:`tfopt.graph.view.GraphView` copies a graph to edit it and keeps its own index current
through the edits; code that only *reads* a graph (a frozen model's weights, its integer
inputs' uses) needs the index without the copy, which for a frozen model holds every weight.
"""

from __future__ import annotations

from collections.abc import Iterable

from tensorflow.core.framework import node_def_pb2

from tfopt.graph.names import InputRef


class Readers:
    """The readers of each node (data or control) and of each tensor (data), in graph order."""

    def __init__(self, nodes: Iterable[node_def_pb2.NodeDef]):
        self._of_node: dict[str, list[node_def_pb2.NodeDef]] = {}
        self._of_tensor: dict[tuple[str, int], list[tuple[node_def_pb2.NodeDef, int]]] = {}
        for node in nodes:
            for index, text in enumerate(node.input):
                ref = InputRef.parse(text)
                self._of_node.setdefault(ref.node, []).append(node)
                if not ref.control:
                    self._of_tensor.setdefault((ref.node, ref.port), []).append((node, index))

    def of_node(self, name: str) -> list[node_def_pb2.NodeDef]:
        """Nodes that read any output of ``name``, or wait on it (control edges)."""
        return self._of_node.get(name, [])

    def of_tensor(self, node: str, port: int = 0) -> list[tuple[node_def_pb2.NodeDef, int]]:
        """``(reader, input index)`` for each data input that reads ``node:port``."""
        return self._of_tensor.get((node, port), [])
