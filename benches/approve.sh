#!/usr/bin/env bash
# Approval gates that never trigger: the same commands under the same profile
# with and without an [approve] section, side by side in one interleaved run
# (namespaces on and off), against bare execution. With exec gates every
# execve of the tree is held to its exec event (see src/approval.rs), so the
# workloads are the exec-heavy ones:
#   true      cordon run -- /bin/true (the launch itself)
#   execloop  sh -c: 200 x fork + exec /bin/true
#   cc        20 small C files compiled one cc at a time (cc, cc1, as: 3 execs each)
#   git       git status on 10,000 files (one exec)
#   read      the same git status with a read gate (every open goes to the supervisor)
#
#   benches/approve.sh                    # all
#   RUNS=31 benches/approve.sh true cc    # some
# No timing assertions: the exit status is 0 whatever the numbers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-31}
ensure_tools
build_helpers
setup_cordon
setup_tree
WANT=("$@")
((${#WANT[@]})) || WANT=(true execloop cc git read)

CC_DIR=$BENCH_DIR/cc
if [ ! -f "$CC_DIR/done" ]; then
    mkdir -p "$CC_DIR"
    for i in $(seq -w 1 20); do
        printf '#include <stdio.h>\nint f%s(int x) { return x * %d + 1; }\n' "$i" "$((10#$i))" >"$CC_DIR/f$i.c"
    done
    touch "$CC_DIR/done"
fi
CC_SCRIPT='for f in f*.c; do cc -O1 -c "$f" -o "${f%.c}.o" || exit 1; done'
LOOP_SCRIPT='i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done'

# Profiles: workspace-write as is, and with gates that these commands never trigger.
mkprofile() { # NAME NS APPROVE
    printf 'extends = "workspace-write"\n[namespaces]\nmode = "%s"\n%s\n' "$2" "$3" >"$BENCH_DIR/$1.toml"
}
GATES='[approve]
exec = ["git push *", "npm publish *", "cargo publish *", "gh release *", "kubectl *", "terraform apply *"]
approver = "deny"'
READ_GATE="[filesystem]
deny = [\"$BENCH_DIR/secret\"]
[approve]
read = [\"$BENCH_DIR/secret/hosts.yml\"]
approver = \"deny\""
mkdir -p "$BENCH_DIR/secret" && echo token >"$BENCH_DIR/secret/hosts.yml"
for ns in auto off; do
    mkprofile "plain-$ns" "$ns" ""
    mkprofile "gated-$ns" "$ns" "$GATES"
    mkprofile "readgated-$ns" "$ns" "$READ_GATE"
done

echo "## Approval gates that never trigger (benches/approve.sh)"
echo
machine_info
echo "- each workload: bare, then \`cordon run\` under workspace-write with and without an [approve] section, namespaces on and off; $RUNS interleaved rounds"
echo "- exec gates: $(echo "$GATES" | sed -n 2p)"
echo

session() { # NAME GATED-PROFILE-STEM DIR ARGV...
    local name=$1 stem=$2 dir=$3
    shift 3
    cd "$dir"
    local args=("$name-bare" "$@")
    local ns
    for ns in auto off; do
        args+=(::: "$name-plain-$ns" "$CORDON_BIN" run -q -p "$BENCH_DIR/plain-$ns.toml" -- "$@")
        args+=(::: "$name-gated-$ns" "$CORDON_BIN" run -q -p "$BENCH_DIR/$stem-$ns.toml" -- "$@")
    done
    run_session "$name" -n "$RUNS" -w 3 -- "${args[@]}"
    echo "### $name: \`$*\`"
    echo
    echo "| variant | median ms | p10 | p90 | x bare | gated / plain (per-round median) |"
    echo "|---|---:|---:|---:|---:|---:|"
    echo "| bare | $(ms "$name-bare") | $(ms "$name-bare" p10) | $(ms "$name-bare" p90) | 1.00 | |"
    for ns in auto off; do
        echo "| plain, ns $ns | $(ms "$name-plain-$ns") | $(ms "$name-plain-$ns" p10) | $(ms "$name-plain-$ns" p90) | $(ratio "$name-plain-$ns" "$name-bare") | |"
        echo "| gated, ns $ns | $(ms "$name-gated-$ns") | $(ms "$name-gated-$ns" p10) | $(ms "$name-gated-$ns" p90) | $(ratio "$name-gated-$ns" "$name-bare") | $(pratio "$name-gated-$ns" "$name-plain-$ns") |"
    done
    echo
}

for w in "${WANT[@]}"; do
    case $w in
    true) session true gated "$TREE" /bin/true ;;
    execloop) session execloop gated "$TREE" /bin/sh -c "$LOOP_SCRIPT" ;;
    cc) session cc gated "$CC_DIR" /bin/sh -c "$CC_SCRIPT" ;;
    git) session git gated "$TREE" "$(command -v git)" status ;;
    read) session read readgated "$TREE" "$(command -v git)" status ;;
    *) say "unknown workload $w (true, execloop, cc, git, read)"; exit 2 ;;
    esac
done
echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); raw runs in $OUT/<workload>.tsv"
