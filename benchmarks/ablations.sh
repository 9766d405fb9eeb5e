#!/usr/bin/env bash
# The ML-100K ablations of docs/training.md: the default run (configs/ml-100k.yaml) and one change at a time, the
# same budget for each, scored on the same stored candidate lists of the validation split: ablations are choices,
# and choices are made on validation (docs/evaluation.md); --split test scores a finished choice once. Not part of
# CI (~6-10 min per variant on a 2-core VM, ~1 h in all).
#
#   benchmarks/ablations.sh --out DIR [-n RANKS] [--only NAME[,NAME...]] [--split valid|test]
#
# Writes DIR/<variant>/ (each a whole run directory) and DIR/ablations.md: one row per variant with llm-base,
# llm-sft (direct-form likelihood and generation), llm-rl where RL runs in full, and the reasoning checks
# (grounded, consistent, the counterfactual test) of the last stage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/.."
out=""
ranks=2
only=""
split=valid
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -n) ranks="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --split) split="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ablations.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "ablations.sh: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"

# name | what changes | overrides (the SFT-only variants keep one RL step: their llm-rl row is not reported)
variants=(
  "default|configs/ml-100k.yaml as shipped|"
  "no-chains|no chains in the prompt (K = 0)|sampler.chains_per_example=0 rl.steps=1"
  "answer-only|SFT on answers only, no reasoning (task.direct_share=1)|task.direct_share=1 rl.steps=1"
  "votes-traces|the votes tally where it picks the target, evidence elsewhere (task.trace_form=votes)|task.trace_form=votes rl.steps=1"
  "no-pretrain|SFT from scratch (pretrain.steps=0)|pretrain.steps=0 rl.steps=1"
  "bpr-init|item rows from BPR-MF's factors (pretrain.init_items=bpr)|pretrain.init_items=bpr rl.steps=1"
  "unweighted|answer tokens weigh 1 like the reasoning (sft.answer_weight=1)|sft.answer_weight=1 rl.steps=1"
  "backward-chains|prompt chains written the way citations read them (task.chain_layout=backward)|task.chain_layout=backward"
  "reading-docs|walks read back in the evidence form in the corpus (pretrain.reading_per_user=4)|pretrain.reading_per_user=4 pretrain.seq_len=256 pretrain.batch_size=16 pretrain.micro_batch_size=8"
)

for v in "${variants[@]}"; do
  IFS='|' read -r name what overrides <<<"$v"
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then continue; fi
  echo "== $name: $what"
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$root/launch/r2rec-launch" -n "$ranks" run --config "$root/configs/ml-100k.yaml" --run-dir "$out/$name" \
    eval.split="$split" $overrides > "$out/$name.log" 2>&1
  echo "$(( $(date +%s) - start ))" > "$out/$name.seconds"
done

/usr/bin/python3 - "$out" "$split" <<'EOF'
import json, os, sys
out, split = sys.argv[1], sys.argv[2]
rows = []
for name in ["default", "no-chains", "answer-only", "votes-traces", "no-pretrain", "bpr-init", "unweighted",
             "backward-chains", "reading-docs"]:
    path = os.path.join(out, name, "report.json")
    if not os.path.exists(path):
        continue
    m = json.load(open(path))["splits"][split]["methods"]
    get = lambda k, metric="HR@1": m[k][metric] if k in m else float("nan")
    secs = open(os.path.join(out, name + ".seconds")).read().strip() if os.path.exists(os.path.join(out, name + ".seconds")) else "?"
    full = name in ("default", "backward-chains", "reading-docs")  # the others stop after one RL step
    rl = "%.4f" % get("llm-rl-gen") if full else "-"
    last = "llm-rl-gen" if full else "llm-sft-gen"  # the reasoning checks of the last stage run in full
    rows.append("| %s | %.4f | %.4f | %.4f | %.4f | %s | %.3f | %.3f | %.3f / %.3f | %s s |" % (
        name, get("llm-base-gen"), get("llm-sft"), get("llm-sft", "NDCG@10"), get("llm-sft-gen"), rl,
        get(last, "grounded"), get(last, "consistent"), get(last, "cf_cited"), get(last, "cf_uncited"), secs))
with open(os.path.join(out, "ablations.md"), "w") as f:
    f.write("| variant | llm-base-gen HR@1 | llm-sft HR@1 (direct) | llm-sft NDCG@10 | llm-sft-gen HR@1 | llm-rl-gen HR@1"
            " | grounded | consistent | cf_cited / cf_uncited | wall |\n")
    f.write("|---|---|---|---|---|---|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
print(open(os.path.join(out, "ablations.md")).read())
EOF
