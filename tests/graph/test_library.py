"""Function bodies as GraphDefs and back."""

import tensorflow as tf

from tfopt.graph.library import body_to_function, function_body


def test_function_body_inputs_name_the_output_arg_that_holds_them():
    """A flat ``node:k`` inside a function body becomes ``node:arg:i`` again; an empty list
    argument names no output (ParseExampleV2 without sparse keys: its first output is
    dense_values, not sparse_indices, which TensorFlow rejects as 'not found')."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def parse(examples):
        f = tf.io.parse_example(examples, {"a": tf.io.FixedLenFeature([], tf.float32),
                                           "b": tf.io.FixedLenFeature([], tf.float32)})
        return f["a"] + f["b"]

    fdef = parse.get_concrete_function().function_def
    body, results = function_body(fdef)
    again = body_to_function(fdef, body, {}, results=results)
    refs = [t for n in again.node_def if n.op == "AddV2" for t in n.input]
    assert any(":dense_values:0" in t for t in refs) and any(":dense_values:1" in t for t in refs)
    assert not any("sparse_indices" in t for t in refs)
