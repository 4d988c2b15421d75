"""What TensorFlow runs: each model's serving graph after Grappler (placed on the CPU, as the
runtime places it before optimizing), for the original, TensorFlow's chain (freeze +
``optimize_for_inference``) and tfopt's output, under oneDNN off and on.

Timing says *whether* tfopt's SavedModel is ahead of the chain's; this says *why* or why not:
when both graphs come out of Grappler with the same kernels (same convolutions, same fused
forms, same element-wise ops), no rewrite before load can separate them, and the time left is
in the kernels themselves. Each runtime's view is computed in a child process (the runtime is
chosen at TensorFlow's import). Writes ``benchmarks/GRAPPLER_VIEW.md``.

    python benchmarks/run_grappler_view.py [--models resnet50_v2,densenet121]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import harness
import run_modern

import tfopt
from tfopt.errors import TfoptError
from tfopt.runtime import runtime_env, runtime_label
from tfopt.zoo.builders import build

MODELS = ["resnet50_v2", "densenet121", "nasnet_mobile", "xception", "unet",
          "mobilenet_v3_small", "bigru_masked"]
FORMS = ("original", "chain", "tfopt")
BOOKKEEPING = {"Const", "Identity", "NoOp", "Placeholder", "_Arg", "_Retval"}


def after_grappler(path: str) -> Counter:
    """Op counts (fused kernels by their fused_ops) of what Grappler makes of ``path``'s
    serving graph, every node placed on the CPU; bookkeeping ops left out."""
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.python.framework import meta_graph
    from tensorflow.python.grappler import tf_optimizer

    from tfopt.model.formats import load_model

    sig = load_model(path, ["serving_default"]).signatures["serving_default"]
    graph_def = type(sig.graph_def).FromString(sig.graph_def.SerializeToString())
    for node in graph_def.node:
        node.device = "/job:localhost/replica:0/task:0/device:CPU:0"
    meta = meta_graph.create_meta_graph_def(graph_def=graph_def)
    meta.collection_def["train_op"].node_list.value.extend(
        t.tensor.split(":")[0] for t in sig.outputs.values())
    config = config_pb2.ConfigProto()
    config.graph_options.rewrite_options.min_graph_nodes = -1
    out = tf_optimizer.OptimizeGraph(config, meta)
    nodes = [*out.node, *(n for f in out.library.function for n in f.node_def)]
    counts = Counter()
    for node in nodes:
        if node.op in BOOKKEEPING:
            continue
        fused = [s.decode() for s in node.attr["fused_ops"].list.s]
        counts[f"{node.op}[{','.join(fused)}]" if fused else node.op] += 1
    return counts


def child_main(paths: list[str]) -> None:
    print(json.dumps({p: after_grappler(p) for p in paths}))


def views(paths: dict[str, str], runtime: str) -> dict[str, Counter]:
    """Each form's op counts after Grappler under ``runtime`` (a child process)."""
    out = subprocess.run([sys.executable, __file__, "--child", *paths.values()],
                         env=runtime_env(runtime), capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {label: Counter(got[path]) for label, path in paths.items()}


def describe(a: Counter, b: Counter) -> str:
    """Where ``a`` (tfopt) and ``b`` (the chain) differ: ``op a/b`` for each op type."""
    diff = [f"{op} {a[op]}/{b[op]}" for op in sorted(set(a) | set(b)) if a[op] != b[op]]
    return "same kernels" if not diff else "; ".join(diff)


def main() -> None:
    args = harness.arguments(__doc__, "GRAPPLER_VIEW.md", MODELS)
    body = []
    with harness.workdir("tfopt-grappler-") as work:
        for name in args.model_list:
            paths = {form: os.path.join(work, f"{name}-{form}") for form in FORMS}
            try:
                build(name, paths["original"])
            except TfoptError:
                run_modern.build(name, paths["original"])
            harness.tf_chain(paths["original"], paths["chain"])
            tfopt.optimize(paths["original"], paths["tfopt"], time=False)
            for runtime in ("eigen", "onednn"):
                got = views(paths, runtime)
                totals = [sum(got[f].values()) for f in FORMS]
                body.append([name, runtime_label(runtime), *totals,
                             describe(got["tfopt"], got["chain"])])
                print(f"{name} ({runtime_label(runtime)}): ops {totals}; tfopt/chain: "
                      f"{body[-1][-1]}", flush=True)
    section = harness.table(["model", "runtime", *(f"{f} ops" for f in FORMS),
                             "tfopt / chain where they differ (op tfopt/chain)"], body,
                            [False, False, True, True, True, False])
    harness.write_markdown(
        args.out, "What TensorFlow runs: the graphs after Grappler",
        "Op counts of each serving graph after Grappler's default optimizers (every node "
        "placed on the CPU, as the runtime places it before optimizing; Const, Identity, NoOp "
        "and placeholders left out; a fused kernel counted with its fused_ops). oneDNN's own "
        "layout pass (the `_MklNative*` names) runs after Grappler and is not shown: it renames "
        "the same kernels. Random weights, built locally.", [section])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2:])
    else:
        main()
