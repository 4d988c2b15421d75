import tensorflow as tf

from tests.passes.helpers import graph_of
from tfopt.graph.names import InputRef
from tfopt.graph.nodes import set_attr
from tfopt.graph.view import GraphView


def test_bypass_keeps_ports_and_controls():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [4], name="x")
        a, b = tf.split(x, 2, name="split")
        guard = tf.no_op(name="guard")
        with tf.control_dependencies([guard]):
            ident = tf.identity(b, name="ident")
        tf.add(a, ident, name="out")

    view = GraphView(graph_of(build))
    view.bypass(view.nodes["ident"], [InputRef("split", 1)])
    out = view.to_graph_def()
    node = {n.name: n for n in out.node}["out"]
    assert list(node.input) == ["split", "split:1", "^guard"]




def test_colocation_follows_spliced_nodes():
    def build():
        x = tf.compat.v1.placeholder(tf.float32, [2], name="x")
        ident = tf.identity(x, name="ident")
        with tf.compat.v1.colocate_with(ident.op):
            tf.math.square(ident, name="sq")
        tf.constant(1.0, name="lonely")

    view = GraphView(graph_of(build))
    set_attr(view.nodes["lonely"], "_class", ["loc:@gone"])
    view.bypass(view.nodes["ident"], [InputRef("x")])
    view.remove(["gone"])
    nodes = {n.name: n for n in view.to_graph_def().node}
    assert list(nodes["sq"].attr["_class"].list.s) == [b"loc:@x"]
    assert "_class" not in nodes["lonely"].attr




def test_match_chain_follows_sole_readers_and_optional_steps():
    import tensorflow as tf

    from tfopt.graph.view import GraphView, Step

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        m = tf.matmul(x, tf.ones([3, 3]), name="mm")
        b = tf.nn.bias_add(m, tf.ones([3]), name="bias")
        tf.nn.relu(b, name="act")
        tf.identity(tf.nn.relu(tf.matmul(x, tf.ones([3, 3]), name="mm2"), name="r2"), name="o2")
    view = GraphView(g.as_graph_def())
    steps = [Step("bias", ("BiasAdd",), optional=True), Step("act", ("Relu",))]
    assert [(lab, n.name) for lab, n in view.match_chain(view.node("mm"), steps)] == [
        ("bias", "bias"), ("act", "act")]
    assert [lab for lab, _ in view.match_chain(view.node("mm2"), steps)] == ["act"]
    assert view.sole_reader("act") is None  # nobody reads it
    # the matcher owns the guard: a node the signature keeps is never fused away
    kept = GraphView(g.as_graph_def(), kept={"bias"})
    assert kept.match_chain(kept.node("mm"), steps) == [] and kept.keeps("bias")
    assert [lab for lab, _ in kept.match_chain(kept.node("mm2"), steps)] == ["act"]
    # the last node of a chain stays (it takes the fused op), so keeping it does not block
    last = GraphView(g.as_graph_def(), kept={"act"})
    assert [lab for lab, _ in last.match_chain(last.node("mm"), steps)] == ["bias", "act"]


