#!/usr/bin/env bash
# The slowest tests of the last nextest run, from its JUnit report: where `make test`'s
# time goes, printed at the end of every run.
#
#   deploy/local/slowest.sh target/nextest/ci/junit.xml 10
set -euo pipefail
report="${1:?usage: $0 <junit.xml> [count]}"
count="${2:-10}"
[ -f "$report" ] || { echo "[slowest] no report at $report" >&2; exit 1; }
python3 - "$report" "$count" <<'PY'
import sys
import xml.etree.ElementTree as ElementTree

report, count = sys.argv[1], int(sys.argv[2])
cases = [
    (float(case.get("time", "0")), case.get("classname", ""), case.get("name", ""))
    for case in ElementTree.parse(report).iter("testcase")
]
total = sum(seconds for seconds, _, _ in cases)
print(f"\nslowest {min(count, len(cases))} of {len(cases)} tests ({total:.0f} s of test time in all):")
for seconds, binary, name in sorted(cases, reverse=True)[:count]:
    print(f"  {seconds:7.1f} s  {binary} {name}")
PY
