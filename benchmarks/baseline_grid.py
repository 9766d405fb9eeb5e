#!/usr/bin/python3
"""Tunes the trained baselines on the validation split over a stated grid, then scores each choice once on test.

    benchmarks/baseline_grid.py --out DIR [--config configs/ml-100k.yaml] [-n RANKS] [--only itemknn,bpr]
                                [--test] [--set KEY=VALUE ...]

For every method of GRIDS (or --only), every point of its grid is trained with early stopping on the validation
split (`r2rec baseline --method M eval.split=valid KEY=VALUE...`) in one prepared run directory, DIR/run, so every
point scores the same candidate lists. The point with the best validation NDCG@10 is the choice (NDCG@10 because
early stopping reads it too: over the 20-candidate lists it is far less noisy than HR@1); with --test the choice
is scored once on the test split. --set adds overrides to every command (e.g. run.seed=1235, or a dataset's keys).

Writes DIR/grid.jsonl (one line per point: method, overrides, validation metrics, best epoch and validation curve,
seconds) and DIR/grid.md (the table docs/baselines.md quotes). A point already in grid.jsonl is not run again, so
an interrupted grid resumes. Not part of CI (ML-100K on 2 cores: item-kNN ~3 s a point, BPR-MF ~20-40 s, LightGCN
~1.5 min, SASRec 2-9 min).
"""
import argparse
import itertools
import json
import os
import subprocess
import sys
import time

# The stated grids (docs/baselines.md, "Tuning"). Each: key -> values; the grid is their product. Defaults of the
# keys not named come from the config.
GRIDS = {
    "itemknn": {
        "baseline.itemknn.neighbors": [0, 20, 50, 100, 200],
        "baseline.itemknn.shrink": [0, 10, 100],
    },
    "bpr": {
        "baseline.bpr.dim": [64, 128, 256],
        "baseline.bpr.learning_rate": [0.001, 0.005],
        "baseline.bpr.reg": [0.0001, 0.001, 0.01],
        "baseline.bpr.epochs": [300],
    },
    "lightgcn": {
        "baseline.lightgcn.layers": [2, 3],
        "baseline.lightgcn.reg": [0.0001, 0.001],
        "baseline.lightgcn.epochs": [300],
    },
    "sasrec": {
        "baseline.sasrec.max_len": [50, 200],
        "baseline.sasrec.dropout": [0.2, 0.5],
        "baseline.sasrec.epochs": [1000],
    },
}


def points(grid):
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values))


def overrides_of(point):
    return [f"{k}={v}" for k, v in point.items()]


def run(root, ranks, args, log):
    cmd = [os.path.join(root, "launch", "r2rec-launch"), "-n", str(ranks)] + args
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"baseline_grid: {' '.join(args[:3])} failed (exit {done.returncode}); see {log}")


def entry(run_dir, split, method):
    with open(os.path.join(run_dir, "report.json")) as f:
        return json.load(f)["splits"][split]["methods"][method]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=os.path.join(root, "configs", "ml-100k.yaml"))
    p.add_argument("-n", type=int, default=2, dest="ranks")
    p.add_argument("--only", default="")
    p.add_argument("--test", action="store_true", help="score each method's choice once on the test split")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE added to every command")
    a = p.parse_args()
    methods = [m for m in a.only.split(",") if m] or list(GRIDS)
    for m in methods:
        if m not in GRIDS:
            sys.exit(f"baseline_grid: --only: unknown method '{m}' (expected {', '.join(GRIDS)})")
    os.makedirs(a.out, exist_ok=True)
    run_dir, log = os.path.join(a.out, "run"), os.path.join(a.out, "grid.log")
    common = ["--config", a.config, "--run-dir", run_dir] + a.set
    run(root, a.ranks, ["prepare"] + common, log)

    results_path = os.path.join(a.out, "grid.jsonl")
    done = []
    if os.path.exists(results_path):
        with open(results_path) as f:
            done = [json.loads(line) for line in f if line.strip()]
    chosen = {}
    for m in methods:
        rows = []
        for point in points(GRIDS[m]):
            key = {"method": m, "overrides": overrides_of(point), "set": a.set}
            old = next((r for r in done if all(r.get(k) == v for k, v in key.items())), None)
            if old is None:
                t0 = time.time()
                run(root, a.ranks, ["baseline", "--method", m] + common + ["eval.split=valid"] + key["overrides"],
                    log)
                e = entry(run_dir, "valid", m)
                old = dict(key, valid={"HR@1": e["HR@1"], "NDCG@10": e["NDCG@10"]},
                           best_epoch=e.get("best_epoch", 0), valid_curve=e.get("valid_curve", []),
                           settings=e.get("settings", {}), seconds=round(time.time() - t0, 1))
                with open(results_path, "a") as f:
                    f.write(json.dumps(old) + "\n")
                done.append(old)
            print(f"{m} {' '.join(old['overrides'])}: valid HR@1 {old['valid']['HR@1']:.4f} "
                  f"NDCG@10 {old['valid']['NDCG@10']:.4f} (best epoch {old['best_epoch']}, {old['seconds']} s)")
            rows.append(old)
        best = max(rows, key=lambda r: r["valid"]["NDCG@10"])
        chosen[m] = {"rows": rows, "best": best}
        if a.test:
            run(root, a.ranks, ["baseline", "--method", m] + common + ["eval.split=test"] + best["overrides"], log)
            e = entry(run_dir, "test", m)
            best["test"] = {"HR@1": e["HR@1"], "NDCG@10": e["NDCG@10"]}
            print(f"{m} chosen {' '.join(best['overrides'])}: test HR@1 {e['HR@1']:.4f} NDCG@10 {e['NDCG@10']:.4f}")

    with open(os.path.join(a.out, "grid.md"), "w") as f:
        f.write(f"Validation grid ({a.config}; {' '.join(a.set) or 'no extra overrides'}), chosen by validation "
                f"NDCG@10; test scored once for the choice.\n\n")
        for m, c in chosen.items():
            keys = list(GRIDS[m])
            f.write(f"### {m}\n\n| " + " | ".join(k.split(".")[-1] for k in keys) +
                    " | valid HR@1 | valid NDCG@10 | best epoch | seconds | test HR@1 | test NDCG@10 |\n")
            f.write("|" + "---|" * (len(keys) + 6) + "\n")
            for r in c["rows"]:
                vals = [o.split("=", 1)[1] for o in r["overrides"]]
                test = r.get("test") if r is c["best"] else None
                mark = "**" if r is c["best"] else ""
                f.write("| " + " | ".join(vals) + f" | {mark}{r['valid']['HR@1']:.4f}{mark} | "
                        f"{mark}{r['valid']['NDCG@10']:.4f}{mark} | {r['best_epoch'] or '-'} | {r['seconds']} | "
                        + (f"{test['HR@1']:.4f} | {test['NDCG@10']:.4f}" if test else "- | -") + " |\n")
            f.write("\n")
    print(f"baseline_grid: {os.path.join(a.out, 'grid.md')}")


if __name__ == "__main__":
    main()
