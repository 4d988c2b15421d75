"""How a graph names tensors and edges."""

from tfopt.graph.names import InputRef


def test_input_ref_round_trip():
    for text in ("a", "a:1", "^a", "scope/n:12"):
        assert str(InputRef.parse(text)) == text
    assert InputRef.parse("a:1").tensor == "a:1"
    assert InputRef.parse("a").tensor == "a:0"
    assert InputRef.parse("^a").control
