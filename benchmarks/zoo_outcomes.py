"""What ``optimize`` makes of each model in a folder, as JSON, to compare two versions of tfopt.

A restructuring must not change what tfopt does: node counts, op counts per signature, the
passes that changed something and by how much, the worst difference of every output under
each runtime, and the notes. Run it once with each version on the same built models
(``tfopt zoo`` builds them) and diff the two files::

    PYTHONPATH=/path/to/old/checkout/src python benchmarks/zoo_outcomes.py MODELS old.json
    python benchmarks/zoo_outcomes.py MODELS new.json
    python benchmarks/zoo_outcomes.py --compare old.json new.json

No timing (``time=False``: the speed check's verdict moves with the machine's load); XLA is
asked ``on`` for ``digits_transformer`` so the cluster's candidate is built too.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

EXTRA = {"digits_transformer": {"xla": "on"}, "toy_tf2": {"int_range": (0, 50)}}


def outcomes(models_dir: str) -> dict:
    import tfopt

    result = {}
    for name in sorted(os.listdir(models_dir)):
        dst = tempfile.mkdtemp() + "/o"
        try:
            report = tfopt.optimize(os.path.join(models_dir, name), dst, time=False,
                                    **EXTRA.get(name, {}))
            d = report.to_dict()
            result[name] = {
                "nodes": report.node_totals(),
                "ops_after": {k: s["ops_after"] for k, s in d["signatures"].items()},
                "worst": {k: [(c["key"], c.get("runtime"), round(c["rel"], 12))
                              for c in s["checks"]] for k, s in d["signatures"].items()},
                "passes": {k: [(p["name"], p["node_delta"], p["ops_delta"])
                               for p in s["passes"] if p["applied"]]
                           for k, s in d["signatures"].items()},
                "notes": report.notes}
        except Exception as err:  # noqa: BLE001 (recorded: a failure is an outcome too)
            result[name] = {"error": str(err)[:300]}
        shutil.rmtree(os.path.dirname(dst), ignore_errors=True)
        print(name, "done", flush=True)
    return result


def compare(old: dict, new: dict) -> list[str]:
    """A markdown table, one row per model, and the differences below it."""
    rows = ["| model | nodes (old) | nodes (new) | op counts | worst difference (old / new) "
            "| passes | notes |", "|---|---|---|---|---|---|---|"]
    for name in sorted(old):
        o, n = old[name], new.get(name, {"error": "missing"})
        if "error" in o or "error" in n:
            rows.append(f"| {name} | {o.get('error', '')} | {n.get('error', '')} | | | | |")
            continue
        worst = [max((c[2] for s in x["worst"].values() for c in s), default=0.0)
                 for x in (o, n)]
        same = {f: "same" if o[f] == n[f] else "DIFFERENT"
                for f in ("ops_after", "passes", "notes")}
        rows.append(f"| {name} | {o['nodes'][0]} -> {o['nodes'][1]} | {n['nodes'][0]} -> "
                    f"{n['nodes'][1]} | {same['ops_after']} | {worst[0]:.2e} / {worst[1]:.2e} "
                    f"| {same['passes']} | {same['notes']} |")
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        with open(sys.argv[2]) as f, open(sys.argv[3]) as g:
            print("\n".join(compare(json.load(f), json.load(g))))
    else:
        with open(sys.argv[2], "w") as f:
            json.dump(outcomes(sys.argv[1]), f, indent=1, sort_keys=True, default=str)
