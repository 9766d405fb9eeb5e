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
echo "launch scripts: ok"
