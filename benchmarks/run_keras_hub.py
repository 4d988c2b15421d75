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

import os
import traceback

import harness

import tfopt
from tfopt.measure.results import Settings
from tfopt.measure.stats import geomean

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

    from tfopt.zoo.builders import randomize_batch_norm, randomize_constant_weights

    keras.utils.set_random_seed(0)
    _, cls, config = CONFIGS[name]
    model = getattr(keras_hub.models, cls)(**config)
    randomize_batch_norm(model)
    randomize_constant_weights(model)
    model.export(path, format="tf_saved_model", verbose=False)


def main() -> None:
    args = harness.arguments(__doc__, "KERAS_HUB.md", list(CONFIGS), num_iter=40, rounds=3)
    rows: list[harness.Row] = []
    with harness.workdir("tfopt-hub-") as work:
        for name in args.model_list:
            src, opt = os.path.join(work, name), os.path.join(work, name + "_tfopt")
            try:
                build(name, src)
                report = tfopt.optimize(src, opt)
                settings = Settings(num_iter=args.num_iter, num_warmup=5, rounds=args.rounds)
                row = harness.time_variants(name, 1, {"original": src, "tfopt": opt}, settings)
                sig = report.signatures["serving_default"]
                row.facts.update(nodes=f"{sig.nodes_before} -> {sig.nodes_after}",
                                 diff=f"{report.worst.rel:.1e}")
            except Exception as err:  # a failure is a result of the sweep, not its end
                traceback.print_exc()
                row = harness.Row(name, 1, {"original": None, "tfopt": None},
                                  {"error": f"{type(err).__name__}: "
                                            f"{str(err).splitlines()[0][:120]}"})
            rows.append(row)
            write(args, rows)


def write(args, rows: list[harness.Row]) -> None:
    body = []
    for r in rows:
        kind = CONFIGS[r.model][0]
        if "error" in r.facts:
            body.append([r.model, kind, "failed", "", "", "", r.facts["error"]])
        else:
            body.append([r.model, kind, r.facts["nodes"], r.facts["diff"],
                         f"{r.baseline.throughput:.1f}", r.ci(harness.AA), r.ci("tfopt")])
    done = [r for r in rows if "error" not in r.facts]
    ratios = [r.ratio("tfopt") for r in done]
    summary = [f"{len(done)} of {len(rows)} optimized and verified; geometric mean "
               f"{geomean(ratios):.2f}x, range {min(ratios):.2f}x-"
               f"{max(ratios):.2f}x."] if ratios else []
    harness.write_markdown(
        args.out, "keras_hub backbones no test builds",
        harness.METHOD.format(rounds=args.rounds) + " Batch 1. Each model: 2 layers, width 64, "
        "random weights; generated inputs (64 tokens where the length is dynamic). Verified "
        "under oneDNN on and off (worst relative difference over both).",
        [harness.table(["model", "kind", "nodes", "rel diff", "original samples/s", "A/A",
                        "tfopt"], body, [False, False, True, True, True, True, True]),
         summary])


if __name__ == "__main__":
    main()
