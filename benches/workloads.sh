#!/usr/bin/env bash
# Workloads: bare vs the minimal Landlock+seccomp reference (llref) vs cordon
# with namespaces (auto = on here) vs cordon without namespaces, interleaved,
# one session per workload:
#   getppid    2,000,000 getppid() calls (C; CPU ns per call measured inside the process)
#   openclose  200,000 open+close of one file (C; CPU ns per pair measured inside)
#   git        `git status` in a committed tree of 10,000 files
#   pywalk     /usr/bin/python3: os.walk + os.stat over the same tree
#   create     2,000 distinct files created and written in $TMPDIR (C; wall ns per file):
#              what cordon's change record (runs with --report) costs per write-intent
#              open (not in the default set)
#   threads    2,000 x pthread_create + join (C; wall ns per thread): what the
#              sandbox's answer to clone3 costs (glibc tries clone3 first)
#
# When this cordon has --no-capture, two more variants run cordon without the
# seccomp-notify capture supervisor, to show what capture costs.
#   benches/workloads.sh                     # all five
#   benches/workloads.sh git pywalk          # some
#   LOOP_RUNS=15 TREE_RUNS=41 benches/workloads.sh     # the defaults
#
# The git and Python sessions also time /bin/true under each launcher, so the
# launcher's fixed startup cost can be separated from the in-sandbox slowdown.
# Prints markdown tables. No timing assertions.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LOOP_RUNS=${LOOP_RUNS:-15}
TREE_RUNS=${TREE_RUNS:-41}
ensure_tools
build_helpers create_loop
setup_cordon
setup_tree
cd "$TREE"
WANT=("$@")
((${#WANT[@]})) || WANT=(getppid openclose git pywalk threads)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
GIT=$(command -v git)
OPEN_FILE=${OPEN_FILE:-$TREE/src/m42/f42.rs}
WALK='import os, sys
n = 0
for root, dirs, files in os.walk(sys.argv[1]):
    for f in files:
        os.stat(os.path.join(root, f))
        n += 1
print(n)'

# variants PREFIX ARGV...: the launchers around one command.
VARIANTS=(bare llref llref-ns cordon-ns cordon-nsoff)
NOCAP=0
"$CORDON_BIN" run --help 2>/dev/null | grep -q -- --no-capture && NOCAP=1
((NOCAP)) && VARIANTS+=(cordon-ns-nocap cordon-nsoff-nocap)
NOCHG=0
"$CORDON_BIN" run --help 2>/dev/null | grep -q -- --no-changes && NOCHG=1
((NOCHG)) && VARIANTS+=(cordon-ns-rep cordon-nsoff-rep cordon-ns-rep-nochg cordon-nsoff-rep-nochg)
variants() {
    local p=$1
    shift
    printf '%s\0' "$p-bare" "$@" ::: "$p-llref" "$BIN/llref" "$@" ::: "$p-llref-ns" "$BIN/llref" -n "$@" \
        ::: "$p-cordon-ns" "$CORDON_BIN" run -q -p workspace-write -- "$@" \
        ::: "$p-cordon-nsoff" "$CORDON_BIN" run -q -p "$NSOFF" -- "$@"
    if ((NOCAP)); then
        printf '%s\0' ::: "$p-cordon-ns-nocap" "$CORDON_BIN" run -q --no-capture -p workspace-write -- "$@" \
            ::: "$p-cordon-nsoff-nocap" "$CORDON_BIN" run -q --no-capture -p "$NSOFF" -- "$@"
    fi
    if ((NOCHG)); then
        printf '%s\0' ::: "$p-cordon-ns-rep" "$CORDON_BIN" run -q --report "$OUT/$p.json" -p workspace-write -- "$@" \
            ::: "$p-cordon-nsoff-rep" "$CORDON_BIN" run -q --report "$OUT/$p.json" -p "$NSOFF" -- "$@" \
            ::: "$p-cordon-ns-rep-nochg" "$CORDON_BIN" run -q --report "$OUT/$p.json" --no-changes -p workspace-write -- "$@" \
            ::: "$p-cordon-nsoff-rep-nochg" "$CORDON_BIN" run -q --report "$OUT/$p.json" --no-changes -p "$NSOFF" -- "$@"
    fi
}
args_of() { mapfile -d '' -t "$1" < <(variants "${@:2}"); }

echo "## Workloads (benches/workloads.sh)"
echo
machine_info
echo "- tree: $TREE ($(find "$TREE" -type f -not -path '*/.git/*' | wc -l) files, committed and packed); workspace = the tree"
echo "- llref = benches/c/llref.c: Landlock (all fs rights handled, one rule: everything beneath /) + a 1-rule seccomp filter, then exec;"
echo "  llref-ns = the same inside new user+mount+PID+IPC namespaces (unshare, fork; no mount changes)"
((NOCHG)) && echo "- cordon-*-rep = \`cordon run --report FILE\` (the change record is on: write-intent calls go to the launcher); cordon-*-rep-nochg = the same with --no-changes"
((NOCAP)) && echo "- cordon-*-nocap = \`cordon run --no-capture\` (no seccomp-notify supervisor: refused calls get their errno from BPF)"
echo

loop_session() {
    local name=$1 title=$2 unit=$3 target_note=$4
    shift 4
    local a
    args_of a "$name" "$@"
    run_session "$name" -i -n "$LOOP_RUNS" -w 2 -- "${a[@]}"
    echo "### $title ($LOOP_RUNS interleaved runs each)"
    echo
    echo "| variant | $unit (median) | x bare | x bare, per-round median | wall ms (median) | x bare (wall) |"
    echo "|---|---:|---:|---:|---:|---:|"
    local v
    for v in "${VARIANTS[@]}"; do
        echo "| $v | $(awk -v x="$(stat_of "$name-$v" inner)" 'BEGIN { printf "%.1f", x }') | $(ratio "$name-$v" "$name-bare" inner) | $(pratio "$name-$v" "$name-bare" inner) | $(ms "$name-$v") | $(ratio "$name-$v" "$name-bare") |"
    done
    echo
    local ref refns ns off
    ref=$(ratio "$name-llref" "$name-bare" inner)
    refns=$(ratio "$name-llref-ns" "$name-bare" inner)
    ns=$(ratio "$name-cordon-ns" "$name-bare" inner)
    off=$(ratio "$name-cordon-nsoff" "$name-bare" inner)
    echo "Target: cordon no worse than the mechanisms' own cost: llref ${ref}x, llref in namespaces ${refns}x here ($target_note)."
    echo "Verdict (cordon <= its reference + 0.05: the run-to-run spread of these ratios here): ns off ${off}x vs llref ${ref}x: $(verdict "$off" "$(awk -v r="$ref" 'BEGIN{print r+0.05}')");" \
        "ns on ${ns}x vs llref -n ${refns}x: $(verdict "$ns" "$(awk -v r="$refns" 'BEGIN{print r+0.05}')") (vs plain llref: $(verdict "$ns" "$(awk -v r="$ref" 'BEGIN{print r+0.05}')"))."
    if ((NOCHG)); then
        echo "With --report (change record on): ns on $(ratio "$name-cordon-ns-rep" "$name-bare" inner)x, ns off $(ratio "$name-cordon-nsoff-rep" "$name-bare" inner)x; with --report --no-changes: ns on $(ratio "$name-cordon-ns-rep-nochg" "$name-bare" inner)x, ns off $(ratio "$name-cordon-nsoff-rep-nochg" "$name-bare" inner)x."
    fi
    if ((NOCAP)); then
        echo "With --no-capture: ns on $(ratio "$name-cordon-ns-nocap" "$name-bare" inner)x, ns off $(ratio "$name-cordon-nsoff-nocap" "$name-bare" inner)x."
    fi
    echo
}

# (workload - (launcher's /bin/true - bare /bin/true)) / bare workload, medians of one session.
net_of() {
    awk -v w="$(stat_of "$1-$2" med)" -v t="$(stat_of "$1-true-$2" med)" \
        -v tb="$(stat_of "$1-true-bare" med)" -v wb="$(stat_of "$1-bare" med)" \
        'BEGIN { printf "%.2f", (w - (t - tb)) / wb }'
}

tree_session() {
    local name=$1 title=$2
    shift 2
    local a b
    args_of a "$name" "$@"
    args_of b "$name-true" /bin/true
    run_session "$name" -n "$TREE_RUNS" -w 3 -- "${a[@]}" ::: "${b[@]}"
    echo "### $title ($TREE_RUNS interleaved runs each)"
    echo
    echo "| variant | median ms | p10 | p90 | x bare | x bare, per-round median | CPU ms | x bare (CPU) | startup (/bin/true) ms | x bare, net of startup |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local v net
    for v in "${VARIANTS[@]}"; do
        net=$(net_of "$name" "$v")
        echo "| $v | $(ms "$name-$v") | $(ms "$name-$v" p10) | $(ms "$name-$v" p90) | $(ratio "$name-$v" "$name-bare") | $(pratio "$name-$v" "$name-bare") | $(ms "$name-$v" cpu) | $(ratio "$name-$v" "$name-bare" cpu) | $(ms "$name-true-$v") | $net |"
    done
    echo
    local ns off
    ns=$(ratio "$name-cordon-ns" "$name-bare")
    off=$(ratio "$name-cordon-nsoff" "$name-bare")
    local nns noff
    nns=$(net_of "$name" cordon-ns)
    noff=$(net_of "$name" cordon-nsoff)
    echo "Target: within 5% of bare (<= 1.05x). Launcher startup included: ns on ${ns}x $(verdict "$ns" 1.05), ns off ${off}x $(verdict "$off" 1.05)."
    echo "Net of the launchers' startup (each launcher's /bin/true time minus bare's, same session): ns on ${nns}x $(verdict "$nns" 1.05), ns off ${noff}x $(verdict "$noff" 1.05)."
    if ((NOCHG)); then
        echo "With --report (change record on): ns on $(ratio "$name-cordon-ns-rep" "$name-bare")x (net $(net_of "$name" cordon-ns-rep)x), ns off $(ratio "$name-cordon-nsoff-rep" "$name-bare")x (net $(net_of "$name" cordon-nsoff-rep)x); with --report --no-changes: ns on $(ratio "$name-cordon-ns-rep-nochg" "$name-bare")x (net $(net_of "$name" cordon-ns-rep-nochg)x), ns off $(ratio "$name-cordon-nsoff-rep-nochg" "$name-bare")x (net $(net_of "$name" cordon-nsoff-rep-nochg)x)."
    fi
    if ((NOCAP)); then
        echo "With --no-capture: ns on $(ratio "$name-cordon-ns-nocap" "$name-bare")x (net $(net_of "$name" cordon-ns-nocap)x), ns off $(ratio "$name-cordon-nsoff-nocap" "$name-bare")x (net $(net_of "$name" cordon-nsoff-nocap)x)."
    fi
    echo
}

for w in "${WANT[@]}"; do
    case $w in
    getppid) loop_session getppid "getppid x 2,000,000" "CPU ns per call" "reference figure on this machine: 1.22x" "$BIN/getppid_loop" 2000000 ;;
    openclose) loop_session openclose "open+close x 200,000 of ${OPEN_FILE#"$TREE"/}" "CPU ns per open+close" "reference figure on this machine: 1.42x" "$BIN/openclose_loop" "$OPEN_FILE" 200000 ;;
    git) tree_session git '`git status` on 10,000 files' "$GIT" status ;;
    create) loop_session create "create + write + close x 2,000 distinct files in \$TMPDIR" "wall ns per file" "no reference figure given" "$BIN/create_loop" 2000 ;;
    threads) loop_session threads "pthread_create + join x 2,000" "wall ns per thread" "no reference figure given" "$BIN/threads_loop" 2000 ;;
    pywalk) tree_session pywalk 'Python `os.walk` + `os.stat` over 10,000 files' "$PY" -c "$WALK" "$TREE" ;;
    *) say "unknown workload $w (getppid, openclose, git, pywalk, threads, create)"; exit 2 ;;
    esac
done
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); raw runs in $OUT/<workload>.tsv"
