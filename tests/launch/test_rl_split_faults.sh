#!/usr/bin/env bash
# Faults in split GRPO, through the binary: `mpirun -np 2 r2rec rl` with 1 learner (rank 0) + 1 rollout rank
# (rank 1) on a tiny ML-100K slice. Each case waits until the victim's heartbeat (<run>/heartbeats/rank-N.hb:
# "r2rec-hb1 <time> <pid> <host>" then the phase) shows it in an RL phase, then
#   kill: SIGKILLs the rollout rank while it rolls out, sends or waits for weights;
#   stop: SIGSTOPs the learner (it stays alive, silent) while it learns or waits (trajectories, weight sync);
# and asserts that the job ends non-zero within distributed.timeout_s (8 s) + 30 s of slack, and that its
# output names the rank, its role and an RL phase. Every mpirun runs under `timeout -k 5 120`, so a failed
# watchdog fails this test instead of hanging it.
# Usage: test_rl_split_faults.sh SOURCE_DIR R2REC_BINARY
set -uo pipefail
src=$1
bin=$2
mpi=${R2REC_MPIEXEC:-mpirun}
data=${R2REC_DATA_DIR:-$src/../shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/r2rec-faults.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

args=(--config "$src/configs/ml-100k.yaml" --run-dir "$work/run" "data.path=$data/ml-100k"
      sampler.train_examples_per_user=1 sampler.num_shards=2 tokenizer.vocab_size=512 pretrain.steps=0
      model.hidden_size=32 model.num_layers=1 model.num_heads=2 model.num_kv_heads=1 model.intermediate_size=64
      sft.batch_size=8 sft.micro_batch_size=2 sft.max_steps=2 distributed.threads=1)
for stage in prepare annotate sft; do
  "$bin" "$stage" "${args[@]}" > "$work/$stage.log" 2>&1 || { cat "$work/$stage.log"; fail "$stage"; }
done
rl=(distributed.colocated=false distributed.learner_ranks=1 distributed.rollout_ranks=1 distributed.timeout_s=8
    rl.steps=100000 rl.prompts_per_step=2 rl.group_size=4 rl.micro_batch_size=4 rl.max_new_tokens=24 rl.eval_every=0
    run.force=true)  # no validation passes: the ranks would spend most of the window in them, not in the RL phases

# case MODE VICTIM_RANK ROLE PHASE_PATTERN
run_case() {
  local mode=$1 victim=$2 role=$3 pattern=$4 hb="$work/run/heartbeats/rank-$2.hb"
  rm -f "$hb"
  local start=$SECONDS
  timeout -k 5 120 "$mpi" -np 2 "$bin" rl "${args[@]}" "${rl[@]}" > "$work/$mode.out" 2> "$work/$mode.err" &
  local job=$! pid="" phase=""
  for _ in $(seq 1 600); do  # up to 60 s for the victim to reach an RL phase
    if [ -s "$hb" ]; then
      pid=$(head -n 1 "$hb" | cut -d' ' -f3)
      phase=$(sed -n 2p "$hb")
      if [[ "$phase" =~ $pattern ]]; then break; fi
    fi
    sleep 0.1
  done
  [[ "$phase" =~ $pattern ]] || { kill -KILL "$job" 2> /dev/null; cat "$work/$mode.err"; fail "$mode: rank $victim never reached /$pattern/ (last '$phase')"; }
  local hit=$SECONDS
  if [ "$mode" = kill ]; then kill -KILL "$pid"; else kill -STOP "$pid"; fi
  wait "$job"
  local rc=$? took=$((SECONDS - hit))
  [ "$mode" = stop ] && kill -KILL "$pid" 2> /dev/null
  local all
  all=$(cat "$work/$mode.out" "$work/$mode.err")
  echo "[$mode] rank $victim ($role) in phase '$phase': job exit $rc, $took s after the fault ($((SECONDS - start)) s in all)"
  echo "$all" | grep -E "rank $victim|did not answer|died|failed" | head -n 5
  [ "$rc" -ne 0 ] || fail "$mode: the job exited 0"
  [ "$rc" -ne 124 ] && [ "$took" -lt 100 ] || fail "$mode: timeout(1) had to stop the job"
  [ "$took" -le 38 ] || fail "$mode: the job took $took s after the fault (deadline 8 s + 30 s)"
  grep -q "rank $victim ($role, " <<< "$all" || fail "$mode: the output does not name rank $victim and its role ($role)"
  grep -Eq "phase '?rl " <<< "$all" || fail "$mode: the output does not name an RL phase"
}

run_case kill 1 rollout "^rl (rollout|send|weight sync)"
run_case stop 0 learner "^rl (learn|receive|weight sync)"
echo "PASS"
