"""A thin, explicit view over a ``GraphDef``.

Passes are pure functions ``GraphDef -> GraphDef``; this module is what they share so that
nobody rewires inputs by bare name (dropping ``:N`` ports or ``^control`` edges) or pokes at
``attr["x"].f`` directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from tensorflow.core.framework import attr_value_pb2, graph_pb2, node_def_pb2
from tensorflow.python.framework import dtypes, tensor_util


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


# --- attribute helpers: the one place that knows AttrValue's layout -----------------------


def get_attr(node: node_def_pb2.NodeDef, key: str, default=None):
    """Python value of an attribute (int, float, bool, bytes->str, list, DType, ndarray)."""
    if key not in node.attr:
        return default
    value = node.attr[key]
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode()
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return dtypes.as_dtype(value.type)
    if kind == "shape":
        return value.shape
    if kind == "tensor":
        return const_value(node) if key == "value" else tensor_util.MakeNdarray(value.tensor)
    if kind == "list":
        lst = value.list
        for field in ("i", "f", "s", "type", "b", "shape"):
            items = list(getattr(lst, field))
            if items:
                if field == "s":
                    return [s.decode() for s in items]
                if field == "type":
                    return [dtypes.as_dtype(t) for t in items]
                return items
        return []
    return default


def copied_attrs(node: node_def_pb2.NodeDef, keys: Iterable[str] | None = None
                 ) -> dict[str, attr_value_pb2.AttrValue]:
    """Copies of ``node``'s attributes (those in ``keys`` it has), to give another node after
    ``node`` is retyped or removed."""
    out = {}
    for key in node.attr if keys is None else [k for k in keys if k in node.attr]:
        out[key] = attr_value_pb2.AttrValue()
        out[key].CopyFrom(node.attr[key])
    return out


def set_attrs(node: node_def_pb2.NodeDef, attrs: dict[str, attr_value_pb2.AttrValue]) -> None:
    for key, value in attrs.items():
        node.attr[key].CopyFrom(value)


def set_attr(node: node_def_pb2.NodeDef, key: str, value) -> None:
    """Set an attribute from a Python value; the type of ``value`` chooses the field."""
    attr = node.attr[key]
    attr.Clear()
    if isinstance(value, bool):
        attr.b = value
    elif isinstance(value, int):
        attr.i = value
    elif isinstance(value, float):
        attr.f = value
    elif isinstance(value, str):
        attr.s = value.encode()
    elif isinstance(value, bytes):
        attr.s = value
    elif isinstance(value, dtypes.DType):
        attr.type = value.as_datatype_enum
    elif isinstance(value, np.ndarray):
        attr.tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    elif isinstance(value, (list, tuple)):
        if all(isinstance(v, dtypes.DType) for v in value) and value:
            attr.list.type.extend(v.as_datatype_enum for v in value)
        elif all(isinstance(v, str) for v in value) and value:
            attr.list.s.extend(v.encode() for v in value)
        elif all(isinstance(v, float) for v in value) and value:
            attr.list.f.extend(value)
        else:
            attr.list.i.extend(int(v) for v in value)
        if not value:
            attr.list.SetInParent()
    elif isinstance(value, attr_value_pb2.AttrValue):
        attr.CopyFrom(value)
    else:
        raise TypeError(f"unsupported attribute value for {key!r}: {type(value).__name__}")


def make_const(name: str, value: np.ndarray, device: str = "",
               dtype: dtypes.DType | None = None) -> node_def_pb2.NodeDef:
    """A Const holding ``value``; ``dtype`` stores it as another type (qint8 weights are
    int8 values that NumPy cannot tag as quantized)."""
    value = np.asarray(value)
    dtype = dtype or dtypes.as_dtype(value.dtype)
    node = node_def_pb2.NodeDef(name=name, op="Const", device=device)
    node.attr["dtype"].type = dtype.as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value, dtype=dtype))
    return node


def make_node(name: str, op: str, inputs: list[str], device: str = "",
              **attrs) -> node_def_pb2.NodeDef:
    """A new ``op`` node reading ``inputs``, its attributes set with :func:`set_attr`."""
    node = node_def_pb2.NodeDef(name=name, op=op, input=inputs, device=device)
    for key, value in attrs.items():
        set_attr(node, key, value)
    return node


# A constant whose value is held beside the graph while the passes run carries this attribute
# (its key there) and a value tensor with its dtype and shape but no content
# (:mod:`tfopt.graph.lifted`): passes copy the graph many times, its weights need not follow.
LIFTED = "_tfopt_lifted"


class WeightSource(Protocol):
    """Where lifted constants' values are read (:class:`tfopt.graph.lifted.WeightStore`)."""

    def value(self, key: str) -> np.ndarray: ...


class LiftedWeightError(ValueError):
    """A lifted constant's value was asked for without the store that holds it."""


def is_lifted(node: node_def_pb2.NodeDef) -> bool:
    return LIFTED in node.attr


def const_value(node: node_def_pb2.NodeDef, weights: WeightSource | None = None) -> np.ndarray:
    """A Const's value; a lifted one's from ``weights`` (read-only there: edits make a new
    constant with :func:`set_const_value` or :meth:`GraphView.add_const`)."""
    if LIFTED in node.attr:
        if weights is None:
            raise LiftedWeightError(f"constant {node.name!r} is held outside the graph; read it "
                                    "through the GraphView that has its weights")
        return weights.value(node.attr[LIFTED].s.decode())
    return tensor_util.MakeNdarray(node.attr["value"].tensor)


# The repeated value fields of a TensorProto: a tensor that uses one is small (or a string).
_LISTED = ("float_val", "double_val", "int_val", "int64_val", "half_val", "bool_val",
           "uint32_val", "uint64_val", "scomplex_val", "dcomplex_val", "string_val",
           "resource_handle_val", "variant_val")


def tensor_bytes(tensor) -> int:
    """About what a TensorProto serialises to, from its shape and dtype: upb's ``ByteSize``
    serialises the message to count it (0.36 s per 100 MB), which on a 2 GiB model's weights
    was most of optimize's time. Exact for ``tensor_content`` tensors (weights)."""
    if any(len(getattr(tensor, f)) for f in _LISTED):
        return tensor.ByteSize()
    count = 1
    for dim in tensor.tensor_shape.dim:
        count *= max(dim.size, 0)
    return count * dtypes.as_dtype(tensor.dtype).size


def node_bytes(node: node_def_pb2.NodeDef) -> int:
    """About what a node serialises to: :func:`tensor_bytes` for a constant's value (plus its
    name and attributes' worth), ``ByteSize`` for the others (small)."""
    if node.op != "Const" or "value" not in node.attr:
        return node.ByteSize()
    return tensor_bytes(node.attr["value"].tensor) + len(node.name) + 64


def const_shape(node: node_def_pb2.NodeDef) -> tuple[int, ...]:
    """A Const's shape, read without its value (lifted or not; a weight can be 1 GiB)."""
    return tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim)


def set_const_value(node: node_def_pb2.NodeDef, value: np.ndarray) -> None:
    """Give a Const a new value, in the graph (a lifted one is lifted again after the pass)."""
    value = np.asarray(value)
    if LIFTED in node.attr:
        del node.attr[LIFTED]
    node.attr["dtype"].type = dtypes.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))


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


def dedupe_controls(node: node_def_pb2.NodeDef) -> None:
    """Drop repeated ``^x`` inputs and controls that duplicate a data input's node."""
    data_nodes = {node_of(t) for t in node.input if not t.startswith("^")}
    seen: set[str] = set()
    kept = []
    for text in node.input:
        if text.startswith("^"):
            if text in seen or text[1:] in data_nodes or text[1:] == node.name:
                continue
            seen.add(text)
        kept.append(text)
    if len(kept) != len(node.input):
        del node.input[:]
        node.input.extend(kept)


def topological_order(graph_def: graph_pb2.GraphDef) -> list[node_def_pb2.NodeDef]:
    """Nodes ordered so each comes after its inputs (cycles, e.g. TF1 loops, appended last)."""
    nodes = {n.name: n for n in graph_def.node}
    pending = {n.name: {node_of(t) for t in n.input if node_of(t) in nodes} for n in graph_def.node}
    users: dict[str, list[str]] = defaultdict(list)
    for name, deps in pending.items():
        for dep in deps:
            users[dep].append(name)
    ready = [n.name for n in graph_def.node if not pending[n.name]]
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for user in users[name]:
            deps = pending[user]
            deps.discard(name)
            if not deps:
                ready.append(user)
    placed = set(order)
    order.extend(n.name for n in graph_def.node if n.name not in placed)
    return [nodes[n] for n in order]


def _functions_in_attr(value: attr_value_pb2.AttrValue) -> list[str]:
    if value.HasField("func"):
        return [value.func.name]
    if value.HasField("list"):
        return [f.name for f in value.list.func]
    return []


def renamed_refs(node: node_def_pb2.NodeDef, names: dict[str, str]) -> node_def_pb2.NodeDef:
    """A copy of ``node`` whose references to library functions (as its op, or in ``func`` /
    ``list(func)`` attributes) follow ``names`` (old -> new; others unchanged)."""
    copy = node_def_pb2.NodeDef()
    copy.CopyFrom(node)
    if copy.op in names:
        copy.op = names[copy.op]
    for value in copy.attr.values():
        if value.HasField("func"):
            value.func.name = names.get(value.func.name, value.func.name)
        for fn in value.list.func:
            fn.name = names.get(fn.name, fn.name)
    return copy


def with_functions_renamed(graph_def: graph_pb2.GraphDef,
                           names: dict[str, str]) -> graph_pb2.GraphDef:
    """A copy of ``graph_def`` whose library functions are renamed by ``names``, with every
    reference to them (main graph and function bodies) following."""
    out = graph_pb2.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.node.extend(renamed_refs(n, names) for n in graph_def.node)
    for fn in graph_def.library.function:
        copy = out.library.function.add()
        copy.CopyFrom(fn)
        copy.signature.name = names.get(fn.signature.name, fn.signature.name)
        del copy.node_def[:]
        copy.node_def.extend(renamed_refs(n, names) for n in fn.node_def)
    out.library.gradient.extend(graph_def.library.gradient)
    return out


def referenced_functions(nodes: Iterable[node_def_pb2.NodeDef],
                         lib) -> set[str]:
    """Library functions reachable from ``nodes`` (transitively)."""
    nodes = list(nodes)
    library = {f.signature.name: f for f in lib.function}
    stack = [name for node in nodes for value in node.attr.values()
             for name in _functions_in_attr(value)]
    stack += [node.op for node in nodes if node.op in library]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen or name not in library:
            continue
        seen.add(name)
        for node in library[name].node_def:
            if node.op in library:
                stack.append(node.op)
            for value in node.attr.values():
                stack.extend(_functions_in_attr(value))
    return seen


def reachable_from(nodes: graph_pb2.GraphDef | Iterable[node_def_pb2.NodeDef],
                   targets: Iterable[str]) -> set[str]:
    """Names of nodes the ``targets`` depend on (data and control), targets included."""
    if isinstance(nodes, graph_pb2.GraphDef):
        nodes = nodes.node
    nodes = {n.name: n for n in nodes}
    seen: set[str] = set()
    stack = [node_of(t) for t in targets]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(node_of(t) for t in nodes[name].input)
    return seen


def depends_on_op(graph_def: graph_pb2.GraphDef, tensor: str, ops: Iterable[str]) -> bool:
    """Whether ``tensor`` is computed from a node of one of ``ops``, in the main graph or in a
    function it calls."""
    ops = set(ops)
    reached = reachable_from(graph_def, [tensor])
    upstream = [n for n in graph_def.node if n.name in reached]
    if any(n.op in ops for n in upstream):
        return True
    library = {f.signature.name: f for f in graph_def.library.function}
    return any(n.op in ops for name in referenced_functions(upstream, graph_def.library)
               for n in library[name].node_def)


def all_nodes(graph_def: graph_pb2.GraphDef) -> Iterator[node_def_pb2.NodeDef]:
    """The main graph's nodes, then those of every function in its library."""
    yield from graph_def.node
    for fn in graph_def.library.function:
        yield from fn.node_def


def function_nodes(graph_def: graph_pb2.GraphDef) -> int:
    """Nodes inside the graph's function library (If/While bodies, calls freezing left)."""
    return sum(len(f.node_def) for f in graph_def.library.function)


def op_counts(graph_def: graph_pb2.GraphDef) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for node in graph_def.node:
        counts[node.op] += 1
    return dict(counts)



# --- function bodies ------------------------------------------------------------------------


def function_body(fdef) -> tuple[graph_pb2.GraphDef, list[str]]:
    """A FunctionDef's body as a GraphDef (arguments become Placeholders named like them,
    ``node:out_arg:i`` inputs become flat ``node:k``: TensorFlow's own conversion) and its
    results as flat tensor names, in output order."""
    from tensorflow.python.framework.function_def_to_graph import function_def_to_graph_def

    graph_def, nested_to_flat = function_def_to_graph_def(fdef)
    return graph_def, [nested_to_flat[fdef.ret[a.name]] for a in fdef.signature.output_arg]


def _output_offsets(node: node_def_pb2.NodeDef, library: dict) -> list[tuple[str, int]] | None:
    """(output arg name, flat start) per output arg of ``node``'s op, or None if unknown."""
    from tensorflow.python.framework import op_def_registry

    if node.op in library:
        return [(arg.name, i) for i, arg in enumerate(library[node.op].signature.output_arg)]
    op_def = op_def_registry.get(node.op)
    if op_def is None:
        return None
    offsets, start = [], 0
    for arg in op_def.output_arg:
        if arg.number_attr:
            length = node.attr[arg.number_attr].i
        elif arg.type_list_attr:
            length = len(node.attr[arg.type_list_attr].list.type)
        else:
            length = 1
        if length:  # an empty list (ParseExampleV2 with no sparse keys) names no output
            offsets.append((arg.name, start))
        start += length
    return offsets


def body_to_function(template, body: graph_pb2.GraphDef, library: dict,
                     results: list[str] | None = None):
    """Put an edited ``body`` (from :func:`function_body`) back into a copy of the FunctionDef
    ``template``: same signature, results and control results; flat inputs nested again.
    With ``results`` (flat tensor names, one per output arg) the results are set from them.
    Returns None when an op's outputs cannot be named (then keep the original)."""
    from tensorflow.core.framework import function_pb2

    args = {a.name for a in template.signature.input_arg}
    nodes = {n.name: n for n in body.node}
    offsets: dict[str, list[tuple[str, int]]] = {}

    def nested(text: str) -> str | None:
        ref = InputRef.parse(text)
        if ref.node in args:
            return ("^" if ref.control else "") + ref.node
        if ref.control:
            return text
        if ref.node not in offsets:
            found = _output_offsets(nodes[ref.node], library) if ref.node in nodes else None
            if found is None:
                return None
            offsets[ref.node] = found
        name, start = max((o for o in offsets[ref.node] if o[1] <= ref.port), key=lambda o: o[1])
        return f"{ref.node}:{name}:{ref.port - start}"

    fdef = function_pb2.FunctionDef()
    fdef.CopyFrom(template)
    del fdef.node_def[:]
    for node in body.node:
        if node.name in args:
            continue
        copy = fdef.node_def.add()
        copy.CopyFrom(node)
        del copy.input[:]
        for text in node.input:
            converted = nested(text)
            if converted is None:
                return None
            copy.input.append(converted)
    for arg, tensor in zip(fdef.signature.output_arg, results or [], strict=False):
        converted = nested(tensor)
        if converted is None:
            return None
        fdef.ret[arg.name] = converted
    return fdef
