#!/usr/bin/env bash
# Experiment behind one of the profile's suggestions: how much of cordon's
# startup is the dynamic loader? Builds the current working tree three ways
# (a copy, in $BENCH_DIR/link: src/ is not touched) and times them interleaved:
#   dynamic    PIE, dynamically linked against glibc (RUSTFLAGS="" overrides
#              the crt-static of .cargo/config.toml)
#   static-pie RUSTFLAGS="-C target-feature=+crt-static" (the default build since
#              this experiment: .cargo/config.toml)
#   static     RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" (no PIE;
#              not taken: 0.1 ms more is not worth the launcher's own ASLR)
#
#   benches/link.sh            # builds (about a minute each), then 300 rounds
#   RUNS=500 benches/link.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RUNS=${RUNS:-300}
ensure_tools
build_helpers
setup_cordon
setup_workspace
L=$BENCH_DIR/link
rm -rf "$L/src-copy"
mkdir -p "$L/src-copy"
cp -r "$REPO/Cargo.toml" "$REPO/Cargo.lock" "$REPO/src" "$REPO/profiles" "$L/src-copy/"
[ -d "$REPO/examples" ] && cp -r "$REPO/examples" "$L/src-copy/" # in case Cargo.toml names them
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
build() { # name rustflags
    say "building $1"
    (cd "$L/src-copy" && RUSTFLAGS="$2" CARGO_TARGET_DIR="$L/target-$1" \
        cargo build --release --offline --target "$TRIPLE" --bin cordon >&2 2>"$L/build-$1.log" ||
        RUSTFLAGS="$2" CARGO_TARGET_DIR="$L/target-$1" cargo build --release --target "$TRIPLE" --bin cordon >&2)
    cp "$L/target-$1/$TRIPLE/release/cordon" "$BIN/cordon-$1"
}
build dynamic ""
build static-pie "-C target-feature=+crt-static"
build static "-C target-feature=+crt-static -C relocation-model=static"
cd "$WS"
CORDON_DESC="three builds of the working tree at commit $(git -C "$REPO" rev-parse --short HEAD) (+ uncommitted changes), copied at $(date '+%F %T')"

cmds=(true /bin/true)
for v in dynamic static-pie static; do
    cmds+=(::: "$v-version" "$BIN/cordon-$v" --version
        ::: "$v-ns" "$BIN/cordon-$v" run -q -p workspace-write -- /bin/true
        ::: "$v-off" "$BIN/cordon-$v" run -q -p "$NSOFF" -- /bin/true)
done

echo "## Linking (benches/link.sh)"
echo
machine_info
echo "- $RUNS interleaved rounds"
echo
run_session link -n "$RUNS" -w 20 -- "${cmds[@]}"
echo "| build | size | \`--version\` ms | CPU ms | \`run\` ns on ms | \`run\` ns off ms | saved vs dynamic (version / ns on / ns off) |"
echo "|---|---:|---:|---:|---:|---:|---|"
for v in dynamic static-pie static; do
    saved=$(awk -v a="$(stat_of dynamic-version med)" -v b="$(stat_of "$v-version" med)" \
        -v c="$(stat_of dynamic-ns med)" -v d="$(stat_of "$v-ns" med)" \
        -v e="$(stat_of dynamic-off med)" -v f="$(stat_of "$v-off" med)" \
        'BEGIN { printf "%.2f / %.2f / %.2f ms", (a - b) / 1e3, (c - d) / 1e3, (e - f) / 1e3 }')
    echo "| $v | $(($(stat -c %s "$BIN/cordon-$v") / 1024)) kB | $(ms "$v-version") | $(ms "$v-version" cpu) | $(ms "$v-ns") | $(ms "$v-off") | $saved |"
done
echo
echo "(\`/bin/true\` in the same session: $(ms true) ms.)"
