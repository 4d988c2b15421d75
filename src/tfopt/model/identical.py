"""Signatures that freeze to the same graph are optimized and stored once."""

from __future__ import annotations

from tensorflow.core.framework import graph_pb2

from tfopt.model.signature import SignatureGraph


def mark_identical(sigs: dict[str, SignatureGraph]) -> None:
    """Signatures over the same function (Keras 3 exports ``serve`` and ``serving_default``)
    freeze to the same graph: mark later ones so they are optimized and stored once."""
    seen: dict[tuple, str] = {}
    # Signatures frozen once (load_tf2) hold one graph object: no digest is needed then (it
    # serialises every weight, 1.1 GB at a time for a large embedding table).
    distinct = {id(s.graph_def) for s in sigs.values() if not s.same_as}
    for key, sig in sigs.items():
        if sig.same_as:
            continue
        nodes, functions = (canonical_form(sig.graph_def) if len(distinct) > 1
                            else ((id(sig.graph_def),), ()))
        ident = (nodes, functions,
                 tuple(sorted((k, v.tensor) for k, v in sig.inputs.items())),
                 tuple(sorted((k, v.tensor) for k, v in sig.outputs.items())),
                 tuple(sig.init_ops), sig.method_name)
        if ident in seen:
            # The same graph: hold one copy (a large model's weights are most of it).
            first = sigs[seen[ident]]
            sig.same_as, sig.graph_def, sig.weights = first.key, first.graph_def, first.weights
        else:
            seen[ident] = key


def canonical_form(graph_def: graph_pb2.GraphDef) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Nodes (their digests) and library functions (their bytes), sorted, with function names
    replaced by a hash
    of their body: each trace names its functions anew (``__inference_f_379`` vs ``_412``)."""
    import hashlib

    from tensorflow.core.framework import function_pb2

    from tfopt.graph.library import renamed_refs as renamed

    lib = graph_def.library.function
    blank = {f.signature.name: "" for f in lib}
    digest, bodies = {}, []
    for fn in lib:
        copy = function_pb2.FunctionDef()
        copy.CopyFrom(fn)
        copy.signature.name = ""
        nodes = [renamed(n, blank) for n in copy.node_def]
        del copy.node_def[:]
        copy.node_def.extend(nodes)
        body = copy.SerializeToString(deterministic=True)
        digest[fn.signature.name] = hashlib.sha1(body).hexdigest()
        bodies.append(body)
    # Digests, not the bytes: a large model's nodes are its weights, and the caller keeps
    # what this returns for every distinct signature.
    nodes = tuple(sorted(hashlib.sha1(_traced(renamed(n, digest)).SerializeToString(
        deterministic=True)).digest() for n in graph_def.node))
    return nodes, tuple(sorted(bodies))


def _traced(node):
    """``node`` without what tracing names differently each time: a captured weight's
    placeholder is ``_user_specified_name`` "241" in one trace and "258" in the next (a Keras
    export's ``serve`` and ``serving_default``, frozen twice for it)."""
    if "_user_specified_name" in node.attr:
        del node.attr["_user_specified_name"]
    return node
