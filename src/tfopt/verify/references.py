"""Does an optimized graph still answer like the original?

:class:`References` holds the original's answers on the verification inputs, per CPU runtime;
:class:`SignatureVerifier` is the question the pipeline's checked re-run asks of each pass
application. The optimizer's stages use both; they live here so that what "answers alike"
means is read in one place.
"""

from __future__ import annotations

import numpy as np

from tfopt.errors import TfoptError, first_line
from tfopt.model.signature import LoadedModel, SignatureGraph
from tfopt.runtime import current_runtime, runtime_label
from tfopt.verify import isolate
from tfopt.verify.compare import OutputCheck, Policy, compare
from tfopt.verify.runners import run_graph_def


class References:
    """The original's outputs on the verification inputs, per CPU runtime.

    This process's runtime answers from the original as loaded here. Another runtime's answers
    are computed (in a child, once) only when an optimized output there differs from them: a
    model whose own answers differ between runtimes (a saturated softmax of random weights
    flips its argmax under oneDNN off) is then compared with itself under the same runtime,
    instead of failing every pass."""

    def __init__(self, model: LoadedModel, feeds: dict, local: dict[str, dict]):
        self.model, self.feeds, self.local = model, feeds, local
        self.frozen = dict(model.signatures)  # before any pass: for a bare GraphDef or .keras
        self._under: dict[str, dict | isolate.ChildFailed] = {}  # the original's runs
        self.notes: list[str] = []
        # Outputs that answer the same whatever the input: their checks prove nothing.
        self.constant: dict[str, list[str]] = {}

    @classmethod
    def record(cls, model: LoadedModel, feeds: dict[str, dict],
               inputs_file: str | None = None) -> References:
        """Run the original (as TensorFlow loads it) on every signature's inputs, here
        (``inputs_file``: where they came from; None: generated)."""
        local = {}
        for key in model.signatures:
            try:
                local[key] = model.reference(key, feeds[key])
            except Exception as err:
                advice = ("(they are the samples you gave: check them against what the model "
                          "expects)" if inputs_file else "(give inputs with --inputs-file, "
                          "--input-shape or --int-range)")
                raise TfoptError(
                    f"the original model fails on "
                    f"{inputs_file or 'the generated inputs'} of signature {key!r}: "
                    f"{first_line(err)} {advice}") from None
        refs = cls(model, feeds, local)
        for key, sig in model.signatures.items():
            if sig.same_as in refs.constant:  # the same graph: the same answer, said once
                refs.constant[key] = refs.constant[sig.same_as]
                continue
            refs.notes.extend(non_finite(key, local[key]))
            refs.constant[key] = constant_outputs(model, key, feeds[key], local[key])
            if refs.constant[key]:
                refs.notes.append(
                    f"[{key}] output(s) {', '.join(refs.constant[key])} answer the same on "
                    "every verification input: they do not depend on the inputs there (random "
                    "weights can saturate), so their check shows the value is kept, not that "
                    "the computation is; verify on real samples (--inputs-file)")
        return refs

    def check(self, key: str, got: dict, policy: Policy, runtime: str) -> list[OutputCheck]:
        checks = self._check(key, got, policy, runtime)
        for c in checks:
            c.constant = c.key in self.constant.get(key, ())
        return checks

    def _check(self, key: str, got: dict, policy: Policy, runtime: str) -> list[OutputCheck]:
        checks = compare(self.local[key], got, policy)
        if all(c.ok for c in checks) or runtime == current_runtime():
            return checks
        other = self.original_under(runtime)
        if other is None or key not in other:
            return checks
        again = compare(other[key], got, policy)
        if not all(c.ok for c in again):
            return checks
        own = max(c.rel for c in compare(self.local[key], other[key], policy))
        note = (f"[{key}] the original itself answers differently under "
                f"{runtime_label(runtime)} (relative difference {own:.3g} from "
                f"{runtime_label(current_runtime())}): there the output is compared with the "
                "original run under the same runtime")
        if note not in self.notes:
            self.notes.append(note)
        return again

    def _run_under(self, runtime: str) -> dict | isolate.ChildFailed:
        """The original run under ``runtime`` in a child, once: its outputs per signature,
        or how it failed."""
        if runtime not in self._under:
            if self.model.format.loads_by_path:
                runs = isolate.run_saved_model_under(self.model.path, self.feeds, [runtime])
            else:
                runs = isolate.run_graph_def_under(self.frozen, self.feeds, [runtime])
            self._under[runtime] = runs[runtime]
        return self._under[runtime]

    def original_under(self, runtime: str) -> dict | None:
        """The original's outputs per signature under ``runtime`` (None if it fails there)."""
        got = self._run_under(runtime)
        return None if isinstance(got, isolate.ChildFailed) else got

    def failure_under(self, runtime: str) -> str | None:
        """Why the original itself cannot run under ``runtime`` (None: it runs there)."""
        if runtime == current_runtime():
            return None
        got = self._run_under(runtime)
        return str(got) if isinstance(got, isolate.ChildFailed) else None


def non_finite(key: str, answers: dict[str, np.ndarray]) -> list[str]:
    """Notes for float outputs the original answers with NaN or Inf on (finite) inputs: they
    are compared position by position (NaN must stay NaN, Inf the same Inf), and say so."""
    notes = []
    for name, value in answers.items():
        value = np.asarray(value)
        if value.dtype.kind == "f" and value.size and not np.isfinite(value).all():
            bad = int(np.count_nonzero(~np.isfinite(value)))
            notes.append(f"[{key}] the original's output {name!r} is NaN or Inf on {bad} of "
                         f"{value.size} values on finite inputs: those positions must stay "
                         "the same non-finite value; the rest are compared as usual")
    return notes


def varied(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Other valid inputs of the same shapes: each input's values rotated by one place (ids
    stay in their range, serialized protos stay whole); None when that changes nothing."""
    out = {k: np.roll(np.asarray(v).reshape(-1), 1).reshape(np.shape(v)) for k, v in
           feeds.items()}
    same = all(np.array_equal(out[k], np.asarray(v)) for k, v in feeds.items())
    return None if same else out


def constant_outputs(model: LoadedModel, key: str, feeds: dict[str, np.ndarray],
                     answers: dict[str, np.ndarray]) -> list[str]:
    """The float outputs of signature ``key`` that are identical on every verification input:
    across the samples of a batch, or (one sample) on inputs :func:`varied` from it."""
    batches = {len(v) for v in feeds.values() if np.ndim(v)}
    floats = {k: np.asarray(v) for k, v in answers.items()
              if np.asarray(v).dtype.kind == "f" and np.asarray(v).size > 1}
    if not floats:
        return []
    if len(batches) == 1 and min(batches) >= 2:
        n = batches.pop()
        return sorted(k for k, v in floats.items() if v.ndim and len(v) == n
                      and (v == v[:1]).all())
    other = varied(feeds)
    if other is None:
        return []
    try:
        again = model.reference(key, other)
    except Exception:  # the rotated inputs are not valid for this model: no evidence
        return []
    return sorted(k for k, v in floats.items() if k in again
                  and np.array_equal(np.asarray(again[k]), v))


class SignatureVerifier:
    """Answers for the pipeline's checked re-run: does this graph still answer like the
    original, under every runtime the output must run on? (None: yes; else why not.)"""

    def __init__(self, sig: SignatureGraph, feeds, refs: References, policy: Policy | float,
                 runtimes: list[str]):
        self.sig, self.feeds, self.refs = sig, feeds, refs
        self.policy, self.runtimes = Policy.of(policy), runtimes

    def baseline(self, graph_def) -> str | None:
        """The frozen graph before any pass, run in this process and then under every runtime
        the output must run on: if it already differs, the difference comes from freezing or
        float rounding (one runtime's kernels against the other's), and no pass is to blame."""
        got = run_graph_def(self.sig.with_graph(graph_def), self.feeds)
        bad = [c.describe() for c in compare(self.refs.local[self.sig.key], got, self.policy)
               if not c.ok]
        problem = bad[0] if bad else self(graph_def)
        if problem is None:
            return None
        return (f"the frozen graph of {self.sig.key!r}, before any pass, already differs from "
                f"the original: {problem}; the tolerance ({self.policy.tolerance:g}) is "
                "tighter than float rounding after freezing allows; nothing written")

    def __call__(self, graph_def) -> str | None:
        key = self.sig.key
        runs = isolate.run_graph_def_under({key: self.sig.with_graph(graph_def)},
                                           {key: self.feeds}, self.runtimes)
        for runtime, got in runs.items():
            if isinstance(got, isolate.ChildFailed):
                return str(got)
            bad = [c for c in self.refs.check(key, got[key], self.policy, runtime)
                   if not c.ok]
            if bad:
                return f"{bad[0].describe()} [{runtime_label(runtime)}]"
        return None
