"""The kernel probe: which fused kernels a runtime runs, and below float32 runs accurately."""

from __future__ import annotations

import json
import subprocess
import sys

from tfopt.graph import probe
from tfopt.graph.fusions import Fusion
from tfopt.runtime import runtime_env

BF16_MATMUL = Fusion("_FusedMatMul", ("BiasAdd",), "bfloat16")


def test_accepted_reduced_precision_fusions_are_accurate():
    """Every bf16 fusion this runtime is said to run is within the bound over long dot
    products, and the bound is what one bf16 rounding costs, not more."""
    accepted = [f for f in probe.probe_here() if f.dtype == "bfloat16" and f.fused_ops]
    for fusion in accepted:
        assert probe.reduced_precision_error(fusion) <= probe.REDUCED_PRECISION_RMS, fusion


def test_eigen_inaccurate_bf16_kernels_are_refused():
    """Eigen's bf16 _FusedMatMul and Einsum run but round ~10x more than MatMul + BiasAdd: the
    probe of the oneDNN-off runtime (a child with it pinned) must not admit them, so portable
    graphs keep bf16 MatMul + BiasAdd apart (oneDNN fuses them at load time anyway) and
    einsums in float32."""
    code = ("import json; from tfopt.graph import probe as k; "
            "print(json.dumps(sorted(map(str, k.probe_here()))))")
    out = subprocess.run([sys.executable, "-c", code], env=runtime_env("eigen"),
                         capture_output=True, text=True, check=True)
    supported = json.loads(out.stdout.strip().splitlines()[-1])
    assert "_FusedMatMul[BiasAdd]" in supported  # float32 is fine
    assert str(BF16_MATMUL) not in supported
    assert "MatMul<bfloat16>[]" in supported       # plain bf16 MatMul: 3e-3, accurate
    assert "Einsum<bfloat16>[]" not in supported   # Eigen's bf16 Einsum: 3e-2
