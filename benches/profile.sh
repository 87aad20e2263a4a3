#!/usr/bin/env bash
# Where does cordon's startup time go? Four views, each printed as markdown:
#
#  1. A ladder of cordon subcommands, interleaved with the same harness as
#     startup.sh: each rung adds one pipeline stage, so the differences of the
#     medians are the stages' costs, unperturbed by any tracer.
#  2. The kernel building blocks, measured one at a time (benches/c/pieces.c):
#     clone with namespaces, mounts, Landlock, seccomp (cordon's own filters,
#     captured with strace and replayed), capabilities, path resolution.
#  3. Syscall counts per run (strace -f -c; counts are exact, strace's times are not).
#  4. CPU samples per run (perf record -e cpu-clock -g, software clock: this VM
#     has no hardware counters), grouped by syscall (kernel) and by crate or
#     module (user space), in microseconds per run.
#
#   benches/profile.sh                 # RUNS=200 ladder rounds, PERF_RUNS=300
#   PERF=0 STRACE=0 benches/profile.sh # ladder and pieces only
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-200}
PERF_RUNS=${PERF_RUNS:-300}
ensure_tools
build_helpers pieces
setup_cordon
setup_workspace
cd "$WS"
C=$CORDON_BIN

echo "## Startup profile (benches/profile.sh)"
echo
machine_info
echo "- workspace: $WS"
echo

# ---- 1. the ladder ----
run_session ladder -n "$RUNS" -w 10 -- \
    true /bin/true ::: \
    llref "$BIN/llref" /bin/true ::: \
    llref-n "$BIN/llref" -n /bin/true ::: \
    version "$C" --version ::: \
    list "$C" profile list ::: \
    check "$C" profile check workspace-write ::: \
    dry-ns "$C" run --dry-run -q -p workspace-write -- /bin/true ::: \
    dry-off "$C" run --dry-run -q -p "$NSOFF" -- /bin/true ::: \
    run-ns "$C" run -q -p workspace-write -- /bin/true ::: \
    run-off "$C" run -q -p "$NSOFF" -- /bin/true

d() { awk -v a="$(stat_of "$1" med)" -v b="$(stat_of "$2" med)" 'BEGIN { printf "%.2f", (a - b) / 1e3 }'; }
dc() { awk -v a="$(stat_of "$1" cpu)" -v b="$(stat_of "$2" cpu)" 'BEGIN { printf "%.2f", (a - b) / 1e3 }'; }
echo "### 1. Ladder ($RUNS interleaved rounds; medians)"
echo
echo "| rung | command | wall ms | CPU ms |"
echo "|---|---|---:|---:|"
echo "| true | \`/bin/true\` | $(ms true) | $(ms true cpu) |"
echo "| llref | Landlock (1 rule) + seccomp (1 filter) + exec | $(ms llref) | $(ms llref cpu) |"
echo "| llref-n | the same in user+mount+PID+IPC namespaces (unshare + fork) | $(ms llref-n) | $(ms llref-n cpu) |"
echo "| version | \`cordon --version\` | $(ms version) | $(ms version cpu) |"
echo "| list | \`cordon profile list\` (7 TOML parses, 17 kB) | $(ms list) | $(ms list cpu) |"
echo "| check | \`cordon profile check workspace-write\` (load + Policy::new) | $(ms check) | $(ms check cpu) |"
echo "| dry-ns | \`cordon run --dry-run -p workspace-write\` (+ probe, plan, Landlock ruleset, BPF, env) | $(ms dry-ns) | $(ms dry-ns cpu) |"
echo "| dry-off | the same, namespaces off | $(ms dry-off) | $(ms dry-off cpu) |"
echo "| run-ns | \`cordon run -p workspace-write -- /bin/true\` | $(ms run-ns) | $(ms run-ns cpu) |"
echo "| run-off | the same, namespaces off | $(ms run-off) | $(ms run-off cpu) |"
echo
echo "| stage (difference of medians) | ns on: wall ms | CPU ms | ns off: wall ms | CPU ms |"
echo "|---|---:|---:|---:|---:|"
echo "| exec of cordon, runtime and clap (version - true) | $(d version true) | $(dc version true) | same | |"
echo "| profile load + Policy::new (check - version) | $(d check version) | $(dc check version) | same | |"
echo "| probe, plan, Landlock ruleset + rules, BPF compile, env (dry - check) | $(d dry-ns check) | $(dc dry-ns check) | $(d dry-off check) | $(dc dry-off check) |"
echo "| spawn to exit: clone/fork, mounts, payload setup, exec + run of /bin/true, cleanup (run - dry) | $(d run-ns dry-ns) | $(dc run-ns dry-ns) | $(d run-off dry-off) | $(dc run-off dry-off) |"
echo "| ... of which /bin/true itself (true) | $(ms true) | $(ms true cpu) | $(ms true) | $(ms true cpu) |"
echo "| total over bare (run - true) | $(d run-ns true) | $(dc run-ns true) | $(d run-off true) | $(dc run-off true) |"
echo
echo "(\`profile list\` - \`--version\` = $(d list version) ms for 7 parses of 17 kB of TOML; \`run -p workspace-write\` parses 5.4 kB of it.)"
echo

# ---- 1b. launch and teardown ----
# The payload is benches/c/stamp: it prints CLOCK_MONOTONIC at the top of its main().
BW=(/usr/bin/bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all --die-with-parent)
stamp_cmds=(bare "$BIN/stamp" ::: llref "$BIN/llref" "$BIN/stamp" ::: llref-n "$BIN/llref" -n "$BIN/stamp"
    ::: cordon-ns "$C" run -q -p workspace-write -- "$BIN/stamp" ::: cordon-off "$C" run -q -p "$NSOFF" -- "$BIN/stamp")
((HAVE_BWRAP)) && stamp_cmds+=(::: bwrap "$(command -v bwrap)" "${BW[@]:1}" "$BIN/stamp")
run_session stamps -t -n "$RUNS" -w 10 -- "${stamp_cmds[@]}"
echo "### 1b. Launch and teardown ($RUNS interleaved rounds; medians, ms)"
echo
echo "The payload prints CLOCK_MONOTONIC at the top of its main(): *to main* is spawn to that point (exec of"
echo "the launcher, all its preparation, the payload's exec and dynamic loading), *teardown* is from there"
echo "until the launcher has been reaped (the payload's exit, the launcher noticing, its cleanup and exit)."
echo
echo "| launcher | total | to main | teardown | to main - bare | teardown - bare |"
echo "|---|---:|---:|---:|---:|---:|"
for v in bare llref llref-n cordon-ns cordon-off bwrap; do
    [ "$(stat_of $v med)" = nan ] && continue
    awk -v n="$v" -v t="$(stat_of $v med)" -v m="$(stat_of $v inner)" -v a="$(stat_of $v after)" \
        -v bm="$(stat_of bare inner)" -v ba="$(stat_of bare after)" \
        'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", n, t / 1e3, m / 1e3, a / 1e3, (m - bm) / 1e3, (a - ba) / 1e3 }'
done
echo

# ---- 2. the pieces ----
SECCOMP_TRACE=$OUT/seccomp.strace
if command -v strace >/dev/null; then
    strace -f -v -e trace=seccomp -o "$SECCOMP_TRACE" "$C" run -q -p "$NSOFF" -- /bin/true || true
fi
echo "### 2. Kernel building blocks (benches/c/pieces.c, medians)"
echo
echo "| piece | us | what |"
echo "|---|---:|---|"
"$BIN/pieces" -r 200 ${SECCOMP_TRACE:+$( [ -s "$SECCOMP_TRACE" ] && echo -s "$SECCOMP_TRACE")} "$WS" |
    sed -n 's/^PIECE \(.*[^ ]\) \{1,\}\([0-9.-]\{1,\}\)  # \(.*\)$/| \1 | \2 | \3 |/p'
echo

# ---- 3. syscall counts ----
if [ "${STRACE:-1}" = 1 ] && command -v strace >/dev/null; then
    echo "### 3. Syscalls per run (strace -f -c; counts exact, times not shown: strace inflates each call)"
    echo
    for mode in ns off; do
        p=workspace-write
        [ $mode = off ] && p=$NSOFF
        "$C" run -q -p "$p" -- /bin/true
        strace -f -c -o "$OUT/syscalls-$mode.txt" "$C" run -q -p "$p" -- /bin/true
    done
    join_counts() {
        awk 'FNR == 1 { f++ } /^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/ { n = $NF; c[n, f] = $4; names[n] = 1 }
             /^-+ / { next } END { for (n in names) if (n != "total") printf "%s %d %d\n", n, c[n, 1], c[n, 2] }' \
            "$OUT/syscalls-ns.txt" "$OUT/syscalls-off.txt" | sort -k3,3nr -k2,2nr
    }
    echo "| syscall | ns on | ns off |"
    echo "|---|---:|---:|"
    join_counts | head -25 | awk '{ printf "| %s | %d | %d |\n", $1, $2, $3 }'
    join_counts | awk '{ a += $2; b += $3 } END { printf "| **total** | %d | %d |\n", a, b }'
    echo
fi

# ---- 4. perf ----
PERF_AWK='
function flush(   cat, i, s, d) {
    if (!nf) return
    if (tid == main) { nf = 0; return }
    cat = ""
    # Leaf first: a page fault, else the handler right under the syscall dispatcher.
    for (i = 1; i <= nf; i++) {
        s = sym[i]
        if (s == "asm_exc_page_fault") { cat = "kernel: page faults"; break }
        if ((s == "x64_sys_call" || s == "do_syscall_64") && i > 1) {
            s = sym[i - 1]
            sub(/^(__x64_sys_|__do_sys_|__se_sys_|__ia32_sys_|do_)/, "", s); sub(/\.(isra|part|constprop)\..*$/, "", s)
            if (s == "syscall_64" || s == "x64_sys_call") s = "(entry)"
            cat = "kernel: " s; break }
        if (s ~ /^(ret_from_fork|schedule_tail)/) { cat = "kernel: fork return"; break }
    }
    if (cat == "" && dso[1] ~ /kernel/) cat = "kernel: other (exit, irq, scheduler)"
    if (cat == "") {
        s = sym[1]; d = dso[1]
        if (d ~ /ld-linux/) cat = "user: dynamic loader (ld.so)"
        else if (s ~ /LineIndex/) cat = "user: cordon::profile::LineIndex"
        else if (s ~ /toml|serde/) cat = "user: TOML + serde"
        else if (s ~ /clap/) cat = "user: clap"
        else if (s ~ /seccompiler/) cat = "user: seccompiler"
        else if (s ~ /^landlock::|<landlock::/) cat = "user: landlock crate"
        else if (s ~ /cordon::/) { match(s, /cordon::[a-z_]+/); cat = "user: " substr(s, RSTART, RLENGTH) }
        else if (d ~ /libc/) cat = "user: libc (malloc, memcpy, ...)"
        else if (comm == "true") cat = "user: the payload (/bin/true)"
        else cat = "user: other (std, alloc, core, unknown)"
    }
    n[cat]++; total++
    nf = 0
}
/^[^ \t]/ { flush(); comm = $1; tid = $2; next }
/^[ \t]+[0-9a-f]+ / { nf++; s = $0; sub(/^[ \t]+[0-9a-f]+ /, "", s); d = s
    sub(/ \([^)]*\)$/, "", s); sub(/\+0x[0-9a-f]+$/, "", s); sym[nf] = s
    sub(/^.*\(/, "", d); sub(/\)$/, "", d); dso[nf] = d; next }
END { flush()
    for (cat in n) printf "%s\t%d\n", cat, n[cat]
    printf "TOTAL\t%d\n", total }
'
if [ "${PERF:-1}" = 1 ] && command -v perf >/dev/null &&
    perf record -q -e cpu-clock -o /dev/null -- /bin/true >/dev/null 2>&1; then
    SESSION=ladder # the unperturbed CPU times below come from the ladder
    PERIOD_NS=${PERIOD_NS:-100000}
    echo "### 4. CPU samples (perf record -e cpu-clock -c $PERIOD_NS -g, $PERF_RUNS runs per mode)"
    echo
    echo "Kernel samples are grouped by the syscall they are under (or page faults), user samples by the"
    echo "leaf function's crate or module; the process tree is the launcher, init, and the payload before and"
    echo "after its exec. Sampling slows the runs down (a timer interrupt per sample on this VM), so each"
    echo "group is shown as its share of the samples and as that share of the unperturbed CPU time per run"
    echo "measured by the ladder (run-ns: $(ms run-ns cpu) ms, run-off: $(ms run-off cpu) ms)."
    echo
    for mode in ns off; do
        p=workspace-write
        [ $mode = off ] && p=$NSOFF
        # The harness's own process is not part of the run (its pid is recorded through the
        # shell it replaces); its vfork children, which exec cordon, are.
        perf record -q -e cpu-clock -c $PERIOD_NS -g -o "$OUT/perf-$mode.data" -- \
            sh -c 'echo $$ >"$0"; exec "$@"' "$OUT/perf-$mode.pid" \
            "$BIN/harness" -q -n "$PERF_RUNS" -w 0 -- run "$C" run -q -p "$p" -- /bin/true >/dev/null 2>&1
        perf script -i "$OUT/perf-$mode.data" -F comm,tid,ip,sym,dso 2>/dev/null >"$OUT/perf-$mode.script"
        main=$(cat "$OUT/perf-$mode.pid")
        awk -v main="$main" "$PERF_AWK" "$OUT/perf-$mode.script" >"$OUT/perf-$mode.tsv"
    done
    echo "| where | ns on: % | ns on: us/run | ns off: % | ns off: us/run |"
    echo "|---|---:|---:|---:|---:|"
    awk -F'\t' -v cns="$(stat_of run-ns cpu)" -v coff="$(stat_of run-off cpu)" '
        FNR == 1 { f++ } { v[$1, f] = $2; k[$1] = 1 }
        END { tn = v["TOTAL", 1]; to = v["TOTAL", 2]
              for (c in k) if (c != "TOTAL") {
                  pn = tn ? v[c, 1] / tn : 0; po = to ? v[c, 2] / to : 0
                  printf "%s\t%.1f\t%.0f\t%.1f\t%.0f\n", c, 100 * pn, pn * cns, 100 * po, po * coff } }' \
        "$OUT/perf-ns.tsv" "$OUT/perf-off.tsv" | sort -t$'\t' -k3,3nr |
        awk -F'\t' '$3 >= 15 || $5 >= 15 { printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5; next }
            { on += $3; off += $5; p1 += $2; p2 += $4 }
            END { printf "| (groups under 15 us) | %.1f | %.0f | %.1f | %.0f |\n", p1, on, p2, off }'
    echo
    echo "Samples: $(awk -F'\t' '$1 == "TOTAL" { print $2 }' "$OUT/perf-ns.tsv") (ns on), $(awk -F'\t' '$1 == "TOTAL" { print $2 }' "$OUT/perf-off.tsv") (ns off)."
fi
echo
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
