"""first_line: the reason of a TensorFlow error, not its framing."""

import numpy as np
import pytest
import tensorflow as tf

from tfopt.errors import first_line


def test_first_line_skips_tensorflow_framing():
    @tf.function
    def gather(i):
        return tf.gather(tf.constant([1.0, 2.0, 3.0]), i)

    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        gather(tf.constant(7))
    assert str(info.value).startswith("Graph execution error:")
    assert first_line(info.value).startswith("indices = 7 is not in [0, 3)")

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.int32, [])
        y = tf.gather(tf.constant([1.0, 2.0]), x)
    with tf.compat.v1.Session(graph=g) as sess, pytest.raises(tf.errors.OpError) as info:
        sess.run(y, {x: np.int32(5)})
    assert first_line(info.value).startswith("indices = 5 is not in [0, 2)")
    assert first_line(ValueError()) == "ValueError"
