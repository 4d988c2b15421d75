"""How ``optimize`` times models against each other: alternating blocks in a few fresh
processes holding them all (the speed check, and every choice's candidates)."""

from __future__ import annotations

from collections.abc import Callable

from tfopt.measure import stats
from tfopt.measure.results import Settings
from tfopt.measure.worker import feeds_for, run_round

INTERLEAVED_PROCESSES = 3  # per set; which model loads first alternates between them
INTERLEAVED_BLOCKS = 10    # alternating blocks per model and process (at most)
BLOCK_SECONDS = 0.25       # each block at least this long (and at least one call)
INTERLEAVED_BUDGET = 40.0  # seconds of timed blocks in all: fewer blocks for a slow model
MIN_BLOCKS = 4


def blocks_for(seconds_per_call: float, processes: int = INTERLEAVED_PROCESSES,
               models: int = 2) -> int:
    """Blocks per model and process: :data:`INTERLEAVED_BLOCKS` while a block is a quarter
    second of calls (~15 s of timing in all), fewer for a model whose one call is longer, so
    that the timing stays near :data:`INTERLEAVED_BUDGET` (a 2 s call: 3 blocks would do,
    4 are kept for the interval; before, 10 blocks of two such calls were 4 minutes)."""
    block = max(BLOCK_SECONDS, seconds_per_call)
    fit = int(INTERLEAVED_BUDGET / (models * processes * block))
    return max(MIN_BLOCKS, min(INTERLEAVED_BLOCKS, fit))


def time_interleaved(paths: list[str], key: str, feeds: dict,
                     say: Callable[[str], None] | None = None,
                     processes: int = INTERLEAVED_PROCESSES
                     ) -> tuple[list[list[float]], ...]:
    """Calls/s of signature ``key`` of two (or more) models on ``feeds``, in alternating
    blocks inside each of ``processes`` fresh processes holding them all: per model, one list
    of block rates per process, paired block by block (:func:`stats.paired_ratio`). Several
    candidates timed at once against the first (``--format auto``'s runtimes) share one set
    of processes and blocks, so their ratios are comparable and the timing costs one run.

    This is how ``optimize`` times two models (the speed check against the original,
    ``--xla auto``, ``--precision auto``), with the same worker as :func:`benchmark`: on a
    shared machine the load changes from second to second and a process's placement moves a
    model by 10-20% (an A/A of one model with a fresh process per model and round measured
    0.86x [0.82-0.96] here), so a process per model let a disturbed round or two decide
    (BERT's compiled cluster: 0.80x [0.75-1.25] in one optimize, 1.24x [1.13-1.47] in
    another). Blocks a quarter of a second apart in one process see the same load and
    placement; the processes, loading the models in alternating order, keep a process's luck
    from deciding. Blocks per process follow the call's length (:func:`blocks_for`)."""
    settings = Settings(num_warmup=3, signature=key)
    rates: list[list[list[float]]] = [[] for _ in paths]
    chosen: list[int] = []  # blocks, chosen in the first process from a warm call's length

    def plan(slowest: float) -> tuple[list[int], float]:
        if not chosen:
            chosen.append(blocks_for(slowest, processes, len(paths)))
        return [1] * chosen[0], BLOCK_SECONDS

    n = len(paths)
    for p in range(processes):
        order = [(p + i) % n for i in range(n)]  # which model loads first rotates
        # ``feeds`` are keyed like the first model's inputs (the original's signature)
        _, timed = run_round(paths, order, settings,
                              lambda spec, m: feeds_for(spec, feeds, feeds, paths[m], paths[0]),
                              plan)
        for m in range(n):
            rates[m].append([stats.round_throughput(t, 1) for t in timed[m]])
        if say:
            ratios = ", ".join(
                f"{stats.median([b / a for a, b in zip(rates[0][-1], rates[m][-1], strict=True)]):.2f}x"
                for m in range(1, n))
            say(f"  process {p + 1}/{processes}: {ratios} over {chosen[0]} block pairs")
    return tuple(rates)
