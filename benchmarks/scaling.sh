#!/usr/bin/env bash
# How cost grows with the catalog: pretraining, SFT, GRPO and eval of the default model on each dataset, 2 ranks
# x 1 thread, into one table (docs/benchmarks.md "Cost with the catalog"). About 2 minutes per dataset on the
# 2-core VM (Amazon Games: 4).
#
#   benchmarks/scaling.sh --out DIR [--build BUILD_DIR] [--datasets "ml-100k lastfm synthetic amazon-games"]
#                         [--steps N] [--users U --items I]
#
# Per dataset: prepare and annotate once (untimed; DIR/runs/<dataset>, reused by a re-run), then each stage
# alone under /usr/bin/time: pretrain N steps, SFT N steps, GRPO 3 steps (the first warms up), eval of the
# first 64 validation examples (likelihood ranking and generation). "synthetic" is a MovieLens-format catalog
# of U users x I items (benchmarks/python/synthetic_catalog.py; default 3,400 x 3,800, a 7.7k-token vocabulary).
# Writes DIR/scaling.json (a list of {dataset, vocab, stage, steps_per_s, tokens_per_s, seconds, user_s, sys_s,
# sys_share, peak_rss_mb}) and DIR/scaling.md, and prints the table. Exit 1 if a stage failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out=""
build="$root/build"
datasets="ml-100k lastfm synthetic amazon-games"
steps=40
users=3400
items=3800
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --datasets) datasets="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --users) users="$2"; shift 2 ;;
    --items) items="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scaling.sh: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "scaling.sh: --out DIR is required" >&2; exit 2; }
[ -x "$build/r2rec" ] || { echo "scaling.sh: $build/r2rec not built (cmake --build build)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "scaling.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
mkdir -p "$out/logs" "$out/runs"
out="$(cd "$out" && pwd)"
launch=("$root/launch/r2rec-launch" -n 2 -t 1 --binary "$build/r2rec")
failed=0
: > "$out/rows.tsv"

for ds in $datasets; do
  case "$ds" in
    ml-100k) cfg=(--config "$root/configs/ml-100k.yaml") ;;
    lastfm) cfg=(--config "$root/configs/lastfm.yaml") ;;
    amazon-games) cfg=(--config "$root/configs/amazon-games.yaml") ;;
    synthetic)
      data="$out/runs/synthetic-data-${users}x${items}"
      [ -f "$data/u.data" ] || /usr/bin/python3 "$here/python/synthetic_catalog.py" "$data" --users "$users" --items "$items"
      cfg=(--config "$root/configs/ml-100k.yaml" "data.name=synthetic-${users}x${items}" "data.path=$data") ;;
    *) echo "scaling.sh: unknown dataset $ds (ml-100k, lastfm, synthetic, amazon-games)" >&2; exit 2 ;;
  esac
  label="$ds"
  [ "$ds" = synthetic ] && label="synthetic-${users}x${items}"
  run="$out/runs/$label"
  common=("${cfg[@]}" --run-dir "$run" eval.split=valid)
  if [ ! -f "$run/traces/traces.h5" ]; then
    if ! { "$build/r2rec" prepare "${common[@]}" && "$build/r2rec" annotate "${common[@]}"; } > "$out/logs/$label-setup.log" 2>&1; then
      echo "scaling.sh: $label: setup failed ($out/logs/$label-setup.log)" >&2; failed=1; continue
    fi
  fi
  stage() {  # stage NAME ARGS...: one r2rec command, timed; a row "label stage run-dir seconds user sys rss_kb"
    local name="$1"; shift
    local log="$out/logs/$label-$name.log"
    if /usr/bin/time -f "%e %U %S %M" -o "$out/logs/$label-$name.time" "${launch[@]}" "$@" "${common[@]}" run.force=true \
         > "$log" 2>&1; then
      printf '%s\t%s\t%s\t%s\n' "$label" "$name" "$run" "$(tail -1 "$out/logs/$label-$name.time")" >> "$out/rows.tsv"
      echo "scaling.sh: $label $name done"
    else
      echo "scaling.sh: $label $name FAILED ($log)" >&2; failed=1
    fi
  }
  stage pretrain pretrain pretrain.steps="$steps" pretrain.save_every=0
  stage sft sft sft.max_steps="$steps" sft.save_every=0 sft.eval_every=0
  stage rl rl rl.steps=3 rl.save_every=0 rl.eval_every=0
  stage eval eval eval.max_examples=64 eval.counterfactual=false
done

/usr/bin/python3 - "$out" <<'PY' || failed=1
import json, os, re, statistics, sys
out = sys.argv[1]
rows = []
for line in open(os.path.join(out, "rows.tsv")):
    ds, stage, run, fields = line.rstrip("\n").split("\t")
    wall, user, sys_s, rss = (float(x) for x in fields.split())
    vocab = None
    m = re.search(r"vocab (\d+)", open(os.path.join(out, "logs", "%s-%s.log" % (ds, stage)), errors="replace").read())
    if m:
        vocab = int(m.group(1))
    r = {"dataset": ds, "vocab": vocab, "stage": stage, "seconds": wall, "user_s": user, "sys_s": sys_s,
         "sys_share": sys_s / max(1e-9, user + sys_s), "peak_rss_mb": rss / 1024, "steps_per_s": None,
         "tokens_per_s": None}
    try:
        if stage in ("pretrain", "sft"):
            j = json.load(open(os.path.join(run, stage, stage + ".json")))
            r["steps_per_s"] = j["steps"] / j["seconds"]
            r["tokens_per_s"] = j["tokens_per_second"]
            r["seconds"] = j["seconds"]
        elif stage == "rl":
            steps = json.load(open(os.path.join(run, "rl", "rl.json")))["per_step"][1:]
            r["seconds"] = statistics.median(s["seconds"] for s in steps)
            r["steps_per_s"] = 1.0 / r["seconds"]
    except (OSError, ValueError, KeyError, ZeroDivisionError) as e:
        print("scaling.sh: %s %s: %s" % (ds, stage, e), file=sys.stderr)
    rows.append(r)
vocabs = {r["dataset"]: r["vocab"] for r in rows if r["vocab"]}
for r in rows:
    r["vocab"] = r["vocab"] or vocabs.get(r["dataset"])
json.dump(rows, open(os.path.join(out, "scaling.json"), "w"), indent=2)
f = lambda v, p="%.3g": "" if v is None else p % v
lines = ["| dataset | vocabulary | stage | steps/s | tokens/s | seconds | system share of CPU | peak RSS (MB) |",
         "|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append("| %s | %s | %s | %s | %s | %s | %.1f%% | %.0f |" % (
        r["dataset"], f(r["vocab"], "%d"), r["stage"], f(r["steps_per_s"]), f(r["tokens_per_s"], "%.0f"),
        f(r["seconds"]), 100 * r["sys_share"], r["peak_rss_mb"]))
note = ("seconds: pretrain/sft the stage's training time, rl the median step after the first, eval the whole "
        "command; system share of the whole command (both ranks, start-up included); peak RSS of its largest process")
open(os.path.join(out, "scaling.md"), "w").write("\n".join(lines) + "\n\n" + note + "\n")
print("\n".join(lines))
PY
exit $failed
