#!/usr/bin/env bash
# Startup cost: bare /bin/true, cordon with namespaces (auto = on here), cordon
# without namespaces, and bwrap --unshare-all, interleaved in one session.
#
#   benches/startup.sh            # 400 rounds after 30 warm-up rounds
#   RUNS=1000 WARMUP=50 benches/startup.sh
#   CORDON=/path/to/cordon benches/startup.sh     # another binary
#   HYPERFINE=0 benches/startup.sh                # skip the hyperfine cross-check
#
# Prints markdown tables (medians, ratios against the targets). No timing
# assertions: the exit status is 0 whatever the numbers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-400}
WARMUP=${WARMUP:-30}
ensure_tools
build_helpers
setup_cordon
setup_workspace
cd "$WS"

BWRAP=(bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent /bin/true)
CMDS=(bare /bin/true
    ::: cordon-ns "$CORDON_BIN" run -q -p workspace-write -- /bin/true
    ::: cordon-nsoff "$CORDON_BIN" run -q -p "$NSOFF" -- /bin/true)
((HAVE_BWRAP)) && CMDS+=(::: bwrap "$(command -v bwrap)" "${BWRAP[@]:1}")

echo "## Startup (benches/startup.sh)"
echo
machine_info
echo "- workspace: $WS; $RUNS interleaved rounds after $WARMUP warm-up rounds"
for p in workspace-write "$NSOFF"; do
    "$CORDON_BIN" run -v -p "$p" -- /bin/true 2>&1 | grep -E 'namespaces:|landlock:|seccomp:' |
        sed "s|^cordon: |- \`-p $(basename "$p")\`: |"
done
echo

run_session startup -n "$RUNS" -w "$WARMUP" -- "${CMDS[@]}"

echo "| command | median ms | p10 ms | p90 ms | CPU ms (median) | x bare |"
echo "|---|---:|---:|---:|---:|---:|"
row() {
    echo "| $2 | $(ms "$1") | $(ms "$1" p10) | $(ms "$1" p90) | $(ms "$1" cpu) | $(ratio "$1" bare) |"
}
row bare '`/bin/true`'
row cordon-ns '`cordon run -q -p workspace-write -- /bin/true` (namespaces on)'
row cordon-nsoff '`cordon run -q -p ns-off.toml -- /bin/true` (namespaces off)'
((HAVE_BWRAP)) && row bwrap '`bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent /bin/true`'
echo
echo "| ratio | target | ratio of medians | median of per-round ratios | verdict |"
echo "|---|---:|---:|---:|---|"
check() {
    local r
    r=$(ratio "$1" "$2")
    echo "| $3 | <= $4 | $r | $(pratio "$1" "$2") | $(verdict "$r" "$4") |"
}
check cordon-nsoff bare "cordon (ns off) / bare" 2.8
check cordon-nsoff bwrap "cordon (ns off) / bwrap" 0.35
check cordon-ns bwrap "cordon (ns on) / bwrap" 0.7
echo
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); raw runs: $OUT/startup.tsv"

if [ "${HYPERFINE:-1}" = 1 ] && ((HAVE_HYPERFINE)); then
    echo
    echo "Cross-check with hyperfine (not interleaved: each command's runs in one block; mean +- sd):"
    echo
    hcmds=(/bin/true "$CORDON_BIN run -q -p workspace-write -- /bin/true" "$CORDON_BIN run -q -p $NSOFF -- /bin/true")
    ((HAVE_BWRAP)) && hcmds+=("${BWRAP[*]}")
    if hyperfine -N --style none -w 20 -r 200 --export-markdown "$OUT/startup.hyperfine.md" \
        --export-json "$OUT/startup.hyperfine.json" "${hcmds[@]}" >/dev/null 2>&1; then
        sed "s|$BIN/||g; s|$BENCH_DIR/||g" "$OUT/startup.hyperfine.md"
        echo
        echo "hyperfine medians (ms, same order): $(grep -o '"median": *[0-9.e-]*' "$OUT/startup.hyperfine.json" |
            awk '{ printf "%s%.2f", sep, $2 * 1e3; sep = ", " }')"
    else
        say "warning: hyperfine failed"
    fi
fi
