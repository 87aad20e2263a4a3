//! Privileges inside the sandbox, read from the kernel (/proc/self/status of
//! the payload), as root and as uid 65534, with and without namespaces: no
//! capabilities in the effective, permitted, inheritable or ambient sets,
//! no_new_privs set, a seccomp filter in force (mode 2).
//!
//! The bounding set: cleared whenever the child holds CAP_SETPCAP, that is with
//! a user namespace (the child is root in it) or when the launcher is root.
//! Run as uid 65534 without namespaces, the child has no CAP_SETPCAP and the
//! bounding set cannot shrink; cordon then leaves it as inherited (see
//! src/caps.rs) and relies on no_new_privs, which keeps execve from granting
//! anything from it (no setuid, no file capabilities).

mod support;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use support::*;

fn status_fields(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

const ZERO: &str = "0000000000000000";

/// `/proc/self/status` of a payload run by `user` under `profile` (exit 0 required).
fn status_inside(user: User, profile: &str, ctx: &str) -> BTreeMap<String, String> {
    let ws = tempdir(user);
    let out = cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws.path())
        .current_dir(ws.path())
        .args(["--", "/bin/cat", "/proc/self/status"])
        .output()
        .unwrap();
    assert_code(&out, 0, ctx);
    status_fields(&text(&out.stdout))
}

#[test]
fn no_capabilities_no_new_privs_and_seccomp_inside() {
    let own = status_fields(&std::fs::read_to_string("/proc/self/status").unwrap());
    assert_ne!(
        own["CapEff"], ZERO,
        "the tests run without capabilities: nothing to drop"
    );
    for user in users("no_capabilities_no_new_privs_and_seccomp_inside") {
        for ns in Ns::ALL {
            let ctx = format!("{user}, {ns}");
            let st = status_inside(user, &ns_profile("workspace-write", ns), &ctx);
            for f in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
                assert_eq!(st.get(f).map(String::as_str), Some(ZERO), "{ctx}: {f}");
            }
            assert_eq!(
                st.get("NoNewPrivs").map(String::as_str),
                Some("1"),
                "{ctx}: NoNewPrivs"
            );
            assert_eq!(
                st.get("Seccomp").map(String::as_str),
                Some("2"),
                "{ctx}: Seccomp"
            );
            let bounding = if ns == Ns::Off && user == User::Nobody {
                // No CAP_SETPCAP to drop it with: left as the caller's.
                own["CapBnd"].as_str()
            } else {
                ZERO
            };
            assert_eq!(
                st.get("CapBnd").map(String::as_str),
                Some(bounding),
                "{ctx}: CapBnd"
            );
            // The uid is the caller's.
            let uid = st.get("Uid").map(String::as_str).unwrap_or_default();
            let expect = user.uid().to_string();
            assert!(
                uid.split_whitespace().all(|u| u == expect),
                "{ctx}: Uid {uid}, expected {expect} everywhere"
            );
        }
    }
}

/// `[capabilities] keep`: exactly the kept capability survives, in every set
/// including the bounding set and the ambient set (so a non-root payload keeps
/// it across execve), wherever the child holds it to begin with: as root, or
/// inside a user namespace. As uid 65534 without one there is nothing to keep.
#[test]
fn kept_capabilities_are_all_that_remain() {
    const NET_BIND: &str = "0000000000000400"; // 1 << CAP_NET_BIND_SERVICE (10)
    let own = status_fields(&std::fs::read_to_string("/proc/self/status").unwrap());
    for user in users("kept_capabilities_are_all_that_remain") {
        for ns in Ns::ALL {
            let p = profile_ns(
                "keep",
                "extends = \"workspace-write\"\n[capabilities]\nkeep = [\"CAP_NET_BIND_SERVICE\"]\n",
                ns,
            );
            let ctx = format!("{user}, {ns}");
            let st = status_inside(user, &p, &ctx);
            let held = !(ns == Ns::Off && user == User::Nobody);
            let kept = if held { NET_BIND } else { ZERO };
            for f in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
                assert_eq!(st.get(f).map(String::as_str), Some(kept), "{ctx}: {f}");
            }
            let bounding = if held {
                NET_BIND
            } else {
                own["CapBnd"].as_str()
            };
            assert_eq!(
                st.get("CapBnd").map(String::as_str),
                Some(bounding),
                "{ctx}: CapBnd"
            );
        }
    }
}

/// no_new_privs is real: a setuid-root program does not raise the euid of uid
/// 65534 inside the sandbox (without namespaces, no_new_privs is the only
/// thing that stops it), while the same program does outside (the control).
#[test]
fn setuid_programs_gain_nothing() {
    let script = ["-c", "import os; print(os.geteuid())"];
    for user in users("setuid_programs_gain_nothing") {
        if user == User::Root {
            continue; // root has nothing to gain
        }
        for ns in Ns::ALL {
            let ws = tempdir(User::Root);
            let py = ws.path().join("py");
            std::fs::copy(PYTHON, &py).unwrap();
            std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o4755)).unwrap();
            let ctl = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&py)
                .args(script)
                .output()
                .unwrap();
            assert_code(&ctl, 0, "setuid control");
            assert_eq!(
                text(&ctl.stdout).trim(),
                "0",
                "control: the setuid copy does not raise the euid outside"
            );
            let p = ns_profile("workspace-write", ns);
            let out = cordon(user)
                .args(["run", "-q", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--")
                .arg(&py)
                .args(script)
                .output()
                .unwrap();
            assert_code(&out, 0, format!("{user}, {ns}"));
            assert_eq!(
                text(&out.stdout).trim(),
                "65534",
                "{user}, {ns}: setuid raised the euid"
            );
        }
    }
}
