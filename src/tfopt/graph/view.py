"""A thin, explicit view over a ``GraphDef``.

Passes are pure functions ``GraphDef -> GraphDef``; this module is what they share so that
nobody rewires inputs by bare name (dropping ``:N`` ports or ``^control`` edges) or pokes at
``attr["x"].f`` directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.python.framework import dtypes

from tfopt.graph.names import InputRef, node_of
from tfopt.graph.nodes import (
    WeightSource,
    const_value,
    dedupe_controls,
    make_const,
)


@dataclass(frozen=True)
class Step:
    """One link of a chain pattern (see :meth:`GraphView.match_chain`): the next node must be
    the previous one's sole reader, one of ``ops``, and pass ``where(node, previous)``; an
    optional step may be absent (matching goes on from the previous node). In a matched chain
    every node but the last goes (it is fused into the last, which keeps its name and its
    readers), so the matcher checks each of those is removable: not kept by the view
    (:meth:`GraphView.keeps`), read once, by a data edge from output 0, with no control
    readers."""

    label: str
    ops: frozenset[str] | tuple[str, ...]
    optional: bool = False
    where: Callable[[node_def_pb2.NodeDef, node_def_pb2.NodeDef], bool] | None = None


class GraphView:
    """Index of a GraphDef: nodes by name and, for every node, who consumes it.

    The view owns a *copy* of the graph; ``to_graph_def`` returns the edited result. Edits go
    through the methods below so that the consumer index stays right. ``weights`` holds the
    values of lifted constants (:meth:`value`); the view never copies them. Removal is logical
    (nodes leave the index at once and the GraphDef on ``to_graph_def``), so node references
    held by a pass stay valid and removing one node costs O(its consumers), not O(graph).
    ``kept`` names the nodes a signature names (its inputs, outputs, initializers): the view
    answers for them (:meth:`keeps`), so a pass asks the view, never the signature.
    """

    def __init__(self, graph_def: graph_pb2.GraphDef, weights: WeightSource | None = None,
                 kept: Iterable[str] = ()):
        self.weights = weights
        self.kept = frozenset(kept)
        self.graph_def = graph_pb2.GraphDef()
        self.graph_def.CopyFrom(graph_def)
        self.nodes: dict[str, node_def_pb2.NodeDef] = {}
        self._order: list[str] = []
        # node name -> names of nodes that (may) read it; validated when queried.
        self._consumers: dict[str, set[str]] = defaultdict(set)
        # spliced node -> the node that took its place (for colocation hints)
        self._replaced_by: dict[str, str] = {}
        for node in self.graph_def.node:
            self._index(node)

    def _index(self, node: node_def_pb2.NodeDef) -> None:
        self.nodes[node.name] = node
        self._order.append(node.name)
        for text in node.input:
            self._consumers[node_of(text)].add(node.name)

    # --- queries ---------------------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.nodes

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[node_def_pb2.NodeDef]:
        """Live nodes in graph order; nodes removed during iteration are skipped."""
        for name in list(self._order):
            node = self.nodes.get(name)
            if node is not None and node.name == name:
                yield node

    def node(self, name_or_input: str) -> node_def_pb2.NodeDef:
        return self.nodes[node_of(name_or_input)]

    def consumers(self, name: str) -> list[tuple[node_def_pb2.NodeDef, InputRef]]:
        """Every (consumer, input it uses) that reads any output of ``name``."""
        out = []
        for cname in sorted(self._consumers.get(name, ())):
            consumer = self.nodes.get(cname)
            if consumer is None:
                continue
            for text in consumer.input:
                ref = InputRef.parse(text)
                if ref.node == name:
                    out.append((consumer, ref))
        return out

    def data_consumers(self, name: str, port: int | None = None) -> list[node_def_pb2.NodeDef]:
        seen: dict[str, node_def_pb2.NodeDef] = {}
        for n, ref in self.consumers(name):
            if not ref.control and (port is None or ref.port == port):
                seen.setdefault(n.name, n)
        return list(seen.values())

    def data_inputs(self, node: node_def_pb2.NodeDef) -> list[InputRef]:
        return [r for r in map(InputRef.parse, node.input) if not r.control]

    def control_inputs(self, node: node_def_pb2.NodeDef) -> list[InputRef]:
        return [r for r in map(InputRef.parse, node.input) if r.control]

    def input_node(self, node: node_def_pb2.NodeDef, index: int) -> node_def_pb2.NodeDef | None:
        refs = self.data_inputs(node)
        if index >= len(refs):
            return None
        return self.nodes.get(refs[index].node)

    def const_input(self, node: node_def_pb2.NodeDef, index: int) -> np.ndarray | None:
        """Value of data input ``index`` when it is a ``Const`` (else None)."""
        src = self.input_node(node, index)
        if src is None or src.op != "Const":
            return None
        return self.value(src)

    def value(self, node: node_def_pb2.NodeDef) -> np.ndarray:
        """A Const's value, lifted or not (:func:`const_value`)."""
        return const_value(node, self.weights)

    def unique_name(self, base: str) -> str:
        if base not in self.nodes:
            return base
        i = 1
        while f"{base}_{i}" in self.nodes:
            i += 1
        return f"{base}_{i}"

    def keeps(self, name: str) -> bool:
        """``name`` must stay as it is: a node the signature names (an input, an output, a
        load-time initializer), never removed, renamed or folded away."""
        return name in self.kept

    def through_identities(self, ref: InputRef) -> tuple[InputRef, list[str]]:
        """Follow ``ref`` back through Identity nodes: the tensor reached and the nodes
        passed."""
        passed = []
        while (node := self.nodes.get(ref.node)) is not None and node.op == "Identity":
            passed.append(node.name)
            ref = self.data_inputs(node)[0]
        return ref, passed

    def sole_reader(self, name: str) -> node_def_pb2.NodeDef | None:
        """The one node reading ``name``, if fusing ``name`` into it is safe: ``name`` is not
        kept (:meth:`keeps`), has exactly one reader edge, a data edge from output 0, and no
        control readers. The guard every fusion and folding pattern shares."""
        if self.keeps(name):
            return None
        users = self.consumers(name)
        if len(users) != 1 or users[0][1].control or users[0][1].port != 0:
            return None
        return users[0][0]

    def match_chain(self, start: node_def_pb2.NodeDef, steps: Iterable[Step]
                    ) -> list[tuple[str, node_def_pb2.NodeDef]]:
        """Follow ``start``'s readers along ``steps``; returns the matched (label, node) pairs
        in order, stopping at the first required step that does not match (then []). ``start``
        and every matched node but the last are removable (see :class:`Step`)."""
        matched: list[tuple[str, node_def_pb2.NodeDef]] = []
        previous = start
        for step in steps:
            node = self.sole_reader(previous.name)
            if node is not None and node.op in step.ops and (
                    step.where is None or step.where(node, previous)):
                matched.append((step.label, node))
                previous = node
            elif not step.optional:
                return []
        return matched

    # --- edits -----------------------------------------------------------------------------
    def retype(self, node: node_def_pb2.NodeDef, op: str, keep: Iterable[str] = ()) -> None:
        """Make ``node`` an ``op`` node in place (its name and readers stay), keeping only the
        attributes in ``keep``; the caller sets the new op's own attributes."""
        keep = set(keep)
        for key in [k for k in node.attr if k not in keep]:
            del node.attr[key]
        node.op = op

    def drop_input(self, node: node_def_pb2.NodeDef, text: str) -> None:
        """Remove one entry (usually a ``^control`` edge) from ``node``'s inputs."""
        node.input.remove(text)

    def add(self, node: node_def_pb2.NodeDef) -> node_def_pb2.NodeDef:
        if node.name in self.nodes:
            raise ValueError(f"node {node.name!r} already exists")
        self.graph_def.node.append(node)
        added = self.graph_def.node[-1]
        self._index(added)
        return added

    def add_const(self, base: str, value: np.ndarray, device: str = "",
                  dtype: dtypes.DType | None = None) -> str:
        """Add a Const named ``base`` (made unique); returns its name, ready to wire in."""
        return self.add(make_const(self.unique_name(base), value, device, dtype)).name

    def set_input(self, node: node_def_pb2.NodeDef, index: int, text: str) -> None:
        node.input[index] = text
        self._consumers[node_of(text)].add(node.name)

    def add_input(self, node: node_def_pb2.NodeDef, text: str) -> None:
        node.input.append(text)
        self._consumers[node_of(text)].add(node.name)

    def set_inputs(self, node: node_def_pb2.NodeDef, texts: list[str]) -> None:
        del node.input[:]
        for text in texts:
            self.add_input(node, text)

    def replace_uses(self, old: InputRef | str, new: InputRef | str,
                     keep_controls: bool = True) -> None:
        """Make every consumer of tensor ``old`` read ``new`` instead.

        ``old`` given as a node name means output 0; control edges on the old node are moved to
        the new tensor's node when ``keep_controls`` (so ordering constraints survive).
        """
        old = old if isinstance(old, InputRef) else InputRef.parse(old)
        new = new if isinstance(new, InputRef) else InputRef.parse(new)
        for cname in sorted(self._consumers.get(old.node, ())):
            consumer = self.nodes.get(cname)
            if consumer is None:
                continue
            touched = False
            for idx, text in enumerate(consumer.input):
                ref = InputRef.parse(text)
                if ref.node != old.node:
                    continue
                if ref.control:
                    if keep_controls:
                        self.set_input(consumer, idx, "^" + new.node)
                        touched = True
                elif ref.port == old.port:
                    self.set_input(consumer, idx, str(new))
                    touched = True
            if touched:
                dedupe_controls(consumer)

    def bypass(self, node: node_def_pb2.NodeDef, sources: list[InputRef]) -> None:
        """Splice ``node`` out: readers of its output ``i`` read ``sources[i]`` instead.

        The node's own control inputs move to every consumer, so that ordering constraints
        survive; ``^node`` control edges become edges on the sources' nodes.
        """
        controls = [str(r) for r in self.control_inputs(node)]
        for consumer, ref in self.consumers(node.name):
            extra = controls + ([f"^{s.node}" for s in sources] if ref.control else [])
            for text in extra:
                if text not in consumer.input:
                    self.add_input(consumer, text)
            if ref.control:
                consumer.input.remove(str(ref))
        for port, src in enumerate(sources):
            self.replace_uses(InputRef(node.name, port), src, keep_controls=False)
        if len({s.node for s in sources}) == 1:
            self._replaced_by[node.name] = sources[0].node
        self.remove([node.name])

    def remove(self, names: Iterable[str]) -> None:
        """Delete nodes and the control edges that pointed at them."""
        doomed = {n for n in names if n in self.nodes}
        for name in doomed:
            for consumer, ref in self.consumers(name):
                if ref.control and consumer.name not in doomed:
                    consumer.input.remove(str(ref))
        for name in doomed:
            del self.nodes[name]

    def _colocation_target(self, name: str) -> str | None:
        seen = set()
        while name not in self.nodes and name in self._replaced_by and name not in seen:
            seen.add(name)
            name = self._replaced_by[name]
        return name if name in self.nodes else None

    def to_graph_def(self) -> graph_pb2.GraphDef:
        """The edited graph: live nodes in order; a colocation hint naming a spliced node
        names the node that took its place, one naming a deleted node is dropped."""
        out = graph_pb2.GraphDef()
        out.versions.CopyFrom(self.graph_def.versions)
        out.library.CopyFrom(self.graph_def.library)
        for node in self:
            added = out.node.add()
            added.CopyFrom(node)
            dedupe_controls(added)
            if "_class" in added.attr:
                locs = []
                for loc in added.attr["_class"].list.s:
                    if loc.startswith(b"loc:@"):
                        target = self._colocation_target(loc[5:].decode())
                        if target is None or target == added.name:
                            continue
                        loc = b"loc:@" + target.encode()
                    if loc not in locs:
                        locs.append(loc)
                if locs:
                    del added.attr["_class"].list.s[:]
                    added.attr["_class"].list.s.extend(locs)
                else:
                    del added.attr["_class"]
        return out
