#!/usr/bin/env bash
# Network mode "proxy": what the proxy costs, side by side in one run, inside a
# network namespace this script makes (loopback only; nothing leaves it).
#
#   benches/proxy.sh                   # 1 GiB, 1000 connections, 3 rounds
#   SIZE_MB=256 CONNS=300 ROUNDS=2 benches/proxy.sh
#
# - throughput: one transfer of SIZE_MB from a server on 198.18.0.10, read by
#   a client in the sandbox directly (`--net on`) and through the proxy
#   (`--net proxy`, CONNECT); MB/s, medians of ROUNDS.
# - connections: CONNS sequential short requests (connect, a 1-line request, a
#   1-line answer, close) measured inside the client, directly and through the
#   proxy; median per connection and the difference.
# - startup: `cordon run -- /bin/true` with the network off and in mode proxy
#   (the proxy started, no connection), interleaved.
#
# Needs root (unshare -mn). No timing assertions: the exit status is 0
# whatever the numbers.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE_MB=${SIZE_MB:-1024}
CONNS=${CONNS:-1000}
ROUNDS=${ROUNDS:-3}
STARTUP_RUNS=${STARTUP_RUNS:-300}
ensure_tools
build_helpers
setup_cordon
setup_workspace

if [ "$(id -u)" != 0 ]; then
    say "benches/proxy.sh needs root (a network namespace of its own)"
    exit 1
fi

WORK=$(mktemp -d "$BENCH_DIR/proxy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"

cat >"$WORK/server.py" <<'EOF'
# Two servers: port 80 answers "GET /big" with SIZE bytes (sendfile from a
# sparse file) and anything else with one short line; one thread per client.
import os, socket, sys, threading
size = int(sys.argv[1])
path = sys.argv[2]
with open(path, "wb") as f:
    f.truncate(size)
def serve(c):
    with c:
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        if req.startswith(b"GET /big"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            with open(path, "rb") as f:
                c.sendfile(f)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("198.18.0.10", 80))
s.listen(1024)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

cat >"$WORK/client.py" <<'EOF'
# client.py big|conns N [proxy]: a transfer's MB/s, or the median ms per short
# connection. With "proxy", through the proxy's CONNECT (HTTPS_PROXY).
import os, socket, statistics, sys, time
mode, n, via = sys.argv[1], int(sys.argv[2]), len(sys.argv) > 3
def connect():
    if not via:
        return socket.create_connection(("198.18.0.10", 80)), b""
    host, port = os.environ["HTTPS_PROXY"].rsplit("/", 1)[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(b"CONNECT bench.test:80 HTTP/1.1\r\nHost: bench.test:80\r\n\r\n")
    # As curl does: read what has come and keep what follows the head (a
    # byte at a time would be the client's own cost, ~40 system calls).
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        assert d, head
        head += d
    assert head.startswith(b"HTTP/1.1 200"), head
    return s, head.split(b"\r\n\r\n", 1)[1]
def request(path):
    s, early = connect()
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    total = len(early)
    buf = bytearray(1 << 20)
    while True:
        k = s.recv_into(buf)
        if not k:
            break
        total += k
    s.close()
    return total
if mode == "big":
    t = time.perf_counter()
    got = request(b"/big")
    dt = time.perf_counter() - t
    assert got >= n, got
    print("%.0f" % (got / dt / 1e6))
else:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        request(b"/small")
        times.append(time.perf_counter() - t)
    print("%.3f" % (statistics.median(times) * 1000))
EOF

cat >"$WORK/run.sh" <<EOF
set -eu
ip link set lo up
ip addr add 198.18.0.10/32 dev lo
cp /etc/hosts $WORK/hosts && echo "198.18.0.10 bench.test" >>$WORK/hosts
mount --bind $WORK/hosts /etc/hosts
python3 $WORK/server.py $((SIZE_MB * 1024 * 1024)) $WORK/big &
srv=\$!
trap 'kill \$srv 2>/dev/null' EXIT
for i in \$(seq 100); do (exec 3<>/dev/tcp/198.18.0.10/80) 2>/dev/null && break; sleep 0.05; done
cd $WS
C="$CORDON_BIN run -q -p workspace-write"
# One transfer first, not counted: the server's file is cold in the page cache.
\$C --net on -- python3 $WORK/client.py big $((SIZE_MB * 1024 * 1024)) >/dev/null
for r in \$(seq $ROUNDS); do
  echo "big direct \$(\$C --net on -- python3 $WORK/client.py big $((SIZE_MB * 1024 * 1024)))"
  echo "big proxy \$(\$C --net proxy --allow-domain bench.test -- python3 $WORK/client.py big $((SIZE_MB * 1024 * 1024)) proxy)"
  echo "conns direct \$(\$C --net on -- python3 $WORK/client.py conns $CONNS)"
  echo "conns proxy \$(\$C --net proxy --allow-domain bench.test -- python3 $WORK/client.py conns $CONNS proxy)"
done
EOF

say "running $ROUNDS rounds of a ${SIZE_MB} MiB transfer and $CONNS connections, each direct and through the proxy"
unshare -mn bash "$WORK/run.sh" >"$OUT/proxy.raw"

med() { grep "^$1 $2 " "$OUT/proxy.raw" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bd=$(med big direct); bp=$(med big proxy); cd_=$(med conns direct); cp_=$(med conns proxy)
# Per round: the proxy's transfer over the direct one beside it, and the
# connection cost added; medians of those.
per_round() {
    paste <(grep "^$1 direct " "$OUT/proxy.raw" | awk '{print $3}') <(grep "^$1 proxy " "$OUT/proxy.raw" | awk '{print $3}') |
        awk -v op="$2" '{print (op == "ratio") ? $2 / $1 : $2 - $1}' | sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'
}
br=$(per_round big ratio); ca=$(per_round conns diff)

echo "## Network mode proxy (benches/proxy.sh)"
echo
machine_info
echo "- $ROUNDS rounds; a ${SIZE_MB} MiB transfer (sendfile on the server, Python client) and $CONNS sequential short connections; medians"
echo
echo "| measure | direct (\`--net on\`) | through the proxy | ratio / added |"
echo "|---|---:|---:|---:|"
echo "| throughput, MB/s | $bd | $bp | $(awk -v a="$bp" -v b="$bd" 'BEGIN {printf "%.2f", a / b}') (per round: $br) |"
echo "| one short connection, ms | $cd_ | $cp_ | +$(awk -v a="$cp_" -v b="$cd_" 'BEGIN {printf "%.3f", a - b}') ms (per round: +$ca) |"
echo

# Startup: network off against mode proxy (no connection made).
printf 'extends = "workspace-write"\n[network]\nmode = "proxy"\nallow_domains = ["bench.test"]\n' >"$WORK/proxy.toml"
cd "$WS"
run_session proxy-startup -n "$STARTUP_RUNS" -w 20 -- \
    off "$CORDON_BIN" run -q -p workspace-write -- /bin/true \
    ::: proxy "$CORDON_BIN" run -q -p "$WORK/proxy.toml" -- /bin/true
off=$(awk '$1 == "SUMMARY" && $2 == "off" {print $5}' "$OUT/proxy-startup.summary")
px=$(awk '$1 == "SUMMARY" && $2 == "proxy" {print $5}' "$OUT/proxy-startup.summary")
echo "| startup of \`cordon run -- /bin/true\` | network off | mode proxy | added |"
echo "|---|---:|---:|---:|"
echo "| median ms ($STARTUP_RUNS interleaved rounds) | $(awk -v a="$off" 'BEGIN {printf "%.2f", a / 1000}') | $(awk -v a="$px" 'BEGIN {printf "%.2f", a / 1000}') | +$(awk -v a="$px" -v b="$off" 'BEGIN {printf "%.2f", (a - b) / 1000}') ms |"
