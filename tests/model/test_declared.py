"""saved_model.pb's declared signatures read without TensorFlow agree with TensorFlow's own
reading (names, dtypes, shapes), for TF1 and TF2 exports."""

import subprocess
import sys

import tensorflow as tf

from tfopt.model.declared import declared_signatures
from tfopt.model.saved_model import read_saved_model_proto, serving_meta_graph, shape_tuple


def _by_tensorflow(path: str) -> dict:
    meta = serving_meta_graph(read_saved_model_proto(path))

    def specs(tensors) -> dict:
        return {k: (tf.as_dtype(t.dtype).name, shape_tuple(t.tensor_shape))
                for k, t in tensors.items()}

    return {k: (specs(sd.inputs), specs(sd.outputs)) for k, sd in meta.signature_def.items()
            if not k.startswith("__")}


def test_declared_signatures_match_tensorflows_reading(toy_tf1, toy_tf2, keras_resnet,
                                                       two_signatures):
    for path in (toy_tf1, toy_tf2, keras_resnet, two_signatures):
        mine = {k: ({n: (s.dtype, s.shape) for n, s in i.items()},
                    {n: (s.dtype, s.shape) for n, s in o.items()})
                for k, (i, o) in declared_signatures(path).items()}
        assert mine == _by_tensorflow(path), path


def test_it_needs_no_tensorflow(toy_tf1, tmp_path):
    code = ("import sys; from tfopt.model.declared import declared_signatures; "
            f"assert declared_signatures({toy_tf1!r}); assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff")  # corrupt: None, no error
    assert declared_signatures(str(tmp_path)) is None
