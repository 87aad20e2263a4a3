//! Landlock denials observed through kernel audit (Landlock ABI 7 records), as
//! root: the test enables kernel audit for its duration (AUDIT_SET over
//! netlink; the previous state is restored by a guard, also on failure), runs
//! Landlock-denied reads WITHOUT --trace and checks the report records them
//! with observed_by "audit". One test function: it is the only one in this
//! binary, so nothing else runs while the host's audit state is changed.
//!
//! While it runs, the test also listens on the audit multicast group itself,
//! and prints the Landlock records the kernel sent when a check fails.

mod support;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};
use serde_json::Value;
use support::*;

const AUDIT_GET: u16 = 1000;
const AUDIT_SET: u16 = 1001;
const AUDIT_STATUS_ENABLED: u32 = 1;
const AUDIT_SYSCALL: u16 = 1300;
const AUDIT_LANDLOCK_ACCESS: u16 = 1423;
const AUDIT_LANDLOCK_DOMAIN: u16 = 1424;
/// AUDIT_NLGRP_READLOG.
const READLOG_GROUP: u32 = 1;

fn audit_socket(groups: u32, nonblock: bool) -> std::io::Result<OwnedFd> {
    let flags = if nonblock {
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK
    } else {
        SockFlag::SOCK_CLOEXEC
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        flags,
        SockProtocol::NetlinkAudit,
    )?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))?;
    Ok(fd)
}

/// Send one audit control message and return the reply of type `ty` (AUDIT_GET)
/// or nothing once the kernel acknowledged it (AUDIT_SET).
fn audit_request(ty: u16, payload: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let fd = audit_socket(0, false)?;
    let mut msg = Vec::with_capacity(16 + payload.len());
    msg.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(payload);
    send(fd.as_raw_fd(), &msg, MsgFlags::empty())?;
    let mut reply = None;
    let mut buf = vec![0u8; 8192];
    for _ in 0..8 {
        let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
            let t = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
            if len < 16 || off + len > n {
                break;
            }
            let body = &buf[off + 16..off + len];
            if t == libc::NLMSG_ERROR as u16 {
                let err = i32::from_ne_bytes(body[0..4].try_into().unwrap());
                if err != 0 {
                    return Err(std::io::Error::from_raw_os_error(-err));
                }
                if ty == AUDIT_SET {
                    return Ok(None);
                }
            } else if t == ty {
                reply = Some(body.to_vec());
            }
            off += (len + 3) & !3;
        }
        if reply.is_some() {
            return Ok(reply);
        }
    }
    Ok(reply)
}

/// struct audit_status.enabled: 0 off, 1 on, 2 on and locked.
fn audit_enabled() -> std::io::Result<u32> {
    let body = audit_request(AUDIT_GET, &[])?
        .ok_or_else(|| std::io::Error::other("no AUDIT_GET reply"))?;
    Ok(u32::from_ne_bytes(body[4..8].try_into().unwrap()))
}

fn set_audit_enabled(v: u32) -> std::io::Result<()> {
    // struct audit_status: mask, enabled, then fields the mask leaves alone.
    let mut status = [0u8; 44];
    status[0..4].copy_from_slice(&AUDIT_STATUS_ENABLED.to_ne_bytes());
    status[4..8].copy_from_slice(&v.to_ne_bytes());
    audit_request(AUDIT_SET, &status).map(|_| ())
}

/// Kernel audit enabled while this lives; the previous state restored on drop.
struct AuditOn {
    previous: u32,
}

impl AuditOn {
    fn enable() -> Result<AuditOn, String> {
        let previous = audit_enabled().map_err(|e| format!("AUDIT_GET: {e}"))?;
        if previous == 0 {
            set_audit_enabled(1).map_err(|e| format!("AUDIT_SET enabled=1: {e}"))?;
        }
        // Restore from here on, whatever happens next.
        let guard = AuditOn { previous };
        let now = audit_enabled().map_err(|e| format!("AUDIT_GET: {e}"))?;
        if now == 0 {
            return Err("AUDIT_SET enabled=1 was accepted but audit is still disabled".into());
        }
        Ok(guard)
    }
}

impl Drop for AuditOn {
    fn drop(&mut self) {
        if self.previous == 0 {
            if let Err(e) = set_audit_enabled(0) {
                eprintln!("audit_capture: could not restore kernel audit to disabled: {e}");
            }
        }
    }
}

/// Our own reader of the audit multicast group, for diagnosis.
struct Listener(OwnedFd);

impl Listener {
    /// Every record received so far: (type, text).
    fn drain(&self) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = recv(self.0.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
                let t = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
                if len < 16 || off + len > n {
                    break;
                }
                out.push((
                    t,
                    String::from_utf8_lossy(&buf[off + 16..off + len]).into_owned(),
                ));
                off += (len + 3) & !3;
            }
        }
        out
    }

    /// Landlock records, and the SYSCALL records of the same events.
    fn landlock_records(&self) -> String {
        let all = self.drain();
        let serial = |t: &str| {
            t.split_once("): ")
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
        };
        let events: Vec<String> = all
            .iter()
            .filter(|(t, _)| *t == AUDIT_LANDLOCK_ACCESS || *t == AUDIT_LANDLOCK_DOMAIN)
            .map(|(_, x)| serial(x))
            .collect();
        let lines: Vec<String> = all
            .iter()
            .filter(|(t, x)| {
                *t == AUDIT_LANDLOCK_ACCESS
                    || *t == AUDIT_LANDLOCK_DOMAIN
                    || (*t == AUDIT_SYSCALL && events.contains(&serial(x)))
            })
            .map(|(t, x)| format!("  type={t} {x}"))
            .collect();
        if lines.is_empty() {
            "  (no Landlock records on the audit multicast group)".into()
        } else {
            lines.join("\n")
        }
    }
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_string()
}

/// Run `cordon run -p PROFILE -w WS --report R EXTRA -- CMD` as `user`.
fn run(
    user: User,
    profile: &str,
    ws: &Path,
    extra: &[&str],
    cmd: &[&str],
) -> (std::process::Output, Value) {
    let reports = outside_dir(user);
    let report = reports.path().join(format!("{}.json", unique("report")));
    let out = cordon(user)
        .args(["run", "-q", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    let r = read_report(&report);
    check_report_schema(&r, &format!("{cmd:?} as {user} under {profile}"));
    (out, r)
}

/// One case: checks that fail are collected, with the kernel's records.
struct Case<'a> {
    name: String,
    failures: &'a mut Vec<String>,
    listener: &'a Listener,
    report: Value,
    errors: Vec<String>,
}

impl Case<'_> {
    fn check(&mut self, ok: bool, what: impl std::fmt::Display) {
        if !ok {
            self.errors.push(what.to_string());
        }
    }
}

impl Drop for Case<'_> {
    fn drop(&mut self) {
        // Wait for trailing records (the domain's deallocation) before draining.
        std::thread::sleep(Duration::from_millis(100));
        let records = self.listener.landlock_records();
        if !self.errors.is_empty() {
            self.failures.push(format!(
                "{}:\n- {}\nreport denials: {:#}\ncapture: {}\nLandlock records the kernel sent while it ran:\n{records}",
                self.name,
                self.errors.join("\n- "),
                self.report["denials"],
                self.report["capture"]
            ));
        }
    }
}

/// Check the audit denial of a read of `target` by `exe` in `report`.
fn check_audit_read(c: &mut Case, target: &Path, exe: &str, rule_has: &str) {
    let r = c.report.clone();
    let sources: Vec<String> =
        serde_json::from_value(r["capture"]["sources"].clone()).unwrap_or_default();
    c.check(
        sources.iter().any(|x| x == "audit"),
        format!("capture.sources {sources:?} lacks \"audit\""),
    );
    let t = target.display().to_string();
    let found = report_denials(&r)
        .into_iter()
        .find(|d| s(d, "observed_by") == "audit" && s(d, "target") == t);
    let Some(d) = found else {
        c.check(
            false,
            format!("no denial observed_by \"audit\" with target {t}"),
        );
        return;
    };
    c.check(
        s(&d, "kind") == "fs",
        format!("kind {:?}, expected \"fs\"", s(&d, "kind")),
    );
    c.check(
        s(&d, "operation") == "read",
        format!("operation {:?}, expected \"read\"", s(&d, "operation")),
    );
    c.check(
        s(&d, "errno") == "EACCES",
        format!("errno {:?}, expected \"EACCES\"", s(&d, "errno")),
    );
    c.check(
        s(&d, "rule").contains(rule_has),
        format!("rule {:?} does not name {rule_has:?}", s(&d, "rule")),
    );
    c.check(!s(&d, "suggestion").is_empty(), "empty suggestion");
    c.check(
        d["pid"].as_u64().unwrap_or(0) != 0,
        format!("pid {} (the pid of the process that was denied; audit's SYSCALL record of the same event has it)", d["pid"]),
    );
    c.check(
        s(&d, "exe") == exe,
        format!("exe {:?}, expected {exe:?} (the denied program; audit's SYSCALL record of the same event has it)", s(&d, "exe")),
    );
    // Without --trace nothing is predicted.
    let predicted = report_denials(&r)
        .into_iter()
        .filter(|d| s(d, "observed_by") == "predicted")
        .count();
    c.check(
        predicted == 0,
        format!("{predicted} predicted denials without --trace"),
    );
}

#[test]
fn landlock_denials_are_read_from_kernel_audit() {
    let test = "landlock_denials_are_read_from_kernel_audit";
    if !is_root() {
        skip(
            test,
            "needs root: enabling kernel audit needs CAP_AUDIT_CONTROL, reading it CAP_AUDIT_READ",
        );
        return;
    }
    if !require_landlock(test, 7) {
        return;
    }
    let guard = match AuditOn::enable() {
        Ok(g) => g,
        Err(e) => {
            skip(test, &format!("cannot enable kernel audit here: {e}"));
            return;
        }
    };
    let listener =
        Listener(audit_socket(READLOG_GROUP, true).expect("binding the audit multicast group"));
    let cat = std::fs::canonicalize("/bin/cat")
        .unwrap()
        .display()
        .to_string();
    let netrc: PathBuf = std::fs::canonicalize(home(User::Root).join(".netrc")).unwrap();
    let mut failures = Vec::new();

    // Root, namespaces off, `cat ~/.netrc`: denied by Landlock (deny expansion), not masked.
    let cat_netrc = || {
        let ws = tempdir(User::Root);
        let p = ns_profile("workspace-write", Ns::Off);
        run(
            User::Root,
            &p,
            ws.path(),
            &[],
            &["/bin/cat", netrc.to_str().unwrap()],
        )
    };

    // 1. Namespaces off: ~/.netrc is denied by Landlock (deny expansion), not masked.
    {
        let (out, r) = cat_netrc();
        let mut c = Case {
            name: "root, namespaces off: cat ~/.netrc".into(),
            failures: &mut failures,
            listener: &listener,
            report: r,
            errors: vec![],
        };
        c.check(
            out.status.code() == Some(1),
            format!(
                "exit {:?}, expected 1 (cat refused): {}",
                out.status.code(),
                text(&out.stderr)
            ),
        );
        c.check(
            text(&out.stderr).contains("Permission denied"),
            format!("stderr: {}", text(&out.stderr)),
        );
        check_audit_read(&mut c, &netrc, &cat, ".netrc");
    }

    // 2. Namespaces auto: a read outside every grant is Landlock's (the mount view shows it).
    {
        let ws = tempdir(User::Root);
        let other = tempdir(User::Root);
        let file = std::fs::canonicalize(other.path()).unwrap().join("file");
        std::fs::write(&file, "x\n").unwrap();
        let p = profile_ns(
            "audit-narrow",
            "[filesystem]\nread = [\"/usr\", \"/etc\", { path = \"/bin\", optional = true }, { path = \"/lib\", optional = true }, { path = \"/lib64\", optional = true }, \"${WORKSPACE}\"]\nexec = [\"/usr\", { path = \"/bin\", optional = true }, { path = \"/lib\", optional = true }, { path = \"/lib64\", optional = true }]\n",
            Ns::Auto,
        );
        let (out, r) = run(
            User::Root,
            &p,
            ws.path(),
            &[],
            &["/bin/cat", file.to_str().unwrap()],
        );
        let mut c = Case {
            name: "root, namespaces auto: cat a file outside every grant".into(),
            failures: &mut failures,
            listener: &listener,
            report: r,
            errors: vec![],
        };
        c.check(
            out.status.code() == Some(1),
            format!(
                "exit {:?}, expected 1: {}",
                out.status.code(),
                text(&out.stderr)
            ),
        );
        c.check(
            s(&c.report["enforced"], "namespaces") == "on",
            "namespaces not on",
        );
        check_audit_read(&mut c, &file, &cat, "no [filesystem] rule covers");
    }

    // 3. --no-capture turns off seccomp notification, not Landlock's audit records.
    {
        let ws = tempdir(User::Root);
        let p = ns_profile("workspace-write", Ns::Off);
        let (out, r) = run(
            User::Root,
            &p,
            ws.path(),
            &["--no-capture"],
            &["/bin/cat", netrc.to_str().unwrap()],
        );
        let mut c = Case {
            name: "root, namespaces off, --no-capture: cat ~/.netrc".into(),
            failures: &mut failures,
            listener: &listener,
            report: r,
            errors: vec![],
        };
        c.check(
            out.status.code() == Some(1),
            format!(
                "exit {:?}, expected 1: {}",
                out.status.code(),
                text(&out.stderr)
            ),
        );
        check_audit_read(&mut c, &netrc, &cat, ".netrc");
    }

    // 4. Not root: audit is not read, and the report says so.
    {
        let ws = tempdir(User::Nobody);
        let nobody_netrc = std::fs::canonicalize(home(User::Nobody).join(".netrc")).unwrap();
        let p = ns_profile("workspace-write", Ns::Off);
        let (out, r) = run(
            User::Nobody,
            &p,
            ws.path(),
            &[],
            &["/bin/cat", nobody_netrc.to_str().unwrap()],
        );
        let mut c = Case {
            name: "uid 65534, namespaces off: cat ~/.netrc".into(),
            failures: &mut failures,
            listener: &listener,
            report: r.clone(),
            errors: vec![],
        };
        c.check(
            out.status.code() == Some(1),
            format!(
                "exit {:?}, expected 1: {}",
                out.status.code(),
                text(&out.stderr)
            ),
        );
        let sources = r["capture"]["sources"].to_string();
        c.check(
            !sources.contains("audit"),
            format!("capture.sources {sources} has audit as uid 65534"),
        );
        c.check(
            report_denials(&r).is_empty(),
            "denials recorded without audit or --trace",
        );
        let notes = r["capture"]["notes"].to_string();
        c.check(
            notes.contains("root") && notes.contains("--trace"),
            format!("capture.notes {notes} do not say why nothing was observed"),
        );
    }

    drop(listener);
    let previous = guard.previous;
    drop(guard);
    assert_eq!(
        audit_enabled().ok(),
        Some(previous),
        "kernel audit was not restored to its previous state"
    );

    // 5. Audit disabled again (where it was before the test): cordon subscribes
    // before the payload runs but learns only afterwards that no record will
    // come; the report must then not claim audit as a source, and must say why.
    if previous == 0 {
        let (out, r) = cat_netrc();
        let sources = r["capture"]["sources"].to_string();
        let notes = r["capture"]["notes"].to_string();
        if out.status.code() != Some(1)
            || sources.contains("audit")
            || !notes.contains("kernel audit is disabled")
        {
            failures.push(format!(
                "root, audit disabled: exit {:?} (expected 1), capture.sources {sources} (expected no \"audit\"), capture.notes {notes} (expected \"kernel audit is disabled\")",
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 5 cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
