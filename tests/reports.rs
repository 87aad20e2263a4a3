//! Run reports (`cordon run --report FILE`, schema v1) on this kernel, as root
//! and as uid 65534, with namespaces auto and off where the answer differs:
//! every schema field with its type; a clean run; a denied write and a denied
//! TCP connect (--trace, predicted); a socket family and a ptrace refused by
//! the filter (seccomp-notify, no --trace); a timeout, a child killed by a
//! signal and the launcher interrupted by SIGTERM; no environment values in
//! the report; the stderr summary and -q; --no-capture; an unwritable --report
//! path refused before the command runs.
//!
//! Reports are written where the running user can write: its own temp dir.

mod support;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use support::*;

/// `cordon run -p PROFILE -w WS --report DIR/report.json EXTRA... -- CMD...` as
/// `user` (cwd WS, `env` added); returns the output, the report (schema
/// checked) and its path.
fn run_report(
    user: User,
    profile: &str,
    ws: &Path,
    out_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    cmd: &[&str],
) -> (Output, Value, PathBuf) {
    let report = out_dir.join(format!("{}.json", unique("report")));
    let mut c = cordon(user);
    c.args(["run", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .envs(env.iter().copied())
        .arg("--")
        .args(cmd);
    let out = c.output().unwrap();
    assert!(
        report.exists(),
        "{cmd:?} as {user} under {profile}: no report written\n--- stderr\n{}",
        text(&out.stderr)
    );
    let r = read_report(&report);
    check_report_schema(&r, &format!("{cmd:?} as {user} under {profile}"));
    (out, r, report)
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// The first denial with `kind` and `operation`, or a panic showing all of them.
#[track_caller]
fn denial(r: &Value, kind: &str, operation: &str, ctx: &str) -> Value {
    report_denials(r)
        .into_iter()
        .find(|d| s(d, "kind") == kind && s(d, "operation") == operation)
        .unwrap_or_else(|| {
            panic!(
                "{ctx}: no {kind}/{operation} denial in the report; denials:\n{:#}",
                r["denials"]
            )
        })
}

/// Namespaces as the report says they were enforced; with mode auto, root
/// always gets them (the harness's CI runs as root).
#[track_caller]
fn namespaces_on(r: &Value, user: User, ns: Ns, ctx: &str) -> bool {
    let on = s(&r["enforced"], "namespaces") == "on";
    match ns {
        Ns::Off => assert!(!on, "{ctx}: namespaces on although the profile says off"),
        Ns::Auto if user == User::Root => assert!(on, "{ctx}: root got no namespaces in mode auto"),
        Ns::Auto => {}
    }
    assert_eq!(
        r["host"]["namespaces"].as_bool(),
        Some(on),
        "{ctx}: host.namespaces vs enforced.namespaces"
    );
    on
}

/// The resolved path of the system Python (the `exe` a report names).
fn python_exe() -> String {
    std::fs::canonicalize(PYTHON).unwrap().display().to_string()
}

const PTRACE_PY: &str = "import ctypes, errno\n\
l = ctypes.CDLL(None, use_errno=True)\n\
r = l.ptrace(0, 0, 0, 0)\n\
print(r, errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()))\n";

/// workspace-write without the temp dir: read everything but secrets, write and
/// exec only the workspace. Test dirs live under /tmp, so with the built-in
/// `workspace-write` (which grants ${TMPDIR}) nothing there would be outside.
const WS_ONLY: &str = "extends = \"read-only\"\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nexec = [\"${WORKSPACE}\"]\n";

#[test]
fn clean_run_report_has_every_field() {
    for user in users("clean_run_report_has_every_field") {
        for ns in Ns::ALL {
            let ctx = format!("clean run as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let (out, r, _) =
                run_report(user, &p, ws.path(), reports_dir.path(), &[], &[], &["true"]);
            assert_code(&out, 0, &ctx);
            assert!(
                !text(&out.stderr).contains("denial"),
                "{ctx}: a summary after a clean run: {}",
                text(&out.stderr)
            );
            assert_eq!(r["exit_code"], 0, "{ctx}");
            assert!(r["signal"].is_null(), "{ctx}: signal {}", r["signal"]);
            assert_eq!(r["timed_out"], false, "{ctx}");
            assert_eq!(r["command"], serde_json::json!(["true"]), "{ctx}");
            assert!(
                report_denials(&r).is_empty(),
                "{ctx}: denials in a clean run:\n{:#}",
                r["denials"]
            );
            let executed = r["executed"].as_array().unwrap();
            assert!(
                executed
                    .iter()
                    .any(|e| e["argv"] == serde_json::json!(["true"])),
                "{ctx}: executed does not list the command:\n{:#}",
                r["executed"]
            );
            assert_eq!(s(&r["enforced"], "landlock"), "full", "{ctx}");
            assert_eq!(r["enforced"]["seccomp"], true, "{ctx}");
            namespaces_on(&r, user, ns, &ctx);
            let wsc = std::fs::canonicalize(ws.path())
                .unwrap()
                .display()
                .to_string();
            assert_eq!(s(&r, "workspace"), wsc, "{ctx}");
            assert_eq!(s(&r, "cwd"), wsc, "{ctx}");
            assert_eq!(r["host"]["uid"], user.uid(), "{ctx}");
            assert_eq!(r["host"]["landlock_abi"], landlock_abi(), "{ctx}");
            assert_eq!(s(&r["profile"], "name"), p, "{ctx}");
            assert_eq!(
                s(&r["profile"], "source"),
                p,
                "{ctx}: source of a profile file is its absolute path"
            );
            assert!(
                r["capture"]["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == "seccomp-notify"),
                "{ctx}: capture.sources {}",
                r["capture"]["sources"]
            );
        }
    }
}

/// The sha256 is of the profile texts: the same profile gives the same digest,
/// another text another digest.
#[test]
fn profile_sha256_follows_the_profile_text() {
    for user in users("profile_sha256_follows_the_profile_text") {
        let ws = tempdir(user);
        let reports_dir = outside_dir(user);
        let p1 = profile_ns("sha", "extends = \"workspace-write\"\n", Ns::Auto);
        let p2 = profile_ns(
            "sha",
            "extends = \"workspace-write\"\n# another text\n",
            Ns::Auto,
        );
        let sha = |p: &str| {
            let (out, r, _) =
                run_report(user, p, ws.path(), reports_dir.path(), &[], &[], &["true"]);
            assert_code(&out, 0, format!("{user} under {p}"));
            s(&r["profile"], "sha256")
        };
        let (a, b, c) = (sha(&p1), sha(&p1), sha(&p2));
        assert_eq!(a, b, "{user}: one profile, two digests");
        assert_ne!(a, c, "{user}: two profile texts, one digest");
    }
}

#[test]
fn denied_write_is_reported_with_trace() {
    for user in users("denied_write_is_reported_with_trace") {
        for ns in Ns::ALL {
            let ctx = format!("denied write as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            // Owned by the user, so only the sandbox stands in the way.
            let outside = tempdir(user);
            let target = std::fs::canonicalize(outside.path())
                .unwrap()
                .join("new-file");
            let t = target.to_str().unwrap();
            let p = profile_ns("ws-only", WS_ONLY, ns);
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["--trace", "-q"],
                &[],
                &["/bin/sh", "-c", "echo x > \"$1\" || exit 7", "sh", t],
            );
            assert_code(&out, 7, &ctx);
            assert!(!target.exists(), "{ctx}: the write went through");
            let on = namespaces_on(&r, user, ns, &ctx);
            let d = denial(&r, "fs", "write", &ctx);
            assert_eq!(s(&d, "target"), t, "{ctx}: {d:#}");
            assert_eq!(
                s(&d, "errno"),
                if on { "EROFS" } else { "EACCES" },
                "{ctx}: {d:#}"
            );
            assert_eq!(s(&d, "observed_by"), "predicted", "{ctx}: {d:#}");
            assert!(!s(&d, "rule").is_empty(), "{ctx}: empty rule: {d:#}");
            assert!(
                !s(&d, "suggestion").is_empty(),
                "{ctx}: empty suggestion: {d:#}"
            );
            assert!(
                s(&d, "suggestion").contains("[filesystem] write"),
                "{ctx}: suggestion does not name [filesystem] write: {d:#}"
            );
            assert!(d["pid"].as_u64().unwrap() > 0, "{ctx}: pid 0: {d:#}");
            assert!(
                s(&d, "exe").ends_with("sh"),
                "{ctx}: exe is not the shell: {d:#}"
            );
            assert_eq!(r["exit_code"], 7, "{ctx}");
        }
    }
}

/// A write the sandbox allows must not be reported. /dev/null is granted
/// write by every built-in; with namespaces it is a device node on the
/// read-only view, which the kernel writes all the same.
#[test]
fn trace_reports_no_denial_for_an_allowed_device_write() {
    for user in users("trace_reports_no_denial_for_an_allowed_device_write") {
        for ns in Ns::ALL {
            let ctx = format!("write /dev/null under --trace as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["--trace", "-q"],
                &[],
                &["/bin/sh", "-c", "echo x > /dev/null && echo written"],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout),
                "written\n",
                "{ctx}: the write itself failed"
            );
            assert!(
                report_denials(&r).is_empty(),
                "{ctx}: an allowed write was reported as denied (cordon never invents a denial):\n{:#}",
                r["denials"]
            );
        }
    }
}

#[test]
fn denied_connect_is_reported_with_trace() {
    if !require_landlock("denied_connect_is_reported_with_trace", 4) {
        return;
    }
    for user in users("denied_connect_is_reported_with_trace") {
        for ns in Ns::ALL {
            let ctx = format!("denied connect as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            // P is allowed, Q (with a listener outside) is not.
            let lp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let lq = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let p_port = lp.local_addr().unwrap().port();
            let q_port = lq.local_addr().unwrap().port();
            let p = profile_ns(
                "filtered",
                &format!(
                    "extends = \"workspace-write\"\n[network]\nmode = \"filtered\"\nconnect_tcp = [{p_port}]\n"
                ),
                ns,
            );
            let q = q_port.to_string();
            let probe = probe_py().to_str().unwrap().to_string();
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["--trace", "-q"],
                &[],
                &[PYTHON, &probe, "connect", &q],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "EACCES\n", "{ctx}: the kernel's answer");
            let d = denial(&r, "net", "connect", &ctx);
            assert_eq!(
                s(&d, "target"),
                format!("127.0.0.1:{q_port}"),
                "{ctx}: {d:#}"
            );
            assert_eq!(s(&d, "errno"), "EACCES", "{ctx}: {d:#}");
            // The supervisor performs every connect (tests/unix_sockets.rs) and
            // applies connect_tcp itself: the denial is observed, not predicted.
            assert_eq!(s(&d, "observed_by"), "seccomp-notify", "{ctx}: {d:#}");
            assert!(
                s(&d, "rule").contains(&q),
                "{ctx}: rule does not name the port: {d:#}"
            );
            assert!(
                s(&d, "suggestion").contains(&format!("add {q_port} to [network] connect_tcp")),
                "{ctx}: {d:#}"
            );
            assert_eq!(s(&d, "exe"), python_exe(), "{ctx}: {d:#}");
            drop((lp, lq));
        }
    }
}

#[test]
fn socket_family_refusal_is_reported_without_trace() {
    for user in users("socket_family_refusal_is_reported_without_trace") {
        for ns in Ns::ALL {
            let ctx = format!("socket(AF_INET) with the network off as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let probe = probe_py().to_str().unwrap().to_string();
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["-q"],
                &[],
                &[PYTHON, &probe, "socket", "tcp"],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout),
                "EAFNOSUPPORT\n",
                "{ctx}: the kernel's answer"
            );
            let d = denial(&r, "net", "socket", &ctx);
            assert!(s(&d, "target").contains("AF_INET"), "{ctx}: {d:#}");
            assert_eq!(s(&d, "errno"), "EAFNOSUPPORT", "{ctx}: {d:#}");
            assert_eq!(s(&d, "observed_by"), "seccomp-notify", "{ctx}: {d:#}");
            assert_eq!(s(&d, "exe"), python_exe(), "{ctx}: {d:#}");
            assert!(
                !s(&d, "rule").is_empty() && !s(&d, "suggestion").is_empty(),
                "{ctx}: {d:#}"
            );
        }
    }
}

#[test]
fn refused_ptrace_is_reported() {
    for user in users("refused_ptrace_is_reported") {
        for ns in Ns::ALL {
            let ctx = format!("ptrace as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["-q"],
                &[],
                &[PYTHON, "-c", PTRACE_PY],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout),
                "-1 EPERM\n",
                "{ctx}: the kernel's answer"
            );
            let d = denial(&r, "syscall", "ptrace", &ctx);
            assert_eq!(s(&d, "errno"), "EPERM", "{ctx}: {d:#}");
            assert_eq!(s(&d, "observed_by"), "seccomp-notify", "{ctx}: {d:#}");
            assert_eq!(s(&d, "exe"), python_exe(), "{ctx}: {d:#}");
            assert!(d["pid"].as_u64().unwrap() > 0, "{ctx}: {d:#}");
            assert!(!s(&d, "rule").is_empty(), "{ctx}: {d:#}");
            assert_eq!(
                s(&d, "suggestion"),
                "add \"ptrace\" to [syscalls] allow",
                "{ctx}: {d:#}"
            );
            assert_eq!(
                report_denials(&r).len(),
                1,
                "{ctx}: one refused call, denials:\n{:#}",
                r["denials"]
            );
        }
    }
}

#[test]
fn timeout_is_reported() {
    for user in users("timeout_is_reported") {
        for ns in Ns::ALL {
            let ctx = format!("timeout as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = profile_ns(
                "timeout",
                "extends = \"workspace-write\"\n[limits]\ntimeout = \"1s\"\n",
                ns,
            );
            let t0 = std::time::Instant::now();
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["-q"],
                &[],
                &["sleep", "30"],
            );
            assert_code(&out, 124, &ctx);
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{ctx}: took {:?}",
                t0.elapsed()
            );
            assert_eq!(r["timed_out"], true, "{ctx}");
            assert_eq!(r["exit_code"], 124, "{ctx}");
            assert!(
                r["duration_ms"].as_u64().unwrap() >= 1000,
                "{ctx}: duration {}",
                r["duration_ms"]
            );
        }
    }
}

#[test]
fn child_killed_by_a_signal_is_reported() {
    for user in users("child_killed_by_a_signal_is_reported") {
        for ns in Ns::ALL {
            for sig in [9, 15] {
                let ctx = format!("child killed by signal {sig} as {user}, {ns}");
                let ws = tempdir(user);
                let reports_dir = outside_dir(user);
                let p = ns_profile("workspace-write", ns);
                let script = format!("kill -{sig} $$");
                let (out, r, _) = run_report(
                    user,
                    &p,
                    ws.path(),
                    reports_dir.path(),
                    &["-q"],
                    &[],
                    &["/bin/sh", "-c", &script],
                );
                assert_code(&out, 128 + sig, &ctx);
                assert_eq!(r["signal"], sig, "{ctx}");
                assert_eq!(r["exit_code"], 128 + sig, "{ctx}");
                assert_eq!(r["timed_out"], false, "{ctx}");
            }
        }
    }
}

#[test]
fn launcher_interrupted_by_sigterm_still_writes_the_report() {
    for user in users("launcher_interrupted_by_sigterm_still_writes_the_report") {
        for ns in Ns::ALL {
            let ctx = format!("SIGTERM to the launcher as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let report = reports_dir.path().join("report.json");
            // A unique sleep argument (seconds) to find the payload on the host.
            let marker = format!("{}.{}", 30 + rand_small(), std::process::id());
            let mut c = cordon(user);
            c.args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--report")
                .arg(&report)
                .args(["--", "sleep", &marker]);
            let run = start(c);
            assert!(
                poll_until(Duration::from_secs(10), || !pids_with_argv(&[
                    "sleep", &marker
                ])
                .is_empty()),
                "{ctx}: the payload never started"
            );
            kill(Pid::from_raw(run.pid()), Signal::SIGTERM).unwrap();
            let out = run.finish(Duration::from_secs(20), &ctx);
            assert_code(&out, 143, &ctx);
            assert!(report.exists(), "{ctx}: no report after SIGTERM");
            let r = read_report(&report);
            check_report_schema(&r, &ctx);
            assert_eq!(r["signal"], 15, "{ctx}");
            assert_eq!(r["exit_code"], 143, "{ctx}");
            assert_eq!(r["timed_out"], false, "{ctx}");
            assert!(
                poll_until(Duration::from_secs(5), || pids_with_argv(&[
                    "sleep", &marker
                ])
                .is_empty()),
                "{ctx}: the payload outlived the launcher"
            );
        }
    }
}

/// A command that never runs (not found: 127; no execute bit, or execve
/// refused because no `[filesystem] exec` grant covers it: 126) still ends
/// with its report: the exit code, why (`not_executed`), and nothing in
/// `executed` that did not run. Before, these exits wrote no report.
#[test]
fn a_command_that_never_runs_still_has_its_report() {
    for user in users("a_command_that_never_runs_still_has_its_report") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let out_dir = tempdir(user);
            let script = "#!/bin/sh\necho ran\n";
            let noexec = ws.path().join("noexec.sh");
            std::fs::write(&noexec, script).unwrap();
            std::fs::set_permissions(&noexec, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
            // Executable, but outside every exec grant: Landlock refuses the execve.
            let outside = out_dir.path().join("outside.sh");
            std::fs::write(&outside, script).unwrap();
            std::fs::set_permissions(
                &outside,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            chown_r(ws.path(), user);
            chown_r(out_dir.path(), user);
            let p = ns_profile("workspace-write", ns);
            let cases = [
                ("cordon-no-such-command".to_string(), 127, "not found", true),
                (noexec.display().to_string(), 126, "cannot execute", true),
                (outside.display().to_string(), 126, "exec", false),
            ];
            for (cmd, code, why, none_executed) in cases {
                let ctx = format!("{cmd} as {user}, {ns}");
                let (out, r, _) =
                    run_report(user, &p, ws.path(), out_dir.path(), &[], &[], &[&cmd]);
                assert_code(&out, code, &ctx);
                assert!(!text(&out.stdout).contains("ran"), "{ctx}: it ran");
                assert_eq!(r["exit_code"], code, "{ctx}");
                let said = s(&r, "not_executed");
                assert!(said.contains(why), "{ctx}: not_executed {said:?}");
                assert!(
                    text(&out.stderr).contains(why),
                    "{ctx}: stderr says why: {}",
                    text(&out.stderr)
                );
                if none_executed {
                    assert_eq!(r["executed"], serde_json::json!([]), "{ctx}");
                }
            }
            // A command that runs has no `not_executed`.
            let (out, r, _) = run_report(user, &p, ws.path(), out_dir.path(), &[], &[], &["true"]);
            assert_code(&out, 0, "true");
            assert!(r.get("not_executed").is_none(), "{r}");
        }
    }
}

fn rand_small() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `[env] set` from a host variable and `[env.secrets] from` the same
/// variable: the payload gets the value, the report and the audit log never.
#[test]
fn report_holds_no_environment_values() {
    const SECRET: &str = "hunter2-abc";
    let p = profile(
        shared_dir(),
        &format!("{}.toml", unique("env-secret")),
        "extends = \"workspace-write\"\n[env]\nset = { A = \"${SECRET_VALUE_XYZ}\" }\n\n[env.secrets]\nB = { from = \"SECRET_VALUE_XYZ\" }\n",
    );
    for user in users("report_holds_no_environment_values") {
        let ctx = format!("env values as {user}");
        let ws = tempdir(user);
        let reports_dir = outside_dir(user);
        let log = reports_dir.path().join("audit.log");
        let (out, r, path) = run_report(
            user,
            &p,
            ws.path(),
            reports_dir.path(),
            &["--trace", "-q", "--audit-log", log.to_str().unwrap()],
            &[("SECRET_VALUE_XYZ", SECRET)],
            // Also a denial, so that the report has more than the skeleton.
            &[
                "/bin/sh",
                "-c",
                "printf '%s|%s\\n' \"$A\" \"$B\" > got; cat ~/.netrc; true",
            ],
        );
        assert_code(&out, 0, &ctx);
        assert_eq!(
            std::fs::read_to_string(ws.path().join("got")).unwrap(),
            format!("{SECRET}|{SECRET}\n"),
            "{ctx}: the payload did not get the values (the test would prove nothing)"
        );
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(
            !raw.contains(SECRET),
            "{ctx}: the report contains the value:\n{raw}"
        );
        let raw_log = std::fs::read_to_string(&log).unwrap();
        assert!(
            !raw_log.contains(SECRET),
            "{ctx}: the audit log contains the value:\n{raw_log}"
        );
        assert!(
            !text(&out.stderr).contains(SECRET),
            "{ctx}: stderr contains the value"
        );
        // Names are kept: the set entry as written, the secret by name.
        assert!(
            raw.contains("SECRET_VALUE_XYZ"),
            "{ctx}: the variable's name is gone from the report"
        );
        assert!(r["profile"]["resolved"].is_object());
    }
}

#[test]
fn summary_on_stderr_and_quiet() {
    for user in users("summary_on_stderr_and_quiet") {
        let ctx = format!("summary as {user}");
        let ws = tempdir(user);
        let reports_dir = outside_dir(user);
        let p = "workspace-write";
        let (out, _, report) = run_report(
            user,
            p,
            ws.path(),
            reports_dir.path(),
            &[],
            &[],
            &[PYTHON, "-c", PTRACE_PY],
        );
        assert_code(&out, 0, &ctx);
        let err = text(&out.stderr);
        assert!(
            err.contains("cordon: 1 denial"),
            "{ctx}: no summary:\n{err}"
        );
        assert!(
            err.contains(report.to_str().unwrap()),
            "{ctx}: the summary does not name the report:\n{err}"
        );
        assert!(
            err.contains("ptrace") && err.contains("EPERM"),
            "{ctx}: the summary does not name the denial:\n{err}"
        );
        assert!(
            err.contains("[syscalls] allow"),
            "{ctx}: the summary has no suggestion:\n{err}"
        );

        let (out, r, _) = run_report(
            user,
            p,
            ws.path(),
            reports_dir.path(),
            &["-q"],
            &[],
            &[PYTHON, "-c", PTRACE_PY],
        );
        assert_code(&out, 0, &ctx);
        assert_eq!(
            report_denials(&r).len(),
            1,
            "{ctx}: -q changed what is recorded"
        );
        assert!(
            text(&out.stderr).is_empty(),
            "{ctx}: -q printed:\n{}",
            text(&out.stderr)
        );

        // No denials: no summary.
        let (out, _, _) = run_report(user, p, ws.path(), reports_dir.path(), &[], &[], &["true"]);
        assert!(
            !text(&out.stderr).contains("denial"),
            "{ctx}: summary without denials:\n{}",
            text(&out.stderr)
        );

        // Without --report the summary says how to get one.
        let out = cordon(user)
            .args(["run", "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", PYTHON, "-c", PTRACE_PY])
            .output()
            .unwrap();
        assert_code(&out, 0, &ctx);
        assert!(
            text(&out.stderr).contains("cordon: 1 denial"),
            "{ctx}: no summary without --report:\n{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn no_capture_records_no_notified_denials() {
    for user in users("no_capture_records_no_notified_denials") {
        for ns in Ns::ALL {
            let ctx = format!("--no-capture as {user}, {ns}");
            let ws = tempdir(user);
            let reports_dir = outside_dir(user);
            let p = ns_profile("workspace-write", ns);
            let (out, r, _) = run_report(
                user,
                &p,
                ws.path(),
                reports_dir.path(),
                &["-q", "--no-capture"],
                &[],
                &[PYTHON, "-c", PTRACE_PY],
            );
            assert_code(&out, 0, &ctx);
            assert_eq!(
                text(&out.stdout),
                "-1 EPERM\n",
                "{ctx}: the filter still refuses"
            );
            let notified: Vec<_> = report_denials(&r)
                .into_iter()
                .filter(|d| s(d, "observed_by") == "seccomp-notify")
                .collect();
            assert!(
                notified.is_empty(),
                "{ctx}: seccomp-notify denials with --no-capture: {notified:#?}"
            );
            assert!(
                !r["capture"]["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|v| v == "seccomp-notify"),
                "{ctx}: capture.sources {}",
                r["capture"]["sources"]
            );
        }
    }
}

#[test]
fn unwritable_report_path_is_refused_before_the_command_runs() {
    for user in users("unwritable_report_path_is_refused_before_the_command_runs") {
        let ws = tempdir(user);
        let mut paths = vec![PathBuf::from("/nonexistent-cordon-dir/report.json")];
        if user != User::Root {
            // Root-owned, mode 755: not writable by uid 65534.
            paths.push(shared_dir().join(format!("{}.json", unique("report"))));
        }
        for report in paths {
            let ctx = format!("--report {} as {user}", report.display());
            let marker = ws.path().join("ran");
            let out = cordon(user)
                .args(["run", "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--report")
                .arg(&report)
                .args(["--", "touch"])
                .arg(&marker)
                .output()
                .unwrap();
            assert_code(&out, 125, &ctx);
            let line = assert_one_error_line(&out, &ctx);
            assert!(
                line.contains(report.to_str().unwrap()),
                "{ctx}: the error does not name the path: {line}"
            );
            assert!(!marker.exists(), "{ctx}: the command ran");
            assert!(!report.exists(), "{ctx}: a report appeared");
        }
    }
}
