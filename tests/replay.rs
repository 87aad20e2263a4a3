//! `cordon replay` on this kernel, as root and as uid 65534, with namespaces
//! auto and off: a run recorded in workspace A (a refused ptrace, a write into
//! a denied directory of A and a write outside, seen with --trace) replayed in
//! workspace B reproduces the exit status and the denials with A's paths
//! remapped to B; --dry-run prints the command and the policy without running
//! anything; a report of a newer schema is refused; the recorded policy is
//! used, not the profile file as it is today.

mod support;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::*;

const PTRACE_PY: &str = "import ctypes\nctypes.CDLL(None).ptrace(0, 0, 0, 0)\n";

/// Read everything but secrets, write and exec only the workspace, and deny
/// its `secret` directory.
fn replay_profile(ns: Ns) -> String {
    profile_ns(
        "replay",
        "extends = \"read-only\"\n[filesystem]\nwrite = [\"${WORKSPACE}\"]\nexec = [\"${WORKSPACE}\"]\ndeny = [\"${WORKSPACE}/secret\"]\n",
        ns,
    )
}

/// A workspace owned by `user` with a `secret` directory in it, and `sub`
/// (without namespaces a deny inside a writable root costs the directories
/// above it the right to create entries: files are made in `sub`).
fn workspace(user: User) -> tempfile::TempDir {
    let d = tempdir(user);
    std::fs::create_dir(d.path().join("secret")).unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    chown_r(d.path(), user);
    d
}

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

/// `cordon run -q -p PROFILE -w WS --report REPORT EXTRA -- CMD` as `user`, cwd WS.
fn record(
    user: User,
    profile: &str,
    ws: &Path,
    report: &Path,
    extra: &[&str],
    cmd: &[&str],
) -> Output {
    cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .arg("--report")
        .arg(report)
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap()
}

/// `cordon replay REPORT ARGS` as `user`, from `cwd`.
fn replay(user: User, report: &Path, cwd: &Path, args: &[&str]) -> Output {
    cordon(user)
        .arg("replay")
        .arg(report)
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// Replace the profile origin at the head of every parenthesized group of a
/// rule ("(FILE:LINE, expanded around ...)" -> "(ORIGIN, expanded around ...)"):
/// what a replay cannot know is which line of which file a rule came from.
fn strip_origins(rule: &str) -> String {
    let b: Vec<char> = rule.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != '(' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        // The matching parenthesis.
        let (mut depth, mut j) = (0, i);
        while j < b.len() {
            match b[j] {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let inner: String = b[i + 1..j.min(b.len())].iter().collect();
        // The head ends at the first ", " or "; " outside nested parentheses.
        let (mut d, mut cut) = (0, inner.len());
        let ib = inner.as_bytes();
        for k in 0..ib.len() {
            match ib[k] {
                b'(' => d += 1,
                b')' => d -= 1,
                b',' | b';' if d == 0 && ib.get(k + 1) == Some(&b' ') => {
                    cut = k;
                    break;
                }
                _ => {}
            }
        }
        let (head, tail) = inner.split_at(cut);
        let is_origin = head
            .rsplit_once(':')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()));
        out.push('(');
        out.push_str(if is_origin { "ORIGIN" } else { head });
        out.push_str(tail);
        out.push(')');
        i = j + 1;
    }
    out
}

/// (kind, operation, errno, rule, target) of every denial, with `from`
/// replaced by `to` in rules and targets, and the rules' origins stripped when asked.
fn tuples(
    r: &Value,
    from: &str,
    to: &str,
    origins: bool,
) -> BTreeSet<(String, String, String, String, String)> {
    report_denials(r)
        .iter()
        .map(|d| {
            let rule = s(d, "rule").replace(from, to);
            (
                s(d, "kind"),
                s(d, "operation"),
                s(d, "errno"),
                if origins { rule } else { strip_origins(&rule) },
                s(d, "target").replace(from, to),
            )
        })
        .collect()
}

/// One recorded run per user and namespace mode, replayed in another workspace.
struct Recorded {
    user: User,
    ns: Ns,
    a: tempfile::TempDir,
    b: tempfile::TempDir,
    outside: tempfile::TempDir,
    reports: tempfile::TempDir,
    r1: Value,
    r2: Value,
    replay_out: Output,
}

fn record_and_replay(user: User, ns: Ns) -> Recorded {
    let ctx = format!("record as {user}, {ns}");
    let (a, b, outside, reports) = (
        workspace(user),
        workspace(user),
        tempdir(user),
        tempdir(user),
    );
    let p = replay_profile(ns);
    let secret = canon(a.path()).join("secret/f");
    let out_file = canon(outside.path()).join("f");
    let r1_path = reports.path().join("r1.json");
    let out = record(
        user,
        &p,
        a.path(),
        &r1_path,
        &["--trace"],
        &[
            "/bin/sh",
            "-c",
            "echo x >> \"$1\"; echo y > \"$2\"; /usr/bin/python3 -c \"$3\"; exit 3",
            "sh",
            secret.to_str().unwrap(),
            out_file.to_str().unwrap(),
            PTRACE_PY,
        ],
    );
    assert_code(&out, 3, &ctx);
    assert!(
        !secret.exists() && !out_file.exists(),
        "{ctx}: a denied write went through"
    );
    let r1 = read_report(&r1_path);
    check_report_schema(&r1, &ctx);
    let r2_path = reports.path().join("r2.json");
    let replay_out = replay(
        user,
        &r1_path,
        reports.path(),
        &[
            "-q",
            "--trace",
            "--workspace",
            b.path().to_str().unwrap(),
            "--report-to",
            r2_path.to_str().unwrap(),
        ],
    );
    assert!(
        r2_path.exists(),
        "{ctx}: replay wrote no report\n{}",
        text(&replay_out.stderr)
    );
    let r2 = read_report(&r2_path);
    check_report_schema(&r2, &format!("replay as {user}, {ns}"));
    Recorded {
        user,
        ns,
        a,
        b,
        outside,
        reports,
        r1,
        r2,
        replay_out,
    }
}

#[test]
fn replay_reproduces_exit_status_and_denials_in_another_workspace() {
    for user in users("replay_reproduces_exit_status_and_denials_in_another_workspace") {
        for ns in Ns::ALL {
            let rec = record_and_replay(user, ns);
            let ctx = format!("replay as {}, {}", rec.user, rec.ns);
            let (a, b) = (canon(rec.a.path()), canon(rec.b.path()));
            let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
            assert_code(&rec.replay_out, 3, &ctx);
            assert_eq!(rec.r2["exit_code"], 3, "{ctx}");
            assert_eq!(s(&rec.r2, "workspace"), b, "{ctx}: workspace not remapped");
            assert_eq!(s(&rec.r2, "cwd"), b, "{ctx}: cwd not remapped");
            let cmd2: Vec<String> = serde_json::from_value(rec.r2["command"].clone()).unwrap();
            assert_eq!(
                cmd2[4],
                format!("{b}/secret/f"),
                "{ctx}: a command argument beneath A is not remapped"
            );
            assert_eq!(
                cmd2[5],
                format!("{}/f", canon(rec.outside.path()).display()),
                "{ctx}: an argument outside A changed"
            );
            assert!(
                !Path::new(b).join("secret/f").exists(),
                "{ctx}: the replayed write into B's denied dir went through"
            );

            // What was recorded: the ptrace, the write into A/secret, the write outside.
            let kinds: BTreeSet<(String, String)> = report_denials(&rec.r1)
                .iter()
                .map(|d| (s(d, "kind"), s(d, "operation")))
                .collect();
            for want in [("syscall", "ptrace"), ("fs", "write")] {
                assert!(
                    kinds.contains(&(want.0.to_string(), want.1.to_string())),
                    "{ctx}: the recorded run has no {want:?} denial:\n{:#}",
                    rec.r1["denials"]
                );
            }
            let targets: BTreeSet<String> = report_denials(&rec.r1)
                .iter()
                .map(|d| s(d, "target"))
                .collect();
            assert!(
                targets.contains(&format!("{a}/secret/f")),
                "{ctx}: recorded targets {targets:?}"
            );

            let want = tuples(&rec.r1, a, b, false);
            let got = tuples(&rec.r2, a, b, false);
            assert_eq!(
                got, want,
                "{ctx}: replayed denials (kind, operation, errno, rule without its origin, target) differ from the recorded ones with {a} -> {b}"
            );
        }
    }
}

/// The rule of a replayed denial should be the recorded rule, its origin (the
/// profile file and line) included.
#[test]
fn replayed_denials_keep_the_recorded_rule_origin() {
    for user in users("replayed_denials_keep_the_recorded_rule_origin") {
        for ns in Ns::ALL {
            let rec = record_and_replay(user, ns);
            let ctx = format!("replay as {}, {}", rec.user, rec.ns);
            let (a, b) = (canon(rec.a.path()), canon(rec.b.path()));
            let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
            let want: BTreeSet<String> = tuples(&rec.r1, a, b, true)
                .into_iter()
                .map(|t| t.3)
                .collect();
            let got: BTreeSet<String> = tuples(&rec.r2, a, b, true)
                .into_iter()
                .map(|t| t.3)
                .collect();
            assert_eq!(
                got,
                want,
                "{ctx}: the replayed rules name other origins than the recorded ones (recorded report {})",
                rec.reports.path().join("r1.json").display()
            );
        }
    }
}

#[test]
fn dry_run_prints_command_and_policy_without_running() {
    for user in users("dry_run_prints_command_and_policy_without_running") {
        for ns in Ns::ALL {
            let ctx = format!("replay --dry-run as {user}, {ns}");
            let (a, b, reports) = (workspace(user), workspace(user), outside_dir(user));
            let (ac, bc) = (canon(a.path()), canon(b.path()));
            let r1 = reports.path().join("r1.json");
            let out = record(
                user,
                &replay_profile(ns),
                a.path(),
                &r1,
                &[],
                &["touch", ac.join("sub/marker").to_str().unwrap()],
            );
            assert_code(&out, 0, &ctx);
            assert!(
                ac.join("sub/marker").exists(),
                "{ctx}: the recorded run did not run"
            );
            let out = replay(
                user,
                &r1,
                reports.path(),
                &["--dry-run", "--workspace", b.path().to_str().unwrap()],
            );
            assert_code(&out, 0, &ctx);
            let o = text(&out.stdout);
            assert!(
                o.contains(&format!("touch {}", bc.join("sub/marker").display())),
                "{ctx}: the remapped command is not printed:\n{o}"
            );
            assert!(
                o.contains(&format!("{} -> {}", ac.display(), bc.display())),
                "{ctx}: the workspace mapping is not printed:\n{o}"
            );
            assert!(
                o.contains("[filesystem]") && o.contains(&format!("{}/secret", bc.display())),
                "{ctx}: the policy is not printed:\n{o}"
            );
            assert!(
                o.contains("landlock rules"),
                "{ctx}: what this kernel enforces is not printed:\n{o}"
            );
            assert!(
                !bc.join("sub/marker").exists(),
                "{ctx}: --dry-run ran the command"
            );
        }
    }
}

#[test]
fn newer_report_version_is_refused() {
    for user in users("newer_report_version_is_refused") {
        let ctx = format!("replay of a version 2 report as {user}");
        let (a, b, reports) = (workspace(user), workspace(user), outside_dir(user));
        let r1 = reports.path().join("r1.json");
        let out = record(
            user,
            "workspace-write",
            a.path(),
            &r1,
            &[],
            &["touch", "marker"],
        );
        assert_code(&out, 0, &ctx);
        std::fs::remove_file(a.path().join("marker")).unwrap();
        let mut r = read_report(&r1);
        r["version"] = 2.into();
        let r2 = reports.path().join("v2.json");
        std::fs::write(&r2, serde_json::to_string_pretty(&r).unwrap()).unwrap();
        std::fs::set_permissions(&r2, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let out = replay(
            user,
            &r2,
            reports.path(),
            &["--workspace", b.path().to_str().unwrap()],
        );
        assert_code(&out, 125, &ctx);
        let line = assert_one_error_line(&out, &ctx);
        assert!(
            line.contains("newer"),
            "{ctx}: the error does not say newer: {line}"
        );
        assert!(
            !a.path().join("marker").exists() && !b.path().join("marker").exists(),
            "{ctx}: the command ran"
        );
    }
}

/// Record under a profile file, then edit the file to allow the write: a fresh
/// run is allowed, the replay still uses what was recorded.
#[test]
fn replay_uses_the_recorded_policy_not_the_profile_file() {
    for user in users("replay_uses_the_recorded_policy_not_the_profile_file") {
        for ns in Ns::ALL {
            let ctx = format!("replay after editing the profile as {user}, {ns}");
            let (a, b, reports, outside) = (
                workspace(user),
                workspace(user),
                tempdir(user),
                tempdir(user),
            );
            let target = canon(outside.path()).join("f");
            let t = target.to_str().unwrap();
            let base = "extends = \"read-only\"\n[filesystem]\nexec = [\"${WORKSPACE}\"]\n";
            let p = profile_ns(
                "edited",
                &format!("{base}write = [\"${{WORKSPACE}}\"]\n"),
                ns,
            );
            let cmd = ["/bin/sh", "-c", "echo y > \"$1\" || exit 9", "sh", t];
            let r1 = reports.path().join("r1.json");
            let out = record(user, &p, a.path(), &r1, &["--trace"], &cmd);
            assert_code(&out, 9, &ctx);
            assert!(!target.exists(), "{ctx}: the recorded write went through");

            // Allow it in the file (same [namespaces] mode appended as profile_ns does).
            let allowed = format!(
                "{base}write = [\"${{WORKSPACE}}\", \"{}\"]\n\n[namespaces]\nmode = \"{}\"\n",
                canon(outside.path()).display(),
                ns.name()
            );
            std::fs::write(&p, allowed).unwrap();
            let control = reports.path().join("control.json");
            let out = record(user, &p, a.path(), &control, &[], &cmd);
            assert_code(
                &out,
                0,
                format!("{ctx}: control run under the edited profile"),
            );
            assert!(
                target.exists(),
                "{ctx}: the edited profile does not allow the write (the test would prove nothing)"
            );
            std::fs::remove_file(&target).unwrap();

            let r2 = reports.path().join("r2.json");
            let out = replay(
                user,
                &r1,
                reports.path(),
                &[
                    "-q",
                    "--trace",
                    "--workspace",
                    b.path().to_str().unwrap(),
                    "--report-to",
                    r2.to_str().unwrap(),
                ],
            );
            assert_code(&out, 9, &ctx);
            assert!(
                !target.exists(),
                "{ctx}: the replay used today's profile file"
            );
            let r = read_report(&r2);
            check_report_schema(&r, &ctx);
            assert!(
                report_denials(&r)
                    .iter()
                    .any(|d| s(d, "operation") == "write" && s(d, "target") == t),
                "{ctx}: the replay did not record the denied write:\n{:#}",
                r["denials"]
            );
        }
    }
}

#[test]
fn strip_origins_keeps_everything_but_the_origin() {
    assert_eq!(
        strip_origins("deny /w/secret (/p/x.toml:5): masked"),
        "deny /w/secret (ORIGIN): masked"
    );
    assert_eq!(
        strip_origins("deny /w/secret (r.json (recorded profile /p/x.toml):17): masked"),
        "deny /w/secret (ORIGIN): masked"
    );
    assert_eq!(
        strip_origins(
            "read /o (builtin/read-only.toml:8, expanded around denied /w/secret) does not give write"
        ),
        "read /o (ORIGIN, expanded around denied /w/secret) does not give write"
    );
    assert_eq!(
        strip_origins("access to other processes (default seccomp deny list)"),
        "access to other processes (default seccomp deny list)"
    );
}
