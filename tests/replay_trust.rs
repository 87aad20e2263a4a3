//! `cordon replay` treats every report as untrusted input, as root and as uid
//! 65534, with namespaces auto and off where a run happens:
//! - a report written here (signed with this user's key) replays without asking;
//! - a report edited to add `write /`, turn the network on, change the command
//!   or add an `[env.secrets]` entry reading a planted fake key is refused
//!   (exit 125, one line) when its hashes no longer match; with the hashes
//!   recomputed but no valid signature it is foreign and refused without
//!   `--yes`; with `--yes` it runs, and the secret is a placeholder;
//! - on a terminal (a pty) the user is asked: "n" refuses, "y" runs, and the
//!   report's control characters reach the terminal escaped;
//! - the report key is created 0600 in a private directory, never through a
//!   planted link, and cannot be read (or planted) from inside `cordon run`.

mod support;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cordon::report::Report;
use cordon::trust::{Integrity, digest, seal};
use support::*;

const PLACEHOLDER: &str = "cordon-replay-placeholder";

/// The recorded command: print the secret variable, then append to a marker
/// file (so a test can tell whether the command ran).
const SCRIPT: &str = "echo \"secret=${FAKE_KEY-unset}\"; echo ran >> \"$1\"";

fn canon(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap()
}

/// Without a controlling terminal, whatever the test runner has: a new session.
fn no_tty(c: &mut Command) -> &mut Command {
    // SAFETY: setsid is async-signal-safe and touches no memory.
    #[allow(unsafe_code)]
    unsafe {
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    c
}

/// `cordon replay REPORT ARGS` as `user`, from `cwd`, without a terminal.
fn replay(user: User, report: &Path, cwd: &Path, args: &[&str]) -> Output {
    let mut c = cordon(user);
    c.arg("replay").arg(report).args(args).current_dir(cwd);
    no_tty(&mut c).output().unwrap()
}

/// A workspace with `sub/`, a reports directory and a recorded run of SCRIPT.
struct Recorded {
    user: User,
    ws: tempfile::TempDir,
    reports: tempfile::TempDir,
    report: PathBuf,
    marker: PathBuf,
}

impl Recorded {
    fn new(user: User, ns: Ns) -> Recorded {
        // Reports outside the run's writable roots, as cordon requires.
        let (ws, reports) = (tempdir(user), outside_dir(user));
        std::fs::create_dir(ws.path().join("sub")).unwrap();
        chown_r(ws.path(), user);
        let marker = canon(ws.path()).join("sub/marker");
        let report = reports.path().join("r.json");
        let p = profile_ns("trust", "extends = \"workspace-write\"\n", ns);
        let mut c = cordon(user);
        c.args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .arg("--report")
            .arg(&report)
            .args(["--", "/bin/sh", "-c", SCRIPT, "sh"])
            .arg(&marker);
        let out = no_tty(&mut c).output().unwrap();
        assert_code(&out, 0, format!("recording as {user}, {ns}"));
        assert_eq!(text(&out.stdout), "secret=unset\n");
        std::fs::remove_file(&marker).unwrap();
        Recorded {
            user,
            ws,
            reports,
            report,
            marker,
        }
    }

    fn read(&self) -> Report {
        serde_json::from_str(&std::fs::read_to_string(&self.report).unwrap()).unwrap()
    }

    /// Write `r` beside the recorded report, readable by the test's user.
    fn write(&self, name: &str, r: &Report) -> PathBuf {
        let p = self.reports.path().join(name);
        std::fs::write(&p, serde_json::to_string_pretty(r).unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        p
    }

    fn ran(&self) -> bool {
        self.marker.exists()
    }
}

/// How an attacker edits a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    WriteRoot,
    NetworkOn,
    Command,
    Secret,
}

impl Tamper {
    const ALL: [Tamper; 4] = [
        Tamper::WriteRoot,
        Tamper::NetworkOn,
        Tamper::Command,
        Tamper::Secret,
    ];

    fn apply(self, r: &mut Report, fake_key: &Path, pwned: &Path) {
        let res = &mut r.profile.resolved;
        match self {
            Tamper::WriteRoot => res["filesystem"]["write"]
                .as_array_mut()
                .unwrap()
                .push("/".into()),
            Tamper::NetworkOn => res["network"]["mode"] = "on".into(),
            Tamper::Command => {
                r.command = vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "echo pwned > \"$1\"".into(),
                    "sh".into(),
                    pwned.display().to_string(),
                    "\x1b]0;title\x07\x1b[2J".into(),
                ]
            }
            Tamper::Secret => {
                res["env"]["secrets"] =
                    serde_json::json!({"FAKE_KEY": {"file": fake_key.display().to_string()}})
            }
        }
    }

    /// What the refusal of a foreign report names besides "foreign".
    fn named(self) -> &'static str {
        match self {
            Tamper::WriteRoot => "write / ",
            Tamper::NetworkOn => "network mode on",
            Tamper::Command | Tamper::Secret => "foreign",
        }
    }
}

/// A fake private key only the test's user can read.
fn plant_fake_key(user: User) -> (tempfile::TempDir, PathBuf, String) {
    let d = tempdir(user);
    let content = format!("FAKE-PRIVATE-KEY-{}", unique("k"));
    let p = canon(d.path()).join("id_rsa");
    std::fs::write(&p, &content).unwrap();
    chown_r(d.path(), user);
    (d, p, content)
}

#[test]
fn a_report_written_here_replays_without_asking() {
    for user in users("a_report_written_here_replays_without_asking") {
        for ns in Ns::ALL {
            let ctx = format!("replay of a report written here as {user}, {ns}");
            let rec = Recorded::new(user, ns);
            let r = rec.read();
            let i = r.integrity.as_ref().expect("the report has no integrity");
            assert_eq!(i.sha256, digest(&r), "{ctx}: the digest does not match");
            assert!(i.hmac_sha256.is_some(), "{ctx}: the report is not signed");
            let out = replay(user, &rec.report, rec.reports.path(), &[]);
            assert_code(&out, 0, &ctx);
            assert!(rec.ran(), "{ctx}: the command did not run");
            assert_eq!(text(&out.stdout), "secret=unset\n", "{ctx}");
            assert!(
                !text(&out.stderr).contains("confirm"),
                "{ctx}: asked for confirmation:\n{}",
                text(&out.stderr)
            );
        }
    }
}

#[test]
fn tampered_reports_are_refused_and_secrets_become_placeholders() {
    for user in users("tampered_reports_are_refused_and_secrets_become_placeholders") {
        for ns in Ns::ALL {
            let rec = Recorded::new(user, ns);
            let (_keydir, fake_key, fake) = plant_fake_key(user);
            let pwned = canon(rec.ws.path()).join("sub/pwned");
            for t in Tamper::ALL {
                let ctx = format!("{t:?} as {user}, {ns}");
                let mut r = rec.read();
                let signed = r.integrity.clone().unwrap();
                t.apply(&mut r, &fake_key, &pwned);

                // Edited, hashes left as they were: refused for the hashes.
                let p = rec.write("edited.json", &r);
                for args in [&[][..], &["--yes"][..]] {
                    let out = replay(user, &p, rec.reports.path(), args);
                    assert_code(&out, 125, format!("{ctx}: edited, {args:?}"));
                    let line = assert_one_error_line(&out, &ctx);
                    assert!(
                        line.contains("integrity digest does not match"),
                        "{ctx}: {line}"
                    );
                }

                // Hashes recomputed: without a signature, or with the old one.
                for (how, integrity) in [
                    ("unsigned", seal(&r, None)),
                    (
                        "old signature",
                        Integrity {
                            sha256: digest(&r),
                            hmac_sha256: signed.hmac_sha256.clone(),
                        },
                    ),
                ] {
                    let ctx = format!("{ctx}, hashes recomputed, {how}");
                    r.integrity = Some(integrity);
                    let p = rec.write("forged.json", &r);
                    let out = replay(user, &p, rec.reports.path(), &[]);
                    assert_code(&out, 125, &ctx);
                    let line = assert_one_error_line(&out, &ctx);
                    assert!(
                        line.contains("foreign") && line.contains(t.named()),
                        "{ctx}: the refusal does not say why: {line}"
                    );
                    assert!(!line.contains('\x1b'), "{ctx}: raw escape in {line:?}");
                    assert!(!rec.ran() && !pwned.exists(), "{ctx}: the command ran");
                    assert!(!text(&out.stdout).contains(&fake), "{ctx}");
                }
                if !matches!(t, Tamper::Secret | Tamper::Command) {
                    continue;
                }
                // With --yes it runs, and a recorded secret is never read.
                let p = rec.reports.path().join("forged.json");
                let out = replay(user, &p, rec.reports.path(), &["--yes"]);
                let ctx = format!("{ctx}, --yes");
                assert_code(&out, 0, &ctx);
                let (o, e) = (text(&out.stdout), text(&out.stderr));
                assert!(
                    !o.contains(&fake) && !e.contains(&fake),
                    "{ctx}: the fake key reached the payload or the terminal"
                );
                if t == Tamper::Secret {
                    assert!(rec.ran(), "{ctx}: the command did not run");
                    assert_eq!(o, format!("secret={PLACEHOLDER}\n"), "{ctx}");
                    assert!(
                        e.contains("secret FAKE_KEY") && e.contains(PLACEHOLDER),
                        "{ctx}: no warning names the placeholder:\n{e}"
                    );
                    std::fs::remove_file(&rec.marker).unwrap();

                    // The ordinary use: the user passes the secret explicitly.
                    let arg = format!("FAKE_KEY={}", fake_key.display());
                    let out = replay(user, &p, rec.reports.path(), &["--yes", "--secret", &arg]);
                    assert_code(&out, 0, format!("{ctx} --secret NAME=FILE"));
                    assert_eq!(text(&out.stdout), format!("secret={fake}\n"), "{ctx}");
                    std::fs::remove_file(&rec.marker).unwrap();
                    // NAME alone takes it from the local profile, which defines none.
                    let out = replay(
                        user,
                        &p,
                        rec.reports.path(),
                        &["--yes", "--secret", "FAKE_KEY"],
                    );
                    assert_code(&out, 125, format!("{ctx} --secret NAME"));
                    let line = assert_one_error_line(&out, &ctx);
                    assert!(line.contains("defines no secret"), "{ctx}: {line}");
                    assert!(!rec.ran(), "{ctx}: ran with --secret NAME undefined");
                } else {
                    assert_eq!(
                        std::fs::read_to_string(&pwned).unwrap_or_default(),
                        "pwned\n",
                        "{ctx}: the changed command did not run"
                    );
                    std::fs::remove_file(&pwned).unwrap();
                    // Confirming once does not make the command trusted: the
                    // replay's own report is not signed.
                    let again = rec.reports.path().join("again.json");
                    let out = replay(
                        user,
                        &p,
                        rec.reports.path(),
                        &["--yes", "--report-to", again.to_str().unwrap()],
                    );
                    assert_code(&out, 0, format!("{ctx} --report-to"));
                    std::fs::remove_file(&pwned).unwrap();
                    let r2 = read_report(&again);
                    assert!(
                        r2["integrity"]["sha256"].is_string()
                            && r2["integrity"]["hmac_sha256"].is_null(),
                        "{ctx}: the replay of a foreign report was signed: {}",
                        r2["integrity"]
                    );
                    let out = replay(user, &again, rec.reports.path(), &[]);
                    assert_code(&out, 125, format!("{ctx}: replay of the replay"));
                    assert!(!pwned.exists(), "{ctx}: the laundered report ran");
                }
            }
        }
    }
}

const PTY_PY: &str = r#"
# Run argv[2:] on a new pty; answer argv[1] to cordon's "[y/N]" prompt; print
# everything the terminal showed; exit with the command's status.
import os, pty, sys
answer, argv = sys.argv[1], sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out, sent = b"", False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
    if not sent and b"[y/N]" in out:
        os.write(fd, answer.encode() + b"\n")
        sent = True
_, status = os.waitpid(pid, 0)
os.close(fd)
sys.stdout.buffer.write(out)
sys.stdout.flush()
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"#;

/// `cordon replay REPORT` as `user` on a new pty, answering `answer`.
fn replay_on_pty(user: User, report: &Path, cwd: &Path, answer: &str) -> Output {
    let script = shared_dir().join("replay_on_pty.py");
    if !script.exists() {
        std::fs::write(&script, PTY_PY).unwrap();
    }
    let mut c = Command::new(PYTHON);
    c.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home(user))
        .env("LANG", "C.UTF-8")
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .arg(&script)
        .arg(answer);
    if user == User::Nobody {
        c.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    c.arg(bin()).arg("replay").arg(report);
    no_tty(&mut c);
    start(c).finish(
        Duration::from_secs(120),
        format!("replay on a pty as {user}"),
    )
}

#[test]
fn a_foreign_report_asks_on_the_terminal() {
    for user in users("a_foreign_report_asks_on_the_terminal") {
        let rec = Recorded::new(user, Ns::Auto);
        let pwned = canon(rec.ws.path()).join("sub/pwned");
        let mut r = rec.read();
        Tamper::Command.apply(&mut r, Path::new("/nonexistent"), &pwned);
        r.integrity = Some(seal(&r, None));
        let p = rec.write("forged.json", &r);

        let out = replay_on_pty(user, &p, rec.reports.path(), "n");
        let ctx = format!("answering n as {user}");
        assert_code(&out, 125, &ctx);
        let shown = text(&out.stdout);
        assert!(
            shown.contains("[y/N]") && shown.contains("FOREIGN"),
            "{ctx}: no prompt:\n{shown}"
        );
        assert!(
            shown.contains(&format!(
                "# command /bin/sh -c 'echo pwned > \"$1\"' sh {}",
                pwned.display()
            )),
            "{ctx}: the command is not shown:\n{shown}"
        );
        assert!(
            !shown.contains('\x1b')
                && !shown.contains('\x07')
                && shown.contains("\\x1b]0;title\\x07"),
            "{ctx}: the report's control characters reached the terminal:\n{shown:?}"
        );
        assert!(shown.contains("not confirmed"), "{ctx}:\n{shown}");
        assert!(!pwned.exists(), "{ctx}: the command ran");

        let out = replay_on_pty(user, &p, rec.reports.path(), "y");
        let ctx = format!("answering y as {user}");
        assert_code(&out, 0, &ctx);
        assert_eq!(
            std::fs::read_to_string(&pwned).unwrap_or_default(),
            "pwned\n",
            "{ctx}: the command did not run:\n{}",
            text(&out.stdout)
        );
    }
}

/// The key of `home`'s user, where `cordon run --report` creates it.
fn key_path(home: &Path) -> PathBuf {
    home.join(".local/state/cordon/report-key")
}

#[test]
fn the_report_key_is_private_and_unreachable_from_the_sandbox() {
    for user in users("the_report_key_is_private_and_unreachable_from_the_sandbox") {
        // Written by a recorded run, 0600 in a 0700 directory, the user's own.
        let rec = Recorded::new(user, Ns::Auto);
        let home = home(rec.user);
        let key = key_path(&home);
        let meta = std::fs::symlink_metadata(&key).unwrap();
        assert!(meta.is_file(), "{user}: the key is not a regular file");
        assert_eq!(meta.mode() & 0o7777, 0o600, "{user}: key mode");
        assert_eq!(meta.uid(), user.uid(), "{user}: key owner");
        let dir = std::fs::symlink_metadata(key.parent().unwrap()).unwrap();
        assert_eq!(dir.mode() & 0o7777, 0o700, "{user}: key directory mode");
        let k = std::fs::read_to_string(&key).unwrap();
        assert_eq!(
            k.trim_end().len(),
            64,
            "{user}: the key is not 32 bytes in hex"
        );

        for ns in Ns::ALL {
            for base in ["read-only", "workspace-write", "strict"] {
                let ctx = format!("reading the key under {base} as {user}, {ns}");
                // The home directory as the workspace: strict reads and writes it.
                let p = ns_profile(base, ns);
                let out = run_in_home(user, &p, &home, &format!("cat {}", key.display()));
                assert_eq!(
                    out.status.code(),
                    Some(1),
                    "{ctx}: cat exited {:?}",
                    out.status
                );
                assert!(
                    text(&out.stderr).contains("Permission denied"),
                    "{ctx}: {}",
                    text(&out.stderr)
                );
                assert!(
                    !text(&out.stdout).contains(k.trim_end()),
                    "{ctx}: the key was read"
                );
                // The ordinary use beside it: the home directory itself is readable.
                let out = run_in_home(user, &p, &home, "cat ~/.bashrc");
                assert_code(&out, 0, format!("{ctx}: ~/.bashrc"));
                assert_eq!(text(&out.stdout), "# rc\n", "{ctx}");
            }
        }
    }
}

/// `run_sh` with the home directory as the workspace, which cordon refuses
/// unless told (the key must be safe even then).
fn run_in_home(user: User, profile: &str, home: &Path, script: &str) -> Output {
    cordon(user)
        .args(["run", "-q", "--allow-unsafe-workspace", "-p", profile, "-w"])
        .arg(home)
        .current_dir(home)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn a_payload_cannot_plant_the_report_key() {
    for user in users("a_payload_cannot_plant_the_report_key") {
        for ns in Ns::ALL {
            let ctx = format!("planting a key as {user}, {ns}");
            // A fresh home, also the workspace, with no key yet.
            let h = tempdir(user);
            let home = canon(h.path());
            let key = key_path(&home);
            let planted = "00".repeat(32);
            let p = ns_profile("workspace-write", ns);
            let mut c = cordon(user);
            c.env("HOME", &home)
                .args(["run", "-q", "--allow-unsafe-workspace", "-p", &p, "-w"])
                .arg(&home)
                .current_dir(&home)
                .args(["--", "/bin/sh", "-c"])
                .arg(format!(
                    "cd ~; mv .local .local2 || mv .local/state .local/state2; mkdir -p .local/state/cordon; echo {planted} > .local/state/cordon/report-key; echo rc=$?"
                ));
            let out = no_tty(&mut c).output().unwrap();
            assert_code(&out, 0, &ctx);
            assert_ne!(text(&out.stdout), "rc=0\n", "{ctx}: the write succeeded");
            let k = std::fs::read_to_string(&key).unwrap_or_default();
            assert!(
                !k.contains(&planted),
                "{ctx}: the payload planted the report key"
            );
            assert_eq!(
                k.trim_end().len(),
                64,
                "{ctx}: no key was made before the run"
            );
        }
    }
}

#[test]
fn the_key_is_never_written_through_a_planted_link() {
    for user in users("the_key_is_never_written_through_a_planted_link") {
        let ctx = format!("a link at the key's name as {user}");
        let (h, ws, elsewhere) = (tempdir(user), tempdir(user), tempdir(user));
        let home = canon(h.path());
        let dir = home.join(".local/state/cordon");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = canon(elsewhere.path()).join("stolen");
        std::os::unix::fs::symlink(&target, dir.join("report-key")).unwrap();
        chown_r(&home, user);
        let report = canon(ws.path()).join("r.json");
        let mut c = cordon(user);
        c.env("HOME", &home)
            .args(["run", "-p", "read-only", "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .arg("--report")
            .arg(&report)
            .args(["--", "/bin/true"]);
        let out = no_tty(&mut c).output().unwrap();
        assert_code(&out, 0, &ctx);
        assert!(
            !target.exists(),
            "{ctx}: the key was written through the link"
        );
        assert!(
            text(&out.stderr).contains("not signed"),
            "{ctx}: no warning:\n{}",
            text(&out.stderr)
        );
        let r = read_report(&report);
        assert!(
            r["integrity"]["hmac_sha256"].is_null(),
            "{ctx}: signed anyway"
        );
    }
}

/// A report this user wrote, under a profile narrowed since: signed, but wider
/// than the local profile, so it asks; `--dry-run` shows why without running.
#[test]
fn a_signed_report_wider_than_the_local_profile_asks() {
    for user in users("a_signed_report_wider_than_the_local_profile_asks") {
        for ns in Ns::ALL {
            let ctx = format!("replay after narrowing the profile as {user}, {ns}");
            let (ws, reports) = (tempdir(user), outside_dir(user));
            let marker = canon(ws.path()).join("marker");
            let wide = "extends = \"workspace-write\"\n[network]\nmode = \"on\"\n";
            let p = profile_ns("narrowed", wide, ns);
            let report = reports.path().join("r.json");
            let mut c = cordon(user);
            c.args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--report")
                .arg(&report)
                .args(["--", "/bin/sh", "-c", "echo ran >> \"$1\"", "sh"])
                .arg(&marker);
            assert_code(&no_tty(&mut c).output().unwrap(), 0, &ctx);
            std::fs::remove_file(&marker).unwrap();
            let narrow = wide.replace("\"on\"", "\"off\"");
            std::fs::write(
                &p,
                format!("{narrow}\n[namespaces]\nmode = \"{}\"\n", ns.name()),
            )
            .unwrap();

            let out = replay(user, &report, reports.path(), &[]);
            assert_code(&out, 125, &ctx);
            let line = assert_one_error_line(&out, &ctx);
            assert!(
                line.contains("network mode on (local off)") && !line.contains("foreign"),
                "{ctx}: {line}"
            );
            assert!(!marker.exists(), "{ctx}: the command ran");

            let out = replay(user, &report, reports.path(), &["--dry-run"]);
            assert_code(&out, 0, format!("{ctx}, --dry-run"));
            let o = text(&out.stdout);
            assert!(
                o.contains("WIDER:    network mode on (local off)")
                    && o.contains("signature valid")
                    && o.contains("would ask for confirmation"),
                "{ctx}: --dry-run does not show the difference:\n{o}"
            );
            assert!(!marker.exists(), "{ctx}: --dry-run ran the command");

            let out = replay(user, &report, reports.path(), &["--yes"]);
            assert_code(&out, 0, format!("{ctx}, --yes"));
            assert!(marker.exists(), "{ctx}: --yes did not run the command");
        }
    }
}

/// Another user's report is foreign here: whether this user has no report key
/// yet, or one of their own.
#[test]
fn another_users_report_is_foreign() {
    if users("another_users_report_is_foreign").is_empty() {
        return;
    }
    let rec = Recorded::new(User::Root, Ns::Auto);
    std::fs::set_permissions(&rec.report, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (h, own_ws) = (tempdir(User::Nobody), tempdir(User::Nobody));
    let replay_as_nobody = || {
        let mut c = cordon(User::Nobody);
        c.env("HOME", h.path())
            .arg("replay")
            .arg(&rec.report)
            .current_dir("/");
        no_tty(&mut c).output().unwrap()
    };
    for (ctx, why) in [
        ("uid 65534 without a key", "no report key"),
        (
            "uid 65534 with a key",
            "not signed by this user's report key",
        ),
    ] {
        if why == "not signed by this user's report key" {
            let mut c = cordon(User::Nobody);
            c.env("HOME", h.path())
                .args(["run", "-q", "-p", "read-only", "-w"])
                .arg(own_ws.path())
                .arg("--report")
                .arg(h.path().join("own.json"))
                .args(["--", "/bin/true"])
                .current_dir("/");
            assert_code(&no_tty(&mut c).output().unwrap(), 0, ctx);
            assert!(key_path(h.path()).exists(), "{ctx}: no key was made");
        }
        let out = replay_as_nobody();
        assert_code(&out, 125, ctx);
        let line = assert_one_error_line(&out, ctx);
        assert!(
            line.contains("foreign") && line.contains(why),
            "{ctx}: {line}"
        );
        assert!(!rec.ran(), "{ctx}: root's report ran");
    }
}

/// A key readable by others is not used: the report is written unsigned with a
/// warning, and a report it signed earlier replays as foreign.
#[test]
fn a_key_readable_by_others_is_not_used() {
    for user in users("a_key_readable_by_others_is_not_used") {
        let ctx = format!("a 0644 key as {user}");
        let (h, ws) = (tempdir(user), tempdir(user));
        let run = |report: &Path| {
            let mut c = cordon(user);
            c.env("HOME", h.path())
                .args(["run", "-p", "read-only", "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--report")
                .arg(report)
                .args(["--", "/bin/true"]);
            no_tty(&mut c).output().unwrap()
        };
        let signed = ws.path().join("signed.json");
        assert_code(&run(&signed), 0, &ctx);
        let key = key_path(h.path());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();

        let unsigned = ws.path().join("unsigned.json");
        let out = run(&unsigned);
        assert_code(&out, 0, &ctx);
        assert!(
            text(&out.stderr).contains("not signed") && text(&out.stderr).contains("mode 644"),
            "{ctx}: no warning:\n{}",
            text(&out.stderr)
        );
        assert!(read_report(&unsigned)["integrity"]["hmac_sha256"].is_null());

        let mut c = cordon(user);
        c.env("HOME", h.path())
            .arg("replay")
            .arg(&signed)
            .current_dir(ws.path());
        let out = no_tty(&mut c).output().unwrap();
        assert_code(&out, 125, &ctx);
        let line = assert_one_error_line(&out, &ctx);
        assert!(
            line.contains("foreign") && line.contains("cannot be used"),
            "{ctx}: {line}"
        );
    }
}

/// An error that quotes the report (here: a program that is not found) reaches
/// the terminal escaped, with its exit code kept.
#[test]
fn errors_quoting_the_report_are_escaped() {
    for user in users("errors_quoting_the_report_are_escaped") {
        let ctx = format!("a program named with escapes as {user}");
        let rec = Recorded::new(user, Ns::Auto);
        let mut r = rec.read();
        r.command = vec!["no-such-\x1b]0;title\x07-program".into()];
        r.integrity = Some(seal(&r, None));
        let p = rec.write("forged.json", &r);
        let out = replay(user, &p, rec.reports.path(), &["--yes", "-q"]);
        assert_code(&out, 127, &ctx);
        let line = assert_one_error_line(&out, &ctx);
        assert!(
            !line.contains('\x1b') && !line.contains('\x07') && line.contains("\\x1b]0;title\\x07"),
            "{ctx}: {line:?}"
        );
    }
}
