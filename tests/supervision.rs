//! Supervision on this kernel, as root and as uid 65534, in both namespace
//! modes: the timeout ends the whole tree (a daemonized grandchild included)
//! with 124; killing the launcher kills the sandbox; SIGTERM to the launcher is
//! forwarded; only the caller's own descriptors reach the child; stdin and
//! stdout pass through.
//!
//! Processes are found on the host by a unique `sleep` argument: inside a PID
//! namespace `$$` is not the host's pid.

mod support;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::*;

/// A unique argument for `sleep` (seconds, so it is also a valid duration).
fn sleep_marker() -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{}", 10_000 + n, std::process::id())
}

fn sleepers(marker: &str) -> Vec<i32> {
    pids_with_argv(&["sleep", marker])
}

/// Wait until `file` exists (the sandboxed script says it is ready).
fn wait_file(file: &Path, ctx: &str) {
    assert!(
        poll_until(Duration::from_secs(10), || file.exists()),
        "{ctx}: {} never appeared",
        file.display()
    );
}

fn start_sh(user: User, profile: &str, ws: &Path, script: &str) -> Running {
    let mut c = cordon(user);
    c.args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(["--", "/bin/sh", "-c", script]);
    start(c)
}

/// The profile's timeout (1s) ends the run with 124 and ends everything in it:
/// a daemon that double-forked, called setsid and ignores SIGTERM, and the
/// payload itself (which ignores SIGTERM too when `stubborn`, so only the
/// SIGKILL after the grace period ends it).
fn timeout_kills_the_tree(ns: Ns) {
    let test = format!("timeout_kills_a_daemonized_grandchild ({ns})");
    let p = profile_ns(
        "timeout",
        "extends = \"workspace-write\"\n[limits]\ntimeout = \"1s\"\n",
        ns,
    );
    for user in users(&test) {
        for stubborn in [false, true] {
            let ctx = format!("{test} as {user}, payload ignores SIGTERM: {stubborn}");
            let ws = tempdir(user);
            let daemon = sleep_marker();
            let payload = sleep_marker();
            let script = format!(
                "( setsid sh -c 'trap \"\" TERM; echo $$ > pid.tmp; mv pid.tmp pid; exec sleep {daemon}' \
                 </dev/null >/dev/null 2>&1 & ); {} exec sleep {payload}",
                if stubborn { "trap '' TERM;" } else { "" }
            );
            let t0 = Instant::now();
            let run = start_sh(user, &p, ws.path(), &script);
            wait_file(&ws.path().join("pid"), &ctx);
            // The pid file is written just before `exec sleep`: wait for the exec.
            let mut found = Vec::new();
            poll_until(Duration::from_secs(5), || {
                found = sleepers(&daemon);
                !found.is_empty()
            });
            assert_eq!(
                found.len(),
                1,
                "{ctx}: the daemon is not running on the host"
            );
            let host_pid = found[0];
            if ns == Ns::Off {
                // Without a PID namespace the pid it wrote is the host's.
                let written: i32 = std::fs::read_to_string(ws.path().join("pid"))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap();
                assert_eq!(written, host_pid, "{ctx}: pid file");
            }
            assert!(
                poll_until(Duration::from_secs(5), || sleepers(&payload).len() == 1),
                "{ctx}: the payload is not running"
            );
            let out = run.finish(Duration::from_secs(10), &ctx);
            let took = t0.elapsed();
            assert_code(&out, 124, &ctx);
            assert!(
                took >= Duration::from_secs(1),
                "{ctx}: ended after {took:?}, before the timeout"
            );
            // 1s timeout + the grace between SIGTERM and SIGKILL, and slack.
            assert!(took < Duration::from_secs(8), "{ctx}: took {took:?}");
            assert!(
                !pid_alive(host_pid),
                "{ctx}: the daemon (pid {host_pid}) outlived cordon"
            );
            assert!(
                sleepers(&daemon).is_empty(),
                "{ctx}: the daemon outlived cordon"
            );
            assert!(
                sleepers(&payload).is_empty(),
                "{ctx}: the payload outlived cordon"
            );
        }
    }
}

#[test]
fn timeout_kills_a_daemonized_grandchild_with_namespaces() {
    timeout_kills_the_tree(Ns::Auto);
}

#[test]
fn timeout_kills_a_daemonized_grandchild_without_namespaces() {
    timeout_kills_the_tree(Ns::Off);
}

/// SIGKILL to the launcher (which cannot forward anything) still ends the payload.
fn launcher_sigkill(ns: Ns) {
    let test = format!("launcher_sigkill_kills_the_child ({ns})");
    let p = ns_profile("workspace-write", ns);
    for user in users(&test) {
        let ctx = format!("{test} as {user}");
        let ws = tempdir(user);
        // Without namespaces the killed launcher cannot remove the run's own
        // TMPDIR: let it lie in a temp dir of the test's, removed with it.
        let tmp = tempdir(user);
        let marker = sleep_marker();
        let script = format!("echo $$ > pid.tmp; mv pid.tmp pid; exec sleep {marker}");
        let mut c = cordon(user);
        c.args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .env("TMPDIR", tmp.path())
            .args(["--", "/bin/sh", "-c", &script]);
        let mut run = start(c);
        wait_file(&ws.path().join("pid"), &ctx);
        let mut found = Vec::new();
        poll_until(Duration::from_secs(5), || {
            found = sleepers(&marker);
            !found.is_empty()
        });
        assert_eq!(
            found.len(),
            1,
            "{ctx}: the sleeper is not running on the host"
        );
        kill(Pid::from_raw(run.pid()), Signal::SIGKILL).unwrap();
        let st = wait_limit(&mut run.child, Duration::from_secs(5), &ctx);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(9),
            "{ctx}: {st:?}"
        );
        assert!(
            poll_until(Duration::from_secs(3), || !pid_alive(found[0])),
            "{ctx}: the sleeper (pid {}) survived the launcher's SIGKILL",
            found[0]
        );
        // Its output pipe closed with it.
        let _ = run.finish(Duration::from_secs(1), &ctx);
        // The next run in the workspace works, and clears the state the killed
        // launcher's guard left behind (it could not remove its own).
        let out = run_sh(user, &p, ws.path(), "true");
        assert_code(&out, 0, format!("{ctx}: the next run"));
    }
}

#[test]
fn launcher_sigkill_kills_the_child_with_namespaces() {
    launcher_sigkill(Ns::Auto);
}

#[test]
fn launcher_sigkill_kills_the_child_without_namespaces() {
    launcher_sigkill(Ns::Off);
}

#[test]
fn sigterm_to_the_launcher_is_forwarded() {
    for user in users("sigterm_to_the_launcher_is_forwarded") {
        for ns in Ns::ALL {
            let ctx = format!("SIGTERM forwarding as {user}, {ns}");
            let p = ns_profile("workspace-write", ns);
            let ws = tempdir(user);
            let marker = sleep_marker();
            let script =
                format!("trap 'echo got-term; exit 7' TERM; sleep {marker} & echo > ready; wait");
            let run = start_sh(user, &p, ws.path(), &script);
            wait_file(&ws.path().join("ready"), &ctx);
            kill(Pid::from_raw(run.pid()), Signal::SIGTERM).unwrap();
            let out = run.finish(Duration::from_secs(10), &ctx);
            assert_code(&out, 7, &ctx);
            assert_eq!(text(&out.stdout), "got-term\n", "{ctx}");
            // The payload's background child did not outlive the run either.
            assert!(
                sleepers(&marker).is_empty(),
                "{ctx}: the background sleep outlived cordon"
            );
        }
    }
}

/// The terminal hangs up (its master side closes) while the payload ignores
/// SIGHUP: cordon, the session leader on that terminal, passes the hang-up on,
/// gives the payload the grace period to end on its own, then ends the tree
/// (SIGTERM: 143). Before, such a payload ran on with nobody to see it. A
/// payload that ends on SIGHUP ends with it (129).
#[test]
fn a_hang_up_ends_the_tree() {
    const T: &str = "a_hang_up_ends_the_tree";
    // The parent of a pseudo-terminal: runs argv on its slave side as a new
    // session, waits for the ready file, closes the master, and prints how the
    // child ended and how long that took.
    const PTY: &str = r#"
import os, pty, sys, time
ready, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
os.set_blocking(fd, False)
t = time.time()
while not os.path.exists(ready):
    if time.time() - t > 10:
        print("never-ready"); sys.exit(1)
    try:
        os.read(fd, 4096)
    except OSError:
        pass
    time.sleep(0.01)
t = time.time()
os.close(fd)
deadline = t + 15
while True:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.time() > deadline:
        os.kill(pid, 9); os.waitpid(pid, 0)
        print("hung"); sys.exit(0)
    time.sleep(0.01)
print(os.waitstatus_to_exitcode(st), round(time.time() - t, 2))
"#;
    for user in users(T) {
        for ns in Ns::ALL {
            for (ignores, code) in [(true, 143), (false, 129)] {
                let ctx = format!("{T} as {user}, {ns}, payload ignores SIGHUP: {ignores}");
                let p = ns_profile("workspace-write", ns);
                let ws = tempdir(user);
                let marker = sleep_marker();
                let script = format!(
                    "{} echo > ready; exec sleep {marker}",
                    if ignores { "trap '' HUP;" } else { "" }
                );
                let mut argv: Vec<String> = Vec::new();
                if user == User::Nobody {
                    argv.extend(
                        [
                            "setpriv",
                            "--reuid=65534",
                            "--regid=65534",
                            "--clear-groups",
                        ]
                        .map(String::from),
                    );
                }
                argv.push(bin().display().to_string());
                // Not -q: the summary goes to the terminal that hung up (EIO),
                // which must not abort cordon before its exit status.
                argv.extend(["run", "-p", &p, "-w"].map(String::from));
                argv.push(ws.path().display().to_string());
                argv.extend(["--", "/bin/sh", "-c", &script].map(String::from));
                let out = std::process::Command::new("python3")
                    .args(["-c", PTY])
                    .arg(ws.path().join("ready"))
                    .args(&argv)
                    .current_dir(ws.path())
                    .env_clear()
                    .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                    .env("HOME", home(user))
                    .output()
                    .unwrap();
                let said = text(&out.stdout);
                let left = sleepers(&marker);
                for pid in &left {
                    let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
                }
                let mut f = said.split_whitespace();
                let (got, secs) = (f.next(), f.next().and_then(|s| s.parse::<f64>().ok()));
                assert_eq!(
                    got,
                    Some(code.to_string().as_str()),
                    "{ctx}: cordon's status after the hang-up ({said:?}; stderr {})",
                    text(&out.stderr)
                );
                // 143 comes after the grace period the payload had to end on its own.
                let secs = secs.unwrap();
                assert!(
                    !ignores || secs >= 1.5,
                    "{ctx}: SIGTERM {secs} s after the hang-up, before the grace period"
                );
                assert!(left.is_empty(), "{ctx}: the payload outlived the hang-up");
            }
        }
    }
}

/// The descriptor numbers `ls /proc/self/fd` prints inside the sandbox.
fn fds_inside(
    user: User,
    ns: Ns,
    ws: &Path,
    script: &str,
    pass: Option<&std::fs::File>,
) -> (Vec<u32>, String) {
    let p = ns_profile("workspace-write", ns);
    let mut c = cordon(user);
    c.args(["run", "-q", "-p", &p, "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(["--", "/bin/sh", "-c", script]);
    only_std_fds(&mut c);
    if let Some(f) = pass {
        let raw = f.as_raw_fd();
        use std::os::unix::process::CommandExt;
        // SAFETY: dup2 and fcntl are async-signal-safe and touch no memory.
        #[allow(unsafe_code)]
        unsafe {
            c.pre_exec(move || {
                let r = if raw == 5 {
                    libc::fcntl(5, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, 5)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = c.output().unwrap();
    assert_code(&out, 0, format!("fds as {user}, {ns}"));
    let stdout = text(&out.stdout);
    let mut fds: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    fds.sort_unstable();
    (fds, stdout)
}

#[test]
fn no_descriptor_leaks_into_the_sandbox() {
    for user in users("no_descriptor_leaks_into_the_sandbox") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            // `ls` holds fd 3 for the directory it lists.
            let (fds, out) = fds_inside(user, ns, ws.path(), "ls /proc/self/fd", None);
            assert_eq!(
                fds,
                [0, 1, 2, 3],
                "{user}, {ns}: descriptors inside:\n{out}"
            );
        }
    }
}

#[test]
fn a_descriptor_the_caller_passes_reaches_the_child() {
    let f = shared_dir().join(format!("{}.txt", unique("passed")));
    std::fs::write(&f, "through fd 5\n").unwrap();
    for user in users("a_descriptor_the_caller_passes_reaches_the_child") {
        for ns in Ns::ALL {
            // A fresh open file each run: the offset is shared with the child.
            let file = std::fs::File::open(&f).unwrap();
            let ws = tempdir(user);
            let (fds, out) = fds_inside(
                user,
                ns,
                ws.path(),
                "cat <&5 && ls /proc/self/fd",
                Some(&file),
            );
            assert!(
                out.starts_with("through fd 5\n"),
                "{user}, {ns}: fd 5 inside:\n{out}"
            );
            assert_eq!(
                fds,
                [0, 1, 2, 3, 5],
                "{user}, {ns}: descriptors inside:\n{out}"
            );
        }
    }
}

#[test]
fn stdin_and_stdout_pass_through() {
    // 1 MiB of bytes that are not text, so nothing in between may translate them.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let data: Vec<u8> = (0..1 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for user in users("stdin_and_stdout_pass_through") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let mut child = cordon(user)
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "cat"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let input = data.clone();
            let writer = std::thread::spawn(move || stdin.write_all(&input));
            let out = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert_code(&out, 0, format!("cat as {user}, {ns}"));
            assert!(
                out.stdout == data,
                "{user}, {ns}: {} bytes out of {} differ",
                out.stdout.len(),
                data.len()
            );
        }
    }
}

/// Every process of the run is gone, reaped and all, when cordon returns: not
/// only killed. Dying processes (and zombies) still count against the uid's
/// RLIMIT_NPROC, so a run that left them for its namespace's teardown could make
/// the next run of the same user fail to fork (CI saw exactly that). The run
/// uses a uid of its own, so that the count is exact whatever else runs.
#[test]
fn the_runs_processes_are_reaped_before_cordon_returns() {
    const T: &str = "the_runs_processes_are_reaped_before_cordon_returns";
    if !is_root() {
        return skip(T, "needs root to run as a uid of its own");
    }
    // Not 65534: other tests run as nobody at the same time.
    let uid = 40_000 + (std::process::id() % 20_000);
    let of_uid = || -> Vec<String> {
        let needle = format!("\nUid:\t{uid}\t");
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: i32 = e.file_name().to_str()?.parse().ok()?;
                let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                status
                    .contains(&needle)
                    .then(|| status.lines().take(3).collect::<Vec<_>>().join(" "))
            })
            .collect()
    };
    let ws = tempfile::tempdir().unwrap();
    nix::unistd::chown(
        ws.path(),
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(uid)),
    )
    .unwrap();
    // 40 busy subshells that ignore SIGTERM, left behind when the payload exits:
    // on a small machine they take a while to die, even of SIGKILL.
    let script =
        "for i in $(seq 40); do (trap '' TERM HUP; while :; do :; done) & done; sleep 0.1; exit 0";
    for ns in Ns::ALL {
        let p = profile_ns(
            "reaped",
            "extends = \"workspace-write\"\n[limits]\nprocesses = 200\n",
            ns,
        );
        for round in 0..3 {
            let out = std::process::Command::new("setpriv")
                .arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(bin())
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("HOME", "/nonexistent")
                .args(["--", "/bin/sh", "-c", script])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_code(&out, 0, format!("{}, round {round}", ns.name()));
            // Immediately: no polling, which would hide a teardown still under way.
            // Not even init's zombie: left to our parent, it counted against the
            // user's RLIMIT_NPROC until reaped (and a parent that never reaps, an
            // agent as PID 1 of a container, would collect one per run).
            let left = of_uid();
            assert!(
                left.is_empty(),
                "{}, round {round}: {} processes of uid {uid} remain after cordon returned: {:?}",
                ns.name(),
                left.len(),
                left.iter().take(5).collect::<Vec<_>>()
            );
        }
    }
}

/// As root, `processes` is a pids cgroup of the run's own: removed when cordon
/// returns, in both namespace modes (init may still be finishing its exit then;
/// the launcher waits for it rather than leave the cgroup behind).
#[test]
fn the_runs_pids_cgroup_is_removed() {
    const T: &str = "the_runs_pids_cgroup_is_removed";
    if !is_root() {
        return skip(T, "the pids cgroup is made as root only");
    }
    let bases = [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ];
    for ns in Ns::ALL {
        let ws = tempdir(User::Root);
        let p = profile_ns(
            "pidscg",
            "extends = \"workspace-write\"\n[limits]\nprocesses = 100\n",
            ns,
        );
        for round in 0..5 {
            let mut child = cordon(User::Root)
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "/bin/sh", "-c", "cat /proc/self/cgroup"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let pid = child.id();
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(0), "{}, round {round}", ns.name());
            let name = format!("cordon-{pid}");
            assert!(
                out.contains(&name),
                "{}: the payload is not in the run's pids cgroup: {out}",
                ns.name()
            );
            for b in bases {
                let dir = Path::new(b).join(&name);
                assert!(
                    !dir.exists(),
                    "{}, round {round}: {} is left behind",
                    ns.name(),
                    dir.display()
                );
            }
        }
    }
}

/// Processes whose command line holds `arg` as one of its arguments (init and
/// the payload before its execve carry the launcher's command line).
fn with_arg(arg: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.split(|&b| b == 0).any(|a| a == arg.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_launcher_killed_before_init_could_set_its_death_signal_leaves_nothing() {
    // init's death signal is set by init itself: a launcher killed before
    // that line would leave init to read the words already queued and fork
    // a payload nobody supervises (it hung for ever, holding the run's
    // cgroups and the workspace's guard lock). Made deterministic with the
    // scheduler: a real-time spinner holds CPU 1, and the launcher, pinned
    // there at a higher real-time priority (not inherited), runs to its end
    // while init, at normal priority, cannot run; then it is killed.
    let test = "a_launcher_killed_before_init_could_set_its_death_signal_leaves_nothing";
    if !is_root() {
        return skip(test, "needs root (real-time scheduling)");
    }
    if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return skip(test, "needs two CPUs");
    }
    let ws = tempdir(User::Root);
    let marker = sleep_marker();
    let mut spinner = std::process::Command::new("timeout")
        .args(["0.6", "chrt", "-f", "10", "taskset", "-c", "1"])
        .args(["sh", "-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let mut launcher = std::process::Command::new("chrt")
        .args(["--reset-on-fork", "-f", "50", "taskset", "-c", "1"])
        .arg(bin())
        .args(["run", "-q", "-w"])
        .arg(ws.path())
        .args(["--", "sleep", &marker])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let _ = launcher.kill();
    let _ = launcher.wait();
    let _ = spinner.wait();
    // init, if it ran on, has had time to fork the payload.
    std::thread::sleep(Duration::from_millis(500));
    let left = with_arg(&marker);
    for &p in &left {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    assert!(
        left.is_empty(),
        "processes of a run whose launcher was killed are still there: {left:?}"
    );
}
