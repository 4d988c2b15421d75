"""How ``tfopt optimize`` scales: seconds and peak memory against the model's size, past 2 GiB.

GPT-2-style decoders (keras_hub ``GPT2Backbone`` from its config, random weights) of growing
depth and width, and a recommender-shaped model with two 1.1 GiB embedding tables (2.3 GiB in
all; one table over 2 GiB cannot be a graph constant at all, see the README), are built here
and exported with
``model.export()``. Each is optimized by the CLI in a fresh process (``--no-time --json``:
verification under both CPU runtimes stays on), which reports seconds and peak resident memory
per stage, for itself and its largest verification child (which reports its own high-water
mark). Peak memory is compared with
the model's weight bytes (the #24 bar: at most ~3x), time with the node count. With
``--rounds N`` each written model is also timed against its original (batch 1, sequence 64).
Models past 64 MiB keep their matmul and embedding weights in ``variables/``, past
TFOPT_MAX_GRAPH_MB (1.5 GiB) their largest other weights too. Writes
``benchmarks/SCALING.md`` and ``benchmarks/scaling.png``.

Needs ``keras-hub`` (see run_modern.py for the ``--no-deps`` install) and ~16 GB of memory for
the largest model.

    python benchmarks/run_scaling.py [--models gpt2_2x256,two_tables_2.3g] [--rounds 3]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import harness

from tfopt.measure.results import Settings

# name -> (layers, width, vocabulary); the embedding model: (0, width, rows)
SIZES: dict[str, tuple[int, int, int]] = {
    "gpt2_2x256": (2, 256, 50257),
    "gpt2_6x512": (6, 512, 50257),
    "gpt2_12x768": (12, 768, 50257),      # GPT-2 base
    "gpt2_24x1024": (24, 1024, 50257),    # GPT-2 medium
    "gpt2_26x1280": (26, 1280, 50257),    # past 2 GiB float32
    "two_tables_2.3g": (0, 1024, 300_000),  # two 1.1 GiB embedding tables (a recommender)
}
SEQ = 64


def build(name: str, path: str) -> int:
    """Export model ``name``; returns its weight bytes."""
    import keras

    keras.utils.set_random_seed(0)
    layers, width, vocab = SIZES[name]
    if layers:
        import keras_hub

        model = keras_hub.models.GPT2Backbone(vocabulary_size=vocab, num_layers=layers,
                                              num_heads=width // 64, hidden_dim=width,
                                              intermediate_dim=4 * width,
                                              max_sequence_length=256)
    else:  # users and items, each its own table: a recommender's shape
        ids = keras.Input((None,), dtype="int32", name="ids")
        users = keras.layers.Embedding(vocab, width)(ids)
        items = keras.layers.Embedding(vocab, width)(ids)
        x = keras.layers.GlobalAveragePooling1D()(keras.layers.Concatenate()([users, items]))
        model = keras.Model(ids, keras.layers.Dense(16)(keras.layers.Dense(256, "relu")(x)))
    weights = sum(int(w.numpy().nbytes) for w in model.weights)
    model.export(path, format="tf_saved_model", verbose=False)
    return weights


def optimize(src: str, dst: str, report: str) -> dict:
    """``tfopt optimize`` in a fresh process; its --json report (or the error)."""
    began = time.perf_counter()
    shapes = [a for name, shape in _shapes(os.path.basename(src)).items()
              for a in ("--input-shape", f"{name}={','.join(map(str, shape))}")]
    proc = subprocess.run([sys.executable, "-m", "tfopt.cli.main", "optimize", src, dst,
                           "--no-time", "--json", report, *shapes],
                          capture_output=True, text=True)
    if proc.returncode < 0:  # a signal: SIGKILL is the kernel's out-of-memory killer
        return {"error": f"killed by signal {-proc.returncode}"
                         + (" (out of memory)" if proc.returncode == -9 else ""),
                "seconds": time.perf_counter() - began}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:160],
                "seconds": time.perf_counter() - began}
    with open(report) as f:
        return json.load(f)


def main() -> None:
    args = harness.arguments(__doc__, "SCALING.md", list(SIZES), num_iter=10, rounds=0)
    rows = []
    with harness.workdir("tfopt-scaling-") as work:
        for name in args.model_list:
            src, dst = os.path.join(work, name), os.path.join(work, name + "_tfopt")
            print(f"{name}: building ...", flush=True)
            # Built in a process of its own: Keras and TensorFlow would keep the model's
            # memory in this one while the optimize process is measured.
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                weights = pool.submit(build, name, src).result()
            print(f"{name}: {weights / 2**30:.2f} GiB of weights; optimizing ...", flush=True)
            result = optimize(src, dst, os.path.join(work, name + ".json"))
            row = {"model": name, "weights": weights, **_facts(result)}
            if "error" not in result:
                row["size"] = harness.size_mb(dst)
                row["outside"] = os.path.getsize(os.path.join(dst, "saved_model.pb")) / 1e6
                if args.rounds:
                    settings = Settings(batch_size=1, num_iter=args.num_iter, num_warmup=2,
                                        rounds=args.rounds, round_seconds=2.0,
                                        input_shapes=_shapes(name))
                    timed = harness.time_variants(name, 1, {"original": src, "tfopt": dst},
                                                  settings, aa=False)
                    row["speedup"] = timed.ci("tfopt")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.rmtree(src, ignore_errors=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(args, rows)


def _shapes(name: str) -> dict[str, tuple[int, ...]]:
    if SIZES[name][0]:
        return {"token_ids": (1, SEQ), "padding_mask": (1, SEQ)}
    return {"ids": (1, SEQ)}


def _facts(result: dict) -> dict:
    if "error" in result:
        return {"error": result["error"], "seconds": result["seconds"]}
    stages = result["stages"]
    sig = next(iter(result["signatures"].values()))
    return {"seconds": result["seconds"], "nodes": sig["nodes_before"],
            "peak": max(s["peak_mb"] for s in stages) * 2**20,
            "child_peak": max(s["children_peak_mb"] for s in stages) * 2**20,
            "slowest": max(stages, key=lambda s: s["seconds"]),
            "notes": [n for n in result["notes"] if "variables/" in n],
            "diff": max((c["rel"] for s in result["signatures"].values()
                         for c in s["checks"]), default=0.0)}


def write(args, rows: list[dict]) -> None:
    gib = 2**30
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["model"], f"{r['weights'] / gib:.2f}", "", f"{r['seconds']:.0f}",
                         "", "", "", "", "", f"failed: {r['error']}"])
            continue
        body.append([r["model"], f"{r['weights'] / gib:.2f}", r["nodes"],
                     f"{r['seconds']:.0f}", f"{r['peak'] / gib:.2f}",
                     f"{r['peak'] / r['weights']:.1f}x", f"{r['child_peak'] / gib:.2f}",
                     f"{r['slowest']['stage']} {r['slowest']['seconds']:.0f}s",
                     f"{r['size'] / 1e3:.2f} GB ({r['outside']:.1f} MB graph)",
                     r.get("speedup", "") or f"rel diff {r['diff']:.1e}"])
    table = harness.table(["model", "weights GiB", "nodes", "optimize s", "peak GiB",
                           "peak / weights", "largest child GiB", "slowest stage",
                           "output on disk", "speedup (batch 1)"], body,
                          [False, True, True, True, True, True, True, False, False, False])
    harness.write_markdown(
        args.out, "Scaling: optimize time and memory against model size",
        "Each model optimized by `tfopt optimize --no-time --json` in a fresh process "
        "(verified under oneDNN on and off, each in a child process); peak = resident-memory "
        "high-water mark of the optimize process (ru_maxrss), largest child = the largest "
        "high-water mark a verification child reported (VmHWM). GPT-2-style keras_hub decoders (layers x width, vocabulary "
        "50257) and a model with two 1.1 GiB embedding tables, random weights, sequence 64 "
        "for verification. Models past 64 MiB keep their matmul and embedding weights in "
        "variables/ (the 'graph' size is saved_model.pb's).", [table])
    _chart(args.out.replace("SCALING.md", "scaling.png"), [r for r in rows if "error" not in r])


def _chart(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gib = 2**30
    x = [r["weights"] / gib for r in rows]
    fig, (mem, sec) = plt.subplots(1, 2, figsize=(11, 4.2))
    mem.plot(x, [r["peak"] / gib for r in rows], "o-", label="optimize process")
    mem.plot(x, [r["child_peak"] / gib for r in rows], "s--", label="largest child")
    mem.plot([0, max(x)], [0, 3 * max(x)], ":", color="grey", label="3x the weights")
    for r, xi in zip(rows, x, strict=True):
        mem.annotate(r["model"], (xi, r["peak"] / gib), fontsize=7, xytext=(3, 3),
                     textcoords="offset points")
    mem.set_xlabel("weights (GiB)")
    mem.set_ylabel("peak resident memory (GiB)")
    mem.set_title("Memory")
    mem.legend(fontsize=8)
    sec.plot(x, [r["seconds"] for r in rows], "o-")
    for r, xi in zip(rows, x, strict=True):
        sec.annotate(f"{r['nodes']} nodes", (xi, r["seconds"]), fontsize=7, xytext=(3, 3),
                     textcoords="offset points")
    sec.set_xlabel("weights (GiB)")
    sec.set_ylabel("optimize seconds (verification included)")
    sec.set_title("Time")
    fig.suptitle("tfopt optimize against model size (2 GiB: protobuf's limit)", fontsize=10)
    for ax in (mem, sec):
        ax.axvline(2.0, color="#d62728", lw=0.8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
