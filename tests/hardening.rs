//! Hardening beyond the escape suite: `read_only` paths in a real git workspace
//! (git keeps working; hooks, config and agent settings do not move), the mount
//! flags of the masks over denied paths, namespace mode `required` where user
//! namespaces are refused, and the scope opt-outs.
mod support;

use std::os::linux::net::SocketAddrExt;
use std::process::Command;

use support::*;

/// Inside the sandbox: try each attack on the protected paths, print one line each.
const PROTECTED: &str = r#"
import errno, os, sys
def attempt(name, f):
    try:
        f()
        print(name, "ok")
    except OSError as e:
        print(name, errno.errorcode[e.errno])
def write(p):
    with open(p, "a") as f:
        f.write("x\n")
attempt("hook", lambda: write(".git/hooks/pre-commit"))
attempt("config", lambda: write(".git/config"))
attempt("settings", lambda: write(".claude/settings.json"))
attempt("move-git", lambda: os.rename(".git", ".git-aside"))
attempt("move-hooks", lambda: os.rename(".git/hooks", ".git/hooks-aside"))
attempt("remove-settings", lambda: os.rename(".claude", ".claude-aside"))
"#;

/// Denied paths are masked (with namespaces) by mounts that are read-only,
/// nosuid, nodev and noexec, whatever the kernel lets through otherwise: read
/// from the payload's own `/proc/self/mountinfo`, for a file and a directory.
#[test]
fn masks_are_read_only_nosuid_nodev_noexec() {
    for user in users("masks_are_read_only_nosuid_nodev_noexec") {
        let ws = tempdir(user);
        let secrets = tempdir(user);
        let root = std::fs::canonicalize(secrets.path()).unwrap();
        std::fs::write(root.join("token"), "secret\n").unwrap();
        std::fs::create_dir(root.join("keys")).unwrap();
        chown_r(&root, user);
        let p = profile_ns(
            "masks",
            &format!(
                "extends = \"workspace-write\"\n[filesystem]\ndeny = [\"{0}/token\", \"{0}/keys\"]\n",
                root.display()
            ),
            Ns::Auto,
        );
        let out = cordon(user)
            .args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", "/bin/cat", "/proc/self/mountinfo"])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("{user}"));
        let info = text(&out.stdout);
        for name in ["token", "keys"] {
            let target = root.join(name).display().to_string();
            // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ...
            let line = info
                .lines()
                .find(|l| l.split_whitespace().nth(4) == Some(target.as_str()))
                .unwrap_or_else(|| panic!("{user}: no mount on {target} in:\n{info}"));
            let opts: Vec<&str> = line.split_whitespace().nth(5).unwrap().split(',').collect();
            for want in ["ro", "nosuid", "nodev", "noexec"] {
                assert!(
                    opts.contains(&want),
                    "{user}: the mask on {target} lacks {want}: {line}"
                );
            }
        }
    }
}

fn git_workspace(user: User) -> tempfile::TempDir {
    let ws = tempdir(user);
    let git = |args: &[&str]| {
        let st = Command::new("git")
            .args(args)
            .current_dir(ws.path())
            .env("HOME", home(user))
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"]);
    std::fs::write(ws.path().join("README"), "hello\n").unwrap();
    std::fs::create_dir(ws.path().join(".claude")).unwrap();
    std::fs::write(ws.path().join(".claude/settings.json"), "{}\n").unwrap();
    std::fs::write(ws.path().join("protected.py"), PROTECTED).unwrap();
    chown_r(ws.path(), user);
    ws
}

#[test]
fn read_only_paths_hold_and_git_still_works() {
    for user in users("read_only_paths_hold_and_git_still_works") {
        let ws = git_workspace(user);
        let p = ns_profile("workspace-write", Ns::Auto);
        let out = cordon(user)
            .args(["run", "-q", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", PYTHON, "protected.py"])
            .output()
            .unwrap();
        assert_code(&out, 0, format!("protected.py as {user}"));
        let got = text(&out.stdout);
        for want in [
            "hook EROFS",
            "config EROFS",
            "settings EROFS",
            "move-git EBUSY",
            "move-hooks EBUSY",
            "remove-settings EBUSY",
        ] {
            assert!(
                got.lines().any(|l| l == want),
                "as {user}: expected `{want}` in:\n{got}"
            );
        }
        assert!(
            !ws.path().join(".git/hooks/pre-commit").exists(),
            "as {user}: a hook was planted"
        );
        assert_eq!(
            std::fs::read_to_string(ws.path().join(".claude/settings.json")).unwrap(),
            "{}\n"
        );

        // The everyday git commands an agent runs still work with hooks and config read-only.
        let script = "g='git -c user.name=a -c user.email=a@b'; $g add README && $g commit -qm first \
                      && $g checkout -qb feature && echo more >> README && $g commit -qam second \
                      && $g log --oneline | wc -l";
        let out = run_sh(user, &p, ws.path(), script);
        assert_code(&out, 0, format!("git workflow as {user}"));
        assert_eq!(text(&out.stdout).trim(), "2", "as {user}");
    }
}

#[test]
fn read_only_without_namespaces_is_a_warned_gap() {
    for user in users("read_only_without_namespaces_is_a_warned_gap") {
        let ws = git_workspace(user);
        // A read_only path of the profile's own (the guard's paths are put back
        // at the end instead; tests/guard.rs).
        let p = profile_ns(
            "ro-gap",
            "extends = \"workspace-write\"\n[filesystem]\nread_only = [\"${WORKSPACE}/.git/hooks\", \"${WORKSPACE}/.git/config\"]\n",
            Ns::Off,
        );
        let out = cordon(user)
            .args(["run", "-p", &p, "-w"])
            .arg(ws.path())
            .current_dir(ws.path())
            .args(["--", PYTHON, "protected.py"])
            .output()
            .unwrap();
        assert_code(
            &out,
            0,
            format!("protected.py without namespaces as {user}"),
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("warning: read_only")
                && err.contains(".git/hooks is not enforced without namespaces"),
            "as {user}: the gap must be said on every run:\n{err}"
        );
        // The documented gap: Landlock alone cannot keep these read-only.
        let got = text(&out.stdout);
        assert!(
            got.lines().any(|l| l == "hook ok"),
            "as {user}: gap changed?\n{got}"
        );
        assert!(
            got.lines().any(|l| l == "config ok"),
            "as {user}: gap changed?\n{got}"
        );
    }
}

#[test]
fn namespace_modes_where_user_namespaces_are_refused() {
    for user in users("namespace_modes_where_user_namespaces_are_refused") {
        let ws = tempdir(user);
        // Control: the filter really refuses user namespaces.
        let mut c = Command::new("unshare");
        c.args(["-U", "true"]);
        let st = without_userns(c).status().unwrap();
        assert!(!st.success(), "the test filter must refuse unshare -U");

        // auto: falls back to Landlock and seccomp, says so with -v, and still runs.
        let auto = ns_profile("workspace-write", Ns::Auto);
        let mut c = cordon(user);
        c.args(["run", "-v", "-p", &auto, "-w"])
            .arg(ws.path())
            .current_dir(ws.path());
        c.args(["--", "/bin/sh", "-c", "ls /proc | grep -c '^[0-9]'"]);
        let out = without_userns(c).output().unwrap();
        assert_code(
            &out,
            0,
            format!("mode auto without user namespaces as {user}"),
        );
        let err = text(&out.stderr);
        assert!(
            err.contains("namespaces unavailable"),
            "as {user}: no word of the fallback:\n{err}"
        );
        let visible: usize = text(&out.stdout).trim().parse().unwrap();
        assert!(
            visible > 5,
            "as {user}: without a PID namespace the host's processes are visible ({visible})"
        );

        // required: refuses, names why, never runs the command.
        let required = profile(
            shared_dir(),
            &format!("{}.toml", unique("required")),
            "extends = \"workspace-write\"\n[namespaces]\nmode = \"required\"\n",
        );
        let marker = ws.path().join("ran");
        let mut c = cordon(user);
        c.args(["run", "-p", &required, "-w"])
            .arg(ws.path())
            .current_dir(ws.path());
        c.args(["--", "/usr/bin/touch"]).arg(&marker);
        let out = without_userns(c).output().unwrap();
        assert_code(
            &out,
            125,
            format!("mode required without user namespaces as {user}"),
        );
        let msg = assert_one_error_line(&out, "mode required");
        assert!(
            msg.contains("namespaces") && msg.contains("unavailable"),
            "as {user}: {msg}"
        );
        assert!(!marker.exists(), "as {user}: the command ran");
    }
}

const ABSTRACT_CLIENT: &str = r#"
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect("\0" + sys.argv[1])
    print("ok")
except OSError as e:
    print(errno.errorcode[e.errno])
"#;

#[test]
fn scope_opt_outs_allow_what_they_name() {
    if !require_landlock("scope_opt_outs_allow_what_they_name", 6) {
        return;
    }
    for user in users("scope_opt_outs_allow_what_they_name") {
        let ws = tempdir(user);
        std::fs::write(ws.path().join("client.py"), ABSTRACT_CLIENT).unwrap();
        chown_r(ws.path(), user);
        // An abstract socket held outside (network on: no network namespace, so only
        // the Landlock scope stands between the payload and the listener).
        let name = unique("cordon-abstract");
        let listener = std::os::unix::net::UnixListener::bind_addr(
            &std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap(),
        )
        .unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = "extends = \"workspace-write\"\n[network]\nmode = \"on\"\n";
        let deny = profile_ns("scope-deny", base, Ns::Auto);
        let allow = profile_ns(
            "scope-allow",
            &format!("{base}abstract_unix = \"allow\"\n"),
            Ns::Auto,
        );
        for (p, want) in [(&deny, "EPERM"), (&allow, "ok")] {
            let out = cordon(user)
                .args(["run", "-q", "-p", p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", PYTHON, "client.py", &name])
                .output()
                .unwrap();
            assert_code(&out, 0, format!("abstract client as {user}"));
            assert_eq!(text(&out.stdout).trim(), want, "as {user} under {p}");
        }

        // Signals to a process outside: refused by default, allowed by the opt-out
        // (namespaces off, or the PID namespace alone would hide the process).
        for (extra, want) in [
            ("", "EPERM"),
            ("[process]\nsignal_outside = \"allow\"\n", "ok"),
        ] {
            let mut sleeper = match user {
                User::Root => Command::new("sleep"),
                User::Nobody => {
                    let mut c = Command::new("setpriv");
                    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "sleep"]);
                    c
                }
            };
            let mut child = sleeper.arg("30").spawn().unwrap();
            let p = profile_ns(
                "signal",
                &format!("extends = \"workspace-write\"\n{extra}"),
                Ns::Off,
            );
            let script = format!(
                "import errno, os\ntry:\n    os.kill({}, 15)\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n",
                child.id()
            );
            let out = cordon(user)
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--", PYTHON, "-c", &script])
                .output()
                .unwrap();
            assert_code(&out, 0, format!("kill outside as {user}"));
            assert_eq!(text(&out.stdout).trim(), want, "as {user} with `{extra}`");
            let _ = child.kill();
            let status = child.wait().unwrap();
            if want == "ok" {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(
                    status.signal(),
                    Some(15),
                    "as {user}: the opt-out let SIGTERM through"
                );
            }
        }
    }
}
