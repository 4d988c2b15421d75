"""Graph passes: one pass per module, each a pure GraphDef -> GraphDef step.

The order, phases and descriptions are in :mod:`tfopt.passes.registry` (one table, importable
without TensorFlow); :mod:`tfopt.passes.pipeline` runs them to a fixed point and accounts for
each; :mod:`tfopt.passes.base` says what a pass is given and returns.
"""
