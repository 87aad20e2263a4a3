#!/usr/bin/env bash
# Where one launch spends its time: the median duration of each phase of
# `cordon run -- /bin/true`, from the launcher's own marks (CORDON_TIMINGS=1,
# src/timing.rs), for namespaces on and off. A phase is the time since the
# previous mark; "child-setup" and "child-exec" are the launcher waiting for the
# child (its namespaces, mounts, Landlock and seccomp), "payload" is /bin/true
# running and the tree ending.
#
#   benches/phases.sh                 # 200 launches per mode
#   RUNS=500 benches/phases.sh
#   CORDON=/path/to/cordon benches/phases.sh
#
# No timing assertions: the exit status is 0 whatever the numbers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-200}
ensure_tools
setup_cordon
setup_workspace
cd "$WS"

echo "## Launch phases (benches/phases.sh)"
echo
machine_info
echo "- $RUNS launches per mode of \`cordon run -q -p PROFILE -- /bin/true\` in $WS; medians in µs"
echo
MARKS=$OUT/phases.marks
for p in workspace-write "$NSOFF"; do
    # The marks go to a file: a reader started beside each launch would compete
    # with it for the CPUs.
    : >"$MARKS"
    for _ in $(seq "$RUNS"); do
        CORDON_TIMINGS=1 "$CORDON_BIN" run -q -p "$p" -- /bin/true 2>>"$MARKS" >/dev/null || true
    done
    grep '^cordon-timing: ' "$MARKS" | python3 -c '
import sys, statistics
title = sys.argv[1]
phases, order, prev = {}, [], 0
for line in sys.stdin:
    _, t, name = line.split(maxsplit=2)
    t, name = int(t), name.strip()
    if name == "arguments":
        prev = 0
    phases.setdefault(name, []).append(t - prev)
    prev = t
    if name not in order:
        order.append(name)
print(f"### {title}\n\n| phase | median µs |\n|---|---:|")
total = 0
for n in order:
    m = statistics.median(phases[n])
    total += m
    print(f"| {n} | {m:.0f} |")
print(f"| **sum of medians** | **{total:.0f}** |\n")
' "-p $(basename "$p")"
done
