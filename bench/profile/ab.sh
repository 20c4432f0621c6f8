#!/usr/bin/env bash
# Alternating runs of two builds, so that a host whose speed drifts during the runs (as
# these VMs' do, by up to 1.5x within an hour) weighs on both alike:
#   bench/profile/ab.sh DIR_A DIR_B [RUNS] [-- BENCH_ARGS...]
# Each DIR holds switchboard, demo-worker, bare-proxy and switchboard-bench (copy them from
# target/release after each build). RUNS (default 2) runs of each, A first, each with
# `--proxy-current-thread --idle-sessions 0` and BENCH_ARGS. Prints the gateway (or bare
# proxy) CPU per call of every run, phase by phase, with its ratios against the bare proxy
# in that run; keeps each run's full report in $OUT (default /tmp/switchboard-ab).
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
dir_a=$(cd "$1" && pwd) dir_b=$(cd "$2" && pwd)
shift 2
runs=2
if [ $# -gt 0 ] && [ "$1" != -- ]; then runs=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = -- ] && shift
out=${OUT:-/tmp/switchboard-ab}
mkdir -p "$out"
for run in $(seq "$runs"); do
  for side in a b; do
    dir=$dir_a; [ $side = b ] && dir=$dir_b
    echo "run $run $side ($(date +%T))" >&2
    "$dir/switchboard-bench" --proxy-current-thread --idle-sessions 0 --bin-dir "$dir" "$@" \
      >"$out/$side-$run.md" 2>&1
  done
done
# The phase table's rows: | c | phase | calls | errors | req/s | p50 | p99 | CPU ± tick
# | worker | load | CPU ÷ proxy's | req/s ÷ proxy's | req/s ÷ direct | p99 − direct |
python3 - "$out" "$runs" <<'PY'
import sys
out, runs = sys.argv[1], int(sys.argv[2])
seen, order = {}, []
for side in "ab":
    for run in range(1, runs + 1):
        for line in open(f"{out}/{side}-{run}.md", encoding="utf-8"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 14 or not cells[0].isdigit():
                continue
            if not cells[1].startswith(("gateway:", "floor:")):
                continue
            key = (int(cells[0]), cells[1])
            if key not in seen:
                seen[key] = {"a": [], "b": []}
                order.append(key)
            cpu = cells[7].split(" ±")[0]
            seen[key][side].append(f"{cpu} µs ({cells[10]}×, {cells[11]}× req/s)")
print("| c | Phase | A: CPU per call (÷ proxy's CPU, ÷ proxy's req/s) | B |")
print("|---:|---|---|---|")
for key in sorted(order, key=lambda k: (k[0], order.index(k))):
    a, b = (" / ".join(seen[key][s]) for s in "ab")
    print(f"| {key[0]} | {key[1]} | {a} | {b} |")
PY
