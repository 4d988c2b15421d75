"""Sweep tfopt over keras_hub backbones that no test builds: does every one optimize, verify
and get faster?

Each backbone is built small from its config (2 layers, width 64, random weights with
randomised biases and norm statistics), exported with ``model.export()``, optimized with the
default settings (verified under both CPU runtimes) and timed against the original: batch 1,
``--rounds`` fresh processes per model, order alternating. Inputs and sequence lengths are what
``tfopt`` derives from the graph (64 tokens where the length is dynamic). Writes
``benchmarks/KERAS_HUB.md``.

Needs ``keras-hub`` (see run_modern.py for the ``--no-deps`` install).

    python benchmarks/run_keras_hub.py [--models llama,t5,...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import traceback

import tfopt
from tfopt.benchmark import Settings, benchmark
from tfopt.runtime import summary_line
from tfopt.stats import geomean

TEXT = dict(num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128)
GQA = dict(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=64,
           intermediate_dim=128)
VOCAB = 1000

# name -> (family, keras_hub class, config)
CONFIGS: dict[str, tuple[str, str, dict]] = {
    "distilbert": ("encoder", "DistilBertBackbone",
                   dict(vocabulary_size=VOCAB, max_sequence_length=128, **TEXT)),
    "roberta": ("encoder", "RobertaBackbone",
                dict(vocabulary_size=VOCAB, max_sequence_length=128, **TEXT)),
    "albert": ("encoder", "AlbertBackbone",
               dict(vocabulary_size=VOCAB, num_layers=2, num_heads=4, embedding_dim=32,
                    hidden_dim=64, intermediate_dim=128, num_groups=1,
                    num_inner_repetitions=1, max_sequence_length=128)),
    "deberta_v3": ("encoder", "DebertaV3Backbone",
                   dict(vocabulary_size=VOCAB, max_sequence_length=128, bucket_size=32,
                        **TEXT)),
    "electra": ("encoder", "ElectraBackbone",
                dict(vocab_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                     embedding_dim=32, intermediate_dim=128, max_sequence_length=128)),
    "fnet": ("encoder (FFT mixing)", "FNetBackbone",
             dict(vocabulary_size=VOCAB, num_layers=2, hidden_dim=64, intermediate_dim=128,
                  max_sequence_length=128)),
    "xlnet": ("encoder (relative attention)", "XLNetBackbone",
              dict(vocabulary_size=VOCAB, **TEXT)),
    "llama": ("decoder (RoPE, RMSNorm, GQA)", "LlamaBackbone",
              dict(vocabulary_size=VOCAB, **GQA)),
    "mistral": ("decoder (sliding window)", "MistralBackbone",
                dict(vocabulary_size=VOCAB, sliding_window=32, **GQA)),
    "gemma": ("decoder (MQA)", "GemmaBackbone",
              dict(vocabulary_size=VOCAB, num_layers=2, num_query_heads=4,
                   num_key_value_heads=1, hidden_dim=64, intermediate_dim=128, head_dim=16)),
    "qwen": ("decoder", "QwenBackbone", dict(vocabulary_size=VOCAB, **GQA)),
    "phi3": ("decoder", "Phi3Backbone", dict(vocabulary_size=VOCAB, **GQA)),
    "opt": ("decoder", "OPTBackbone",
            dict(vocabulary_size=VOCAB, max_sequence_length=128, **TEXT)),
    "bloom": ("decoder (ALiBi)", "BloomBackbone",
              dict(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                   intermediate_dim=128)),
    "gpt_neox": ("decoder (rotary)", "GPTNeoXBackbone",
                 dict(vocabulary_size=VOCAB, max_sequence_length=128, **TEXT)),
    "t5": ("encoder-decoder", "T5Backbone",
           dict(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                intermediate_dim=128, key_value_dim=16)),
    "whisper": ("encoder-decoder (audio)", "WhisperBackbone",
                dict(vocabulary_size=VOCAB, num_layers=2, num_heads=4, hidden_dim=64,
                     intermediate_dim=128, num_mels=80, max_encoder_sequence_length=200,
                     max_decoder_sequence_length=64)),
    "deit": ("vision transformer", "DeiTBackbone",
             dict(image_shape=(64, 64, 3), patch_size=16, num_layers=2, num_heads=4,
                  hidden_dim=64, intermediate_dim=128)),
    "dinov2": ("vision transformer", "DINOV2Backbone",
               dict(patch_size=14, num_layers=2, hidden_dim=64, num_heads=4,
                    intermediate_dim=128, image_shape=(70, 70, 3))),
    "swin": ("vision transformer (windows)", "SwinTransformerBackbone",
             dict(image_shape=(64, 64, 3), patch_size=4, embed_dim=32, depths=[2, 2],
                  num_heads=[2, 4], window_size=4)),
    "mit": ("vision transformer (SegFormer)", "MiTBackbone",
            dict(layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
                 layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.0,
                 layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2], hidden_dims=[32, 64],
                 image_shape=(64, 64, 3))),
}


def build(name: str, path: str) -> None:
    import keras
    import keras_hub

    from tfopt.zoo import randomize_batch_norm, randomize_constant_weights

    keras.utils.set_random_seed(0)
    _, cls, config = CONFIGS[name]
    model = getattr(keras_hub.models, cls)(**config)
    randomize_batch_norm(model)
    randomize_constant_weights(model)
    model.export(path, format="tf_saved_model", verbose=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-iter", type=int, default=40)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__),
                                                      "KERAS_HUB.md"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfopt-hub-")
    rows: list[tuple] = []
    try:
        for name in args.models.split(","):
            src, opt = os.path.join(work, name), os.path.join(work, name + "_tfopt")
            try:
                build(name, src)
                report = tfopt.optimize(src, opt)
                settings = Settings(num_iter=args.num_iter, num_warmup=5, rounds=args.rounds)
                res = benchmark([src, opt], settings, labels=["original", "tfopt"])
                sig = report.signatures["serving_default"]
                rows.append((name, sig.nodes_before, sig.nodes_after, report.worst.rel,
                             res.models[0], res.models[1], ""))
                print(f"{name}: {res.models[1].verdict}", flush=True)
            except Exception as err:  # a failure is a result of the sweep, not its end
                traceback.print_exc()
                rows.append((name, None, None, None, None, None,
                             f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"))
            write(args, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def write(args, rows) -> None:
    lines = ["# keras_hub backbones no test builds", "",
             f"Machine: {summary_line()}. Batch 1, threads = cores, Grappler on, "
             f"{args.rounds} rounds (a fresh process per model and round, order alternating); "
             "ratio = tfopt's default output over the original, median throughput, 95% "
             "paired-bootstrap interval. Each model: 2 layers, width 64, random weights; "
             "generated inputs (64 tokens where the length is dynamic). Verified under oneDNN "
             "on and off (worst relative difference over both).", "",
             "| model | kind | nodes | rel diff | original samples/s | tfopt |",
             "|---|---|---:|---:|---:|---:|"]
    ratios = []
    for name, before, after, diff, orig, opt, error in rows:
        kind = CONFIGS[name][0]
        if error:
            lines.append(f"| {name} | {kind} | failed | | | {error} |")
            continue
        ratios.append(opt.ratio)
        lines.append(f"| {name} | {kind} | {before} -> {after} | {diff:.1e} | "
                     f"{orig.throughput:.1f} | {opt.interval().short()} |")
    if ratios:
        lines += ["", f"{len(ratios)} of {len(rows)} optimized and verified; geometric mean "
                      f"{geomean(ratios):.2f}x, range "
                      f"{min(ratios):.2f}x-{max(ratios):.2f}x."]
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
