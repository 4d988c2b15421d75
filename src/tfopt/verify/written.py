"""Verify the written model as a whole, and when it fails, find the pass to blame.

The written model is reloaded the way a user loads it and run under every CPU runtime it must
run on (one child process each, see :mod:`tfopt.verify.isolate`); each runtime's answers are
compared with the original's under the same runtime (:class:`References`). When a signature
fails, :func:`verify_with_blame` has the caller re-run that signature's passes with every
application checked, write again, and check again; only then does it give up.
"""

from __future__ import annotations

from collections.abc import Callable

from tfopt.errors import TfoptError, VerificationError
from tfopt.graph.fusions import fusions_in
from tfopt.graph.kernels import runtimes_running
from tfopt.model.signature import SignatureGraph
from tfopt.runtime import RUNTIMES, current_runtime, runtime_label
from tfopt.verify import isolate
from tfopt.verify.compare import OutputCheck, Policy
from tfopt.verify.references import References

Checks = dict[str, list[OutputCheck]]


def runtimes_for(target: str, sigs: dict[str, SignatureGraph],
                 refs: References | None) -> list[str]:
    """Where the output must run: both CPU runtimes, unless ``native`` emitted a fusion only
    this runtime has (then this runtime, and the other only if it runs every fusion too) or
    the original itself cannot run under the other (a GPU-era NCHW pooling under Eigen)."""
    if target != "native":
        return list(RUNTIMES)
    running = runtimes_running(fusions_in(s.graph_def for s in sigs.values()))
    running = running if current_runtime() in running else [current_runtime()]
    kept = []
    for runtime in running:
        why = refs.failure_under(runtime) if refs is not None else None
        if why is None:
            kept.append(runtime)
            continue
        note = (f"the original itself fails under {runtime_label(runtime)} ({why}): the "
                f"output is verified and recorded for {runtime_label(current_runtime())} only")
        if note not in refs.notes:
            refs.notes.append(note)
    return kept


def check_written(path: str, fmt: str, sigs: dict[str, SignatureGraph], feeds,
                  refs: References, policy: Policy, runtimes: list[str],
                  say: Callable[[str], None] | None = None) -> Checks:
    """Run the written model under every runtime: the checks of each signature's outputs."""
    runs = isolate.run_written(path, fmt, sigs, feeds, runtimes, say)
    checks: Checks = {}
    for key in sigs:
        checks[key] = []
        for runtime in runtimes:
            got = runs[runtime]
            if isinstance(got, isolate.ChildFailed):
                if got.killed:  # not an answer: blaming passes would only repeat it
                    raise TfoptError(f"cannot verify {key}: {got}; nothing written")
                if why := refs.failure_under(runtime):
                    raise TfoptError(_original_fails(runtime, why, runs))
                checks[key].append(OutputCheck("(all outputs)", False, float("inf"),
                                               float("inf"), str(got), runtime))
                continue
            for check in refs.check(key, got[key], policy, runtime):
                check.runtime = runtime
                checks[key].append(check)
    return checks


def _original_fails(runtime: str, why: str, runs: dict) -> str:
    """The refusal when the original itself fails under ``runtime``: ``--target native`` is
    advice only where the written model ran under this process's runtime."""
    here = current_runtime()
    mine = runs.get(here)
    text = (f"the original model itself fails under {runtime_label(runtime)} ({why}), so no "
            "optimized form of it can run there")
    if isinstance(mine, isolate.ChildFailed):
        return (f"{text}; the optimized model fails under {runtime_label(here)} too ({mine}); "
                "nothing written")
    return (f"{text}; --target native optimizes for this machine's runtime "
            f"({runtime_label(here)}) only; nothing written")


def failing(checks: Checks) -> list[str]:
    return [key for key, found in checks.items() if not all(c.ok for c in found)]


def verify_with_blame(check: Callable[[], Checks], blame: Callable[[list[str]], None],
                      rewrite: Callable[[], None], log: Callable[[str], None]) -> Checks:
    """Check the written model; if a signature fails, ``blame`` it (re-run its passes, each
    application checked, the culprit switched off), ``rewrite`` the model and check again.
    Raises VerificationError when the second check fails too; returns the passing checks."""
    checks = check()
    bad = failing(checks)
    if not bad:
        return checks
    log(f"verification failed for {', '.join(bad)}; finding the offending pass")
    blame(bad)
    rewrite()
    checks = check()
    still = failing(checks)
    if still:
        worst = [c.describe() for key in still for c in checks[key] if not c.ok]
        raise VerificationError("optimized model differs from the original and no pass could "
                                f"be blamed: {worst[0]}; nothing written")
    return checks
