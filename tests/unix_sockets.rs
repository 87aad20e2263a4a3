//! Pathname unix sockets (issue 11): a sandboxed process reaches only the
//! sockets it made itself (in a writable root, during the run) and those a
//! profile lists in `[network] unix_connect`. A real host tmux server, a host
//! listener inside the workspace, the sandbox's own sockets (stream, datagram,
//! relative, socketpair, abstract), TCP port rules now applied by the
//! supervisor, and a race against the check. As root and as uid 65534, with
//! namespaces auto and off.

mod support;

use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// A tmux server on the host, owned by `user`, killed on drop.
struct Tmux {
    sock: PathBuf,
    user: User,
    _dir: tempfile::TempDir,
}

impl Tmux {
    fn start(user: User) -> Tmux {
        let dir = tempdir(user);
        let sock = dir.path().join("tmux.sock");
        let out = as_user(user, "tmux")
            .arg("-S")
            .arg(&sock)
            .args(["new-session", "-d", "sleep 600"])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("starting tmux as {user}"));
        Tmux {
            sock,
            user,
            _dir: dir,
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = as_user(self.user, "tmux")
            .arg("-S")
            .arg(&self.sock)
            .arg("kill-server")
            .output();
    }
}

fn as_user(user: User, prog: &str) -> Command {
    let mut c = match user {
        User::Root => Command::new(prog),
        User::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", prog]);
            c
        }
    };
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home(user))
        // tmux runs commands with the login shell, and uid 65534's is nologin.
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::null());
    c
}

fn have_tmux(test: &str) -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        skip(test, "tmux is not installed (apt package tmux)");
        return false;
    }
    true
}

fn run(
    user: User,
    profile: &str,
    ws: &Path,
    extra: &[&str],
    argv: &[&str],
) -> std::process::Output {
    run_env(user, profile, ws, extra, &[], argv)
}

fn run_env(
    user: User,
    profile: &str,
    ws: &Path,
    extra: &[&str],
    env: &[(&str, &Path)],
    argv: &[&str],
) -> std::process::Output {
    cordon(user)
        .envs(env.iter().map(|(k, v)| (*k, v.as_os_str())))
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(extra)
        .arg("--")
        .args(argv)
        .output()
        .unwrap()
}

#[test]
fn host_tmux_server_is_out_of_reach() {
    const T: &str = "host_tmux_server_is_out_of_reach";
    if !have_tmux(T) {
        return;
    }
    for user in users(T) {
        let tmux = Tmux::start(user);
        let out_dir = tempdir(user);
        let marker = out_dir.path().join("marker");
        let cmd = format!("touch {}", marker.display());
        let sock = tmux.sock.to_str().unwrap();
        for ns in Ns::ALL {
            for base in ["workspace-write", "read-only", "strict", "online"] {
                let ws = tempdir(user);
                let p = ns_profile(base, ns);
                // --no-capture turns recording off, not the mediation.
                for extra in [&[][..], &["--no-capture"][..]] {
                    let out = run(
                        user,
                        &p,
                        ws.path(),
                        extra,
                        &["tmux", "-S", sock, "run-shell", &cmd],
                    );
                    let ctx = format!("{base}, {ns}, as {user}, {extra:?}");
                    assert_ne!(out.status.code(), Some(0), "{ctx}: tmux reached the host");
                    assert!(
                        text(&out.stderr).contains("Permission denied"),
                        "{ctx}: {}",
                        text(&out.stderr)
                    );
                    assert!(!marker.exists(), "{ctx}: the host ran the command");
                }
            }
        }
        // Control: the same command outside the sandbox runs on the host.
        let out = as_user(user, "tmux")
            .args(["-S", sock, "run-shell", &cmd])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("unsandboxed tmux as {user}"));
        assert!(marker.exists(), "control: the host tmux ran the command");
    }
}

const CLIENT: &str = r#"
import errno, socket, sys
def attempt(kind, path):
    try:
        if kind == "stream":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.sendto(b"x", path)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print(attempt("stream", sys.argv[1]), attempt("dgram", sys.argv[2]))
"#;

/// A listener the host made inside the workspace before the run: a writable
/// root, but not born during the run. Refused (a socket nobody listed), and
/// reachable once `unix_connect` lists it.
#[test]
fn host_listener_in_the_workspace_needs_unix_connect() {
    const T: &str = "host_listener_in_the_workspace_needs_unix_connect";
    for user in users(T) {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            std::fs::write(ws.path().join("client.py"), CLIENT).unwrap();
            let stream = ws.path().join("host.sock");
            let dgram = ws.path().join("host-dgram.sock");
            let l = UnixListener::bind(&stream).unwrap();
            let d = UnixDatagram::bind(&dgram).unwrap();
            l.set_nonblocking(true).unwrap();
            d.set_nonblocking(true).unwrap();
            chown_r(ws.path(), user);
            let (s, g) = (stream.to_str().unwrap(), dgram.to_str().unwrap());
            let deny = ns_profile("workspace-write", ns);
            let allow = profile_ns(
                "unix-connect",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nunix_connect = [\"{s}\", {{ path = \"${{WORKSPACE}}/host-dgram*\", optional = true }}]\n"
                ),
                ns,
            );
            let ctx = format!("as {user}, {ns}");
            let out = run(user, &deny, ws.path(), &[], &[PYTHON, "client.py", s, g]);
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout).trim(), "EACCES EACCES", "{ctx}");
            assert!(l.accept().is_err(), "{ctx}: the host listener was reached");
            assert!(d.recv(&mut [0u8; 4]).is_err(), "{ctx}: a datagram arrived");
            let out = run(user, &allow, ws.path(), &[], &[PYTHON, "client.py", s, g]);
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout).trim(), "ok ok", "{ctx} with unix_connect");
            assert!(l.accept().is_ok(), "{ctx}: listed, yet not reached");
            // The report names the rule and the change.
            let r = tempdir(user);
            let report = r.path().join("r.json");
            let out = run(
                user,
                &deny,
                ws.path(),
                &["--report", report.to_str().unwrap()],
                &[PYTHON, "client.py", s, g],
            );
            assert_code(&out, 0, &ctx);
            let denials = report_denials(&read_report(&report));
            let d0 = denials
                .iter()
                .find(|d| d["target"] == s)
                .unwrap_or_else(|| panic!("{ctx}: no denial for {s}: {denials:#?}"));
            assert_eq!(d0["kind"], "net");
            assert_eq!(d0["operation"], "connect");
            assert_eq!(d0["observed_by"], "seccomp-notify");
            assert!(
                d0["rule"]
                    .as_str()
                    .unwrap()
                    .contains("created before the run")
            );
            assert_eq!(
                d0["suggestion"],
                format!("add \"{s}\" to [network] unix_connect")
            );
        }
    }
}

const OWN: &str = r#"
import os, socket, sys
base = sys.argv[1]
out = []
def own(path):
    for p in (path, path + ".d"):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen()
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    a, _ = srv.accept()
    c.sendall(b"ping")
    assert a.recv(4) == b"ping"
    d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    d.bind(path + ".d")
    e = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    e.sendto(b"dg", path + ".d")
    assert d.recv(2) == b"dg"
    os.chdir(os.path.dirname(path))
    e.sendto(b"rl", os.path.basename(path) + ".d")
    assert d.recv(2) == b"rl"
    return "ok"
for path in sys.argv[1:]:
    try:
        out.append(own(path))
    except OSError as ex:
        out.append("%s:%s" % (path, ex))
a, b = socket.socketpair()
a.send(b"p")
out.append("pair" if b.recv(1) == b"p" else "pair?")
name = "\0cordon-own-%d" % os.getpid()
srv = socket.socket(socket.AF_UNIX)
srv.bind(name)
srv.listen()
c = socket.socket(socket.AF_UNIX)
try:
    c.connect(name)
    out.append("abstract")
except OSError as ex:
    out.append("abstract:%s" % ex)
print(" ".join(out))
"#;

/// The ordinary use: a test runner's own socket in the workspace and in
/// $TMPDIR (stream, datagram sendto, a relative path), socketpair, and an
/// abstract socket made inside.
#[test]
fn sockets_the_sandbox_makes_work() {
    const T: &str = "sockets_the_sandbox_makes_work";
    for user in users(T) {
        for ns in Ns::ALL {
            for base in ["workspace-write", "online", "strict"] {
                let ws = tempdir(user);
                std::fs::write(ws.path().join("own.py"), OWN).unwrap();
                chown_r(ws.path(), user);
                let p = ns_profile(base, ns);
                let in_ws = ws.path().join("sub").join("run.sock");
                std::fs::create_dir_all(in_ws.parent().unwrap()).unwrap();
                chown_r(ws.path(), user);
                // $TMPDIR outside /tmp: the harness's HOME lies in /tmp, and without
                // namespaces a deny below a writable root takes the right to create
                // entries from the directories above it (a documented gap).
                let tmpdir = tempfile::Builder::new()
                    .prefix("cordon-unix-tmp-")
                    .tempdir_in("/var/tmp")
                    .unwrap();
                chown_r(tmpdir.path(), user);
                std::fs::set_permissions(
                    tmpdir.path(),
                    std::os::unix::fs::PermissionsExt::from_mode(0o755),
                )
                .unwrap();
                // The run's own $TMPDIR (without namespaces a fresh directory
                // beneath the one given here), as the payload sees it.
                let mut script = format!("exec {PYTHON} own.py \"$1\"");
                let mut want = vec!["ok"];
                if base != "strict" {
                    // strict writes only the workspace.
                    script.push_str(" \"$TMPDIR/own.sock\"");
                    want.push("ok");
                }
                want.extend(["pair", "abstract"]);
                let argv = vec!["/bin/sh", "-c", &script, "sh", in_ws.to_str().unwrap()];
                let out = run_env(
                    user,
                    &p,
                    ws.path(),
                    &[],
                    &[("TMPDIR", tmpdir.path())],
                    &argv,
                );
                let ctx = format!("{base}, {ns}, as {user}");
                assert_code(&out, 0, &ctx);
                assert_eq!(text(&out.stdout).trim(), want.join(" "), "{ctx}");
            }
        }
    }
}

const TCP: &str = r#"
import errno, socket, sys
def tcp(port):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"q", ("127.0.0.1", port))
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print(" ".join(tcp(int(p)) if p[0] != "u" else udp(int(p[1:])) for p in sys.argv[1:]))
"#;

/// The supervisor connects for the payload, which Landlock would not see: it
/// applies connect_tcp itself. UDP in mode "on" (a DNS-style sendto) works.
#[test]
fn tcp_port_rules_still_hold() {
    const T: &str = "tcp_port_rules_still_hold";
    if !require_landlock(T, 4) {
        return;
    }
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let (po, pc) = (
        open.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    let pu = udp.local_addr().unwrap().port();
    for user in users(T) {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            std::fs::write(ws.path().join("tcp.py"), TCP).unwrap();
            chown_r(ws.path(), user);
            let filtered = profile_ns(
                "filtered",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [{po}]\n"
                ),
                ns,
            );
            let ctx = format!("as {user}, {ns}");
            let (a, b) = (po.to_string(), pc.to_string());
            let out = run(user, &filtered, ws.path(), &[], &[PYTHON, "tcp.py", &a, &b]);
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout).trim(), "ok EACCES", "{ctx} filtered");
            let on = ns_profile("online", ns);
            let u = format!("u{pu}");
            let out = run(user, &on, ws.path(), &[], &[PYTHON, "tcp.py", &a, &b, &u]);
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout).trim(), "ok ok ok", "{ctx} on");
            let mut buf = [0u8; 4];
            assert!(udp.recv(&mut buf).is_ok(), "{ctx}: the datagram arrived");
        }
    }
}

/// A second thread rewrites the sockaddr (or swaps the socket under the same
/// number) while the main thread connects: the host listener is never reached.
/// The same program outside the sandbox reaches it (control: the race is real).
#[test]
fn racing_the_check_never_reaches_the_host() {
    const T: &str = "racing_the_check_never_reaches_the_host";
    let Some(race) = compile_c(T, Path::new("tests/unix/race.c"), "unix-race") else {
        return;
    };
    for user in users(T) {
        let host_dir = tempdir(user);
        let host = host_dir.path().join("host.sock");
        let l = UnixListener::bind(&host).unwrap();
        l.set_nonblocking(true).unwrap();
        chown_r(host_dir.path(), user);
        let h = host.to_str().unwrap();
        let host_dgram = host_dir.path().join("host-dgram.sock");
        let hd = UnixDatagram::bind(&host_dgram).unwrap();
        hd.set_nonblocking(true).unwrap();
        chown_r(host_dir.path(), user);
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let own = ws.path().join("own.sock");
            let p = ns_profile("workspace-write", ns);
            for mode in ["addr", "fd", "msg"] {
                let ctx = format!("{mode}, as {user}, {ns}");
                let target = if mode == "msg" {
                    host_dgram.to_str().unwrap()
                } else {
                    h
                };
                let out = run(
                    user,
                    &p,
                    ws.path(),
                    &["--allow-exec", race.parent().unwrap().to_str().unwrap()],
                    &[
                        race.to_str().unwrap(),
                        own.to_str().unwrap(),
                        target,
                        "2000",
                        mode,
                    ],
                );
                assert_code(&out, 0, &ctx);
                let line = text(&out.stdout);
                assert!(line.contains("host=0"), "{ctx}: {line}");
                assert!(!line.contains("own=0 "), "{ctx}: nothing connected: {line}");
                assert!(l.accept().is_err(), "{ctx}: the host listener was reached");
                assert!(
                    hd.recv(&mut [0u8; 4]).is_err(),
                    "{ctx}: a datagram reached the host socket"
                );
            }
        }
        // Control, outside the sandbox: the race is real (the flipping thread needs
        // the CPU while the connects run, so a busy machine gets a few tries). The
        // host listener accepts meanwhile: a full backlog would block the connects.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acceptor = {
            let (l, stop) = (l.try_clone().unwrap(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if l.accept().is_err() {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            })
        };
        let ctl = tempdir(user);
        let own = ctl.path().join("own.sock");
        let mut last = String::new();
        let hit = (0..5).any(|_| {
            let out = as_user(user, race.to_str().unwrap())
                .args([own.to_str().unwrap(), h, "20000", "addr"])
                .output()
                .unwrap();
            last = text(&out.stdout);
            out.status.success() && !last.contains("host=0")
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        acceptor.join().unwrap();
        assert!(
            hit,
            "control: the race never hit the host outside the sandbox: {last}"
        );
    }
}

/// `explain --connect PATH` answers with the same decision.
#[test]
fn explain_answers_for_unix_paths() {
    let ws = tempdir(User::Root);
    let outside = tempdir(User::Root);
    let host = outside.path().join("agent.sock");
    let _l = UnixListener::bind(&host).unwrap();
    let old = ws.path().join("old.sock");
    let _o = UnixListener::bind(&old).unwrap();
    let explain = |path: &Path| {
        Command::new(bin())
            .args(["explain", "-w"])
            .arg(ws.path())
            .arg("--connect")
            .arg(path)
            .output()
            .unwrap()
    };
    let out = explain(&host);
    assert_code(&out, 1, "explain a host socket");
    let t = text(&out.stdout);
    assert!(t.starts_with("denied: connect"), "{t}");
    assert!(t.contains("[network] unix_connect"), "{t}");
    let out = explain(&old);
    assert_code(&out, 1, "explain an old socket in the workspace");
    assert!(text(&out.stdout).contains("created before the run"));
    let out = explain(&ws.path().join("new.sock"));
    assert_code(&out, 0, "explain a socket the run would make");
    // HOST:PORT keeps its meaning.
    let out = Command::new(bin())
        .args(["explain", "--connect", "127.0.0.1:80"])
        .output()
        .unwrap();
    assert_code(&out, 1, "explain tcp");
}

/// Where no listener can be had (a cordon inside a cordon), a run without
/// namespaces is refused, naming the missing piece; --best-effort runs and the
/// report says what is not mediated.
#[test]
fn nested_cordon_without_a_listener_is_refused_without_namespaces() {
    const T: &str = "nested_cordon_without_a_listener_is_refused_without_namespaces";
    for user in users(T) {
        let ws = tempdir(user);
        let off = ns_profile("workspace-write", Ns::Off);
        let inner = |extra: &[&str]| {
            let mut argv = vec![bin().to_str().unwrap(), "run", "-p", &off, "-w"];
            argv.push(ws.path().to_str().unwrap());
            argv.extend_from_slice(extra);
            argv.extend(["--", "/bin/true"]);
            argv.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        // The harness's copy of cordon lies outside the profile's exec roots.
        let bin_dir = bin().parent().unwrap().to_str().unwrap();
        let a = inner(&[]);
        let argv: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = run(user, &off, ws.path(), &["--allow-exec", bin_dir], &argv);
        assert_code(&out, 125, format!("nested as {user}"));
        assert!(
            text(&out.stderr).contains("confining pathname unix sockets"),
            "{}",
            text(&out.stderr)
        );
        // The inner report outside the inner run's writable roots (cordon refuses
        // one inside), in a directory the outer run may write.
        let reports = tempdir(user);
        let report = reports.path().join("inner.json");
        let b = inner(&["--best-effort", "--report", report.to_str().unwrap()]);
        let argv: Vec<&str> = b.iter().map(String::as_str).collect();
        let rdir = reports.path().to_str().unwrap();
        let out = run(
            user,
            &off,
            ws.path(),
            &["--allow-exec", bin_dir, "--allow-write", rdir],
            &argv,
        );
        assert_code(&out, 0, format!("nested --best-effort as {user}"));
        let notes = read_report(&report)["capture"]["notes"].to_string();
        assert!(
            notes.contains("pathname unix sockets not mediated"),
            "{notes}"
        );
    }
}

/// --no-capture turns recording off, not the supervisor: a memfd stays
/// non-executable without namespaces (it was open with --no-capture before).
#[test]
fn no_capture_keeps_the_supervisor() {
    const T: &str = "no_capture_keeps_the_supervisor";
    const MEMFD: &str = "import os\nfd = os.memfd_create('x')\nos.write(fd, open('/bin/true', 'rb').read())\ntry:\n    os.execv('/proc/self/fd/%d' % fd, ['x'])\nexcept OSError as e:\n    print(e.errno == 13 and 'EACCES' or e)\n";
    for user in users(T) {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let out = run(
                user,
                &p,
                ws.path(),
                &["--no-capture"],
                &[PYTHON, "-c", MEMFD],
            );
            assert_code(&out, 0, format!("memfd as {user}, {ns}"));
            assert_eq!(text(&out.stdout).trim(), "EACCES", "as {user}, {ns}");
        }
    }
}

const SENDMSG: &str = r#"import array, ctypes, os, signal, socket, subprocess, sys
out = []
a, b = socket.socketpair()
r, w = os.pipe()
os.write(w, b"piped")
a.sendmsg([b"ab", b"cd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
msg, anc, flags, addr = b.recvmsg(16, socket.CMSG_SPACE(4))
fds = array.array("i"); fds.frombytes(anc[0][2])
out.append("rights" if msg == b"abcd" and os.read(fds[0], 5) == b"piped" else "rights?")
base = sys.argv[1]
for p in (base, ):
    try: os.unlink(p)
    except FileNotFoundError: pass
d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d.bind(base)
e = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
e.sendmsg([b"x1"], [], 0, base); out.append("named" if d.recv(4) == b"x1" else "named?")
try:
    e.sendmsg([b"x2"], [], 0, sys.argv[2]); out.append("host-reached")
except OSError as ex: out.append("host:%d" % ex.errno)
# sendmmsg via ctypes: two messages to base
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure): _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure): _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure): _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint32)]
e.connect(base)
bufs = [ctypes.create_string_buffer(b"m1"), ctypes.create_string_buffer(b"m22")]
iovs = [iovec(ctypes.cast(bufs[0], ctypes.c_void_p), 2), iovec(ctypes.cast(bufs[1], ctypes.c_void_p), 3)]
vec = (mmsghdr * 2)()
for i in range(2):
    vec[i].hdr.iov = ctypes.pointer(iovs[i]); vec[i].hdr.iovlen = 1
n = libc.sendmmsg(e.fileno(), vec, 2, 0)
got = [d.recv(8), d.recv(8)]
out.append("mmsg" if n == 2 and vec[0].len == 2 and vec[1].len == 3 and got == [b"m1", b"m22"] else "mmsg? %d %d %d %r" % (n, vec[0].len, vec[1].len, got))
# SIGPIPE when not asked for MSG_NOSIGNAL
code = subprocess.run([sys.executable, "-c", "import signal, socket\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\na, b = socket.socketpair()\nb.close()\na.sendmsg([b'x'])\n"]).returncode
out.append("sigpipe" if code == -13 else "sigpipe? %d" % code)
print(" ".join(out))
"#;

/// sendmsg and sendmmsg, performed by the supervisor: SCM_RIGHTS descriptors
/// arrive and work, a named datagram reaches an own socket and not a host one,
/// sendmmsg reports each message's length, and a broken stream still raises
/// SIGPIPE where MSG_NOSIGNAL was not asked for.
#[test]
fn sendmsg_is_emulated() {
    const T: &str = "sendmsg_is_emulated";
    for user in users(T) {
        let host_dir = tempdir(user);
        let host = host_dir.path().join("host-dgram.sock");
        let hd = UnixDatagram::bind(&host).unwrap();
        hd.set_nonblocking(true).unwrap();
        chown_r(host_dir.path(), user);
        for ns in Ns::ALL {
            let ws = tempdir(user);
            std::fs::write(ws.path().join("sm.py"), SENDMSG).unwrap();
            chown_r(ws.path(), user);
            let own = ws.path().join("own.sock");
            let p = ns_profile("workspace-write", ns);
            let ctx = format!("as {user}, {ns}");
            let out = run(
                user,
                &p,
                ws.path(),
                &[],
                &[
                    PYTHON,
                    "sm.py",
                    own.to_str().unwrap(),
                    host.to_str().unwrap(),
                ],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout).trim(),
                "rights named host:13 mmsg sigpipe",
                "{ctx}"
            );
            assert!(
                hd.recv(&mut [0u8; 4]).is_err(),
                "{ctx}: the host got a datagram"
            );
        }
    }
}
