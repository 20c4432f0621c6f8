#!/usr/bin/env bash
# Instructions per call of the gateway process (all its threads) for one bench phase:
#   bench/profile/callgrind.sh PHASE [REQUESTS] [CONCURRENCY]   e.g. gateway-echo 4000 16
# Runs switchboard-bench with the gateway under valgrind's callgrind, zeroes the counters
# when the measured round starts, dumps them when the report is printed, and prints the
# figure (bench/profile/cg.py per-call). The dump is left in $OUT (default
# /tmp/switchboard-callgrind) for `cg.py self|callers|callees`.
# BIN_DIR: where switchboard, demo-worker, bare-proxy and switchboard-bench are
# (default: target/release). Needs valgrind. Takes about a minute for 4,000 calls.
set -euo pipefail
phase=$1 requests=${2:-4000} concurrency=${3:-16}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin_dir=$(cd "${BIN_DIR:-$here/../../target/release}" && pwd)
out=${OUT:-/tmp/switchboard-callgrind}
rm -rf "$out" && mkdir -p "$out/bin"
# The bench starts `BIN/switchboard serve`; this stand-in runs the real one under callgrind.
# It waits on valgrind instead of becoming it, so the bench's stop at the end does not kill
# valgrind before the dump is written.
cat > "$out/bin/switchboard" <<WRAP
#!/usr/bin/env bash
if [ "\$1" = serve ]; then
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" "$bin_dir/switchboard" "\$@" &
  wait
else
  exec "$bin_dir/switchboard" "\$@"
fi
WRAP
chmod +x "$out/bin/switchboard"
ln -s "$bin_dir/demo-worker" "$bin_dir/bare-proxy" "$out/bin/"
log=$out/bench.log
"$bin_dir/switchboard-bench" --proxy-current-thread --idle-sessions 0 --bin-dir "$out/bin" \
  --phases "$phase" --concurrency "$concurrency" --rounds 1 --requests "$requests" >"$log" 2>&1 &
bench=$!
until grep -q "round 1/1" "$log"; do
  kill -0 $bench 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.5
done
callgrind_control -z >/dev/null 2>&1
until grep -q "^|" "$log"; do
  kill -0 $bench 2>/dev/null || break
  sleep 0.2
done
sleep 1
callgrind_control -d >/dev/null 2>&1
sleep 3
wait $bench || true
pkill -f "callgrind-out-file=$out/" || true
dump=$(ls "$out"/cg.*.1)
echo "$phase, c=$concurrency: $(python3 "$here/cg.py" per-call "$dump")  ($dump)"
