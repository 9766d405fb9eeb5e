#!/usr/bin/env bash
# Every benchmark of the hot paths on this machine, each against a baseline measured in the same run, into one
# table (docs/benchmarks.md). About 7 minutes on the 2-core VM.
#
#   benchmarks/run_all.sh --out DIR [--build BUILD_DIR]
#
# Writes DIR/results.json — a list of {name, unit, ours, baseline, ratio, runs, median, min, max, goal, what,
# machine, commit} — DIR/results.md (the table) and DIR/logs/<benchmark>.log. ours/median/min/max are over the
# runs of ours; ratio = ours / baseline (for a time, baseline / ours: above 1 is better either way); goal is
# what the ratio (chains_per_s: ours) should reach. A benchmark that fails is reported as missing and the script
# exits 1 after writing what it has.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
out=""
build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "run_all.sh: --out DIR is required" >&2; exit 2; }
[ -x "$build/r2rec" ] || { echo "run_all.sh: $build/r2rec not built (cmake --build build)" >&2; exit 2; }
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi="mpirun -np 2 --bind-to none"
b="$build/benchmarks"
failed=0
step() {  # step NAME COMMAND...: runs it, its output to logs/NAME.log
  local name="$1"; shift
  local t0=$SECONDS
  if "$@" > "$out/logs/$name.log" 2>&1; then
    echo "run_all: $name ($((SECONDS - t0)) s)"
  else
    echo "run_all: $name FAILED ($((SECONDS - t0)) s; $out/logs/$name.log)" >&2
    failed=1
  fi
}

# A small run directory the SFT and GRPO benchmarks read: ML-100K shards, traces, the learnt tokenizer, an SFT
# checkpoint of a few steps (the model shape of configs/ml-100k.yaml).
run="$out/run"
common=(--config "$root/configs/ml-100k.yaml" --run-dir "$run" pretrain.steps=0 distributed.threads=1)
prep() {
  "$build/r2rec" prepare "${common[@]}" && "$build/r2rec" annotate "${common[@]}" &&
    $mpi "$build/r2rec" sft "${common[@]}" sft.max_steps=20 sft.eval_every=0
}
step setup prep

step chains "$b/bench_chains" --benchmark_repetitions=5
step shard_reader "$b/bench_shard_reader"
step fwd_bwd "$b/bench_transformer" --threads 1 --reps 5
# The chunked LM head loss against [positions, V] logits, at four vocabulary sizes (pretraining's micro-batch).
step lm_head "$b/bench_lm_head" --reps 5
# GRPO-shaped decode: 8 prompts x 8 completions = 64 rows, ML-100K-length prompts.
step decode "$b/bench_generate" --threads 1 --reps 5 --batch 8 --group 8 --prompt 384 --new 64
step allreduce $mpi "$b/bench_allreduce" 5
step sft "$b/bench_sft" --run-dir "$run" --steps 6 --python
step sft_packed "$b/bench_sft" --run-dir "$run" --steps 6 --pack
step sft_np2 $mpi "$b/bench_sft" --run-dir "$run" --steps 6
# One GRPO run of 6 steps on 2 ranks (colocated): its per-step time and the rollout/reward/learner/sync split.
step grpo $mpi "$build/r2rec" rl "${common[@]}" rl.steps=6 rl.save_every=0 rl.eval_every=0 run.force=true

commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(free -g | awk '/Mem:/{print $2}') GiB"
/usr/bin/python3 - "$out" "$commit" "$machine" "$run/rl/rl.json" <<'PY' || failed=1
import glob, json, os, statistics, sys
out, commit, machine, rl_json = sys.argv[1:5]
found = {}
for log in sorted(glob.glob(os.path.join(out, "logs", "*.log"))):
    for line in open(log, errors="replace"):
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            found[r["name"]] = r
results = []
def add(r, goal):
    r = dict(r)
    r["goal"] = goal
    r["machine"], r["commit"] = machine, commit
    results.append(r)
goals = {"sft_tokens_per_s": 1.5, "fwd_bwd_tokens_per_s": None, "decode_tokens_per_s": 2.0,
         "generate_tokens_per_s": None, "decode_copy_lookup_tokens_per_s": None,
         "learner_shared_prompt_speedup": None, "allreduce_bus_bw": 0.9,
         "chains_per_s": 2e6, "shard_read_headroom": None}
lm_head = ["lm_head_steps_per_s_V%d" % v for v in (3328, 7744, 18496, 67000)]
goals.update({name: 1.0 for name in lm_head})
for name in ["sft_tokens_per_s", "fwd_bwd_tokens_per_s", "decode_tokens_per_s", "generate_tokens_per_s",
             "decode_copy_lookup_tokens_per_s", "learner_shared_prompt_speedup",
             "allreduce_bus_bw", "chains_per_s", "shard_read_headroom"] + lm_head:
    if name in found:
        add(found[name], goals[name])
    else:
        add({"name": name, "unit": "", "ours": None, "baseline": None, "ratio": None, "runs": 0,
             "median": None, "min": None, "max": None, "what": "missing: the benchmark failed (see logs/)"},
            goals[name])
one, two = found.get("sft_step_s_np1"), found.get("sft_step_s_np2")
if one and two:  # same per-rank batch: ideal scaling keeps the step time
    add({"name": "weak_scaling_2", "unit": "s per step (2 ranks)", "ours": two["median"],
         "baseline": one["median"], "ratio": one["median"] / two["median"], "runs": min(one["runs"], two["runs"]),
         "median": two["median"], "min": two["min"], "max": two["max"],
         "what": "SFT step, same per-rank batch, 2 ranks vs 1 rank; ratio = t(1) / t(2)"}, 0.9)
packed = found.get("sft_step_s_np1_packed")
if one and packed:
    add({"name": "sft_packing_speedup", "unit": "s per step (packed)", "ours": packed["median"],
         "baseline": one["median"], "ratio": one["median"] / packed["median"], "runs": min(one["runs"], packed["runs"]),
         "median": packed["median"], "min": packed["min"], "max": packed["max"],
         "what": "SFT step with sft.packing vs padded micro-batches, 1 rank; ratio = t(padded) / t(packed)"}, None)
try:
    steps = json.load(open(rl_json))["per_step"][1:]  # the first step warms up
    med = lambda k: statistics.median([s[k] for s in steps])
    t = [s["seconds"] for s in steps]
    add({"name": "grpo_step_s", "unit": "s", "ours": med("seconds"), "baseline": None, "ratio": None,
         "runs": len(t), "median": med("seconds"), "min": min(t), "max": max(t),
         "what": "GRPO step, 8 prompts x 8 completions, 2 ranks colocated; median split: rollout %.2f s "
                 "(reward %.3f s), learner %.2f s, sync %.2f s" % (med("rollout_seconds"), med("reward_seconds"),
                                                                  med("learner_seconds"), med("sync_seconds"))},
        None)
except (OSError, ValueError, KeyError, IndexError) as e:
    print("run_all: grpo_step_s missing (%s)" % e, file=sys.stderr)
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
fmt = lambda v: "" if v is None else ("%.4g" % v)
lines = ["# r2rec benchmarks", "", "machine: %s; commit %s" % (machine, commit), "",
         "| name | unit | ours (median) | baseline | ratio | goal | runs | min | max | what |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for r in results:
    goal = r["goal"]
    met = ""
    if goal is not None:
        v = r["ours"] if r["name"] == "chains_per_s" else r["ratio"]
        met = "" if v is None else (" (met)" if v >= goal else " (not met)")
    lines.append("| %s | %s | %s | %s | %s | %s%s | %s | %s | %s | %s |" % (
        r["name"], r["unit"], fmt(r["ours"]), fmt(r["baseline"]), fmt(r["ratio"]),
        "" if goal is None else ("%.3g" % goal), met, r["runs"], fmt(r["min"]), fmt(r["max"]), r["what"]))
open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
exit $failed
