#!/usr/bin/env bash
# Alternating runs of two builds, so that a host whose speed drifts during the runs (as
# these VMs' do, by up to 1.5x within an hour) weighs on both alike:
#   bench/profile/ab.sh DIR_A DIR_B [RUNS] [-- BENCH_ARGS...]
# Each DIR holds switchboard, demo-worker, bare-proxy and switchboard-bench (copy them from
# target/release after each build). RUNS (default 2) runs of each, A first, each with
# `--proxy-current-thread --idle-sessions 0` and BENCH_ARGS. Prints the gateway (or bare
# proxy) CPU per call of every run, phase by phase, then p99 added at c=16; keeps each run's
# full report in $OUT (default /tmp/switchboard-ab).
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
# The phase table's rows: | c | phase | requests | errors | req/s | p50 | p99 | CPU ± | …
python3 - "$out" "$runs" <<'PY'
import re, sys
out, runs = sys.argv[1], int(sys.argv[2])
row = re.compile(r"^\| (\d+) \| ((?:gateway|floor): [^|]+?) \|(?:[^|]*\|){5} ([0-9.]+) ±")
p99 = re.compile(r"^\| p99 added latency[^|]*\| (\d+) \| (-?\d+) µs")
cpu, added, order = {}, {}, []
for side in "ab":
    for run in range(1, runs + 1):
        for line in open(f"{out}/{side}-{run}.md", encoding="utf-8"):
            if m := row.match(line):
                key = (int(m[1]), m[2])
                if key not in cpu:
                    cpu[key] = {"a": [], "b": []}
                    order.append(key)
                cpu[key][side].append(m[3])
            elif m := p99.match(line):
                added.setdefault(int(m[1]), {"a": [], "b": []})[side].append(m[2])
print("| c | Phase | A (µs/call) | B (µs/call) |")
print("|---:|---|---|---|")
for key in sorted(order, key=lambda k: (k[0], order.index(k))):
    print(f"| {key[0]} | {key[1]} | {' / '.join(cpu[key]['a'])} | {' / '.join(cpu[key]['b'])} |")
for c, sides in sorted(added.items()):
    print(f"| {c} | p99 added (µs) | {' / '.join(sides['a'])} | {' / '.join(sides['b'])} |")
PY
