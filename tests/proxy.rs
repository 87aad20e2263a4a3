//! Network mode "proxy", against the real kernel, as root and as uid 65534.
//!
//! Each case runs cordon inside a network and mount namespace the test makes
//! (`unshare -mn`): loopback up with 198.18.0.10 on it (a benchmarking address,
//! neither private nor loopback, so names may lead to it), an HTTP server there
//! on ports 80 and 8080, and names in a private /etc/hosts. The proxy resolves
//! and connects from that namespace; nothing here talks to any other address.

mod support;
use std::path::Path;
use std::process::Output;

use support::*;

const ADDR: &str = "198.18.0.10";

/// Run `body` (bash, with `$CORDON` the launcher as `user`) in a fresh network
/// and mount namespace with the servers and names above.
fn in_netns(user: User, body: &str) -> Output {
    let dir = tempdir(User::Root);
    let www = dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello-from-api\n").unwrap();
    let hosts = dir.path().join("hosts");
    let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    h.push_str(&format!(
        "\n{ADDR} api.test www.api.test gist.api.test other.test\n169.254.169.254 meta.test\n127.0.0.2 loop.test\n"
    ));
    std::fs::write(&hosts, h).unwrap();
    std::fs::set_permissions(&hosts, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // The namespace's resolver: names below dns.test are 198.18.0.10, the
    // rest NXDOMAIN.
    let dns = dir.path().join("dns.py");
    std::fs::write(&dns, DNS_SERVER).unwrap();
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, format!("nameserver {ADDR}\n")).unwrap();
    std::fs::set_permissions(&resolv, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let launcher = match user {
        User::Root => format!("{}", bin().display()),
        User::Nobody => format!(
            "setpriv --reuid=65534 --regid=65534 --clear-groups {}",
            bin().display()
        ),
    };
    let script = format!(
        r#"
set -u
ip link set lo up && ip addr add {ADDR}/32 dev lo || exit 90
mount --bind {hosts} /etc/hosts || exit 91
mount --bind {resolv} /etc/resolv.conf || exit 92
{py} {dns} &
d=$!
cd {www}
{py} -m http.server 80 --bind {ADDR} >/dev/null 2>&1 &
a=$!
{py} -m http.server 8080 --bind {ADDR} >/dev/null 2>&1 &
b=$!
trap 'kill $a $b $d 2>/dev/null; wait 2>/dev/null' EXIT
for i in $(seq 100); do
  (exec 3<>/dev/tcp/{ADDR}/80 && exec 4<>/dev/tcp/{ADDR}/8080) 2>/dev/null && break
  sleep 0.05
done
cd {ws}
CORDON="{launcher}"
{body}
"#,
        hosts = hosts.display(),
        resolv = resolv.display(),
        dns = dns.display(),
        www = www.display(),
        py = PYTHON,
        ws = dir.path().display(),
    );
    let mut c = std::process::Command::new("unshare");
    c.args(["-m", "-n", "--", "bash", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", home(user))
        .env("LANG", "C.UTF-8")
        .stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    drop(dir);
    out
}

/// Every user, in both namespace modes.
fn cases(test: &str) -> Vec<(User, Ns)> {
    users(test)
        .into_iter()
        .flat_map(|u| Ns::ALL.map(|n| (u, n)))
        .collect()
}

/// A resolver for the test's namespace: A records for the names below
/// dns.test (198.18.0.10), NXDOMAIN for the rest.
const DNS_SERVER: &str = r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("198.18.0.10", 53))
def answer(q):
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode().lower()); i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    end = i + 5
    name = ".".join(labels)
    ok = name.endswith(".dns.test")
    an = qtype == 1 and ok
    r = q[:2] + struct.pack(">HHHHH", 0x8180 if ok else 0x8183, 1, 1 if an else 0, 0, 0) + q[12:end]
    if an:
        r += struct.pack(">HHHIH", 0xc00c, 1, 1, 30, 4) + socket.inet_aton("198.18.0.10")
    return r
while True:
    q, peer = s.recvfrom(512)
    try:
        s.sendto(answer(q), peer)
    except Exception:
        pass
"#;

fn proxy_profile(extra: &str, ns: Ns) -> String {
    profile_ns(
        "proxy",
        &format!("extends = \"workspace-write\"\n[network]\nmode = \"proxy\"\n{extra}\n"),
        ns,
    )
}

/// What `py` printed when run under a mode "proxy" profile (`extra` added to
/// its [network]) in the test's namespace with a report, `prefix` before the
/// launcher (a `timeout`, a `ulimit`); `ctx` for the assertions.
struct Ran {
    o: String,
    ctx: String,
    rep: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Ran {
    fn report(&self) -> serde_json::Value {
        read_report(&self.rep)
    }
}

fn run_py(user: User, ns: Ns, extra: &str, py: &str, prefix: &str) -> Ran {
    let p = proxy_profile(extra, ns);
    let dir = report_dir();
    let rep = dir.path().join("r.json");
    let out = in_netns(
        user,
        &format!(
            "{prefix}$CORDON run -q -p {p} --report {rep} -- {PYTHON} -c '{py}'; echo \"rc=$?\"",
            rep = rep.display()
        ),
    );
    let o = text(&out.stdout);
    let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
    Ran {
        o,
        ctx,
        rep,
        _dir: dir,
    }
}

fn report_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("cordon-test-proxy-report-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    d
}

fn denials(r: &serde_json::Value) -> Vec<(String, String, String, String)> {
    r["denials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["observed_by"] == "proxy")
        .map(|d| {
            (
                d["operation"].as_str().unwrap().to_string(),
                d["target"].as_str().unwrap().to_string(),
                d["rule"].as_str().unwrap().to_string(),
                d["suggestion"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn need_tools(test: &str) -> bool {
    for t in ["unshare", "ip", "curl", "setpriv"] {
        if !["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(t).exists())
        {
            skip(test, &format!("{t} is not installed"));
            return false;
        }
    }
    true
}

#[test]
fn allowed_names_are_reached_over_http_connect_and_socks5() {
    let test = "allowed_names_are_reached_over_http_connect_and_socks5";
    if !need_tools(test) {
        return;
    }
    for (user, ns) in cases(test) {
        let p = proxy_profile("allow_domains = [\"api.test\", \"web.dns.test\"]", ns);
        let reports = report_dir();
        let rep = reports.path().join("r.json");
        let out = in_netns(
            user,
            &format!(
                r#"$CORDON run -q -p {p} --report {rep} --audit-log {log} -- bash -c '
echo "env $HTTPS_PROXY $ALL_PROXY"
curl -sS --max-time 20 https://web.dns.test:80/ 2>/dev/null; curl -sS --max-time 20 http://web.dns.test/
curl -sS --max-time 20 http://api.test/
curl -sS --max-time 20 --proxytunnel http://api.test/
curl -sS --max-time 20 --proxy "$ALL_PROXY" http://API.test./
'; echo "rc=$?""#,
                rep = rep.display(),
                log = reports.path().join("audit.log").display()
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        assert!(o.contains("rc=0"), "{ctx}");
        assert_eq!(o.matches("hello-from-api").count(), 4, "{ctx}");
        let env = match ns {
            // The tree's own namespace: a fixed address.
            Ns::Auto => "env http://127.0.0.1:3128 socks5h://127.0.0.1:3128".to_string(),
            // The host's loopback: a port of the run's own.
            Ns::Off => {
                let port = o
                    .split("http://127.0.0.1:")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or_else(|| panic!("no proxy variable: {ctx}"));
                format!("env http://127.0.0.1:{port} socks5h://127.0.0.1:{port}")
            }
        };
        assert!(o.contains(&env), "{env}: {ctx}");
        let r = read_report(&rep);
        check_report_schema(&r, &ctx);
        assert_eq!(r["network"]["domains"]["api.test"], 3, "{ctx}\n{r:#}");
        // Resolved by the launcher through the namespace's DNS server; the
        // https:// attempt tunnels (CONNECT) and fails only at TLS.
        assert_eq!(r["network"]["domains"]["web.dns.test"], 2, "{ctx}\n{r:#}");
        // The audit log counts them too.
        let log = std::fs::read_to_string(reports.path().join("audit.log")).unwrap();
        let line: serde_json::Value = serde_json::from_str(log.trim()).unwrap();
        assert_eq!(line["domains"]["api.test"], 3, "{log}");
        assert_eq!(r["network"]["refused"], 0, "{ctx}");
        assert!(denials(&r).is_empty(), "{ctx}");
    }
}

#[test]
fn names_the_profile_does_not_allow_are_refused_and_reported() {
    let test = "names_the_profile_does_not_allow_are_refused_and_reported";
    if !need_tools(test) {
        return;
    }
    for (user, ns) in cases(test) {
        let p = proxy_profile(
            "allow_domains = [\"*.api.test\", \"meta.test\", \"loop.test\"]\ndeny_domains = [\"gist.api.test\"]",
            ns,
        );
        let reports = report_dir();
        let rep = reports.path().join("r.json");
        // Each line: the HTTP code the proxy answered (000: no answer at all).
        let out = in_netns(
            user,
            &format!(
                r#"$CORDON run -q -p {p} --report {rep} -- bash -c '
for u in http://www.api.test/ http://api.test/ http://gist.api.test/ http://other.test/ http://{ADDR}/ http://meta.test/ http://loop.test/ http://www.api.test:8080/; do
  echo "$u $(curl -s -o /dev/null -w "%{{http_code}}" --max-time 20 $u)"
done
echo "socks $(curl -s -o /dev/null -w "%{{http_code}}" --max-time 20 --proxy "$ALL_PROXY" http://other.test/; echo " $?")"
'; echo "rc=$?""#,
                rep = rep.display()
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        for (url, code) in [
            ("http://www.api.test/", "200"),
            ("http://api.test/", "403"),
            ("http://gist.api.test/", "403"),
            ("http://other.test/", "403"),
            (&format!("http://{ADDR}/"), "403"),
            ("http://meta.test/", "403"),
            ("http://loop.test/", "403"),
            ("http://www.api.test:8080/", "403"),
        ] {
            assert!(o.contains(&format!("{url} {code}")), "{url}: {ctx}");
        }
        // curl's exit 97: the SOCKS5 proxy refused the connection.
        assert!(o.contains("socks 000 97"), "{ctx}");
        let r = read_report(&rep);
        check_report_schema(&r, &ctx);
        let d = denials(&r);
        let find = |target: &str| {
            d.iter()
                .find(|x| x.1 == target)
                .unwrap_or_else(|| panic!("no denial for {target}: {d:#?}\n{ctx}"))
                .clone()
        };
        assert_eq!(
            find("api.test:80").3,
            "add \"api.test\" to [network] allow_domains"
        );
        assert!(
            find("gist.api.test:80")
                .2
                .contains("deny_domains \"gist.api.test\"")
        );
        assert_eq!(
            find(&format!("{ADDR}:80")).3,
            format!("add \"{ADDR}\" to [network] allow_domains")
        );
        assert!(
            find("meta.test:80")
                .2
                .contains("169.254.169.254, a cloud metadata address")
        );
        assert!(
            find("loop.test:80")
                .2
                .contains("127.0.0.2, a loopback address")
        );
        assert_eq!(
            find("www.api.test:8080").3,
            "add 8080 to [network] allow_ports"
        );
        assert_eq!(r["network"]["domains"]["www.api.test"], 1, "{ctx}");
        // Each refusal is in the exit summary too.
        let err = text(&out.stderr);
        assert!(err.is_empty(), "-q prints nothing but the errors: {err}");
    }
}

#[test]
fn nothing_but_the_proxy_is_reachable() {
    let test = "nothing_but_the_proxy_is_reachable";
    if !need_tools(test) {
        return;
    }
    let py = r#"
import os, socket
port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
def tcp(host, port):
    s = socket.socket(); s.settimeout(5)
    try: s.connect((host, port)); return "OK"
    except OSError as e: return e.__class__.__name__ + " " + str(e.errno)
def udp(host, port):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (host, port)); return "OK"
    except OSError as e: return e.__class__.__name__ + " " + str(e.errno)
print("tcp-direct", tcp("198.18.0.10", 80))
# The port of the proxy, on another host: a port is not the proxy.
print("tcp-same-port", tcp("198.18.0.10", port))
print("udp-direct", udp("198.18.0.10", 53))
print("tcp-proxy", tcp("127.0.0.1", port))
# A server the tree starts on loopback is reachable from the tree (with its
# own network namespace; without, TCP goes to the proxy alone).
try:
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
    print("tcp-own", tcp("127.0.0.1", l.getsockname()[1]))
except OSError as e:
    print("tcp-own bind", e.errno)
"#;
    for (user, ns) in cases(test) {
        let p = proxy_profile("allow_domains = [\"api.test\"]", ns);
        let reports = report_dir();
        let rep = reports.path().join("r.json");
        // After the run, the proxy's port (on the host's loopback without
        // namespaces) takes no connection: nothing of the proxy outlives it.
        let out = in_netns(
            user,
            &format!(
                "$CORDON run -q -p {p} --report {rep} -- {PYTHON} -c '{py}'; echo \"rc=$?\"\n\
                 $CORDON run -q -p {p} -- curl -sS --max-time 5 --noproxy '*' http://api.test/; echo \"curl=$?\"\n\
                 port=$($CORDON run -q -p {p} -- printenv HTTP_PROXY | sed 's/.*://')\n\
                 (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && echo \"after: open $port\" || echo \"after: closed $port\"",
                rep = rep.display()
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        assert!(o.contains("rc=0"), "{ctx}");
        assert!(o.contains("tcp-proxy OK"), "{ctx}");
        assert!(o.contains("after: closed"), "{ctx}");
        // A tool that ignores the proxy fails closed, and the report says so.
        let r = read_report(&rep);
        let refused: Vec<(String, String, String)> = r["denials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "net")
            .map(|d| {
                (
                    d["operation"].as_str().unwrap().to_string(),
                    d["target"].as_str().unwrap().to_string(),
                    d["errno"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want_errno = match ns {
            Ns::Auto => "ENETUNREACH",
            Ns::Off => "EACCES",
        };
        assert!(
            refused.contains(&("connect".into(), "198.18.0.10:80".into(), want_errno.into())),
            "{refused:?}\n{ctx}"
        );
        if ns == Ns::Auto {
            assert!(
                refused.contains(&("send".into(), "198.18.0.10:53".into(), want_errno.into())),
                "{refused:?}\n{ctx}"
            );
        }
        match ns {
            Ns::Auto => {
                // The tree's network namespace has loopback alone: no route out.
                assert!(o.contains("tcp-direct OSError 101"), "ENETUNREACH: {ctx}");
                assert!(
                    o.contains("tcp-same-port OSError 101"),
                    "ENETUNREACH: {ctx}"
                );
                assert!(o.contains("udp-direct OSError 101"), "ENETUNREACH: {ctx}");
                assert!(o.contains("tcp-own OK"), "{ctx}");
                // A client that ignores the proxy variables reaches nothing (curl 7).
                assert!(o.contains("curl=7"), "{ctx}");
            }
            Ns::Off => {
                // Landlock allows the proxy's port alone; the supervisor, which
                // performs the connect, 127.0.0.1 alone; no UDP socket at all.
                assert!(o.contains("tcp-direct PermissionError 13"), "EACCES: {ctx}");
                assert!(
                    o.contains("tcp-same-port PermissionError 13"),
                    "EACCES: {ctx}"
                );
                assert!(o.contains("udp-direct OSError 97"), "EAFNOSUPPORT: {ctx}");
                assert!(o.contains("tcp-own bind 13"), "EACCES: {ctx}");
                // curl 7: no connection (EACCES on connect).
                assert!(o.contains("curl=7"), "{ctx}");
            }
        }
    }
}

#[test]
fn names_resolve_through_the_launcher_only_when_allowed() {
    let test = "names_resolve_through_the_launcher_only_when_allowed";
    if !need_tools(test) {
        return;
    }
    // Raw queries to the resolver /etc/resolv.conf names: rcode and answers.
    let py = r#"
import socket, struct
def q(name, t=1):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    pkt = struct.pack(">HHHHHH", 7, 0x100, 1, 0, 0, 0)
    pkt += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", t, 1)
    s.sendto(pkt, ("127.0.0.1", 53)); r = s.recv(512)
    n = struct.unpack(">H", r[6:8])[0]
    return "rcode=%d answers=%d last=%s" % (r[3] & 15, n, ".".join(map(str, r[-4:])) if n else "-")
print("allowed", q("api.test"))
print("txt", q("api.test", 16))
print("other", q("other.test"))
print("meta", q("meta.test"))
try:
    socket.getaddrinfo("nowhere.test", 80); print("gai resolved")
except socket.gaierror as e:
    print("gai", e.args[0])
print(open("/etc/resolv.conf").read().split("\n")[1] if __import__("os").path.exists("/etc/resolv.conf") else "nameserver 127.0.0.1")
"#;
    for user in users(test) {
        let run = run_py(
            user,
            Ns::Auto,
            "allow_domains = [\"api.test\", \"meta.test\"]",
            py,
            "",
        );
        let (o, ctx) = (&run.o, &run.ctx);
        assert!(o.contains("rc=0"), "{ctx}");
        assert!(
            o.contains(&format!("allowed rcode=0 answers=1 last={ADDR}")),
            "{ctx}"
        );
        // No other record types: nothing to tunnel through.
        assert!(o.contains("txt rcode=0 answers=0"), "{ctx}");
        assert!(o.contains("other rcode=3 answers=0"), "NXDOMAIN: {ctx}");
        // An allowed name that leads to the metadata address gets no address.
        assert!(o.contains("meta rcode=0 answers=0"), "{ctx}");
        assert!(o.contains("gai -2"), "EAI_NONAME: {ctx}");
        assert!(o.contains("nameserver 127.0.0.1"), "{ctx}");
        let r = run.report();
        let d = denials(&r);
        assert!(
            d.iter().any(|x| x.0 == "resolve" && x.1 == "other.test"),
            "{d:#?}\n{ctx}"
        );
        assert!(
            d.iter().any(|x| x.0 == "resolve" && x.1 == "nowhere.test"),
            "{d:#?}\n{ctx}"
        );
        // A lookup asks twice (A, AAAA): one denial per name.
        assert_eq!(
            d.iter().filter(|x| x.1 == "nowhere.test").count(),
            1,
            "{d:#?}"
        );
    }
}

#[test]
fn many_connections_at_once_and_a_stalled_client() {
    let test = "many_connections_at_once_and_a_stalled_client";
    if !need_tools(test) {
        return;
    }
    // 200 concurrent requests through the proxy while one client holds a
    // connection open without a word and another holds a tunnel open; both
    // are still open when the command ends, and the run ends anyway.
    let py = r#"
import socket, threading, urllib.request
stalled = socket.create_connection(("127.0.0.1", 3128))
tunnel = socket.create_connection(("127.0.0.1", 3128))
tunnel.sendall(b"CONNECT api.test:80 HTTP/1.1\r\nHost: api.test:80\r\n\r\n")
print("tunnel", tunnel.recv(100).split(b"\r\n")[0].decode())
ok = []
def get():
    try:
        ok.append(urllib.request.urlopen("http://api.test/", timeout=60).read() == b"hello-from-api\n")
    except Exception as e:
        ok.append(repr(e))
ts = [threading.Thread(target=get) for _ in range(200)]
[t.start() for t in ts]; [t.join() for t in ts]
print("ok", sum(1 for x in ok if x is True), [x for x in ok if x is not True][:3])
"#;
    for user in users(test) {
        let run = run_py(
            user,
            Ns::Auto,
            "allow_domains = [\"api.test\"]",
            py,
            "timeout 120 ",
        );
        let (o, ctx) = (&run.o, &run.ctx);
        assert!(o.contains("rc=0"), "{ctx}");
        assert!(
            o.contains("tunnel HTTP/1.1 200 Connection established"),
            "{ctx}"
        );
        assert!(o.contains("ok 200 []"), "{ctx}");
        let r = run.report();
        assert_eq!(r["network"]["domains"]["api.test"], 201, "{ctx}");
    }
}

#[test]
fn domain_rules_are_checked_where_they_are_written() {
    let user = if is_root() { User::Root } else { return };
    let ws = tempdir(user);
    for (text_, want) in [
        (
            "[network]\nmode = \"on\"\nallow_domains = [\"a.test\"]\n",
            "line 3",
        ),
        (
            "[network]\nmode = \"proxy\"\nallow_domains = [\"ok.test\", \"api.*.test\"]\n",
            "wildcard",
        ),
        ("[network]\nmode = \"proxy\"\nallow_ports = [0]\n", "port 0"),
        (
            "[network]\nmode = \"proxy\"\ndeny_domains = [\"a b\"]\n",
            "line 3",
        ),
        (
            "[network]\nmode = \"proxy\"\npresets = [\"npm\", \"everything\"]\n",
            "line 3",
        ),
        (
            "[network]\nmode = \"filtered\"\npresets = [\"npm\"]\n",
            "line 3",
        ),
    ] {
        let p = profile(
            shared_dir(),
            &format!("{}.toml", unique("proxy-bad")),
            text_,
        );
        let out = cordon(user)
            .args(["run", "-p", &p, "-w"])
            .arg(ws.path())
            .args(["--", "/bin/true"])
            .output()
            .unwrap();
        assert_code(&out, 125, text_);
        let line = assert_one_error_line(&out, text_);
        assert!(line.contains(want) && line.contains(&p), "{text_}: {line}");
    }
    // --allow-domain needs mode "proxy", and names the flag.
    let out = cordon(user)
        .args([
            "run",
            "-p",
            "workspace-write",
            "--allow-domain",
            "a.test",
            "-w",
        ])
        .arg(ws.path())
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_code(&out, 125, "--allow-domain");
    assert!(
        text(&out.stderr).contains("--allow-domain"),
        "{}",
        text(&out.stderr)
    );
    // explain answers for names.
    let p = proxy_profile("allow_domains = [\"*.api.test\"]", Ns::Auto);
    let ask_with = |p: &str, hp: &str| {
        cordon(user)
            .args(["explain", "-p", p, "--connect", hp])
            .output()
            .unwrap()
    };
    let ask = |hp: &str| ask_with(&p, hp);
    let crates = proxy_profile("presets = [\"crates\"]", Ns::Auto);
    let out = ask_with(&crates, "static.crates.io:443");
    assert_code(&out, 0, text(&out.stdout));
    assert!(
        text(&out.stdout).contains("preset \"crates\""),
        "{}",
        text(&out.stdout)
    );
    let out = ask("www.api.test:443");
    assert_code(&out, 0, text(&out.stdout));
    assert!(
        text(&out.stdout).contains("*.api.test"),
        "{}",
        text(&out.stdout)
    );
    let out = ask("api.test:443");
    assert_code(&out, 1, text(&out.stdout));
    assert!(
        text(&out.stdout).contains("add \"api.test\" to [network] allow_domains"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn filtered_mode_resolves_names_and_sends_datagrams_to_the_resolver_alone() {
    let test = "filtered_mode_resolves_names_and_sends_datagrams_to_the_resolver_alone";
    if !need_tools(test) {
        return;
    }
    let py = r#"
import socket
print("gai", socket.getaddrinfo("web.dns.test", 80, socket.AF_INET)[0][4][0])
def udp(host, port):
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", (host, port)); return "OK"
    except OSError as e: return str(e.errno)
print("udp-resolver", udp("198.18.0.10", 53))
print("udp-elsewhere", udp("198.18.0.11", 53))
print("udp-port", udp("198.18.0.10", 54))
for name, args in [("raw", (socket.AF_INET, socket.SOCK_RAW, 1)), ("icmp", (socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP))]:
    try: socket.socket(*args); print(name, "OK")
    except OSError as e: print(name, e.errno)
"#;
    for (user, ns) in cases(test) {
        let p = profile_ns(
            "filtered-dns",
            "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [80]\n",
            ns,
        );
        let reports = report_dir();
        let rep = reports.path().join("r.json");
        let out = in_netns(
            user,
            &format!(
                "$CORDON run -q -p {p} --report {rep} -- {PYTHON} -c '{py}'; echo \"rc=$?\"\n\
                 $CORDON run -q -p {p} -- curl -sS --max-time 10 http://web.dns.test/; echo \"curl=$?\"",
                rep = rep.display()
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        assert!(o.contains("rc=0"), "{ctx}");
        assert!(o.contains(&format!("gai {ADDR}")), "{ctx}");
        assert!(o.contains("hello-from-api\ncurl=0"), "{ctx}");
        assert!(o.contains("udp-resolver OK"), "{ctx}");
        assert!(o.contains("udp-elsewhere 13"), "EACCES: {ctx}");
        assert!(o.contains("udp-port 13"), "EACCES: {ctx}");
        assert!(o.contains("raw 97"), "EAFNOSUPPORT: {ctx}");
        assert!(o.contains("icmp 97"), "EAFNOSUPPORT: {ctx}");
        let r = read_report(&rep);
        let sends: Vec<&str> = r["denials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["operation"] == "send")
            .map(|d| d["target"].as_str().unwrap())
            .collect();
        assert!(sends.contains(&"198.18.0.11:53"), "{sends:?}\n{ctx}");
        assert!(sends.contains(&"198.18.0.10:54"), "{sends:?}\n{ctx}");
    }
}

#[test]
fn an_address_on_the_deny_list_is_refused_whichever_name_leads_to_it() {
    let test = "an_address_on_the_deny_list_is_refused_whichever_name_leads_to_it";
    if !need_tools(test) {
        return;
    }
    for user in users(test) {
        let p = proxy_profile(
            &format!("allow_domains = [\"*.test\"]\ndeny_domains = [\"{ADDR}\"]"),
            Ns::Auto,
        );
        let out = in_netns(
            user,
            &format!(
                "$CORDON run -q -p {p} -- curl -s -o /dev/null -w '%{{http_code}}' --max-time 20 http://api.test/; echo \" rc=$?\""
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}: {o}\n{}", text(&out.stderr));
        assert!(o.contains("403 rc=0"), "{ctx}");
    }
}

#[test]
fn the_connection_cap_follows_the_launchers_descriptors() {
    let test = "the_connection_cap_follows_the_launchers_descriptors";
    if !need_tools(test) {
        return;
    }
    // 200 tunnels held open by the payload, with the launcher limited to 512
    // descriptors (its cap is then (512 - 256) / 6 = 42 connections): the
    // connections beyond the cap wait in the listen queue, every connect(2)
    // the supervisor performs still returns, and the run ends.
    let py = r#"
import os, socket
port = int(os.environ["HTTP_PROXY"].rsplit(":", 1)[1])
held, fails = [], 0
for i in range(200):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"CONNECT api.test:80 HTTP/1.1\r\n\r\n")
        held.append(s)
    except OSError:
        fails += 1
print("connected", len(held), "failed", fails)
"#;
    for user in users(test) {
        let run = run_py(
            user,
            Ns::Auto,
            "allow_domains = [\"api.test\"]",
            py,
            "ulimit -n 512; timeout 120 ",
        );
        let (o, ctx) = (&run.o, &run.ctx);
        // rc 124 would be the hang this guards against.
        assert!(o.contains("rc=0"), "{ctx}");
        assert!(o.contains("connected 200 failed 0"), "{ctx}");
        let r = run.report();
        let d = denials(&r);
        assert!(
            d.iter().any(|x| x
                .2
                .contains("42 connections at once through the proxy is the cap")),
            "{d:#?}\n{ctx}"
        );
    }
}

#[test]
fn a_proxy_that_cannot_start_ends_the_run_before_the_command_runs() {
    // The proxy's thread refused (uid 65534 at its process limit: threads
    // count): exit 125, and the command never ran. Root is exempt from that
    // limit, so this is uid 65534's alone.
    let test = "a_proxy_that_cannot_start_ends_the_run_before_the_command_runs";
    if !is_root() {
        return skip(test, "needs root to run as uid 65534 under a process limit");
    }
    for ns in Ns::ALL {
        let ws = tempdir(User::Nobody);
        let p = profile_ns(
            "proxy-nproc",
            "extends = \"workspace-write\"\n[network]\nmode = \"proxy\"\nallow_domains = [\"api.test\"]\n[limits]\nprocesses = \"unlimited\"\n",
            ns,
        );
        let marker = ws.path().join("marker");
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .args(["prlimit", "--nproc=1:1"])
            .arg(bin())
            .args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", home(User::Nobody))
            .args(["--", "/usr/bin/touch"])
            .arg(&marker)
            .output()
            .unwrap();
        assert_code(&out, 125, format!("{ns}: the proxy could not start"));
        assert!(
            text(&out.stderr).contains("starting the proxy"),
            "{ns}: {}",
            text(&out.stderr)
        );
        assert!(!marker.exists(), "{ns}: the command ran without its proxy");
    }
}

/// `approve.domains = "ask"`: a name outside the allowlist goes to the
/// approver before the proxy connects; a denied name, an address, a port
/// outside allow_ports and a name leading to loopback are never asked about.
#[test]
fn a_name_outside_the_allowlist_is_asked_about_before_the_proxy_connects() {
    let test = "a_name_outside_the_allowlist_is_asked_about_before_the_proxy_connects";
    if !need_tools(test) {
        return;
    }
    let dir = shared_dir().join(unique("domain-approver"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let log = dir.join("asked.jsonl");
    let approver = dir.join("approver");
    std::fs::write(
        &approver,
        format!(
            "#!/bin/sh\nreq=$(cat)\nprintf '%s\\n' \"$req\" >> {}\ncase \"$req\" in *'\"target\":\"other.test:80\"'*) echo allow ;; *) echo deny not this one ;; esac\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &approver,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (user, ns) in cases(test) {
        let _ = std::fs::remove_file(&log);
        let p = proxy_profile(
            &format!(
                "allow_domains = [\"www.api.test\", \"loop.test\"]\ndeny_domains = [\"gist.api.test\"]\n[approve]\ndomains = \"ask\"\napprover = {{ command = [\"{}\"] }}",
                approver.display()
            ),
            ns,
        );
        let reports = report_dir();
        let rep = reports.path().join("r.json");
        let out = in_netns(
            user,
            &format!(
                r#"$CORDON run -q -p {p} --report {rep} -- bash -c '
for u in http://other.test/ http://api.test/ http://gist.api.test/ http://{ADDR}/ http://other.test:8080/; do
  echo "$u $(curl -s -o /dev/null -w "%{{http_code}}" --max-time 20 $u)"
done
echo "socks $(curl -s -o /dev/null -w "%{{http_code}}" --max-time 20 --proxy "$ALL_PROXY" http://other.test/)"
'; echo "rc=$?""#,
                rep = rep.display()
            ),
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        for (url, code) in [
            ("http://other.test/", "200"),
            ("http://api.test/", "403"),
            ("http://gist.api.test/", "403"),
            (&format!("http://{ADDR}/"), "403"),
            ("http://other.test:8080/", "403"),
            ("socks", "200"),
        ] {
            assert!(o.contains(&format!("{url} {code}")), "{url}: {ctx}");
        }
        let asked: Vec<serde_json::Value> = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let targets: Vec<&str> = asked
            .iter()
            .map(|a| a["target"].as_str().unwrap())
            .collect();
        // other.test twice (HTTP and SOCKS5: "once" is per question), api.test
        // once; never the denied name, the address or the other port.
        assert_eq!(
            targets,
            ["other.test:80", "api.test:80", "other.test:80"],
            "{ctx}"
        );
        assert!(asked.iter().all(|a| a["kind"] == "domain"), "{ctx}");
        let r = read_report(&rep);
        check_report_schema(&r, &ctx);
        let ap = r["approvals"].as_array().unwrap();
        assert_eq!(ap.len(), 3, "{ctx}");
        assert_eq!(r["network"]["domains"]["other.test"], 2, "{ctx}\n{r:#}");
        let d = denials(&r);
        assert!(
            d.iter()
                .any(|x| x.1 == "api.test:80" && x.2.contains("the approver did not allow it")),
            "{d:#?}\n{ctx}"
        );
    }
}
