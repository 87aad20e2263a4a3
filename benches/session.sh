#!/usr/bin/env bash
# Sessions: the cost of one more command in a prepared sandbox, side by side
# with bare execution, a fresh `cordon run` and bwrap in one interleaved run;
# then the library's spawn + wait in-process against posix_spawn
# (examples/session_bench.rs), and the session server's memory.
#
#   benches/session.sh                 # 400 rounds after 30 warm-up rounds
#   RUNS=1000 benches/session.sh
#
# No timing assertions: the exit status is 0 whatever the numbers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-400}
WARMUP=${WARMUP:-30}
ensure_tools
build_helpers
setup_cordon
setup_workspace
cd "$WS"

# The session's socket in a directory of this script's own.
export XDG_RUNTIME_DIR=$BENCH_DIR/runtime
mkdir -p -m 0700 "$XDG_RUNTIME_DIR"
NAME=bench-$$
"$CORDON_BIN" session start -q --name "$NAME" --owner $$ >/dev/null
trap '"$CORDON_BIN" session stop "$NAME" >/dev/null 2>&1 || true' EXIT

BWRAP=(bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent /bin/true)
CMDS=(bare /bin/true
    ::: run "$CORDON_BIN" run -q -- /bin/true
    ::: session "$CORDON_BIN" session run -q "$NAME" -- /bin/true)
((HAVE_BWRAP)) && CMDS+=(::: bwrap "$(command -v bwrap)" "${BWRAP[@]:1}")

echo "## Sessions (benches/session.sh)"
echo
machine_info
echo "- workspace: $WS; $RUNS interleaved rounds after $WARMUP warm-up rounds; profile workspace-write (namespaces on)"
echo

run_session session -n "$RUNS" -w "$WARMUP" -- "${CMDS[@]}"

echo "| command | median ms | p10 ms | p90 ms | CPU ms (median) | x bare | x bwrap |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() {
    local b='-'
    ((HAVE_BWRAP)) && b=$(ratio "$1" bwrap)
    echo "| $2 | $(ms "$1") | $(ms "$1" p10) | $(ms "$1" p90) | $(ms "$1" cpu) | $(ratio "$1" bare) | $b |"
}
row bare '`/bin/true`'
row run '`cordon run -q -- /bin/true`'
row session '`cordon session run -q NAME -- /bin/true`'
((HAVE_BWRAP)) && row bwrap '`bwrap ... --unshare-all /bin/true`'
echo
if ((HAVE_BWRAP)); then
    r=$(ratio session bwrap)
    echo "- target: session run <= 0.25x bwrap: $r ($(verdict "$r" 0.25))"
fi
pid=$("$CORDON_BIN" session list --json | python3 -c "import json,sys
for l in sys.stdin:
    v=json.loads(l)
    if v['name']=='$NAME': print(v['pid'])")
echo "- the session server's memory after $((RUNS + WARMUP)) commands: RSS $(awk '/VmRSS/{print $2, $3}' /proc/"$pid"/status) (target: under 10 MiB)"
echo

EXAMPLE=$REPO/target/x86_64-unknown-linux-gnu/release/examples/session_bench
if [ ! -x "$EXAMPLE" ]; then
    (cd "$REPO" && cargo build --release --example session_bench >&2)
fi
CORDON_LAUNCHER=$CORDON_BIN "$EXAMPLE" "$RUNS"
echo
echo "- target: the library's spawn + wait <= 2x bare posix_spawn"
