//! Shared scratch space, devices and other terminals: what a payload leaves in
//! the host's /tmp, ${TMPDIR} or /dev/shm, which device nodes it can open, and
//! whether it reaches another terminal of the user, as root and as uid 65534,
//! with namespaces auto and off. Beside each refusal, the ordinary use works.
mod support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

/// Removes a host path the test made (or the payload might have made) on every way out.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Entries of `dir` (names), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const PLANT: &str = r#"
mkdir -p /tmp/.git 2>/dev/null
printf '[core]\n\tfsmonitor = "touch /tmp/pwned-by-fsmonitor"\n' > /tmp/.git/config 2>/dev/null
printf '[toolchain]\nchannel = "evil"\n' > /tmp/rust-toolchain.toml 2>/dev/null
printf '[toolchain]\nchannel = "evil"\n' > "${TMPDIR:-/tmp}/rust-toolchain.toml" || echo "tmpdir-plant-failed"
d=$(mktemp -d) && echo mktemp-data > "$d/f" && cat "$d/f"
/usr/bin/python3 -c 'import tempfile
with tempfile.NamedTemporaryFile() as f:
    f.write(b"py-tempfile-ok"); f.flush(); print(open(f.name).read())'
echo "TMPDIR=$TMPDIR"
echo ws-data > ws-file && cat ws-file
echo x > .git/hooks/pre-commit 2>/dev/null && echo hook-written; true
"#;

/// The payload plants a `.git` with core.fsmonitor at the root of /tmp and a
/// rust-toolchain.toml in ${TMPDIR} and /tmp; after the run none of it is on
/// the host, while mktemp, writing and reading back, and Python's tempfile work
/// inside. Without namespaces the run's own directory is gone afterwards.
#[test]
fn shared_tmp_is_left_untouched_and_tmp_works() {
    let test = "shared_tmp_is_left_untouched_and_tmp_works";
    for user in users(test) {
        for ns in Ns::ALL {
            // TMPDIR unset (so /tmp itself), and a TMPDIR under /tmp as `mktemp -d`
            // makes one (with namespaces a private tmpfs nested in the private /tmp).
            for own_tmpdir in [false, true] {
                plant_and_check(user, ns, own_tmpdir);
            }
        }
    }
}

fn plant_and_check(user: User, ns: Ns, own_tmpdir: bool) {
    let ctx = format!("{user}, {ns}, TMPDIR set: {own_tmpdir}");
    for p in [
        "/tmp/.git",
        "/tmp/rust-toolchain.toml",
        "/tmp/pwned-by-fsmonitor",
    ] {
        assert!(
            !Path::new(p).exists(),
            "{ctx}: {p} exists before the run: cannot prove anything (remove it)"
        );
    }
    let _guard = Cleanup(vec!["/tmp/.git".into(), "/tmp/rust-toolchain.toml".into()]);
    // The workspace under /tmp too: the private /tmp keeps it.
    let ws = tempdir_in_tmp(user);
    std::fs::create_dir_all(ws.path().join(".git/hooks")).unwrap();
    chown_r(ws.path(), user);
    let host_tmp = tempdir_in_tmp(user);
    let mut c = cordon(user);
    c.args(["run", "-q", "-p", &ns_profile("workspace-write", ns), "-w"])
        .arg(ws.path())
        .current_dir(ws.path());
    if own_tmpdir {
        c.env("TMPDIR", host_tmp.path());
    }
    let out = c.args(["--", "/bin/sh", "-c", PLANT]).output().unwrap();
    assert_code(&out, 0, &ctx);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("mktemp-data"), "{ctx}: mktemp: {stdout}");
    assert!(
        stdout.contains("py-tempfile-ok"),
        "{ctx}: tempfile: {stdout}"
    );
    assert!(!stdout.contains("tmpdir-plant-failed"), "{ctx}: {stdout}");
    assert!(
        stdout.contains("ws-data"),
        "{ctx}: the workspace in /tmp: {stdout}"
    );
    // The workspace re-attached on the private /tmp keeps its read-only binds.
    if ns == Ns::Auto {
        assert!(!stdout.contains("hook-written"), "{ctx}: {stdout}");
    }
    assert!(
        !Path::new("/tmp/.git").exists(),
        "{ctx}: /tmp/.git on the host"
    );
    assert!(
        !Path::new("/tmp/rust-toolchain.toml").exists(),
        "{ctx}: /tmp/rust-toolchain.toml on the host"
    );
    assert_eq!(
        entries(host_tmp.path()),
        Vec::<String>::new(),
        "{ctx}: the host's TMPDIR keeps something of the run"
    );
    let tmpdir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TMPDIR="))
        .unwrap_or_default()
        .to_string();
    let host = if own_tmpdir {
        host_tmp.path().display().to_string()
    } else {
        "/tmp".to_string()
    };
    match ns {
        Ns::Off => {
            assert!(
                tmpdir.starts_with(&format!("{host}/cordon-run-")),
                "{ctx}: TMPDIR={tmpdir}"
            );
            assert!(!Path::new(&tmpdir).exists(), "{ctx}: {tmpdir} left behind");
        }
        // With namespaces TMPDIR passes through as it is (unset stays unset).
        Ns::Auto if own_tmpdir => assert_eq!(tmpdir, host, "{ctx}"),
        Ns::Auto => assert_eq!(tmpdir, "", "{ctx}"),
    }
}

/// The run's own directory (namespaces off) is removed after a timeout (124) and
/// after cordon is interrupted, even when the payload made a subdirectory
/// unreadable and unwritable.
#[test]
fn run_tmp_is_removed_after_timeout_and_interruption() {
    let test = "run_tmp_is_removed_after_timeout_and_interruption";
    for user in users(test) {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let host_tmp = tempdir(user);
            let profile = profile_ns(
                "timeout",
                "extends = \"workspace-write\"\n[limits]\ntimeout = \"1s\"\n",
                ns,
            );
            let script = "echo \"$TMPDIR\" > started; mkdir -p \"$TMPDIR/d/e\"; \
                          echo x > \"$TMPDIR/d/e/f\"; chmod 000 \"$TMPDIR/d\"; \
                          echo ready >> started; sleep 30";
            // Timeout.
            let _ = std::fs::remove_file(ws.path().join("started"));
            let mut c = cordon(user);
            c.args(["run", "-q", "-p", &profile, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .env("TMPDIR", host_tmp.path())
                .args(["--", "/bin/sh", "-c", script]);
            let out = start(c).finish(Duration::from_secs(30), &ctx);
            assert_code(&out, 124, format!("{ctx}: timeout"));
            assert_eq!(
                entries(host_tmp.path()),
                Vec::<String>::new(),
                "{ctx}: after timeout"
            );
            let started = std::fs::read_to_string(ws.path().join("started")).unwrap();
            assert!(started.contains("ready"), "{ctx}: {started}");
            // Interrupted: SIGTERM to cordon, forwarded; the run ends and cleans up.
            let mut c = cordon(user);
            c.args(["run", "-q", "-p", &ns_profile("workspace-write", ns), "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .env("TMPDIR", host_tmp.path())
                .args(["--", "/bin/sh", "-c", script]);
            let _ = std::fs::remove_file(ws.path().join("started"));
            let running = start(c);
            let ready = poll_until(Duration::from_secs(20), || {
                std::fs::read_to_string(ws.path().join("started"))
                    .is_ok_and(|s| s.contains("ready"))
            });
            assert!(ready, "{ctx}: the payload never started");
            // setpriv execs cordon: the child's pid is cordon's.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(running.pid()),
                nix::sys::signal::Signal::SIGTERM,
            );
            let out = running.finish(Duration::from_secs(30), &ctx);
            assert_code(&out, 128 + 15, format!("{ctx}: interrupted"));
            assert_eq!(
                entries(host_tmp.path()),
                Vec::<String>::new(),
                "{ctx}: after SIGTERM"
            );
        }
    }
}

/// A host POSIX shm object cannot be written without namespaces and is not
/// visible with them; with namespaces the private /dev/shm works (a file and
/// Python's multiprocessing.shared_memory).
#[test]
fn host_shm_is_out_of_reach_and_private_shm_works() {
    let test = "host_shm_is_out_of_reach_and_private_shm_works";
    for user in users(test) {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let name = unique("cordon-test-shm");
            let host = PathBuf::from("/dev/shm").join(&name);
            std::fs::write(&host, "host").unwrap();
            let inside = PathBuf::from("/dev/shm").join(format!("{name}-inside"));
            let _guard = Cleanup(vec![host.clone(), inside.clone()]);
            chown_r(&host, user);
            let ws = tempdir(user);
            let script = format!(
                "test -e {h} && echo visible || echo invisible; \
                 echo payload > {h} 2>&1 || echo write-refused; \
                 echo inside > {i} && cat {i}; \
                 /usr/bin/python3 -c 'from multiprocessing import shared_memory as s
m = s.SharedMemory(create=True, size=16); m.buf[0] = 7; print(\"shm\", m.buf[0]); m.close(); m.unlink()'",
                h = host.display(),
                i = inside.display()
            );
            let out = run_sh(user, &ns_profile("workspace-write", ns), ws.path(), &script);
            let stdout = text(&out.stdout);
            assert_eq!(
                std::fs::read_to_string(&host).unwrap(),
                "host",
                "{ctx}: {stdout}"
            );
            match ns {
                Ns::Off => {
                    assert!(stdout.contains("write-refused"), "{ctx}: {stdout}");
                    assert!(
                        !stdout.contains("inside"),
                        "{ctx}: host /dev/shm written: {stdout}"
                    );
                    assert!(!inside.exists(), "{ctx}: created on the host");
                }
                Ns::Auto => {
                    assert!(stdout.contains("invisible"), "{ctx}: {stdout}");
                    assert!(stdout.contains("inside"), "{ctx}: {stdout}");
                    assert!(
                        stdout.contains("shm 7"),
                        "{ctx}: {stdout}\n{}",
                        text(&out.stderr)
                    );
                    assert_code(&out, 0, &ctx);
                }
            }
        }
    }
}

const OPEN_PY: &str = r#"
import errno, os, sys
for p in sys.argv[1:]:
    mode = os.O_WRONLY if p.startswith("w:") else os.O_RDONLY
    p = p[2:] if p.startswith("w:") else p
    try:
        fd = os.open(p, mode | os.O_NONBLOCK | os.O_NOCTTY)
        if mode == os.O_RDONLY and p in ("/dev/zero", "/dev/urandom"):
            assert len(os.read(fd, 4)) == 4
        if mode == os.O_WRONLY:
            os.write(fd, b"\r\nFAKE PROMPT password: ")
        os.close(fd)
        print(p, "OK")
    except OSError as e:
        print(p, errno.errorcode.get(e.errno, e.errno))
"#;

fn open_in_sandbox(user: User, ns: Ns, ws: &Path, paths: &[String]) -> Vec<String> {
    let script = shared_dir().join("open.py");
    std::fs::write(&script, OPEN_PY).unwrap();
    let mut c = cordon(user);
    c.args(["run", "-q", "-p", &ns_profile("workspace-write", ns), "-w"])
        .arg(ws)
        .current_dir(ws);
    // The script travels on stdin: the sandbox need not see the harness's files.
    c.args(["--", PYTHON, "-"]).args(paths);
    c.stdin(std::fs::File::open(&script).unwrap());
    only_std_fds(&mut c);
    let out = c.output().unwrap();
    assert_code(&out, 0, format!("{user}, {ns}: open {paths:?}"));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Block and loop devices, consoles and devices nobody listed cannot be opened
/// in any mode; null, zero and urandom work.
#[test]
fn only_allowlisted_devices_are_reachable() {
    let test = "only_allowlisted_devices_are_reachable";
    let block = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| format!("/dev/{}", e.file_name().to_string_lossy()))
        .find(|p| Path::new(p).exists());
    let Some(block) = block else {
        return skip(test, "no block device node in /dev");
    };
    let mut denied: Vec<String> = vec![block];
    for p in [
        "/dev/loop0",
        "/dev/console",
        "/dev/tty1",
        "/dev/vcs",
        "/dev/vcsa",
    ] {
        if Path::new(p).exists() {
            denied.push(p.into());
        }
    }
    // Default deny: devices no rule of cordon's names.
    let unlisted: Vec<String> = [
        "/dev/mem",
        "/dev/kmsg",
        "/dev/loop-control",
        "/dev/cpu_dma_latency",
    ]
    .iter()
    .filter(|p| Path::new(p).exists())
    .map(|p| p.to_string())
    .collect();
    assert!(
        !unlisted.is_empty(),
        "no unlisted device to prove the default"
    );
    denied.extend(unlisted);
    let allowed = ["/dev/null", "/dev/zero", "/dev/urandom", "w:/dev/null"];
    // As root, nothing but the sandbox stands in the way.
    if is_root() {
        let out = Command::new(PYTHON)
            .arg("-c")
            .arg(OPEN_PY)
            .args(&denied[..2])
            .output()
            .unwrap();
        assert!(
            text(&out.stdout).lines().all(|l| l.ends_with(" OK")),
            "{}",
            text(&out.stdout)
        );
    }
    for user in users(test) {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let mut paths: Vec<String> = denied.clone();
            paths.extend(allowed.iter().map(|s| s.to_string()));
            let got = open_in_sandbox(user, ns, ws.path(), &paths);
            let want_denied = match ns {
                Ns::Auto => "ENOENT",
                Ns::Off => "EACCES",
            };
            for (line, p) in got.iter().zip(&paths) {
                let p = p.trim_start_matches("w:");
                let want = if denied.iter().any(|d| d == p) {
                    want_denied
                } else {
                    "OK"
                };
                assert_eq!(line, &format!("{p} {want}"), "{user}, {ns}: {got:?}");
            }
            assert_eq!(got.len(), paths.len(), "{user}, {ns}: {got:?}");
        }
    }
}

/// A pty pair on the host, its slave owned by `user` (so only the sandbox stands in the way).
/// The slave stays open (a master without one reads EIO); neither reaches cordon.
fn host_pty(user: User) -> (OwnedFd, OwnedFd, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let name = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd()))
        .unwrap()
        .display()
        .to_string();
    chown_r(Path::new(&name), user);
    let fl = nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&pty.master, nix::fcntl::FcntlArg::F_SETFL(fl)).unwrap();
    (pty.master, pty.slave, name)
}

/// Another terminal of the user (a pty pair the test holds) cannot be opened or
/// written from the sandbox, and nothing arrives on its master.
#[test]
fn other_terminals_are_out_of_reach() {
    let test = "other_terminals_are_out_of_reach";
    for user in users(test) {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let (master, _slave_fd, slave) = host_pty(user);
            let ws = tempdir(user);
            let got = open_in_sandbox(user, ns, ws.path(), &[slave.clone(), format!("w:{slave}")]);
            let want = match ns {
                Ns::Auto => "ENOENT",
                Ns::Off => "EACCES",
            };
            assert_eq!(
                got,
                vec![format!("{slave} {want}"), format!("{slave} {want}")],
                "{ctx}"
            );
            let mut buf = [0u8; 256];
            match nix::unistd::read(&master, &mut buf) {
                Err(nix::errno::Errno::EAGAIN) => {}
                other => panic!("{ctx}: the host master got {other:?}: {:?}", &buf[..16]),
            }
        }
    }
}

/// The run's own terminal stays usable: with cordon on a pty as its controlling
/// terminal (`script`), the payload writes to /dev/tty and its stdout; without
/// namespaces, also to its own /dev/pts node by name. With namespaces a program
/// that allocates its own pty (`script` inside) works.
#[test]
fn own_terminal_stays_usable() {
    let test = "own_terminal_stays_usable";
    if !Path::new("/usr/bin/script").exists() {
        return skip(test, "no script(1) (util-linux)");
    }
    for user in users(test) {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let inner = match ns {
                Ns::Auto => "script -qec 'echo inner-pty-ok' /dev/null",
                Ns::Off => "p=$(readlink /proc/self/fd/0); echo via-own-node > \"$p\"",
            };
            let payload = format!("echo via-tty > /dev/tty; echo via-stdout; {inner}");
            let cmd = format!(
                "{} run -q -p {} -w {} -- /bin/sh -c \"{}\"",
                bin().display(),
                ns_profile("workspace-write", ns),
                ws.path().display(),
                payload.replace('"', "\\\"").replace('$', "\\$")
            );
            let mut c = match user {
                User::Root => Command::new("script"),
                User::Nobody => {
                    let mut c = Command::new("setpriv");
                    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "script"]);
                    c
                }
            };
            c.args(["-qec", &cmd, "/dev/null"])
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("HOME", home(user))
                .current_dir(ws.path())
                .stdin(std::process::Stdio::null());
            only_std_fds(&mut c);
            let out = start(c).finish(Duration::from_secs(60), &ctx);
            let all = text(&out.stdout);
            assert_code(&out, 0, format!("{ctx}: {all}"));
            for want in ["via-tty", "via-stdout"] {
                assert!(all.contains(want), "{ctx}: {want} missing in {all:?}");
            }
            match ns {
                Ns::Auto => assert!(all.contains("inner-pty-ok"), "{ctx}: {all:?}"),
                Ns::Off => assert!(all.contains("via-own-node"), "{ctx}: {all:?}"),
            }
        }
    }
}

/// Mode auto where user namespaces are refused (a seccomp filter, as container
/// runtimes install): the launch falls back to Landlock and seccomp alone, and
/// the fallback too gets its own temporary directory, removed afterwards.
#[test]
fn auto_fallback_gets_its_own_tmpdir() {
    for user in users("auto_fallback_gets_its_own_tmpdir") {
        let ctx = format!("{user}, auto without user namespaces");
        let ws = tempdir(user);
        let host_tmp = tempdir(user);
        let mut c = cordon(user);
        c.args([
            "run",
            "-v",
            "-p",
            &ns_profile("workspace-write", Ns::Auto),
            "-w",
        ])
        .arg(ws.path())
        .current_dir(ws.path())
        .env("TMPDIR", host_tmp.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "echo \"TMPDIR=$TMPDIR\"; d=$(mktemp -d) && echo ok > $d/f && cat $d/f",
        ]);
        let out = without_userns(c).output().unwrap();
        assert_code(&out, 0, &ctx);
        assert!(
            text(&out.stderr).contains("namespaces unavailable"),
            "{ctx}: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let tmpdir = stdout
            .lines()
            .find_map(|l| l.strip_prefix("TMPDIR="))
            .unwrap_or_default();
        assert!(
            tmpdir.starts_with(&format!("{}/cordon-run-", host_tmp.path().display())),
            "{ctx}: TMPDIR={tmpdir}"
        );
        assert!(stdout.contains("\nok"), "{ctx}: {stdout}");
        assert_eq!(
            entries(host_tmp.path()),
            Vec::<String>::new(),
            "{ctx}: left behind"
        );
    }
}
