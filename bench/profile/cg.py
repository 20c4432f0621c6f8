#!/usr/bin/env python3
"""Reads a callgrind output file of the gateway (bench/profile/callgrind.sh writes one).

  cg.py per-call FILE                 instructions per call; calls counted by the execution
                                      ids the gateway minted (two per call)
  cg.py self FILE CALLS [TOP]         functions by their own instructions, per call
  cg.py callers FILE REGEX CALLS      who calls functions matching REGEX, with what it cost
  cg.py callees FILE REGEX CALLS      what functions matching REGEX call, with what it cost

callgrind_annotate does not read the per-part dumps that `callgrind_control -d` writes
with compressed names, so this reads the format itself.
"""
import collections
import re
import sys

FN = re.compile(r"^(c?)fn=\((\d+)\)(?: (.*))?$")


def records(path):
    """Yields (function, callee or None, cost, calls) for each cost line."""
    names, fn, cfn, calls = {}, None, None, None
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = FN.match(line)
            if m:
                if m.group(3):
                    names[m.group(2)] = m.group(3)
                name = names.get(m.group(2), m.group(2))
                if m.group(1):
                    cfn = name
                else:
                    fn = name
                continue
            m = re.match(r"^calls=(\d+)", line)
            if m:
                calls = int(m.group(1))
                continue
            if line and (line[0].isdigit() or line[0] in "+-*"):
                parts = line.split()
                if len(parts) >= 2:
                    if calls is None:
                        yield fn, None, int(parts[1]), 0
                    else:
                        yield fn, cfn, int(parts[1]), calls
                calls = None


def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    return None


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    if cmd == "per-call":
        ids = sum(c for _, callee, _, c in records(path) if callee and callee.endswith("switchboard::exec::new_id"))
        calls = ids // 2
        t = total(path)
        print(f"instructions {t}  calls {calls}  per call {t / calls:.0f}" if calls else f"instructions {t}; no calls found")
        return
    if cmd == "self":
        calls, top = float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 40
        own = collections.Counter()
        for fn, callee, cost, _ in records(path):
            if callee is None:
                own[fn] += cost
        whole = sum(own.values())
        print(f"{whole / calls:9.0f}  all")
        for name, cost in own.most_common(top):
            print(f"{cost / calls:9.0f}  {100 * cost / whole:5.1f} %  {name[:150]}")
        return
    if cmd in ("callers", "callees"):
        pattern, calls = re.compile(sys.argv[3]), float(sys.argv[4])
        cost_by, count_by = collections.Counter(), collections.Counter()
        for fn, callee, cost, n in records(path):
            if callee is None:
                continue
            subject, other = (callee, fn) if cmd == "callers" else (fn, callee)
            if pattern.search(subject or ""):
                cost_by[other] += cost
                count_by[other] += n
        for name, cost in cost_by.most_common(30):
            print(f"{cost / calls:9.0f}  {count_by[name] / calls:6.2f} calls  {name[:150]}")
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
