"""Benchmark CNNs against TensorFlow's own chain under the CPU runtime this process runs.

Issue #37: tfopt's SavedModel must never trail TensorFlow's freeze + optimize_for_inference
on either CPU runtime. Keras applications built here (random weights, non-trivial batch-norm
statistics; pre-activation ResNet50V2 and DenseNet121, separable-conv NASNetMobile and
Xception) and a U-Net with Conv2DTranspose and skip concatenations. Same method and columns as
``run_zoo.py`` (original, tf-chain, tfopt, A/A); run it once per runtime::

    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/run_cnn_chain.py --batch 1 --out CNN_ONEDNN_OFF.md
    TF_ENABLE_ONEDNN_OPTS=1 python benchmarks/run_cnn_chain.py --batch 1 --out CNN_ONEDNN_ON.md

The chart is ``cnn_onednn_off.png`` / ``cnn_onednn_on.png`` beside the table.
"""

from __future__ import annotations

import run_zoo

from tfopt.runtime import current_runtime

MODELS = ["resnet50_v2", "densenet121", "nasnet_mobile", "xception", "unet"]

if __name__ == "__main__":
    which = "on" if current_runtime() == "onednn" else "off"
    run_zoo.run(__doc__, f"CNN_ONEDNN_{which.upper()}.md", f"cnn_onednn_{which}.png", MODELS,
                batch="1",
                title="CNNs against TensorFlow's chain")
