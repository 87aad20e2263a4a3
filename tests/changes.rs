//! The change record: a payload that hides its work from git (skip-worktree,
//! `.git/info/exclude`) still has every file it created, modified, deleted or
//! renamed listed in the run report, counted at exit and printed by `cordon
//! report diff`; what is not a change is not listed; ordinary builds and
//! commits still work beside it. As root and as uid 65534, namespaces auto and off.

mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use support::*;

/// `sh -c SCRIPT` under workspace-write in `ws` with `extra` flags, writing a
/// report beside the workspace; TMPDIR is a directory of its own (see workflows.rs).
/// workspace-write with `.git/info` taken out of the guard's list: the guard
/// would otherwise undo the attack's `info/exclude` line (tests/guard.rs shows
/// that), and this file is about the record listing what git is made to miss.
fn changes_profile(ns: Ns) -> String {
    profile_ns(
        "changes",
        "extends = \"workspace-write\"\n[filesystem]\nunprotect = [\"${WORKSPACE}/.git/info\"]\n",
        ns,
    )
}

fn run(user: User, ns: Ns, ws: &Path, extra: &[&str], script: &str) -> (Output, PathBuf, Value) {
    let tmp = tempdir(user);
    let out_dir = tempdir(user);
    let report = out_dir.path().join("run.json");
    let out = cordon(user)
        .args(["run", "-p", &changes_profile(ns), "-w"])
        .arg(ws)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .current_dir(ws)
        .env("TMPDIR", tmp.path())
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .unwrap();
    let r = read_report(&report);
    // Keep the report readable by `report diff` after the temp dirs go.
    let kept = std::env::temp_dir().join(format!("{}.json", unique("cordon-test-changes")));
    std::fs::copy(&report, &kept).unwrap();
    std::fs::set_permissions(&kept, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    (out, kept, r)
}

/// Removes the kept report when the test ends, also on failure.
struct Remove(PathBuf);
impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn paths(r: &Value, list: &str) -> Vec<String> {
    r.pointer(&format!("/changes/{list}"))
        .and_then(|v| v.as_array())
        .unwrap_or_else(|| panic!("report has no changes.{list}\n{r:#}"))
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

fn entry<'a>(r: &'a Value, list: &str, path: &str) -> &'a Value {
    r.pointer(&format!("/changes/{list}"))
        .and_then(|v| v.as_array())
        .and_then(|l| l.iter().find(|c| c["path"] == path))
        .unwrap_or_else(|| panic!("{path} not in changes.{list}\n{:#}", r["changes"]))
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn git(ws: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .arg("-C")
        .arg(ws)
        .args([
            "-c",
            "safe.directory=*",
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@e",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    out
}

fn report_diff(user: User, report: &Path) -> String {
    let out = cordon(user)
        .args(["report", "diff"])
        .arg(report)
        .output()
        .unwrap();
    assert_code(&out, 0, "cordon report diff");
    text(&out.stdout)
}

#[test]
fn changes_hidden_from_git_are_listed() {
    for user in users("changes_hidden_from_git_are_listed") {
        for ns in Ns::ALL {
            let ctx = format!("as {user}, {ns}");
            let d = tempdir(user);
            let ws = d.path().canonicalize().unwrap();
            git(&ws, &["init", "-q"]);
            for f in ["tracked", "gone", "moved", "keep"] {
                std::fs::write(ws.join(f), format!("{f}\n")).unwrap();
            }
            git(&ws, &["add", "."]);
            git(&ws, &["commit", "-qm", "init"]);
            chown_r(&ws, user);
            let (out, report, r) = run(
                user,
                ns,
                &ws,
                &[],
                "set -e
                 git update-index --skip-worktree tracked gone moved
                 echo evil >> tracked
                 rm gone
                 mv moved moved2
                 echo planted > planted
                 printf 'planted\\nmoved2\\n' >> .git/info/exclude
                 cat keep > /dev/null",
            );
            let _rm = Remove(report.clone());
            assert_code(&out, 0, &ctx);
            // What the attack is for: git on the host sees a clean tree.
            let st = git(&ws, &["status", "--porcelain"]);
            assert_eq!(text(&st.stdout), "", "{ctx}: git status is not clean");

            let p = |f: &str| ws.join(f).display().to_string();
            assert_eq!(paths(&r, "created"), [p("planted")], "{ctx}");
            let modified = paths(&r, "modified");
            for f in ["tracked", ".git/info/exclude", ".git/index"] {
                assert!(
                    modified.contains(&p(f)),
                    "{ctx}: {f} not modified: {modified:?}"
                );
            }
            assert_eq!(modified.len(), 3, "{ctx}: {modified:?}");
            assert_eq!(paths(&r, "deleted"), [p("gone")], "{ctx}");
            assert_eq!(paths(&r, "renamed"), [p("moved2")], "{ctx}");
            assert_eq!(
                entry(&r, "renamed", &p("moved2"))["from"],
                p("moved"),
                "{ctx}"
            );
            let t = entry(&r, "modified", &p("tracked"));
            assert_eq!(t["size_before"], 8, "{ctx}");
            assert_eq!(t["size_after"], 13, "{ctx}");
            assert_eq!(t["sha256_before"], sha(b"tracked\n"), "{ctx}");
            assert_eq!(t["sha256_after"], sha(b"tracked\nevil\n"), "{ctx}");
            assert_eq!(t["by"], "/usr/bin/dash", "{ctx}");
            assert_eq!(
                entry(&r, "created", &p("planted"))["sha256_after"],
                sha(b"planted\n")
            );
            assert_eq!(
                entry(&r, "deleted", &p("gone"))["sha256_before"],
                sha(b"gone\n")
            );
            assert_eq!(r["changes"]["truncated"], false, "{ctx}");
            assert!(!paths(&r, "modified").contains(&p("keep")), "{ctx}");

            // The exit summary counts them and points to the report.
            let summary = "cordon: 6 files changed in the writable roots: 1 created, 3 modified, 1 deleted, 1 renamed (see cordon report diff ";
            let err = text(&out.stderr);
            assert!(
                err.lines()
                    .any(|l| l.starts_with(summary) && l.ends_with("/run.json)")),
                "{ctx}: no summary line like\n{summary}...\nin\n{err}"
            );

            let diff = report_diff(user, &report);
            for line in [
                format!("created  {} (8 bytes) by /usr/bin/dash", p("planted")),
                format!("modified {} (8 -> 13 bytes) by /usr/bin/dash", p("tracked")),
                format!("deleted  {} (5 bytes) by /usr/bin/rm", p("gone")),
                format!(
                    "renamed  {} -> {} (6 bytes) by /usr/bin/mv",
                    p("moved"),
                    p("moved2")
                ),
            ] {
                assert!(
                    diff.lines().any(|l| l == line),
                    "{ctx}: no line\n{line}\nin\n{diff}"
                );
            }
        }
    }
}

#[test]
fn what_is_not_a_change() {
    for user in users("what_is_not_a_change") {
        for ns in Ns::ALL {
            let ctx = format!("as {user}, {ns}");
            let d = tempdir(user);
            let ws = d.path().canonicalize().unwrap();
            std::fs::write(ws.join("same"), "same\n").unwrap();
            std::fs::write(ws.join("read"), "read\n").unwrap();
            std::fs::write(ws.join("big"), vec![b'b'; 100_000]).unwrap();
            chown_r(&ws, user);
            let (out, report, r) = run(
                user,
                ns,
                &ws,
                &[],
                "set -e
                 echo tmp > scratch; rm scratch
                 mkdir dir; echo x > dir/f; rm -r dir
                 printf 'same\\n' > same
                 touch same
                 cat read big > /dev/null
                 echo out > /dev/null",
            );
            let _rm = Remove(report.clone());
            assert_code(&out, 0, &ctx);
            for list in ["created", "modified", "deleted", "renamed"] {
                assert!(
                    paths(&r, list).is_empty(),
                    "{ctx}: {list}: {:#}",
                    r["changes"]
                );
            }
            // scratch, dir, dir/f and same were named by write-intent calls; the reads were not.
            assert_eq!(r["changes"]["unchanged"], 4, "{ctx}: {:#}", r["changes"]);
            let err = text(&out.stderr);
            assert!(
                !err.contains("changed in the writable roots"),
                "{ctx}: {err}"
            );
            assert_eq!(
                report_diff(user, &report),
                "no files changed\n(4 paths opened for writing ended unchanged)\n",
                "{ctx}"
            );
            assert_eq!(std::fs::read(ws.join("same")).unwrap(), b"same\n");

            // A large file is compared by size and ctime: rewritten, it is modified.
            let (out, report, r) = run(
                user,
                ns,
                &ws,
                &["-q"],
                "cat big > big.new && mv big.new big && echo x > new",
            );
            let _rm2 = Remove(report);
            assert_code(&out, 0, &ctx);
            let p = |f: &str| ws.join(f).display().to_string();
            assert_eq!(
                paths(&r, "modified"),
                [p("big")],
                "{ctx}: {:#}",
                r["changes"]
            );
            assert_eq!(paths(&r, "created"), [p("new")], "{ctx}");
            // -q: no summary, as for denials.
            assert_eq!(text(&out.stderr), "", "{ctx}");
        }
    }
}

#[test]
fn cc_and_git_commit_still_work_and_are_listed() {
    for user in users("cc_and_git_commit_still_work_and_are_listed") {
        for ns in Ns::ALL {
            let ctx = format!("as {user}, {ns}");
            let d = tempdir(user);
            let ws = d.path().canonicalize().unwrap();
            let (out, report, r) = run(
                user,
                ns,
                &ws,
                &["-q"],
                "set -e
                 printf '#include <stdio.h>\\nint main(void){puts(\"compiled\");return 0;}\\n' > hello.c
                 cc -O0 -o hello hello.c
                 ./hello
                 git init -q
                 git add hello.c
                 git -c user.name=T -c user.email=t@e commit -qm first",
            );
            let _rm = Remove(report);
            assert_code(&out, 0, &ctx);
            assert_eq!(text(&out.stdout), "compiled\n", "{ctx}");
            let p = |f: &str| ws.join(f).display().to_string();
            let created = paths(&r, "created");
            for f in ["hello.c", "hello", ".git", ".git/HEAD", ".git/index"] {
                assert!(
                    created.contains(&p(f)),
                    "{ctx}: {f} not created: {created:?}"
                );
            }
            let obj = created
                .iter()
                .filter(|c| c.starts_with(&p(".git/objects/")))
                .count();
            // The blob, the tree and the commit, each in a directory of its own (or shared).
            assert!(obj >= 4, "{ctx}: {obj} objects: {created:?}");
            assert_ne!(entry(&r, "created", &p("hello"))["by"], "", "{ctx}");
            // Nothing outside the writable roots, and nothing of the compiler's temp files.
            assert!(
                created
                    .iter()
                    .all(|c| c.starts_with(&ws.display().to_string())),
                "{ctx}: {created:?}"
            );
        }
    }
}

#[test]
fn no_changes_or_no_report_leaves_the_record_out() {
    for user in users("no_changes_or_no_report_leaves_the_record_out") {
        for ns in Ns::ALL {
            let ctx = format!("as {user}, {ns}");
            let d = tempdir(user);
            let ws = d.path().canonicalize().unwrap();
            let (out, report, r) = run(user, ns, &ws, &["--no-changes"], "echo x > new");
            let _rm = Remove(report.clone());
            assert_code(&out, 0, &ctx);
            assert!(r.get("changes").is_none(), "{ctx}: {r:#}");
            assert!(
                r["capture"]["notes"]
                    .to_string()
                    .contains("file changes not recorded"),
                "{ctx}: {:#}",
                r["capture"]
            );
            assert!(!text(&out.stderr).contains("changed"), "{ctx}");
            // Without a report nothing records or prints it: stderr stays as it was.
            let tmp = tempdir(user);
            let plain = cordon(user)
                .args(["run", "-p", &changes_profile(ns), "-w"])
                .arg(&ws)
                .current_dir(&ws)
                .env("TMPDIR", tmp.path())
                .args(["--", "/bin/sh", "-c", "echo y > other"])
                .output()
                .unwrap();
            assert_code(&plain, 0, &ctx);
            assert_eq!(text(&plain.stderr), "", "{ctx}");
            assert!(ws.join("other").exists(), "{ctx}");
            // An older report (no `changes`) still loads.
            assert!(
                report_diff(user, &report).starts_with("no change record in "),
                "{ctx}"
            );
        }
    }
}
