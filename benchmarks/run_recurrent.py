"""Benchmark recurrent models: original vs TensorFlow's own tool chain vs tfopt.

Keras 3 text classifiers built here (random weights, sequence 40, vocabulary 5000): LSTM ->
GRU, a masked bidirectional LSTM, three stacked GRUs, a masked bidirectional GRU and a
bidirectional LSTM sequence tagger (see ``tfopt.zoo.builders.RECURRENT``),
exported with ``model.export`` as users ship them. Same method and columns as ``run_zoo.py``;
the batch-1 rows time tfopt's output optimized with time=False, each larger batch one
optimized with ``batch_size`` set (its timed choices on: loop_projection's gain depends on
the batch). Writes benchmarks/RECURRENT.md and benchmarks/recurrent.png (``--out``, and the
chart beside it, ``--chart``).

    python benchmarks/run_recurrent.py [--models lstm_gru] [--batch 1,8]
"""

from __future__ import annotations

import run_zoo

from tfopt.zoo.builders import RECURRENT

if __name__ == "__main__":
    run_zoo.run(__doc__, "RECURRENT.md", "recurrent.png", list(RECURRENT), batch="1,8",
                title="Recurrent models", per_batch=True)
