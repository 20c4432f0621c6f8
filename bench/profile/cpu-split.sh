#!/usr/bin/env bash
# User and system CPU per call of one process over one bench phase's measured round:
#   bench/profile/cpu-split.sh PHASE PROCESS [CONCURRENCY] [REQUESTS]
# PROCESS is `switchboard` (the gateway) or `bare-proxy`. REQUESTS as given to the bench
# (c=1 measures a quarter of them). Reads utime and stime from /proc/PID/stat when the
# round starts and until the report is printed. BIN_DIR as in callgrind.sh.
set -euo pipefail
phase=$1 process=$2 concurrency=${3:-1} requests=${4:-80000}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin_dir=$(cd "${BIN_DIR:-$here/../../target/release}" && pwd)
log=$(mktemp)
"$bin_dir/switchboard-bench" --proxy-current-thread --idle-sessions 0 --bin-dir "$bin_dir" \
  --phases "$phase" --concurrency "$concurrency" --rounds 1 --requests "$requests" >"$log" 2>&1 &
bench=$!
until grep -q "round 1/1" "$log"; do sleep 0.05; done
pid=$(pgrep -f "^$bin_dir/$process " | head -1)
read -r user0 sys0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
user1=$user0 sys1=$sys0
until grep -q "^|" "$log"; do
  if ticks=$(awk '{print $14, $15}' "/proc/$pid/stat" 2>/dev/null); then read -r user1 sys1 <<<"$ticks"; fi
  sleep 0.05
done
wait $bench || true
calls=$(awk -F'|' '/^\| [0-9]+ \|/ {gsub(/ /, "", $4); print $4; exit}' "$log")
tick_us=$((1000000 / $(getconf CLK_TCK)))
echo "$phase $process c=$concurrency: user $(( (user1 - user0) * tick_us / calls )) µs, system $(( (sys1 - sys0) * tick_us / calls )) µs per call over $calls calls"
rm -f "$log"
