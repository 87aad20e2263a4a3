//! Approval gates (`[approve]`), against the real kernel, as root and as uid
//! 65534, namespaces on and off: gated commands asked about through a
//! program, the terminal or a refusal; what was approved is what runs, even
//! against a thread rewriting argv; gated files handed over read-only; every
//! decision in the report and the audit log.

mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use support::*;

fn cases(test: &str) -> Vec<(User, Ns)> {
    users(test)
        .into_iter()
        .flat_map(|u| Ns::ALL.map(|n| (u, n)))
        .collect()
}

/// A directory outside every workspace where approvers live and write what
/// they were asked (open to uid 65534, whose approvers run as it).
fn approver_dir() -> PathBuf {
    let d = shared_dir().join(unique("approvers"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// An approver program: `body` is sh that reads the request from "$req"
/// (also appended to LOG) and prints the answer.
fn approver(dir: &Path, body: &str) -> (PathBuf, PathBuf) {
    let log = dir.join(unique("asked")).with_extension("jsonl");
    let p = dir.join(unique("approver"));
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nreq=$(cat)\nprintf '%s\\n' \"$req\" >> {}\n{body}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    (p, log)
}

fn gated_profile(ns: Ns, approve: &str) -> String {
    profile_ns(
        "approve",
        &format!("extends = \"workspace-write\"\n[approve]\n{approve}\n"),
        ns,
    )
}

fn asked(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run_report(
    user: User,
    profile: &str,
    ws: &Path,
    script: &str,
    extra: &[&str],
) -> (Output, serde_json::Value) {
    let rep = ws.join("..").join(format!("{}.json", unique("report")));
    let rep = std::path::absolute(&rep).unwrap();
    let out = cordon(user)
        .args(["run", "-p", profile, "-w"])
        .arg(ws)
        .arg("--report")
        .arg(&rep)
        .args(extra)
        .current_dir(ws)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    let r = read_report(&rep);
    let _ = std::fs::remove_file(&rep);
    (out, r)
}

/// A workspace holding a git repository with one commit and a bare remote.
fn repo(user: User) -> (tempfile::TempDir, PathBuf) {
    let parent = tempdir(user);
    let ws = parent.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    let st = std::process::Command::new("sh")
        .current_dir(&ws)
        .args([
            "-c",
            "git init -q -b main . && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m one \
             && git init -q --bare remote.git && git remote add origin ./remote.git",
        ])
        .env("HOME", home(user))
        .status()
        .unwrap();
    assert!(st.success());
    chown_r(parent.path(), user);
    (parent, ws)
}

fn branches(ws: &Path) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "safe.directory=*", "-C"])
        .arg(ws.join("remote.git"))
        .args(["for-each-ref", "--format=%(refname:short)"])
        .output()
        .unwrap();
    text(&out.stdout)
}

fn approvals(r: &serde_json::Value) -> Vec<serde_json::Value> {
    r["approvals"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_gated_command_runs_only_when_the_approver_program_allows_it() {
    let dir = approver_dir();
    let (prog, log) = approver(
        &dir,
        r#"case "$req" in *'"main:allowed"'*) echo "allow looks right" ;; *) echo "deny not this branch" ;; esac"#,
    );
    let audit_dir = approver_dir();
    for (user, ns) in cases("a_gated_command_runs_only_when_the_approver_program_allows_it") {
        let _ = std::fs::remove_file(&log);
        let (_keep, ws) = repo(user);
        let audit = audit_dir.join(unique("audit")).with_extension("log");
        let p = gated_profile(
            ns,
            &format!(
                "exec = [\"git push *\", \"npm publish *\"]\napprover = {{ command = [\"{}\"] }}",
                prog.display()
            ),
        );
        let script = "git push -q origin main:allowed 2>/dev/null; echo push1=$?; \
                      env git push -q origin main:refused1 2>/dev/null; echo push2=$?; \
                      bash -c \"sh -c 'git push -q origin main:refused2 2>/dev/null'\"; echo push3=$?; \
                      git status --short >/dev/null; echo status=$?";
        let (out, r) = run_report(
            user,
            &p,
            &ws,
            script,
            &["--audit-log", audit.to_str().unwrap()],
        );
        let o = text(&out.stdout);
        let ctx = format!("{user}, {ns}: {o}\n{}", text(&out.stderr));
        assert_code(&out, 0, &ctx);
        check_report_schema(&r, &ctx);
        assert!(o.contains("push1=0"), "{ctx}");
        assert!(
            o.contains("push2=126"),
            "{ctx}: env git push must be refused (EPERM)"
        );
        assert!(
            !o.contains("push3=0"),
            "{ctx}: a nested shell's git push must be refused"
        );
        assert!(o.contains("status=0"), "{ctx}: git status is not gated");
        // The kernel's answer is what happened: only the allowed branch exists.
        assert_eq!(branches(&ws).trim(), "allowed", "{ctx}");
        // The approver saw the request, with the argv, cwd and the shells above.
        let asked = asked(&log);
        assert!(asked.len() >= 3, "{ctx}: {asked:?}");
        let nested = asked
            .iter()
            .find(|a| a["argv"].to_string().contains("refused2"))
            .unwrap_or_else(|| panic!("{ctx}: no request for refused2 in {asked:?}"));
        assert_eq!(nested["kind"], "exec", "{ctx}");
        assert_eq!(nested["gate"], "git push *", "{ctx}");
        assert_eq!(nested["version"], 1, "{ctx}");
        assert!(
            nested["target"].as_str().unwrap().ends_with("/git"),
            "{ctx}: {nested}"
        );
        assert_eq!(
            nested["cwd"].as_str().unwrap(),
            ws.canonicalize().unwrap().to_str().unwrap(),
            "{ctx}"
        );
        let parents = nested["parents"].to_string();
        assert!(
            parents.contains("sh") && parents.contains("bash"),
            "{ctx}: parents {parents}"
        );
        // Every decision in the report, with what was shown and the answer.
        let ap = approvals(&r);
        let allowed: Vec<_> = ap.iter().filter(|a| a["answer"] == "allow").collect();
        assert_eq!(allowed.len(), 1, "{ctx}: {ap:?}");
        assert_eq!(allowed[0]["approver"], "command", "{ctx}");
        assert_eq!(allowed[0]["reason"], "looks right", "{ctx}");
        assert_eq!(allowed[0]["ran"], true, "{ctx}");
        assert!(
            allowed[0]["shown"]["argv"]
                .to_string()
                .contains("main:allowed"),
            "{ctx}"
        );
        for b in ["refused1", "refused2"] {
            assert!(
                ap.iter()
                    .any(|a| a["answer"] == "deny" && a["shown"]["argv"].to_string().contains(b)),
                "{ctx}: no refusal of {b} in {ap:?}"
            );
            assert!(
                report_denials(&r)
                    .iter()
                    .any(|d| d["observed_by"] == "approval"
                        && d["operation"] == "exec"
                        && d["errno"] == "EPERM"
                        && d["target"].as_str().unwrap().contains(b)
                        && d["rule"]
                            .as_str()
                            .unwrap()
                            .contains("approve.exec \"git push *\"")
                        && d["rule"].as_str().unwrap().contains("not this branch")),
                "{ctx}: no denial for {b}"
            );
        }
        // And in the audit log.
        let line: serde_json::Value = serde_json::from_str(
            std::fs::read_to_string(&audit)
                .unwrap()
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        let logged = line["approvals"].as_array().unwrap();
        assert_eq!(logged.len(), ap.len(), "{ctx}: audit {line}");
        assert!(logged.iter().any(|a| a["answer"] == "allow"), "{ctx}");
    }
}

#[test]
fn the_deny_approver_refuses_and_a_silent_one_runs_out_of_time() {
    let dir = approver_dir();
    let marker = unique("silent-approver");
    let (slow, _) = approver(&dir, &format!("sh -c 'sleep 60' {marker}"));
    for (user, ns) in cases("the_deny_approver_refuses_and_a_silent_one_runs_out_of_time") {
        let (_keep, ws) = repo(user);
        let p = gated_profile(ns, "exec = [\"git push *\"]\napprover = \"deny\"");
        let (out, r) = run_report(
            user,
            &p,
            &ws,
            "git push -q origin main:x 2>/dev/null; echo rc=$?",
            &[],
        );
        let ctx = format!(
            "{user}, {ns} deny: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("rc=126"), "{ctx}");
        assert_eq!(branches(&ws).trim(), "", "{ctx}");
        let ap = approvals(&r);
        assert!(
            !ap.is_empty()
                && ap
                    .iter()
                    .all(|a| a["approver"] == "deny" && a["answer"] == "deny"),
            "{ctx}: {ap:?}"
        );
        assert!(
            text(&out.stderr).contains("denied by approver \"deny\""),
            "{ctx}"
        );

        let p = gated_profile(
            ns,
            &format!(
                "exec = [\"git push *\"]\napprover = {{ command = [\"{}\"] }}\ntimeout = \"1s\"",
                slow.display()
            ),
        );
        let t = Instant::now();
        let (out, r) = run_report(
            user,
            &p,
            &ws,
            "git push -q origin main:y 2>/dev/null; echo rc=$?",
            &[],
        );
        let ctx = format!(
            "{user}, {ns} timeout: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{ctx}: took {:?}",
            t.elapsed()
        );
        assert!(text(&out.stdout).contains("rc=126"), "{ctx}");
        assert_eq!(branches(&ws).trim(), "", "{ctx}");
        let ap = approvals(&r);
        assert!(ap.iter().any(|a| a["answer"] == "timeout"), "{ctx}: {ap:?}");
        assert!(
            poll_until(Duration::from_secs(5), || pids_with_arg(&marker).is_empty()),
            "{ctx}: the approver outlived its question"
        );
    }
}

/// The racing-argv attack: a second thread rewrites argv[2] while the
/// first execs. The approver allows only "origin": "evilxx" must never run,
/// whichever way the race goes.
#[test]
fn a_racing_thread_cannot_change_what_runs_after_the_decision() {
    let test = "a_racing_thread_cannot_change_what_runs_after_the_decision";
    let Some(race) = compile_c_threads(test, "race") else {
        return;
    };
    let dir = approver_dir();
    // A "git" that records what it ran with, in the workspace.
    let fake = dir.join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("git"), "#!/bin/sh\necho \"$@\" >> ran.log\n").unwrap();
    std::fs::set_permissions(fake.join("git"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (allow_origin, _) = approver(
        &dir,
        r#"case "$req" in *'"argv":["git","push","origin"]'*) echo allow ;; *) echo deny ;; esac"#,
    );
    let race_dir = race.parent().unwrap().display().to_string();
    const N: u32 = 150;
    for (user, ns) in cases(test) {
        for (gate, approver, forbidden) in [
            // Approved, then changed: killed at its exec event.
            (
                "git push *",
                format!("{{ command = [\"{}\"] }}", allow_origin.display()),
                "evilxx",
            ),
            // Not gated when read, gated when run: asked there (and refused).
            ("git push origin", "\"deny\"".to_string(), "origin"),
        ] {
            let ws_dir = tempdir(user);
            let ws = ws_dir.path();
            let p = profile_ns(
                "race",
                &format!(
                    "extends = \"workspace-write\"\n[filesystem]\nexec = [\"{}\", \"{race_dir}\"]\n[approve]\nexec = [\"{gate}\"]\napprover = {approver}\n",
                    fake.display()
                ),
                ns,
            );
            let out = cordon(user)
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws)
                .current_dir(ws)
                .arg("--")
                .arg(&race)
                .arg(fake.join("git"))
                .arg(N.to_string())
                .output()
                .unwrap();
            let o = text(&out.stdout);
            let ctx = format!("{user}, {ns}, gate {gate:?}: {o}\n{}", text(&out.stderr));
            assert_code(&out, 0, &ctx);
            let counts: Vec<u32> = o
                .trim()
                .split(' ')
                .filter_map(|kv| kv.split_once('=').and_then(|(_, v)| v.parse().ok()))
                .collect();
            assert_eq!(counts.iter().sum::<u32>(), N, "{ctx}");
            assert_eq!(
                counts.get(3),
                Some(&0),
                "{ctx}: attempts ended otherwise than ran, EPERM or SIGKILL"
            );
            let ran = std::fs::read_to_string(ws.join("ran.log")).unwrap_or_default();
            assert_eq!(ran.lines().count() as u32, counts[0], "{ctx}: {ran}");
            assert!(
                !ran.lines().any(|l| l.contains(forbidden)),
                "{ctx}: what ran was not what was decided:\n{ran}"
            );
        }
    }
}

/// Compile tests/approve/NAME.c with threads.
fn compile_c_threads(test: &str, name: &str) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/approve/{name}.c"));
    // compile_c passes no -pthread; glibc 2.34+ has the threads in libc.
    compile_c(test, &src, name)
}

#[test]
fn a_gated_file_is_handed_over_read_only_once_approved() {
    let dir = approver_dir();
    let (allow, _) = approver(&dir, "echo allow");
    let (deny, _) = approver(&dir, "echo deny no");
    let py = r#"
import errno, os, stat, sys
p = sys.argv[1]
def e(x): return errno.errorcode[x.errno]
try:
    fd = os.open(p, os.O_RDONLY)
    print("read", os.read(fd, 100).decode().strip())
    print("regular", stat.S_ISREG(os.fstat(fd).st_mode))
    try: os.write(fd, b"x"); print("write OK")
    except OSError as x: print("write", e(x))
    try: os.open("../id_ed25519", os.O_RDONLY, dir_fd=fd); print("sibling OK")
    except OSError as x: print("sibling", e(x))
    # Whatever the descriptor allows, the file itself must not change.
    for f in (lambda: os.fchmod(fd, 0o666), lambda: os.utime(fd, (0, 0))):
        try: f()
        except OSError: pass
except OSError as x: print("open", e(x))
try: open(p, "a"); print("append OK")
except OSError as x: print("append", e(x))
try: open(os.path.join(os.path.dirname(p), "other"), "r"); print("other OK")
except OSError as x: print("other", e(x))
"#;
    let script = shared_dir().join(unique("gated-read")).with_extension("py");
    std::fs::write(&script, py).unwrap();
    for (user, ns) in cases("a_gated_file_is_handed_over_read_only_once_approved") {
        let h = home(user);
        let gh = h.join(".config/gh");
        std::fs::create_dir_all(&gh).unwrap();
        std::fs::write(gh.join("hosts.yml"), "oauth_token: TOKEN42\n").unwrap();
        std::fs::set_permissions(gh.join("hosts.yml"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(gh.join("other"), "x\n").unwrap();
        chown_r(&h, user);
        let file = gh.join("hosts.yml");
        for (prog, allowed) in [(&allow, true), (&deny, false)] {
            let ws_dir = tempdir(user);
            let p = gated_profile(
                ns,
                &format!(
                    "read = [\"{}\"]\napprover = {{ command = [\"{}\"] }}",
                    file.display(),
                    prog.display()
                ),
            );
            let (out, r) = run_report(
                user,
                &p,
                ws_dir.path(),
                &format!("{PYTHON} {} {}", script.display(), file.display()),
                &[],
            );
            let o = text(&out.stdout);
            let ctx = format!(
                "{user}, {ns}, allowed {allowed}: {o}\n{}",
                text(&out.stderr)
            );
            check_report_schema(&r, &ctx);
            if allowed {
                assert!(o.contains("read oauth_token: TOKEN42"), "{ctx}");
                assert!(o.contains("regular True"), "{ctx}");
                assert!(
                    o.contains("write EBADF"),
                    "{ctx}: the descriptor must be read-only"
                );
                assert!(
                    o.contains("sibling ENOTDIR"),
                    "{ctx}: the descriptor must reach nothing else"
                );
            } else {
                assert!(o.contains("open EACCES"), "{ctx}");
                assert!(!o.contains("TOKEN42"), "{ctx}");
            }
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&file).unwrap();
            assert_eq!(
                m.mode() & 0o777,
                0o600,
                "{ctx}: the gated file's mode changed"
            );
            assert!(m.mtime() > 0, "{ctx}: the gated file's time changed");
            // Writing it, or a sibling, is never asked about: still denied.
            assert!(!o.contains("append OK") && !o.contains("other OK"), "{ctx}");
            let ap = approvals(&r);
            assert_eq!(ap.len(), 1, "{ctx}: {ap:?}");
            assert_eq!(ap[0]["kind"], "read", "{ctx}");
            assert_eq!(ap[0]["shown"]["target"], file.to_str().unwrap(), "{ctx}");
            assert_eq!(
                ap[0]["answer"],
                if allowed { "allow" } else { "deny" },
                "{ctx}"
            );
        }
    }
}

const DRIVE_PY: &str = r#"
import os, pty, re, select, sys, time
answer = sys.argv[1]
cmd = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(cmd[0], cmd)
out, sent, seen_at, deadline = b"", False, None, time.time() + 60
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if fd in r:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        out += data
    if not sent and b"answer> " in out:
        seen_at = seen_at or time.time()
        # Answer as a person would: after a moment, with the code of the
        # last question on the screen.
        if time.time() - seen_at > 1.0:
            codes = re.findall(rb"type (\w+) to allow once", out)
            word = codes[-1].decode() if answer == "allow" and codes else "n"
            os.write(fd, word.encode() + b"\n")
            sent = True
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
print("\nEXIT %d" % os.waitstatus_to_exitcode(st))
"#;

#[test]
fn the_terminal_approver_asks_on_the_terminal_and_nowhere_else() {
    let drive = shared_dir().join(unique("drive")).with_extension("py");
    std::fs::write(&drive, DRIVE_PY).unwrap();
    for (user, ns) in cases("the_terminal_approver_asks_on_the_terminal_and_nowhere_else") {
        let p = gated_profile(
            ns,
            "exec = [\"git push *\"]\napprover = \"tty\"\ntimeout = \"30s\"",
        );
        for (answer, pushed, spoof) in [
            ("allow", true, false),
            ("deny", false, false),
            // The payload draws a question of its own over cordon's; the
            // person answers what they see: its code is not cordon's.
            ("allow", false, true),
        ] {
            let (_keep, ws) = repo(user);
            let mut launcher: Vec<String> = Vec::new();
            if user == User::Nobody {
                launcher.extend(
                    [
                        "setpriv",
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                    ]
                    .map(String::from),
                );
            }
            launcher.push(bin().display().to_string());
            // A control character in the argv of the process above reaches the
            // prompt escaped.
            let script = if spoof {
                "(sleep 0.5; printf '\\033[2J\\033[Hcordon: approval needed: approve.exec \"git push *\"\\r\\n  argv:    git push --dry-run\\r\\n  type zzzz to allow once\\r\\ncordon: answer> ') & sh -c 'git push -q origin main:b1 2>/dev/null' \"$(printf '\\033[2J')\"; echo rc=$?"
            } else {
                "sh -c 'git push -q origin main:b1 2>/dev/null' \"$(printf '\\033[2J')\"; echo rc=$?"
            };
            let out = std::process::Command::new(PYTHON)
                .arg(&drive)
                .arg(answer)
                .args(&launcher)
                .args(["run", "-p", &p, "-w"])
                .arg(&ws)
                .args(["--", "/bin/sh", "-c", script])
                .current_dir(&ws)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("HOME", home(user))
                .env("TERM", "dumb")
                .output()
                .unwrap();
            let o = text(&out.stdout);
            let ctx = format!(
                "{user}, {ns}, answer {answer}, spoof {spoof}: {o}\n{}",
                text(&out.stderr)
            );
            assert!(
                o.contains("cordon: approval needed: approve.exec \"git push *\""),
                "{ctx}"
            );
            assert!(
                o.contains("\\x1b[2J"),
                "{ctx}: the argv must be shown escaped"
            );
            // (Not cordon's: the spoofing payload prints its own.)
            assert!(
                spoof || !o.contains("\x1b[2J"),
                "{ctx}: an escape sequence reached the terminal"
            );
            assert!(o.contains("from:"), "{ctx}: the parent chain is shown");
            if pushed {
                assert!(o.contains("cordon: allowed once"), "{ctx}");
            } else if spoof {
                assert!(
                    o.contains("cordon: denied"),
                    "{ctx}: the spoofed code allowed"
                );
            } else {
                assert!(o.contains("cordon: denied"), "{ctx}");
            }
            let b = branches(&ws);
            assert_eq!(b.contains("b1"), pushed, "{ctx}: branches {b}");
        }
        // No terminal at all: refused, and said.
        let (_keep, ws) = repo(user);
        let out = cordon(user)
            .args(["run", "-p", &p, "-w"])
            .arg(&ws)
            .current_dir(&ws)
            .args([
                "--",
                "/bin/sh",
                "-c",
                "git push -q origin main:b3 2>/dev/null; echo rc=$?",
            ])
            .output()
            .unwrap();
        let ctx = format!(
            "{user}, {ns}, no terminal: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("rc=126"), "{ctx}");
        assert!(text(&out.stderr).contains("no terminal"), "{ctx}");
        assert_eq!(branches(&ws).trim(), "", "{ctx}");
    }
}

#[test]
fn explain_names_the_gate_of_a_command_line() {
    let p = gated_profile(Ns::Auto, "exec = [\"git * push *\"]\napprover = \"deny\"");
    let out = cordon(User::Root)
        .args(["explain", "-p", &p, "--exec", "git -C /x push origin main"])
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert_code(&out, 0, &o);
    assert!(o.contains("approval: approve.exec \"git * push *\""), "{o}");
    assert!(o.contains("approver \"deny\" refuses"), "{o}");
    let out = cordon(User::Root)
        .args(["explain", "-p", &p, "--exec", "git status"])
        .output()
        .unwrap();
    let o = text(&out.stdout);
    assert!(
        o.contains("approval: no approve.exec pattern matches `git status`"),
        "{o}"
    );
}

#[test]
fn approve_sections_that_would_open_themselves_are_refused() {
    let Some(user) = users("approve_sections_that_would_open_themselves_are_refused")
        .first()
        .copied()
    else {
        return;
    };
    let ws_dir = tempdir(user);
    let ws = ws_dir.path();
    let inside = ws.join("approve.sh");
    std::fs::write(&inside, "#!/bin/sh\necho allow\n").unwrap();
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        (
            format!(
                "approver = {{ command = [\"{}\"] }}\nexec = [\"git push *\"]",
                inside.display()
            ),
            "inside a writable root",
        ),
        (
            "read = [\"/etc/hostname\"]".to_string(),
            "readable without approval",
        ),
        (
            "domains = \"ask\"".to_string(),
            "needs network mode \"proxy\"",
        ),
        ("approver = \"maybe\"".to_string(), "line 3"),
        ("exec = [\"* push\"]".to_string(), "starts with the program"),
        ("timeout = \"0s\"".to_string(), "zero"),
        ("exec = [\"git push *\"]\nwirte = 1".to_string(), "wirte"),
    ];
    for (body, want) in cases {
        let p = gated_profile(Ns::Auto, &body);
        let out = cordon(user)
            .args(["run", "-p", &p, "-w"])
            .arg(ws)
            .args(["--", "/bin/true"])
            .output()
            .unwrap();
        let e = text(&out.stderr);
        assert_code(&out, 125, format!("{body}: {e}"));
        assert!(e.contains(want), "{body}: {e}");
    }
    // A repo-local policy may add gates, not an approver that could say yes.
    std::fs::write(
        ws.join(".cordon.toml"),
        "[approve]\nexec = [\"git push *\"]\napprover = \"deny\"\n",
    )
    .unwrap();
    chown_r(ws, user);
    let out = cordon(user)
        .args(["run", "-p", "workspace-write", "-w"])
        .arg(ws)
        .current_dir(ws)
        .args(["--", "/bin/sh", "-c", "git push 2>/dev/null; echo rc=$?"])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("rc=126"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::fs::write(
        ws.join(".cordon.toml"),
        "[approve]\napprover = { command = [\"/bin/echo\", \"allow\"] }\n",
    )
    .unwrap();
    let out = cordon(user)
        .args(["run", "-p", "workspace-write", "-w"])
        .arg(ws)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_code(&out, 125, text(&out.stderr));
    assert!(
        text(&out.stderr).contains("approve.approver"),
        "{}",
        text(&out.stderr)
    );
}

/// Gates that never trigger change nothing: ordinary work in the workspace
/// has no denial and no question, with and without capture.
#[test]
fn gates_that_never_trigger_leave_ordinary_work_alone() {
    for (user, ns) in cases("gates_that_never_trigger_leave_ordinary_work_alone") {
        let (_keep, ws) = repo(user);
        std::fs::write(ws.join("m.c"), "int main(void){return 0;}\n").unwrap();
        chown_r(&ws, user);
        let p = gated_profile(
            ns,
            "exec = [\"git push *\", \"npm publish *\"]\napprover = \"deny\"",
        );
        let script = format!(
            "git status --short && git log --oneline >/dev/null && cc -o m m.c && ./m && {PYTHON} -c 'import json' && make -v >/dev/null && echo done"
        );
        for extra in [&[][..], &["--no-capture"][..]] {
            let (out, r) = run_report(user, &p, &ws, &script, extra);
            let ctx = format!(
                "{user}, {ns} {extra:?}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            assert_code(&out, 0, &ctx);
            assert!(text(&out.stdout).contains("done"), "{ctx}");
            assert!(
                report_denials(&r).is_empty(),
                "{ctx}: {:?}",
                report_denials(&r)
            );
            assert!(approvals(&r).is_empty(), "{ctx}");
        }
        // --no-capture keeps the gates.
        let (out, _) = run_report(
            user,
            &p,
            &ws,
            "git push -q origin main:z 2>/dev/null; echo rc=$?",
            &["--no-capture"],
        );
        assert!(
            text(&out.stdout).contains("rc=126"),
            "{user}, {ns}: {}",
            text(&out.stderr)
        );
    }
}

/// A thread's exec takes over its process's pid, which the hold cannot
/// follow: with exec gates it is refused, and said so.
#[test]
fn an_exec_from_a_second_thread_is_refused_with_gates() {
    let test = "an_exec_from_a_second_thread_is_refused_with_gates";
    let Some(prog) = compile_c_threads(test, "thread_exec") else {
        return;
    };
    let dir = prog.parent().unwrap().display().to_string();
    for (user, ns) in cases(test) {
        let ws = tempdir(user);
        for (gated, want) in [(true, "thread: EPERM"), (false, "")] {
            let approve = if gated {
                "[approve]\nexec = [\"git push *\"]\napprover = \"deny\"\n"
            } else {
                ""
            };
            let p = profile_ns(
                "thread",
                &format!(
                    "extends = \"workspace-write\"\n[filesystem]\nexec = [\"{dir}\"]\n{approve}"
                ),
                ns,
            );
            let (out, r) = run_report(
                user,
                &p,
                ws.path(),
                &format!("{} /bin/true; echo rc=$?", prog.display()),
                &[],
            );
            let o = text(&out.stdout);
            let ctx = format!("{user}, {ns}, gated {gated}: {o}{}", text(&out.stderr));
            assert!(o.contains("rc=0"), "{ctx}");
            if gated {
                assert!(o.contains(want), "{ctx}");
                assert!(
                    report_denials(&r)
                        .iter()
                        .any(|d| d["observed_by"] == "approval"
                            && d["rule"].as_str().unwrap().contains("main thread")),
                    "{ctx}"
                );
            } else {
                assert!(
                    !o.contains("thread:"),
                    "{ctx}: without gates the thread's exec runs"
                );
            }
        }
    }
}

/// A report names its approver program; `replay` never runs it (it would run
/// outside the sandbox, chosen by whoever wrote the report).
#[test]
fn replay_does_not_run_the_recorded_approver() {
    let Some(user) = users("replay_does_not_run_the_recorded_approver")
        .first()
        .copied()
    else {
        return;
    };
    let dir = approver_dir();
    let (prog, log) = approver(&dir, "echo allow");
    let (_keep, ws) = repo(user);
    let p = gated_profile(
        Ns::Auto,
        &format!(
            "exec = [\"git push *\"]\napprover = {{ command = [\"{}\"] }}",
            prog.display()
        ),
    );
    let rep = std::path::absolute(ws.join("..").join("r.json")).unwrap();
    let out = cordon(user)
        .args(["run", "-q", "-p", &p, "-w"])
        .arg(&ws)
        .arg("--report")
        .arg(&rep)
        .current_dir(&ws)
        .args([
            "--",
            "/bin/sh",
            "-c",
            "git push -q origin main:one 2>/dev/null; echo rc=$?",
        ])
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains("rc=0"), "{}", text(&out.stderr));
    assert_eq!(asked(&log).len(), 1);
    // A report written elsewhere (no integrity of ours) names another approver.
    let marker = dir.join(unique("evil-ran"));
    let (evil, _) = approver(&dir, &format!("touch {}; echo allow", marker.display()));
    let mut r = read_report(&rep);
    r["profile"]["resolved"]["approve"]["approver"]["command"] =
        serde_json::json!([evil.to_str().unwrap()]);
    r.as_object_mut().unwrap().remove("integrity");
    std::fs::write(&rep, serde_json::to_vec(&r).unwrap()).unwrap();
    let out = cordon(user)
        .args(["replay", "--yes", "-q"])
        .arg(&rep)
        .current_dir(&ws)
        .output()
        .unwrap();
    let ctx = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !marker.exists(),
        "{ctx}: replay ran the approver the report names"
    );
    // The local profile's own approver decides (it allows).
    assert_eq!(asked(&log).len(), 2, "{ctx}");
    let out = cordon(user)
        .args(["replay", "--dry-run"])
        .arg(&rep)
        .current_dir(&ws)
        .output()
        .unwrap();
    let ctx = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!marker.exists(), "{ctx}");
    assert!(
        ctx.contains("the recorded approver") && ctx.contains("is not used"),
        "{ctx}"
    );
}

/// A gated program reached under another name, through the dynamic loader,
/// with code injected by the loader, or by a script swapped after the
/// decision: asked about (and refused) or killed, never run unasked.
#[test]
fn a_gated_program_is_known_under_other_names_loaders_and_swaps() {
    let test = "a_gated_program_is_known_under_other_names_loaders_and_swaps";
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/approve/argv_rewrite.c");
    let so = shared_dir()
        .join(unique("argv_rewrite"))
        .with_extension("so");
    match std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
    {
        Ok(s) if s.success() => {}
        _ => {
            skip(test, "no C compiler");
            return;
        }
    }
    std::fs::set_permissions(&so, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = approver_dir();
    // Allows only exactly `git push origin main`, after a moment (a person).
    let (exact, log) = approver(
        &dir,
        r#"sleep 1; case "$req" in *'"argv":["git","push","origin","main"],'*) echo allow ;; *) echo deny ;; esac"#,
    );
    for (user, ns) in cases(test) {
        let (_keep, ws) = repo(user);
        std::fs::copy(&so, ws.join("x.so")).unwrap();
        let git = "$(command -v git)";
        let payloads = [
            (
                "fd",
                format!(
                    "/lib64/ld-linux-x86-64.so.2 /proc/self/fd/3 push -q origin main:fd 3<{git}"
                ),
            ),
            (
                "link",
                format!("ln -s {git} g; /lib64/ld-linux-x86-64.so.2 ./g push -q origin main:link"),
            ),
            (
                "copy",
                format!("cp {git} ./g2; ./g2 push -q origin main:copy"),
            ),
            (
                "preload",
                "LD_PRELOAD=./x.so git status -q origin main:preload".to_string(),
            ),
            // Approved as `git push origin main`, swapped for a script that
            // pushes elsewhere while the approver thinks.
            (
                "swap",
                format!(
                    "ln -s {git} upstream && printf '#!{git_path} push\\n' > script && chmod +x script && \
                     {PYTHON} -c 'import os, subprocess; subprocess.Popen([\"sh\", \"-c\", \"sleep 0.5; mv -f script upstream\"]); os.execv(\"upstream\", [\"git\",\"push\",\"origin\",\"main\"])'; wait",
                    git_path = which("git")
                ),
            ),
        ];
        for (name, payload) in payloads {
            if name == "swap" {
                // The second remote, set up from outside (the guard keeps
                // .git/config from the payload).
                let st = std::process::Command::new("sh")
                    .current_dir(&ws)
                    .args(["-c", "git init -q --bare up.git && git -c safe.directory='*' remote add upstream ./up.git"])
                    .status()
                    .unwrap();
                assert!(st.success());
                chown_r(&ws, user);
            }
            let p = gated_profile(
                ns,
                &format!(
                    "exec = [\"git push *\"]\napprover = {{ command = [\"{}\"] }}",
                    exact.display()
                ),
            );
            let (out, r) = run_report(
                user,
                &p,
                &ws,
                &format!("{payload} 2>/dev/null; echo rc=$?"),
                &[],
            );
            let ctx = format!(
                "{user}, {ns}, {name}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            let refs = branches(&ws);
            assert!(refs.trim().is_empty(), "{ctx}: pushed {refs}");
            let up = ws.join("up.git");
            if up.exists() {
                let o = std::process::Command::new("git")
                    .args(["-c", "safe.directory=*", "-C"])
                    .arg(&up)
                    .args(["for-each-ref"])
                    .output()
                    .unwrap();
                assert!(text(&o.stdout).trim().is_empty(), "{ctx}: pushed upstream");
                std::fs::remove_dir_all(&up).unwrap();
            }
            let ap = approvals(&r);
            assert!(!ap.is_empty(), "{ctx}: nobody was asked");
            if name == "swap" {
                assert!(
                    report_denials(&r).iter().any(|d| d["errno"] == "SIGKILL"
                        && d["rule"]
                            .as_str()
                            .unwrap()
                            .contains("not what was approved")),
                    "{ctx}: the swapped exec must be killed at its exec event"
                );
            }
            if name == "preload" {
                assert!(
                    ap[0]["shown"]["env"]
                        .to_string()
                        .contains("LD_PRELOAD=./x.so"),
                    "{ctx}: the approver must see the injected code: {ap:?}"
                );
            }
            let _ = std::process::Command::new("git")
                .args(["-c", "safe.directory=*", "-C"])
                .arg(&ws)
                .args(["remote", "remove", "upstream"])
                .output();
            for f in ["g", "g2", "upstream", "script"] {
                let _ = std::fs::remove_file(ws.join(f));
            }
        }
    }
    let _ = std::fs::remove_file(&log);
}

fn which(name: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}
