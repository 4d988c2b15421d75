"""The kernel forms tfopt can emit: :data:`FUSION_TABLE` (pattern -> fused op + fused_ops, per
dtype; plain ops in reduced precision; int8 forms), and counting them in a graph."""

from __future__ import annotations

from dataclasses import dataclass

from tfopt.graph.quantized import INT8_DTYPES, INT8_FORMS

TARGETS = ("portable", "native", "generic")


# Activations a fused kernel may end with (the op's name is the fused_ops entry).
ACTIVATIONS = ("Relu", "Relu6", "Elu", "LeakyRelu", "Tanh", "Sigmoid")


# Dtypes fused kernels are probed for: float32, and bfloat16 for reduced-precision graphs
# (int8 kernels: INT8_DTYPES, the type of their quantized input)
# (the oneDNN runtime has bf16 fused kernels; the Eigen runtime rejects them).
DTYPES = ("float32", "bfloat16")


@dataclass(frozen=True, order=True)
class Fusion:
    """One kernel form: the fused op, its ``fused_ops`` list and its dtype (or a plain op,
    no ``fused_ops``, in a reduced precision: :data:`REDUCED_OPS`)."""

    op: str
    fused_ops: tuple[str, ...]
    dtype: str = "float32"

    def __str__(self) -> str:
        dtype = "" if self.dtype == "float32" else f"<{self.dtype}>"
        return f"{self.op}{dtype}[{','.join(self.fused_ops)}]"

    @classmethod
    def parse(cls, text: str) -> Fusion:
        head, _, rest = text.partition("[")
        op, _, dtype = head.partition("<")
        return cls(op, tuple(x for x in rest.rstrip("]").split(",") if x),
                   dtype.rstrip(">") or "float32")


def _table() -> tuple[Fusion, ...]:
    """What fuse_kernels knows how to build: X + BiasAdd [+ residual Add] [+ activation]."""
    out = []
    for dtype in DTYPES:
        for op, heads in (("_FusedConv2D", (("BiasAdd",), ("BiasAdd", "Add"))),
                          ("_FusedDepthwiseConv2dNative", (("BiasAdd",),)),
                          ("_FusedMatMul", (("BiasAdd",),))):
            for head in heads:
                out.append(Fusion(op, head, dtype))
                out.extend(Fusion(op, (*head, act), dtype) for act in ACTIVATIONS)
    out.extend(Fusion(op, (), "bfloat16") for op in REDUCED_OPS)
    out.extend(Fusion(op, forms, dtype) for op, both in INT8_FORMS.items() for forms in both
               for dtype in INT8_DTYPES)
    return tuple(out)


# Plain compute ops reduced precision runs in bf16, probed for accuracy like the fusions: the
# Eigen runtime's bf16 Einsum is 2.7e-2 relative RMS off where oneDNN's is 1.6e-3 (ViT missed
# the bf16 budget under oneDNN off by it), its BatchMatMulV2 3.4e-3.
REDUCED_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput", "MatMul",
               "BatchMatMulV2", "Einsum")


FUSION_TABLE: tuple[Fusion, ...] = _table()


def fusions_in(graph_defs) -> dict[Fusion, int]:
    """Count the ``_Fused*`` (and int8 ``_Quantized*``) kernels a set of GraphDefs (function
    bodies included) holds."""
    from tfopt.graph.library import all_nodes
    from tfopt.graph.nodes import get_attr

    counts: dict[Fusion, int] = {}
    for gd in graph_defs:
        for node in all_nodes(gd):
            if node.op.startswith(("_Fused", "_Quantized")):
                dtype = get_attr(node, "T") or get_attr(node, "Tinput") or get_attr(node, "T1")
                fusion = Fusion(node.op, tuple(get_attr(node, "fused_ops", [])),
                                dtype.name if dtype is not None else "float32")
                counts[fusion] = counts.get(fusion, 0) + 1
    return counts


def fusion_names(fusions: dict[Fusion, int]) -> dict[str, int]:
    """``{"_FusedConv2D[BiasAdd,Relu]": 33, ...}``, sorted: how reports and tfopt.json say it."""
    return {str(f): n for f, n in sorted(fusions.items())}
