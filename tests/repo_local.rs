//! The repo-local policy, `.cordon.toml` at the workspace root, through the
//! binary: applied on top of the profile when present (a denied directory, a
//! refused syscall, a lower limit), said by `profile show` and the report;
//! every key that could widen refused with exit 125 and a located line before
//! anything runs; and out of the payload's reach, whether it exists or not.
//! As root and as uid 65534, namespaces on and off.

mod support;
use std::path::Path;

use support::*;

fn write(ws: &Path, user: User, name: &str, text: &str) {
    let p = ws.join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    chown_r(&p, user);
}

#[test]
fn a_repo_local_policy_tightens_the_profile() {
    for user in users("a_repo_local_policy_tightens_the_profile") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let ws = tempdir(user);
            write(ws.path(), user, "vault/key", "s3cret\n");
            write(ws.path(), user, "src/main.c", "int main;\n");
            write(
                ws.path(),
                user,
                ".cordon.toml",
                "[filesystem]\ndeny = [\"${WORKSPACE}/vault\"]\n[syscalls]\ndeny = [\"uname\"]\n[limits]\ntimeout = \"2s\"\n",
            );
            chown_r(ws.path(), user);
            let p = ns_profile("workspace-write", ns);
            // The denied directory, the refused syscall, the lower timeout; the
            // rest of the workspace as before.
            let out = run_sh(
                user,
                &p,
                ws.path(),
                "cat vault/key; echo cat=$?; uname >/dev/null 2>&1; echo uname=$?; cat src/main.c >/dev/null && echo src=ok",
            );
            assert_code(&out, 0, format!("{ctx}: a run under the repo-local policy"));
            let o = text(&out.stdout);
            assert!(
                !o.contains("s3cret"),
                "{ctx}: the denied directory was read: {o}"
            );
            assert!(o.contains("cat=1"), "{ctx}: {o}");
            assert!(!o.contains("uname=0"), "{ctx}: uname ran: {o}");
            assert!(o.contains("src=ok"), "{ctx}: {o}");
            let slow = run_sh(user, &p, ws.path(), "sleep 30");
            assert_code(&slow, 124, format!("{ctx}: the repo-local timeout of 2s"));

            // Said by `profile show` and the report.
            let show = cordon(user)
                .args(["profile", "show", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .output()
                .unwrap();
            assert_code(&show, 0, format!("{ctx}: profile show"));
            assert!(
                text(&show.stdout).starts_with("# repo-local policy applied"),
                "{ctx}: {}",
                text(&show.stdout)
            );
            let rep_dir = tempdir(user);
            let rep = rep_dir.path().join("r.json");
            let out = cordon(user)
                .args(["run", "-q", "-p", &p, "--report"])
                .arg(&rep)
                .arg("-w")
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "/bin/true"])
                .output()
                .unwrap();
            assert_code(&out, 0, format!("{ctx}: a run with a report"));
            let r: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&rep).unwrap()).unwrap();
            let applied = ws.path().join(".cordon.toml");
            assert_eq!(
                r["profile"]["repo_local"].as_str().map(Path::new),
                Some(applied.as_path()),
                "{ctx}"
            );
        }
    }
}

#[test]
fn a_repo_local_policy_that_would_widen_is_refused() {
    let cases = [
        ("[filesystem]\nwrite = [\"/etc\"]\n", "filesystem.write"),
        ("[filesystem]\nread = [\"/root\"]\n", "filesystem.read"),
        (
            "[filesystem]\nunprotect = [\"${WORKSPACE}/.git\"]\n",
            "filesystem.unprotect",
        ),
        ("[network]\nmode = \"on\"\n", "network.mode"),
        (
            "[network]\nunix_connect = [\"/run/x.sock\"]\n",
            "network.unix_connect",
        ),
        ("[env]\nkeep = [\"*\"]\n", "env.keep"),
        ("[env.secrets]\nK = { from = \"HOME\" }\n", "env.secrets"),
        ("[syscalls]\nallow = [\"ptrace\"]\n", "syscalls.allow"),
        (
            "[capabilities]\nkeep = [\"CAP_NET_RAW\"]\n",
            "capabilities.keep",
        ),
        ("[namespaces]\nmode = \"off\"\n", "namespaces.mode"),
        ("[audit]\nlog = \"~/.bashrc\"\n", "audit.log"),
        ("[limits]\nprocesses = 100000\n", "limits.processes"),
        ("[limits]\nprocesses = \"unlimited\"\n", "limits.processes"),
        ("extends = \"online\"\n", "extends"),
    ];
    for user in users("a_repo_local_policy_that_would_widen_is_refused") {
        for (body, key) in cases {
            let ws = tempdir(user);
            write(ws.path(), user, ".cordon.toml", body);
            let marker = ws.path().join("marker");
            let out = cordon(user)
                .args(["run", "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", "/usr/bin/touch"])
                .arg(&marker)
                .output()
                .unwrap();
            let ctx = format!("{user}: {key}");
            assert_code(&out, 125, &ctx);
            assert!(!marker.exists(), "{ctx}: the command ran");
            let err = text(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{ctx}: one line: {err}");
            assert!(err.contains(".cordon.toml"), "{ctx}: {err}");
            assert!(
                err.contains(&format!("\"{key}\"")),
                "{ctx}: the key is not named: {err}"
            );
            if key != "extends" {
                assert!(err.contains("line "), "{ctx}: not located: {err}");
            }
        }
    }
}

#[test]
fn a_symlinked_repo_local_policy_is_refused() {
    // The guard keeps `.cordon.toml` itself, not what a link leads to (a file
    // elsewhere in the workspace, the payload's to rewrite).
    for user in users("a_symlinked_repo_local_policy_is_refused") {
        let ws = tempdir(user);
        write(
            ws.path(),
            user,
            "sub/policy.toml",
            "[syscalls]\ndeny = [\"uname\"]\n",
        );
        std::os::unix::fs::symlink("sub/policy.toml", ws.path().join(".cordon.toml")).unwrap();
        let out = run_sh(user, "workspace-write", ws.path(), "true");
        assert_code(&out, 125, format!("{user}: a symlinked .cordon.toml"));
        assert!(
            text(&out.stderr).contains("symbolic link"),
            "{user}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_payload_cannot_write_the_repo_local_policy() {
    for user in users("the_payload_cannot_write_the_repo_local_policy") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let p = ns_profile("workspace-write", ns);
            // It exists: not writable, not replaceable.
            let ws = tempdir(user);
            let body = "[syscalls]\ndeny = [\"uname\"]\n";
            write(ws.path(), user, ".cordon.toml", body);
            run_sh(
                user,
                &p,
                ws.path(),
                "echo '[filesystem]' > .cordon.toml; rm -f .cordon.toml; mv .cordon.toml x 2>/dev/null; true",
            );
            assert_eq!(
                std::fs::read_to_string(ws.path().join(".cordon.toml")).unwrap(),
                body,
                "{ctx}: the payload changed an existing .cordon.toml"
            );
            // It does not exist yet: whatever the payload makes is gone when
            // the run ends.
            let ws = tempdir(user);
            run_sh(user, &p, ws.path(), "echo 'x' > .cordon.toml; true");
            assert!(
                !ws.path().join(".cordon.toml").exists(),
                "{ctx}: the payload planted a .cordon.toml"
            );
        }
    }
}
