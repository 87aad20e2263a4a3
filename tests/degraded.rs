//! A kernel without Landlock, simulated: cordon runs under a seccomp filter
//! (installed by the test before exec) that answers ENOSYS to
//! landlock_create_ruleset, landlock_add_rule and landlock_restrict_self, as a
//! kernel built without Landlock would. cordon must refuse (125, one line naming
//! Landlock) and never run the command; with --best-effort it runs it and warns
//! once per missing piece.

mod support;
use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};
use support::*;

const LANDLOCK_SYSCALLS: [i64; 3] = [
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_restrict_self,
];

fn no_landlock_filter() -> BpfProgram {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        LANDLOCK_SYSCALLS.iter().map(|&nr| (nr, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().unwrap(),
    )
    .unwrap();
    filter.try_into().unwrap()
}

/// `cmd` with the no-Landlock filter installed in the child before exec.
fn without_landlock(mut cmd: Command) -> Command {
    let bpf = no_landlock_filter();
    // SAFETY: apply_filter makes two syscalls (prctl, seccomp) on a program built
    // before the fork; it allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || seccompiler::apply_filter(&bpf).map_err(std::io::Error::other));
    }
    cmd
}

fn run(user: User, profile: &str, ws: &Path, best_effort: bool, args: &[&str]) -> Output {
    let mut c = cordon(user);
    c.args(["run", "-p", profile, "-w"]).arg(ws).current_dir(ws);
    if best_effort {
        c.arg("--best-effort");
    }
    c.arg("--").args(args);
    without_landlock(c).output().unwrap()
}

/// The filter works: a probe under it sees no Landlock.
#[test]
fn the_filter_hides_landlock() {
    if !require_landlock("the_filter_hides_landlock", 1) {
        return;
    }
    let mut c = Command::new(PYTHON);
    c.args([
        "-c",
        "import ctypes, os; l = ctypes.CDLL(None, use_errno=True); \
         r = l.syscall(444, None, 0, 1); print(r, os.strerror(ctypes.get_errno()))",
    ]);
    let out = without_landlock(c).output().unwrap();
    assert_code(&out, 0, "probe");
    assert_eq!(text(&out.stdout).trim(), "-1 Function not implemented");
}

#[test]
fn without_landlock_cordon_refuses() {
    if !require_landlock("without_landlock_cordon_refuses", 1) {
        return;
    }
    for user in users("without_landlock_cordon_refuses") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let marker = ws.path().join("marker");
            let p = ns_profile("workspace-write", ns);
            let out = run(
                user,
                &p,
                ws.path(),
                false,
                &["/usr/bin/touch", marker.to_str().unwrap()],
            );
            let ctx = format!("no Landlock, as {user}, {ns}");
            assert_code(&out, 125, &ctx);
            let msg = assert_one_error_line(&out, &ctx);
            assert!(
                msg.contains("Landlock"),
                "{ctx}: the message does not name Landlock:\n{msg}"
            );
            assert!(
                msg.contains("--best-effort"),
                "{ctx}: the message does not say how to accept:\n{msg}"
            );
            assert!(!marker.exists(), "{ctx}: the command ran");
        }
    }
}

/// With --best-effort the command runs, and each missing piece is said once.
/// With namespaces the only missing piece is the file-system rules (the mount
/// view, the network and PID namespaces cover the rest, and still enforce what
/// they can: the secrets stay masked); without namespaces the scopes that
/// Landlock ABI 6 would bring (abstract unix sockets, signals) are missing too.
#[test]
fn best_effort_runs_and_warns_once_per_missing_piece() {
    if !require_landlock("best_effort_runs_and_warns_once_per_missing_piece", 1) {
        return;
    }
    for user in users("best_effort_runs_and_warns_once_per_missing_piece") {
        for ns in Ns::ALL {
            let ws = tempdir(user);
            let marker = ws.path().join("marker");
            let key = home(user).join(".ssh/id_ed25519");
            let script = format!(
                "touch {}; cat {} >/dev/null 2>&1 && echo key-readable || echo key-refused",
                marker.display(),
                key.display()
            );
            let p = ns_profile("workspace-write", ns);
            let out = run(user, &p, ws.path(), true, &["/bin/sh", "-c", &script]);
            let ctx = format!("--best-effort without Landlock, as {user}, {ns}");
            assert_code(&out, 0, &ctx);
            assert!(marker.exists(), "{ctx}: the command did not run");
            let err = text(&out.stderr);
            let warnings: Vec<&str> = err
                .lines()
                .filter(|l| l.starts_with("cordon: warning: "))
                .collect();
            let missing: Vec<&str> = warnings
                .iter()
                .copied()
                .filter(|l| l.starts_with("cordon: warning: not enforced: "))
                .collect();
            let expected = match ns {
                Ns::Auto => 1,
                Ns::Off => 3,
            };
            assert_eq!(missing.len(), expected, "{ctx}: warnings:\n{err}");
            let mut unique = missing.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                missing.len(),
                "{ctx}: a warning is repeated:\n{err}"
            );
            assert!(
                missing
                    .iter()
                    .any(|w| w.contains("Landlock") && w.contains("file-system")),
                "{ctx}: no warning about the file-system rules:\n{err}"
            );
            assert_eq!(
                err.lines().count(),
                warnings.len(),
                "{ctx}: stderr has more than warnings:\n{err}"
            );
            // What the remaining layers still enforce.
            let expected_key = match ns {
                Ns::Auto => "key-refused", // masked by the mount view
                Ns::Off => "key-readable", // Landlock was the only guard: the accepted gap
            };
            assert_eq!(text(&out.stdout).trim(), expected_key, "{ctx}");
        }
    }
}
