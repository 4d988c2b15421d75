"""Selective XLA: compile the part of a graph where XLA is faster on CPU, if measuring says so.

XLA's CPU backend runs attention and MLP blocks (matmuls with their element-wise chains,
layer norms, GELUs) much faster than TensorFlow's op-by-op executor, and convolutions much
slower (MobileNetV2/EfficientNet 8x slower here). So the cluster is every node that no
convolution (or other op XLA should not take) precedes: it is convex by construction (nothing
leaves it and comes back) and, in a transformer, it is the whole model. The cluster is outlined
into a function marked ``_XlaMustCompile`` and called with ``PartitionedCall`` — the mechanism
Keras itself uses — so plain ``tf.saved_model.load`` and TF Serving run it with no tfopt code.
:func:`choose` keeps it only when the timed model is faster (``--xla auto``).
"""

from __future__ import annotations

import dataclasses

from tensorflow.core.framework import graph_pb2, node_def_pb2

from tfopt.errors import TfoptError
from tfopt.graph.flops import FLOP_OPS, concrete_inputs, graph_flops
from tfopt.graph.library import all_nodes
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import get_attr, is_lifted, make_node, set_attr
from tfopt.graph.ops import TF1_CONTROL_FLOW_OPS
from tfopt.graph.outline import as_function, call_in_place
from tfopt.graph.outline import boundary as outline_boundary
from tfopt.graph.shapes import StaticInfo
from tfopt.graph.view import GraphView
from tfopt.graph.walk import topological_order
from tfopt.model.signature import SignatureGraph

# Never inside the cluster: convolutions (XLA's CPU convolutions are slow), ops XLA cannot
# compile or that hold state (int8 ops among them: oneDNN kernels with no XLA lowering), and
# control flow kept for TensorFlow's executor.
EXCLUDED_PREFIXES = ("Conv", "DepthwiseConv", "_Fused", "_Quantized", "Quantize", "Dequantize",
                     "MaxPool", "AvgPool", "Lookup",
                     "HashTable", "InitializeTable", "String", "Decode", "Encode", "Regex",
                     "Print", "Assert", "Save", "Restore", "Var", "ReadVariable", "Resource",
                     "Random", "StatefulPartitionedCall", "NonMaxSuppression", "Sparse",
                     "CombinedNonMaxSuppression", "Where", "Unique")
EXCLUDED_OPS = {"Placeholder", "PlaceholderWithDefault", "NoOp", "If", "StatelessIf", "While",
                "StatelessWhile", "Case", "PartitionedCall", "Const"} | TF1_CONTROL_FLOW_OPS
MIN_COMPUTE_NODES = 8  # a smaller cluster is not worth a compiled call
# A cluster with less of the model's work than this is not worth timing: XLA cannot win back
# its call overhead on a CNN's classifier head. A transformer's cluster holds ~100%.
MIN_WORK_SHARE = 0.5

FUNCTION_NAME = "tfopt_xla_cluster"


def _excluded(node: node_def_pb2.NodeDef) -> bool:
    return node.op in EXCLUDED_OPS or node.op.startswith(EXCLUDED_PREFIXES)


def cluster(sig: SignatureGraph, view: GraphView | None = None,
            info: StaticInfo | None = None) -> set[str]:
    """Nodes to compile: not left out themselves (excluded op, control input, string/resource/
    variant input or output, load-time initializer), and either with no left-out node among their
    ancestors or with none among their descendants, whichever set is larger. Each set is
    convex (no path leaves it and comes back), so outlining it cannot create a cycle;
    placeholders and constants feed the cluster and block nothing."""
    view = view or GraphView(sig.graph_def)
    info = info or StaticInfo(sig.graph_def)

    def left_out(node: node_def_pb2.NodeDef) -> bool:
        if node.op in ("Placeholder", "Const"):
            return False
        dtypes = [info.dtype(node.name + ":0")] + [
            info.dtype(InputRef.parse(t).tensor) for t in node.input if not t.startswith("^")]
        return (_excluded(node) or node.name in sig.init_ops
                or any(t.startswith("^") for t in node.input)
                # strings in or out (ParseExample, a lookup's keys): XLA has no kernel for them
                or any(d is not None and d.name in ("string", "resource", "variant")
                       for d in dtypes))

    order = topological_order(sig.graph_def)
    out = {node.name: left_out(node) for node in order}
    # Two convex candidates: the nodes no left-out node precedes (a transformer: all of it),
    # and the nodes no left-out node follows (a ViT: all after its patch-embedding conv).
    after: dict[str, bool] = {}
    for node in order:
        after[node.name] = out[node.name] or any(after.get(InputRef.parse(t).node, False)
                                                 for t in node.input)
    before: dict[str, bool] = {}
    for node in reversed(order):
        before[node.name] = out[node.name] or any(before.get(reader.name, False)
                                                  for reader, _ in view.consumers(node.name))
    chosen = max(({node.name for node in order
                   if not blocked[node.name] and node.op not in ("Placeholder", "Const")}
                  for blocked in (after, before)), key=len)
    # Constants read only by the cluster go inside it (weights become compile-time constants),
    # but lifted ones (a large model's, stored in variables/): they stay arguments.
    for node in order:
        if node.op == "Const" and not node.input and not is_lifted(node):
            readers = {c.name for c, _ in view.consumers(node.name)}
            if readers and readers <= chosen:
                chosen.add(node.name)
    return chosen


def unfuse_matmuls(graph_def: graph_pb2.GraphDef) -> graph_pb2.GraphDef:
    """``_FusedMatMul[BiasAdd(, act)]`` back to ``MatMul -> BiasAdd (-> act)``: XLA has no
    kernel for the fused op, and would otherwise stop the cluster at every fused dense layer.
    The last op keeps the fused node's name, so readers are untouched."""
    view = GraphView(graph_def)
    for node in list(view):
        fused_ops = get_attr(node, "fused_ops", [])
        if node.op != "_FusedMatMul" or not fused_ops or fused_ops[0] != "BiasAdd" or len(
                fused_ops) > 2 or view.control_inputs(node):
            continue
        x, w, bias = (str(r) for r in view.data_inputs(node)[:3])
        dtype = get_attr(node, "T")
        matmul = view.add(make_node(view.unique_name(node.name + "/MatMul"), "MatMul", [x, w],
                                    node.device, T=dtype,
                                    transpose_a=get_attr(node, "transpose_a", False),
                                    transpose_b=get_attr(node, "transpose_b", False)))
        last = node
        if len(fused_ops) == 2:
            biased = view.add(make_node(view.unique_name(node.name + "/BiasAdd"), "BiasAdd",
                                        [matmul.name, bias], node.device, T=dtype))
            alpha = get_attr(node, "leakyrelu_alpha", 0.2)
            view.retype(last, fused_ops[1], keep=("T",))
            view.set_inputs(last, [biased.name])
            if fused_ops[1] == "LeakyRelu":
                set_attr(last, "alpha", alpha)
        else:
            view.retype(last, "BiasAdd", keep=("T",))
            view.set_inputs(last, [matmul.name, bias])
    return view.to_graph_def()


def work_share(sig: SignatureGraph, chosen: set[str]) -> float:
    """The cluster's share of the model's work: of its FLOPs (convolutions, matmuls, einsums at
    batch 1), or of its FLOP-heavy nodes where shapes are unknown."""
    sized, _ = concrete_inputs(sig.graph_def, sig.inputs)
    static = StaticInfo(sized)
    total, _ = graph_flops(sized, static)
    if total:
        return graph_flops(sized, static, chosen)[0] / total
    heavy = [n.name for n in sig.graph_def.node if n.op in FLOP_OPS]
    return sum(n in chosen for n in heavy) / len(heavy) if heavy else 0.0


def outline(sig: SignatureGraph, min_share: float = 0.0) -> SignatureGraph | str:
    """The signature with its XLA cluster outlined into a compiled function, or why not: the
    cluster is too small (a CNN: convolutions all the way through) or holds less than
    ``min_share`` of the model's work."""
    if any(n.op in TF1_CONTROL_FLOW_OPS for n in all_nodes(sig.graph_def)):
        # Measured on a Keras LSTM: a cluster beside the lowered loop's frames (its first
        # step, unrolled before the loop) built, then failed to run ("Retval[0] does not
        # have value"), and cost a blame round to undo. Frames called as functions
        # (loop_calls) count too.
        return "the graph runs lowered loops (Enter/Exit frames); they stay with the runtime"
    sig = sig.with_graph(unfuse_matmuls(sig.graph_def))
    view, info = GraphView(sig.graph_def), StaticInfo(sig.graph_def)
    chosen = cluster(sig, view, info)
    compute = [n for n in sig.graph_def.node if n.name in chosen and n.op != "Const"]
    if len(compute) < MIN_COMPUTE_NODES:
        return "no cluster worth compiling: convolutions or loops come first, or it is too small"
    if min_share and (share := work_share(sig, chosen)) < min_share:
        return (f"the convolution- and loop-free part holds {share:.0%} of the model's work; "
                "not worth compiling")
    found = outline_boundary(view, chosen, sig.output_tensors)
    if isinstance(found, str):
        return f"the cluster cannot be cut out: {found}"
    inputs, outputs = found
    attrs = {"_XlaMustCompile": True, "_noinline": True}
    fdef = as_function(view, info, chosen, inputs, outputs, FUNCTION_NAME, attrs)
    if fdef is None:
        return "the cluster's body cannot be made a function"
    call_in_place(view, info, chosen, inputs, outputs, fdef, "tfopt_xla", sig.output_tensors,
                  {"_XlaMustCompile": True})
    return sig.with_graph(view.to_graph_def())


def choose(driver, base, mode: str):
    """The XLA choice over ``base`` (a :class:`~tfopt.optimizer.candidates.Candidate`): with
    ``mode`` "on" the cluster is kept untimed; with "auto" the candidate with it is verified
    and timed against ``base``, and kept only for a gain whose interval excludes 1.0. Returns
    the kept candidate, the one tried, and the report's note."""

    cand = driver.outlined(base, mode, "with its XLA cluster", "xla")
    if not cand.why_not and mode == "auto" and driver.feeds is None:
        cand.drop("it is timed on the verification inputs (--no-verify)")
    if cand.why_not:
        return base, [], f"xla: not used, {cand.why_not}"
    outlined = ", ".join(k for k, s in cand.sigs.items() if s is not base.sigs[k]
                         and not s.same_as)
    if mode == "on":
        return cand, [cand], f"xla: compiled cluster in {outlined} (not timed: --xla on)"
    base = dataclasses.replace(base, name="without an XLA cluster", choice="xla", path="")
    key = next(k for k, s in cand.sigs.items() if s is not base.sigs[k] and not s.same_as)
    try:
        if not driver.verify(cand):
            return base, [cand], f"xla: compiled cluster not kept ({cand.why_not})"
        driver.say(f"xla: timing {key} with and without its compiled cluster ...")
        driver.time(base, [cand], key)
    except TfoptError as err:  # an op XLA has no kernel for (SparseSegmentMean, say)
        reason = str(err).split("fails on the generated inputs: ", 1)[-1].split(" (give ")[0]
        cand.drop(f"the compiled cluster failed to run: {reason}")
        return base, [cand], f"xla: not used, {cand.why_not}"
    verdict = cand.speed.ratio.short()
    if cand.speed.ratio.faster:
        return cand, [cand], f"xla: compiled cluster kept, {verdict} faster than without"
    why = "slower" if cand.speed.ratio.measurable else "no measurable gain"
    cand.drop(f"{verdict}: {why}")
    return base, [cand], f"xla: compiled cluster not kept ({verdict}: {why})"
