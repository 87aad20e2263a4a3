# Shared by the bench scripts: tools, the C helpers, the cordon binary, stats.
# Sourced, not run. Everything is written under $BENCH_DIR (default /var/tmp/cordon-bench: a sandbox with namespaces has a private /tmp,
# so helpers kept under the host's /tmp would not be visible to the payloads).

set -euo pipefail

BENCHES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCHES/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/cordon-bench}
BIN=$BENCH_DIR/bin
OUT=${OUT:-$BENCH_DIR/results}
mkdir -p "$BIN" "$OUT"

say() { printf '%s\n' "$*" >&2; }

# hyperfine (a cross-check only) and bwrap (the comparison): install when missing,
# as root with apt-get; without them the scripts still run (bwrap rows are skipped).
ensure_tools() {
    local missing=()
    command -v bwrap >/dev/null || missing+=(bubblewrap)
    command -v hyperfine >/dev/null || missing+=(hyperfine)
    if ((${#missing[@]})) && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        say "installing ${missing[*]} with apt-get"
        apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
            { apt-get update >/dev/null 2>&1 && apt-get install -y "${missing[@]}" >/dev/null 2>&1; } ||
            say "warning: could not install ${missing[*]}"
    fi
    HAVE_BWRAP=0
    command -v bwrap >/dev/null && bwrap --ro-bind / / --dev /dev --proc /proc --unshare-all \
        --die-with-parent /bin/true 2>/dev/null && HAVE_BWRAP=1
    ((HAVE_BWRAP)) || say "warning: bwrap missing or not working here: its rows are skipped"
    HAVE_HYPERFINE=0
    command -v hyperfine >/dev/null && HAVE_HYPERFINE=1
    HAVE_CC=0
    command -v cc >/dev/null && [ -z "${NO_CC:-}" ] && HAVE_CC=1
    ((HAVE_CC)) || say "warning: no C compiler: falling back to a bash timing loop (coarser)"
    return 0
}

# The C helpers, rebuilt when their source is newer.
build_helpers() {
    ((HAVE_CC)) || return 0
    local f
    for f in harness getppid_loop openclose_loop threads_loop llref stamp "$@"; do
        if [ ! -x "$BIN/$f" ] || [ "$BENCHES/c/$f.c" -nt "$BIN/$f" ]; then
            cc -O2 -Wall -pthread -o "$BIN/$f.new.$$" "$BENCHES/c/$f.c" && mv -f "$BIN/$f.new.$$" "$BIN/$f" # atomic: it may be running
        fi
    done
}

# A snapshot of the release binary: other people rebuild target/ while we measure.
# CORDON=/path/to/cordon to measure another binary.
setup_cordon() {
    local src=${CORDON:-$REPO/target/x86_64-unknown-linux-gnu/release/cordon}
    if [ ! -x "$src" ]; then
        say "building $src"
        (cd "$REPO" && cargo build --release >&2)
    fi
    cp "$src" "$BIN/cordon.new" && mv "$BIN/cordon.new" "$BIN/cordon"
    CORDON_BIN=$BIN/cordon
    local rev dirty
    rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$REPO" status --porcelain -- src 2>/dev/null | wc -l)
    local sum
    sum=$(sha256sum "$src" | cut -c1-12)
    if [ -n "${CORDON:-}" ]; then
        CORDON_DESC="$src (sha256 $sum, modified $(date -r "$src" '+%F %T'); the repository is at $rev$( ((dirty)) && echo " with $dirty changed files in src/" || true))"
    else
        CORDON_DESC="$src (commit $rev$( ((dirty)) && echo ", $dirty changed files in src/" || true), built $(date -r "$src" '+%F %T'), sha256 $sum)"
    fi
    # A profile like workspace-write, without namespaces.
    NSOFF=$BENCH_DIR/ns-off.toml
    printf 'extends = "workspace-write"\n\n[namespaces]\nmode = "off"\n' >"$NSOFF"
}

# A small git repository as the workspace of the startup runs.
setup_workspace() {
    WS=$BENCH_DIR/ws
    if [ ! -d "$WS/.git" ]; then
        mkdir -p "$WS"
        git -C "$WS" init -q
        echo "hello" >"$WS/README"
        git -C "$WS" add README
        git -C "$WS" -c user.name=bench -c user.email=bench@localhost commit -qm init
    fi
}

# ~10k files in 100 directories, committed and packed, for git status and the walk.
setup_tree() {
    TREE=$BENCH_DIR/tree
    [ -f "$BENCH_DIR/tree.done" ] && return 0
    say "generating $TREE (10,000 files)"
    rm -rf "$TREE"
    mkdir -p "$TREE"
    local d f
    for d in $(seq -w 0 99); do
        mkdir -p "$TREE/src/m$d"
        for f in $(seq -w 0 99); do
            printf 'fn f%s_%s() -> u32 {\n    %d\n}\n' "$d" "$f" "$((10#$d * 100 + 10#$f))" >"$TREE/src/m$d/f$f.rs"
        done
    done
    git -C "$TREE" init -q
    git -C "$TREE" config gc.auto 0 # no background gc while we measure
    git -C "$TREE" config maintenance.auto false
    git -C "$TREE" add -A
    git -C "$TREE" -c user.name=bench -c user.email=bench@localhost commit -qm tree
    git -C "$TREE" gc -q
    git -C "$TREE" status >/dev/null # refresh the index once
    touch "$BENCH_DIR/tree.done"
}

# Other people build on this machine: wait (up to IDLE_TIMEOUT s, default 300) until
# the CPUs are at least 85% idle over 3 s, so that a burst of compiling does not land in
# one of our sessions. IDLE_TIMEOUT=0 skips the wait.
wait_idle() {
    local limit=${IDLE_TIMEOUT:-300} waited=0 a b busy
    IDLE_NOTE=""
    ((limit > 0)) || return 0
    while :; do
        a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
        sleep 3
        b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
        busy=$(awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ")
            t = (y[1] - x[1]) + (y[2] - x[2]); printf "%d", t ? 100 * (y[1] - x[1]) / t : 0 }')
        if ((busy <= 15)); then
            ((waited)) && say "machine idle after ${waited}s"
            return 0
        fi
        waited=$((waited + 3))
        if ((waited >= limit)); then
            say "warning: the machine is still ${busy}% busy after ${limit}s; measuring anyway"
            IDLE_NOTE="${busy}%"
            return 0
        fi
        ((waited % 30 == 3)) && say "waiting for an idle machine (${busy}% busy)..."
    done
}
IDLE_NOTE=""

machine_info() {
    echo "- machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
    echo "- cordon: $CORDON_DESC"
    echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# run_session NAME HARNESS_OPTS... -- NAME ARGV ::: NAME ARGV ...
# Runs the interleaved harness; keeps the summary in $OUT/NAME.summary and the
# raw runs in $OUT/NAME.tsv; prints the harness table on stderr.
run_session() {
    local name=$1
    shift
    SESSION=$name
    wait_idle
    [ -n "$IDLE_NOTE" ] && echo "- warning: session $name started on a busy machine ($IDLE_NOTE CPU busy); numbers are noisier"
    if ((HAVE_CC)); then
        "$BIN/harness" -o "$OUT/$name.tsv" "$@" >"$OUT/$name.out"
    else
        echo "- note: bash timing loop (no C compiler): every run includes bash's own fork, which adds the same"
        echo "  absolute time to every row and pulls the ratios toward 1; CPU times are not available"
        bash_harness "$OUT/$name.tsv" "$@" >"$OUT/$name.out"
    fi
    grep -v '^SUMMARY' "$OUT/$name.out" >&2 || true
    grep '^SUMMARY' "$OUT/$name.out" >"$OUT/$name.summary"
    if grep -q 'FAILED' "$OUT/$name.out"; then say "warning: some runs failed in $name"; fi
}

# The pure-bash fallback: same interleaving and output format, $EPOCHREALTIME
# around a fork+exec of the command (the bash fork cost is in every row alike).
bash_harness() {
    local raw=$1
    shift
    local runs=300 warm=20 inner=0
    while [ "$1" != -- ]; do
        case $1 in
        -n) runs=$2; shift 2 ;;
        -w) warm=$2; shift 2 ;;
        -i) inner=1; shift ;;
        *) shift ;;
        esac
    done
    shift
    local names=() cmds=() cur=() a
    for a in "$@" ":::"; do
        if [ "$a" = ":::" ]; then
            names+=("${cur[0]}")
            cmds+=("$(printf '%q ' "${cur[@]:1}")")
            cur=()
        else
            cur+=("$a")
        fi
    done
    local k=${#names[@]} r s i t0 t1 out
    printf 'round\tname\twall_us\tcpu_us\tinner\tfailed\n' >"$raw"
    for ((r = -warm; r < runs; r++)); do
        for ((s = 0; s < k; s++)); do
            i=$(((s + (r < 0 ? 0 : r)) % k))
            if ((inner)); then
                t0=$EPOCHREALTIME
                out=$(eval "${cmds[i]}" 2>/dev/null </dev/null) || true
                t1=$EPOCHREALTIME
            else
                t0=$EPOCHREALTIME
                eval "${cmds[i]}" >/dev/null 2>&1 </dev/null || true
                t1=$EPOCHREALTIME
            fi
            ((r < 0)) && continue
            ((inner)) || out=0
            awk -v r="$r" -v n="${names[i]}" -v a="$t0" -v b="$t1" -v o="${out:-0}" \
                'BEGIN { printf "%d\t%s\t%.1f\t0\t%s\t0\n", r, n, (b - a) * 1e6, o + 0 }' >>"$raw"
        done
    done
    echo "  $runs rounds x $k commands (bash loop, rotating order)" >&2
    printf '  %-28s %10s %10s %10s %10s\n' command "median ms" p10 p90 mean >&2
    local sums=()
    for ((i = 0; i < k; i++)); do
        local w inn
        w=$(awk -F'\t' -v n="${names[i]}" '$2 == n { print $3 }' "$raw" | sort -g | quantiles)
        inn=$(awk -F'\t' -v n="${names[i]}" '$2 == n { print $5 }' "$raw" | sort -g | quantiles)
        read -r med p10 p90 mean mn <<<"$w"
        printf '  %-28s %10.3f %10.3f %10.3f %10.3f\n' >&2 "${names[i]}" "$(awk -v v="$med" 'BEGIN{print v/1e3}')" \
            "$(awk -v v="$p10" 'BEGIN{print v/1e3}')" "$(awk -v v="$p90" 'BEGIN{print v/1e3}')" "$(awk -v v="$mean" 'BEGIN{print v/1e3}')"
        sums+=("SUMMARY ${names[i]} $runs 0 $med $p10 $p90 $mean $mn nan ${inn%% *}")
    done
    printf '%s\n' "${sums[@]}"
}

# Sorted numbers on stdin -> "median p10 p90 mean min".
quantiles() {
    awk '{ v[++n] = $1; s += $1 }
        function q(p,   pos, j, f) { pos = p * (n - 1); j = int(pos) + 1; f = pos - int(pos)
            return j < n ? v[j] * (1 - f) + v[j + 1] * f : v[j] }
        END { if (!n) { print "nan nan nan nan nan"; exit }
              printf "%.6g %.6g %.6g %.6g %.6g\n", q(.5), q(.1), q(.9), s / n, v[1] }'
}

# Field of a command's summary in the current session: med p10 p90 mean min cpu inner after fails
stat_of() {
    local name=$1 field=$2 col
    case $field in
    fails) col=4 ;; med) col=5 ;; p10) col=6 ;; p90) col=7 ;; mean) col=8 ;; min) col=9 ;; cpu) col=10 ;; inner) col=11 ;; after) col=12 ;;
    esac
    awk -v n="$name" -v c="$col" '$2 == n { print $c; f = 1 } END { if (!f) print "nan" }' "$OUT/$SESSION.summary"
}

# ms with 2 decimals from a µs field.
ms() { awk -v v="$(stat_of "$1" "${2:-med}")" 'BEGIN { if (v == "nan") print "n/a"; else printf "%.2f", v / 1e3 }'; }

# Ratio of medians A/B (wall time, or "inner" with a third argument).
ratio() {
    local f=${3:-med}
    awk -v a="$(stat_of "$1" "$f")" -v b="$(stat_of "$2" "$f")" \
        'BEGIN { if (a == "nan" || b == "nan" || b == 0) print "n/a"; else printf "%.2f", a / b }'
}

# Median over rounds of the per-round ratio A/B (robust to drift between rounds).
pratio() {
    local col=3
    [ "${3:-}" = inner ] && col=5
    awk -F'\t' -v a="$1" -v b="$2" -v c="$col" '
        NR > 1 && $2 == a { x[$1] = $c }
        NR > 1 && $2 == b { y[$1] = $c }
        END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$OUT/$SESSION.tsv" |
        sort -g | quantiles | awk '{ if ($1 == "nan") print "n/a"; else printf "%.2f", $1 }'
}

# "met" / "NOT met" for value <= target.
verdict() {
    awk -v v="$1" -v t="$2" 'BEGIN { if (v == "n/a") print "n/a"; else if (v + 0 <= t + 0) print "met"; else print "**NOT met**" }'
}
