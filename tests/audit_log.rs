//! The audit log (`--audit-log FILE` or `[audit] log`), as root and as uid
//! 65534: 50 concurrent runs append exactly 50 whole JSON lines with the
//! documented fields; a log that cannot be opened stops the run before the
//! command starts (exit 125); a line names the report and counts the denials.

mod support;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::*;

const RUNS: usize = 50;

/// Check one audit-log line against the README's field list.
#[track_caller]
fn check_line(line: &str, user: User, ws: &Path, ctx: &str) -> Value {
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{ctx}: not one JSON document ({e}): {line:?}"));
    let str_of = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("{ctx}: {k} is missing or not a string: {line}"))
            .to_string()
    };
    let uint_of = |k: &str| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{ctx}: {k} is missing or not an unsigned integer: {line}"))
    };
    let time = str_of("time");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{ctx}: time {time:?}"
    );
    assert_eq!(uint_of("user"), user.uid() as u64, "{ctx}: user: {line}");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_eq!(str_of("host"), host, "{ctx}: host: {line}");
    assert!(
        v["command"].is_array()
            && v["command"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_string),
        "{ctx}: command: {line}"
    );
    assert_eq!(
        str_of("workspace"),
        std::fs::canonicalize(ws).unwrap().to_str().unwrap(),
        "{ctx}: workspace: {line}"
    );
    assert!(!str_of("profile").is_empty(), "{ctx}: profile: {line}");
    let sha = str_of("profile_sha256");
    assert!(
        sha.len() == 64 && sha.bytes().all(|c| c.is_ascii_hexdigit()),
        "{ctx}: profile_sha256: {line}"
    );
    assert!(v["exit_code"].is_i64(), "{ctx}: exit_code: {line}");
    uint_of("duration_ms");
    uint_of("denials");
    assert!(
        v["report"].is_null() || v["report"].is_string(),
        "{ctx}: report: {line}"
    );
    v
}

/// Run `extra -- true` RUNS times at once as `user` in `ws`; every run must exit 0.
fn parallel_runs(user: User, ws: &Path, extra: &[&str], ctx: &str) {
    let barrier = std::sync::Barrier::new(RUNS);
    let outs: Vec<Output> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..RUNS)
            .map(|_| {
                sc.spawn(|| {
                    barrier.wait();
                    cordon(user)
                        .args(["run", "-q", "-w"])
                        .arg(ws)
                        .current_dir(ws)
                        .args(extra)
                        .args(["--", "true"])
                        .output()
                        .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, out) in outs.iter().enumerate() {
        assert_code(out, 0, format!("{ctx}: run {i}"));
    }
}

#[track_caller]
fn check_log(log: &Path, user: User, ws: &Path, profile: &str, ctx: &str) {
    let t =
        std::fs::read_to_string(log).unwrap_or_else(|e| panic!("{ctx}: {}: {e}", log.display()));
    assert!(
        t.ends_with('\n'),
        "{ctx}: the log does not end with a newline"
    );
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines.len(),
        RUNS,
        "{ctx}: {RUNS} runs, {} lines:\n{t}",
        lines.len()
    );
    for l in lines {
        let v = check_line(l, user, ws, ctx);
        assert_eq!(v["command"], serde_json::json!(["true"]), "{ctx}: {l}");
        assert_eq!(v["exit_code"], 0, "{ctx}: {l}");
        assert_eq!(v["denials"], 0, "{ctx}: {l}");
        assert!(v["report"].is_null(), "{ctx}: {l}");
        assert_eq!(v["profile"], profile, "{ctx}: {l}");
    }
}

#[test]
fn concurrent_runs_append_whole_lines() {
    for user in users("concurrent_runs_append_whole_lines") {
        let ctx = format!("{RUNS} concurrent runs with --audit-log as {user}");
        let ws = tempdir(user);
        let logs = outside_dir(user);
        let log = logs.path().join("audit.log");
        parallel_runs(
            user,
            ws.path(),
            &["--audit-log", log.to_str().unwrap()],
            &ctx,
        );
        check_log(&log, user, ws.path(), "workspace-write", &ctx);
    }
}

#[test]
fn profile_audit_log_appends_whole_lines() {
    for user in users("profile_audit_log_appends_whole_lines") {
        let ctx = format!("{RUNS} concurrent runs with [audit] log as {user}");
        let ws = tempdir(user);
        let logs = outside_dir(user);
        let log = logs.path().join("audit.log");
        let p = profile(
            shared_dir(),
            &format!("{}.toml", unique("audit-log")),
            &format!(
                "extends = \"workspace-write\"\n[audit]\nlog = \"{}\"\n",
                log.display()
            ),
        );
        parallel_runs(user, ws.path(), &["-p", &p], &ctx);
        check_log(&log, user, ws.path(), &p, &ctx);
    }
}

/// Paths `user` cannot create a file at: a missing directory, a read-only one
/// (for uid 65534: mode 555; root ignores modes, so /proc and /sys instead).
fn unwritable(user: User, scratch: &Path) -> Vec<String> {
    let mut v = vec!["/nonexistent-cordon-dir/audit.log".to_string()];
    match user {
        User::Root => {
            v.push("/proc/cordon-audit.log".into());
            v.push("/sys/cordon-audit.log".into());
        }
        User::Nobody => {
            let ro = scratch.join("ro");
            std::fs::create_dir(&ro).unwrap();
            chown_r(&ro, user);
            std::fs::set_permissions(&ro, std::os::unix::fs::PermissionsExt::from_mode(0o555))
                .unwrap();
            v.push(ro.join("audit.log").display().to_string());
        }
    }
    v
}

fn assert_refused(out: &Output, marker: &Path, log: &str, ctx: &str) {
    assert_code(out, 125, ctx);
    let line = assert_one_error_line(out, ctx);
    assert!(
        line.contains(log) && line.contains("audit log"),
        "{ctx}: the error does not name the log: {line}"
    );
    assert!(
        !marker.exists(),
        "{ctx}: the command ran although the run could not be logged"
    );
}

#[test]
fn unwritable_audit_log_stops_the_run_before_the_command() {
    for user in users("unwritable_audit_log_stops_the_run_before_the_command") {
        let ws = tempdir(user);
        let scratch = tempdir(User::Root);
        let marker = ws.path().join("ran");
        for log in unwritable(user, scratch.path()) {
            let ctx = format!("--audit-log {log} as {user}");
            let out = cordon(user)
                .args(["run", "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--audit-log", &log, "--", "touch"])
                .arg(&marker)
                .output()
                .unwrap();
            assert_refused(&out, &marker, &log, &ctx);

            let ctx = format!("[audit] log = {log} as {user}");
            let p = profile(
                shared_dir(),
                &format!("{}.toml", unique("audit-log-bad")),
                &format!("extends = \"workspace-write\"\n[audit]\nlog = \"{log}\"\n"),
            );
            let out = cordon(user)
                .args(["run", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "touch"])
                .arg(&marker)
                .output()
                .unwrap();
            assert_refused(&out, &marker, &log, &ctx);
        }
    }
}

/// A line of a run with a report and a refused syscall: the report's absolute
/// path, the denial count, the command's exit code.
#[test]
fn line_names_the_report_and_counts_denials() {
    for user in users("line_names_the_report_and_counts_denials") {
        let ctx = format!("audit line with --report as {user}");
        let ws = tempdir(user);
        // Outside the run's writable roots, as cordon requires; the cwd too, so
        // that the relative report path lands there.
        let outd = outside_dir(user);
        let log = outd.path().join("audit.log");
        let out = cordon(user)
            .args(["run", "-q", "-w"])
            .arg(ws.path())
            .current_dir(outd.path())
            // A relative report path: the line names it absolutely.
            .args([
                "--report",
                "r.json",
                "--audit-log",
                log.to_str().unwrap(),
                "--",
                PYTHON,
                "-c",
            ])
            .arg("import ctypes, sys\nctypes.CDLL(None).ptrace(0, 0, 0, 0)\nsys.exit(3)\n")
            .output()
            .unwrap();
        assert_code(&out, 3, &ctx);
        let t = std::fs::read_to_string(&log).unwrap();
        assert_eq!(t.lines().count(), 1, "{ctx}: {t}");
        let v = check_line(t.lines().next().unwrap(), user, ws.path(), &ctx);
        assert_eq!(v["exit_code"], 3, "{ctx}: {t}");
        assert_eq!(v["denials"], 1, "{ctx}: {t}");
        let rep = read_report(&outd.path().join("r.json"));
        assert_eq!(v["profile_sha256"], rep["profile"]["sha256"], "{ctx}");
        assert_eq!(v["time"], rep["started_at"], "{ctx}");
        let report = v["report"].as_str().unwrap_or_default();
        assert!(
            Path::new(report).is_absolute() && report.ends_with("/r.json"),
            "{ctx}: report {report:?}"
        );
        assert_eq!(
            std::fs::canonicalize(report).unwrap(),
            std::fs::canonicalize(outd.path().join("r.json")).unwrap(),
            "{ctx}"
        );
        assert_eq!(v["command"][0], PYTHON, "{ctx}: {t}");
    }
}
