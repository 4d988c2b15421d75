"""An SSD detector on an Inception-v2-style backbone, built as the TF1 Object Detection API
exports ``ssd_inception_v2_coco`` — with random but realistic weights, since nothing can be
downloaded.

What it carries, like the real export: a ``uint8`` ``image_tensor`` of any size resized to
300x300; 77 Conv2D + FusedBatchNorm + Relu6 units (69 in the backbone, 8 in the SSD extra
layers); 10 inception blocks joined by ConcatV2 with 7 AvgPool and 5 MaxPool; a depthwise conv
in the separable stem; box and class predictors on 6 feature maps (1917 anchors); anchor
decoding and non-max suppression; ``VariableV2`` weights read through Identity nodes; Saver
save/restore nodes; exported with the v1 SavedModel builder under ``serving_default`` with the
API's four outputs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

NUM_CLASSES = 90
IMAGE_SIZE = 300
# (feature map, anchors per location): 19*19*3 + (100 + 25 + 9 + 4 + 1) * 6 = 1917 anchors.
FEATURE_MAPS = (("Mixed_4c", 19, 3), ("Mixed_5c", 10, 6), ("extra_1", 5, 6), ("extra_2", 3, 6),
                ("extra_3", 2, 6), ("extra_4", 1, 6))


class _Builder:
    """Creates variables the way TF1 slim did: VariableV2 + '/read' Identity, seeded values."""

    def __init__(self, seed: int, depth: float):
        self.rng = np.random.default_rng(seed)
        self.depth = depth

    def ch(self, n: int) -> int:
        return max(8, int(n * self.depth))

    def var(self, name: str, value: np.ndarray) -> tf.Tensor:
        return tf.compat.v1.get_variable(name, initializer=tf.compat.v1.constant_initializer(
            value.astype(np.float32)), shape=value.shape, use_resource=False)

    def conv(self, x, out: int, k: int, name: str, stride: int = 1, padding: str = "SAME",
             separable: bool = False):
        """Conv2D (optionally after a depthwise conv) + FusedBatchNorm + Relu6, slim style."""
        with tf.compat.v1.variable_scope(name):
            c_in = int(x.shape[-1])
            if separable:
                dw = self.var("depthwise_weights", self.rng.normal(
                    0, np.sqrt(2.0 / (k * k)), (k, k, c_in, 1)))
                x = tf.nn.depthwise_conv2d(x, dw, [1, stride, stride, 1], padding)
                k, stride = 1, 1
            w = self.var("weights", self.rng.normal(0, np.sqrt(2.0 / (k * k * c_in)),
                                                    (k, k, c_in, out)))
            y = tf.nn.conv2d(x, w, stride, padding)
            with tf.compat.v1.variable_scope("BatchNorm"):
                beta = self.var("beta", self.rng.normal(0, 0.1, out))
                mean = self.var("moving_mean", self.rng.normal(0.2, 0.2, out))
                var = self.var("moving_variance", self.rng.uniform(0.5, 2.0, out))
                gamma = tf.ones([out])  # slim's inception BN has scale=False
                y = tf.raw_ops.FusedBatchNorm(x=y, scale=gamma, offset=beta, mean=mean,
                                              variance=var, epsilon=1e-3,
                                              is_training=False).y
            return tf.nn.relu6(y, name="Relu6")

    def predictor(self, x, out: int, name: str, bias: float = 0.0, scale: float = 0.02):
        with tf.compat.v1.variable_scope(name):
            c_in = int(x.shape[-1])
            w = self.var("weights", self.rng.normal(0, scale, (3, 3, c_in, out)))
            b = self.var("biases", self.rng.normal(bias, 0.1, out))
            return tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b)


def _mixed(b: _Builder, x, name: str, c1, c3r, c3, d3r, d3, pool_proj, pool: str = "avg"):
    """Inception-v2 block: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | pool-1x1, concatenated."""
    with tf.compat.v1.variable_scope(name):
        b0 = b.conv(x, b.ch(c1), 1, "Branch_0/Conv2d_0a_1x1")
        b1 = b.conv(x, b.ch(c3r), 1, "Branch_1/Conv2d_0a_1x1")
        b1 = b.conv(b1, b.ch(c3), 3, "Branch_1/Conv2d_0b_3x3")
        b2 = b.conv(x, b.ch(d3r), 1, "Branch_2/Conv2d_0a_1x1")
        b2 = b.conv(b2, b.ch(d3), 3, "Branch_2/Conv2d_0b_3x3")
        b2 = b.conv(b2, b.ch(d3), 3, "Branch_2/Conv2d_0c_3x3")
        pool_fn = tf.nn.avg_pool2d if pool == "avg" else tf.nn.max_pool2d
        b3 = pool_fn(x, 3, 1, "SAME", name="Branch_3/Pool")
        b3 = b.conv(b3, b.ch(pool_proj), 1, "Branch_3/Conv2d_0b_1x1")
        return tf.concat([b0, b1, b2, b3], 3)


def _reduction(b: _Builder, x, name: str, c3r, c3, d3r, d3):
    """Inception-v2 grid reduction: 1x1-3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""
    with tf.compat.v1.variable_scope(name):
        b0 = b.conv(x, b.ch(c3r), 1, "Branch_0/Conv2d_0a_1x1")
        b0 = b.conv(b0, b.ch(c3), 3, "Branch_0/Conv2d_1a_3x3", stride=2)
        b1 = b.conv(x, b.ch(d3r), 1, "Branch_1/Conv2d_0a_1x1")
        b1 = b.conv(b1, b.ch(d3), 3, "Branch_1/Conv2d_0b_3x3")
        b1 = b.conv(b1, b.ch(d3), 3, "Branch_1/Conv2d_1a_3x3", stride=2)
        b2 = tf.nn.max_pool2d(x, 3, 2, "SAME", name="Branch_2/MaxPool_1a_3x3")
        return tf.concat([b0, b1, b2], 3)


def _anchors() -> np.ndarray:
    """[1917, 4] anchors (ycenter, xcenter, h, w) in normalised coordinates."""
    anchors = []
    scales = np.linspace(0.2, 0.95, len(FEATURE_MAPS))
    for (_, size, per_loc), scale in zip(FEATURE_MAPS, scales, strict=True):
        ratios = [1.0, 2.0, 0.5] if per_loc == 3 else [1.0, 2.0, 0.5, 3.0, 1 / 3, 1.0]
        centers = (np.arange(size) + 0.5) / size
        for cy in centers:
            for cx in centers:
                for i, r in enumerate(ratios):
                    s = scale if i < len(ratios) - 1 or per_loc == 3 else min(1.0, scale * 1.4)
                    anchors.append((cy, cx, s / np.sqrt(r), s * np.sqrt(r)))
    return np.asarray(anchors, np.float32)


def build_graph(seed: int = 0, depth: float = 1.0):
    """Build the detector in the current default graph; returns (image_tensor, outputs)."""
    b = _Builder(seed, depth)
    image = tf.compat.v1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
    with tf.compat.v1.variable_scope("Preprocessor"):
        x = tf.cast(image, tf.float32)
        x = tf.compat.v1.image.resize_bilinear(x, [IMAGE_SIZE, IMAGE_SIZE])
        x = x * (2.0 / 255.0) - 1.0
    endpoints = {}
    with tf.compat.v1.variable_scope("FeatureExtractor/InceptionV2"):
        x = b.conv(x, b.ch(64), 7, "Conv2d_1a_7x7", stride=2, separable=True)
        x = tf.nn.max_pool2d(x, 3, 2, "SAME", name="MaxPool_2a_3x3")
        x = b.conv(x, b.ch(64), 1, "Conv2d_2b_1x1")
        x = b.conv(x, b.ch(192), 3, "Conv2d_2c_3x3")
        x = tf.nn.max_pool2d(x, 3, 2, "SAME", name="MaxPool_3a_3x3")
        x = _mixed(b, x, "Mixed_3b", 64, 64, 64, 64, 96, 32)
        x = _mixed(b, x, "Mixed_3c", 64, 64, 96, 64, 96, 64)
        x = _reduction(b, x, "Mixed_4a", 128, 160, 64, 96)
        x = _mixed(b, x, "Mixed_4b", 224, 64, 96, 96, 128, 128)
        x = _mixed(b, x, "Mixed_4c", 192, 96, 128, 96, 128, 128)
        endpoints["Mixed_4c"] = x
        x = _mixed(b, x, "Mixed_4d", 160, 128, 160, 128, 160, 96)
        x = _mixed(b, x, "Mixed_4e", 96, 128, 192, 160, 192, 96)
        x = _reduction(b, x, "Mixed_5a", 128, 192, 192, 256)
        x = _mixed(b, x, "Mixed_5b", 352, 192, 320, 160, 224, 128)
        x = _mixed(b, x, "Mixed_5c", 352, 192, 320, 192, 224, 128, pool="max")
        endpoints["Mixed_5c"] = x
        for i, depth_out in enumerate((512, 256, 256, 128), start=1):
            x = b.conv(x, b.ch(depth_out // 2), 1, f"extra_{i}/Conv2d_1x1")
            x = b.conv(x, b.ch(depth_out), 3, f"extra_{i}/Conv2d_3x3_s2", stride=2)
            endpoints[f"extra_{i}"] = x
    boxes, classes = [], []
    for i, (name, _, per_loc) in enumerate(FEATURE_MAPS):
        with tf.compat.v1.variable_scope(f"BoxPredictor_{i}"):
            feat = endpoints[name]
            enc = b.predictor(feat, per_loc * 4, "BoxEncodingPredictor")
            cls = b.predictor(feat, per_loc * (NUM_CLASSES + 1), "ClassPredictor", bias=-4.0)
            boxes.append(tf.reshape(enc, [-1, tf.shape(enc)[1] * tf.shape(enc)[2] * per_loc, 4]))
            classes.append(tf.reshape(cls, [-1, tf.shape(cls)[1] * tf.shape(cls)[2] * per_loc,
                                            NUM_CLASSES + 1]))
    with tf.compat.v1.variable_scope("Postprocessor"):
        enc = tf.concat(boxes, 1)
        logits = tf.concat(classes, 1)
        anchors = tf.constant(_anchors())
        ty, tx, th, tw = tf.unstack(enc, axis=2)
        ycenter = ty / 10.0 * anchors[:, 2] + anchors[:, 0]
        xcenter = tx / 10.0 * anchors[:, 3] + anchors[:, 1]
        h = tf.exp(th / 5.0) * anchors[:, 2]
        w = tf.exp(tw / 5.0) * anchors[:, 3]
        decoded = tf.stack([ycenter - h / 2, xcenter - w / 2, ycenter + h / 2, xcenter + w / 2], 2)
        decoded = tf.clip_by_value(decoded, 0.0, 1.0)
        scores = tf.sigmoid(logits)[:, :, 1:]
        nms = tf.image.combined_non_max_suppression(
            tf.expand_dims(decoded, 2), scores, max_output_size_per_class=100,
            max_total_size=100, iou_threshold=0.6, score_threshold=1e-8, clip_boxes=False)
    outputs = {
        "detection_boxes": tf.identity(nms.nmsed_boxes, name="detection_boxes"),
        "detection_scores": tf.identity(nms.nmsed_scores, name="detection_scores"),
        "detection_classes": tf.identity(nms.nmsed_classes + 1.0, name="detection_classes"),
        "num_detections": tf.identity(tf.cast(nms.valid_detections, tf.float32),
                                      name="num_detections"),
    }
    return image, outputs


def build_ssd_inception(export_dir: str, seed: int = 0, depth: float = 1.0) -> None:
    """Export the detector as a TF1 SavedModel (``serving_default``, tag ``serve``)."""
    graph = tf.Graph()
    with graph.as_default():
        image, outputs = build_graph(seed, depth)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(export_dir)
            sig = tf.compat.v1.saved_model.predict_signature_def(
                inputs={"inputs": image}, outputs=outputs)
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": sig}, saver=saver)
            builder.save()
