#!/usr/bin/env bash
# The launch scripts: both parse (bash -n); r2rec.sbatch runs with srun replaced by a stub that records its
# command line; r2rec-launch builds the mpirun line a small box needs and really runs `info` on 2 ranks.
# Usage: test_launch_scripts.sh SOURCE_DIR R2REC_BINARY
set -euo pipefail
src="$1"; bin="$2"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

bash -n "$src/launch/r2rec.sbatch" || fail "r2rec.sbatch does not parse"
bash -n "$src/launch/r2rec-launch" || fail "r2rec-launch does not parse"
bash -n "$src/launch/r2rec-resume" || fail "r2rec-resume does not parse"

# r2rec-plot: a missing metrics.jsonl is one line and exit 2; with matplotlib, a small stream becomes an SVG.
set +e; /usr/bin/python3 "$src/launch/r2rec-plot" "$tmp/nothing" 2> "$tmp/plot.err"; rc=$?; set -e
[ "$rc" = 2 ] && grep -q "metrics.jsonl" "$tmp/plot.err" || fail "r2rec-plot without metrics: exit $rc $(cat "$tmp/plot.err")"
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then
  mkdir -p "$tmp/run"
  for s in 1 2 3; do echo "{\"stage\": \"sft\", \"step\": $s, \"time\": 0, \"loss\": $((4 - s))}"; done > "$tmp/run/metrics.jsonl"
  echo '{"stage": "rl", "step": 1, "time": 0, "reward": 0.5, "hit": 0.4}' >> "$tmp/run/metrics.jsonl"
  /usr/bin/python3 "$src/launch/r2rec-plot" "$tmp/run" > /dev/null || fail "r2rec-plot failed"
  grep -q "<svg" "$tmp/run/training.svg" || fail "r2rec-plot wrote no SVG"
fi

# r2rec-resume: a command that crashes twice (SIGKILL-like 137), then succeeds and writes the DONE marker.
cat > "$tmp/flaky" <<'STUB'
#!/usr/bin/env bash
n=$(( $(cat "$1/tries" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$1/tries"
[ "$n" -ge 3 ] || exit 137
touch "$1/DONE"
STUB
chmod +x "$tmp/flaky"
"$src/launch/r2rec-resume" --retries 3 --delay 0 --done "$tmp/DONE" -- "$tmp/flaky" "$tmp" 2> "$tmp/resume.err" \
  || fail "r2rec-resume did not see the third try succeed: $(cat "$tmp/resume.err")"
[ "$(cat "$tmp/tries")" = 3 ] || fail "r2rec-resume ran $(cat "$tmp/tries") tries, not 3"
grep -q "try 1 exited 137; re-launching" "$tmp/resume.err" || fail "resume log: $(cat "$tmp/resume.err")"
rm -f "$tmp/tries" "$tmp/DONE"
if "$src/launch/r2rec-resume" --retries 1 --delay 0 -- "$tmp/flaky" "$tmp" 2>/dev/null; then
  fail "r2rec-resume must give up after its retries"
fi
[ "$(cat "$tmp/tries")" = 2 ] || fail "--retries 1 ran $(cat "$tmp/tries") tries, not 2"
set +e; "$src/launch/r2rec-resume" --delay 0 -- bash -c 'exit 2' 2>/dev/null; rc=$?; set -e
[ "$rc" = 2 ] || fail "a configuration error (exit 2) must stop at once with 2, got $rc"

# sbatch template with a recording srun.
mkdir -p "$tmp/bin"
cat > "$tmp/bin/srun" <<'STUB'
#!/usr/bin/env bash
printf '%s\n' "$*" > "$RECORD"
STUB
chmod +x "$tmp/bin/srun"
RECORD="$tmp/srun.args" PATH="$tmp/bin:$PATH" SLURM_SUBMIT_DIR="$src" SLURM_CPUS_PER_TASK=4 SLURM_JOB_ID=7 \
  SLURM_NTASKS=16 SLURM_JOB_NUM_NODES=2 R2REC_BINARY=/opt/r2rec/bin/r2rec \
  bash "$src/launch/r2rec.sbatch" rl --config configs/ml-100k.yaml rl.async=true > "$tmp/sbatch.out"
line="$(cat "$tmp/srun.args")"
for want in "--kill-on-bad-exit=1" "/opt/r2rec/bin/r2rec rl --config configs/ml-100k.yaml rl.async=true" \
            "distributed.threads=4"; do
  [[ "$line" == *"$want"* ]] || fail "srun line '$line' lacks '$want'"
done
grep -q "job 7 on 2 node(s), 16 ranks" "$tmp/sbatch.out" || fail "sbatch banner: $(cat "$tmp/sbatch.out")"
if bash "$src/launch/r2rec.sbatch" 2>/dev/null; then fail "sbatch without a command must fail"; fi

# r2rec-launch: the mpirun line, then a real 2-rank run.
dry="$("$src/launch/r2rec-launch" -n 3 -t 1 --binary "$bin" --dry-run sft --config x.yaml)"
[[ "$dry" == "mpirun -np 3 "* ]] || fail "dry run: $dry"
[[ "$dry" == *"distributed.threads=1"* ]] || fail "dry run lacks the thread count: $dry"
if [ "$(id -u)" -eq 0 ]; then [[ "$dry" == *"--allow-run-as-root"* ]] || fail "root needs --allow-run-as-root: $dry"; fi
if [ "$(nproc)" -lt 3 ]; then [[ "$dry" == *"--oversubscribe"* ]] || fail "3 ranks on $(nproc) cores need --oversubscribe"; fi
user="$("$src/launch/r2rec-launch" -n 2 --binary "$bin" --dry-run info distributed.threads=2)"
[[ "$user" != *"distributed.threads=2 distributed.threads"* ]] || fail "a user's distributed.threads is overridden: $user"
if "$src/launch/r2rec-launch" -n zero info 2>/dev/null; then fail "-n zero must be refused"; fi
out="$("$src/launch/r2rec-launch" -n 2 --binary "$bin" info --json)"
[ "$(grep -c '"rank"' <<<"$out")" -eq 2 ] || fail "info on 2 ranks printed: $out"
grep -q '"intra_op_threads":1' <<<"$out" || fail "1 thread per rank expected: $out"
# A refused config on 2 ranks: exit 2 and r2rec's one line, without Open MPI's banners. The launcher becomes mpirun
# and its stderr filter may still be writing when it exits: stderr is read through a pipe, which ends only when the
# filter has written everything.
set +e
"$src/launch/r2rec-launch" -n 2 --binary "$bin" check distributed.colocated=false 2>&1 > /dev/null | cat > "$tmp/refused.err"
rc=${PIPESTATUS[0]}; set -e
[ "$rc" = 2 ] || fail "a refused config on 2 ranks: exit $rc, not 2: $(cat "$tmp/refused.err")"
grep -q "distributed.learner_ranks" "$tmp/refused.err" || fail "no line naming the key: $(cat "$tmp/refused.err")"
! grep -qE "Primary job|mpirun detected|^-{70}" "$tmp/refused.err" || fail "Open MPI banners left: $(cat "$tmp/refused.err")"
# A rank killed by a signal keeps Open MPI's messages (the one naming the signal, which mpirun does not always
# print, or at least the one saying a process failed).
cat > "$tmp/segv" <<'STUB'
#!/usr/bin/env bash
[ "${OMPI_COMM_WORLD_RANK:-0}" = 1 ] && kill -SEGV $$
sleep 1
STUB
chmod +x "$tmp/segv"
set +e; "$src/launch/r2rec-launch" -n 2 --binary "$tmp/segv" info 2>&1 > /dev/null | cat > "$tmp/segv.err"
rc=${PIPESTATUS[0]}; set -e
[ "$rc" != 0 ] || fail "a rank killed by SIGSEGV: exit 0"
grep -qE "signal 11|non-zero exit code" "$tmp/segv.err" || fail "nothing says a rank failed: $(cat "$tmp/segv.err")"
# Rank stderr passes through the filter line by line, while the job runs (mawk buffers a pipe unless told not to).
cat > "$tmp/slow" <<'STUB'
#!/usr/bin/env bash
[ "${OMPI_COMM_WORLD_RANK:-0}" = 0 ] && echo "first line from rank 0" >&2
sleep 4
STUB
chmod +x "$tmp/slow"
"$src/launch/r2rec-launch" -n 2 --binary "$tmp/slow" info > /dev/null 2> "$tmp/slow.err" &
launcher=$!
seen=0
for _ in $(seq 25); do sleep 0.1; grep -q "first line from rank 0" "$tmp/slow.err" && { seen=1; break; }; done
wait "$launcher"
[ "$seen" = 1 ] || fail "a rank's stderr line did not pass the filter within 2.5 s of being written"
echo "launch scripts: ok"
