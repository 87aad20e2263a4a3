//! Run reports (schema v1, documented in the README), the short human summary
//! printed at exit, and the append-only audit log. A report names environment
//! variables and secrets only by name, never by value.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
#[cfg(test)]
use crate::outfile::Own;
use crate::outfile::OwnFile;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub version: u32,
    pub cordon_version: String,
    pub started_at: String,
    pub duration_ms: u64,
    pub command: Vec<String>,
    pub cwd: String,
    pub workspace: String,
    pub profile: ProfileInfo,
    pub host: HostInfo,
    pub enforced: Enforced,
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub executed: Vec<Executed>,
    pub denials: Vec<Denial>,
    /// How denials were captured in this run, and what was not observed.
    #[serde(default)]
    pub capture: Capture,
    /// The digest over what `replay` acts on, and this user's signature of it
    /// (absent in reports of older cordons; `replay` then treats them as foreign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<crate::trust::Integrity>,
    /// The files the run created, modified, deleted or renamed in its writable
    /// roots; absent when not recorded (older reports, --no-changes, no capture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<crate::changes::Changes>,
    /// Why the command never ran (exit 126 or 127): not found, not
    /// executable, or its execve refused. Absent when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_executed: Option<String>,
    /// Network mode "proxy": what went through the proxy. Absent in other modes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkRecord>,
    /// Every decision of an approval gate (`[approve]`), in order: who
    /// decided, what they were shown, the answer. Absent when none was asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::gates::Approval>,
}

/// What the proxy of mode "proxy" served (its refusals are in `denials`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkRecord {
    /// Allowed connections per name (or address) as the client asked for it.
    pub domains: std::collections::BTreeMap<String, u64>,
    /// Requests the proxy refused (each a denial, up to the report's cap).
    pub refused: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProfileInfo {
    pub name: String,
    /// "builtin" or the profile file's absolute path.
    pub source: String,
    /// sha256 of the texts of every profile file that took part (extends included).
    pub sha256: String,
    /// The resolved profile (extends merged, variables expanded), loadable again by `replay`.
    pub resolved: serde_json::Value,
    /// Where each value of `resolved` came from ("file:line"), key by key, in order.
    #[serde(default)]
    pub origins: std::collections::BTreeMap<String, Vec<String>>,
    /// The repo-local policy (`.cordon.toml` at the workspace root) applied on
    /// top of the profile, when there was one: its path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_local: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostInfo {
    pub kernel: String,
    pub landlock_abi: i32,
    pub namespaces: bool,
    pub uid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Enforced {
    pub landlock: LandlockLevel,
    pub seccomp: bool,
    pub namespaces: OnOff,
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Executed {
    /// The first process that ran this argv.
    pub pid: u32,
    /// Shortened (its last element then says by how much) past the capture's caps.
    pub argv: Vec<String>,
    /// When it first ran.
    pub at_ms: u64,
    /// How many times this same argv ran.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

/// What a denial refused: a file, a network peer, a system call, a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DenialKind {
    Fs,
    Net,
    Syscall,
    Limit,
}

/// Who saw a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObservedBy {
    /// The kernel's audit records (Landlock, seccomp).
    Audit,
    /// The launcher's seccomp user notification supervisor.
    SeccompNotify,
    /// The policy's answer for a call the supervisor saw (`--trace`).
    Predicted,
    /// Found and put back when the run ended (the guard).
    Guard,
    /// Refused by the proxy of network mode "proxy".
    Proxy,
    /// Refused by an approval gate's approver (or killed because what ran
    /// was not what was approved).
    Approval,
}

/// How much of a profile's Landlock rules this kernel enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LandlockLevel {
    Full,
    Partial,
    None,
}

/// A layer that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOff {
    On,
    Off,
}

macro_rules! names {
    ($($t:ty { $($v:ident => $s:literal),* $(,)? })*) => {$(
        impl $t {
            /// The report's spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

names! {
    DenialKind { Fs => "fs", Net => "net", Syscall => "syscall", Limit => "limit" }
    ObservedBy {
        Audit => "audit",
        SeccompNotify => "seccomp-notify",
        Predicted => "predicted",
        Guard => "guard",
        Proxy => "proxy",
        Approval => "approval",
    }
    LandlockLevel { Full => "full", Partial => "partial", None => "none" }
    OnOff { On => "on", Off => "off" }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenialKind,
    pub operation: String,
    pub target: String,
    pub pid: u32,
    pub exe: String,
    pub errno: String,
    pub rule: String,
    pub suggestion: String,
    pub observed_by: ObservedBy,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capture {
    /// Sources that were active: "seccomp-notify", "audit", "trace".
    pub sources: Vec<String>,
    /// What this run could not observe, and why.
    pub notes: Vec<String>,
    /// Denials beyond the recorded ones (the report keeps the first 1000).
    pub dropped: u64,
    /// The capture's caps that were reached, each with how many items it
    /// left out or shortened: the launcher's memory and the report's size stay
    /// bounded whatever the payload does. Empty when no cap was reached.
    #[serde(default)]
    pub truncated: std::collections::BTreeMap<String, u64>,
}

/// The sha256 of the profile texts, in merge order.
pub fn profile_sha256(texts: &[std::sync::Arc<str>]) -> String {
    let mut h = Sha256::new();
    for t in texts {
        h.update(t.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Now as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl Report {
    /// Parse a report, refusing a newer schema clearly.
    pub fn read(path: &Path) -> Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Output {
            what: "reading report",
            path: path.to_path_buf(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Output {
            what: "parsing report",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let version = v.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version > SCHEMA_VERSION as u64 {
            return Err(Error::Usage(format!(
                "{}: report schema version {version} is newer than this cordon understands ({SCHEMA_VERSION}); use a newer cordon",
                path.display()
            )));
        }
        serde_json::from_value(v).map_err(|e| Error::Output {
            what: "parsing report",
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Write atomically into the report's directory, opened before the run:
    /// a temporary file under an unpredictable name, then a rename.
    pub fn write_to(&self, out: &OwnFile) -> Result<()> {
        let mut text = crate::term::json_pretty(self).map_err(|e| Error::Output {
            what: "writing report",
            path: out.path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        text.push('\n');
        out.replace(text.as_bytes())
    }

    /// The few lines printed at exit when there were denials.
    pub fn summary(&self, path: Option<&Path>) -> String {
        summary(&self.denials, self.capture.dropped, path)
    }
}

/// The few lines printed after a run with denials (nothing after a clean run).
/// A free function: a run without `--report` or an audit log never builds a [`Report`].
pub fn summary(denials: &[Denial], dropped: u64, path: Option<&Path>) -> String {
    let mut s = String::new();
    let n = denials.len() as u64 + dropped;
    if n == 0 {
        return s;
    }
    // Every field may come from the payload (paths, targets) or from a path:
    // escaped, so the summary's lines are the only lines it has.
    use crate::term::field;
    let where_ = path
        .map(|p| format!(" (report: {})", crate::term::path(p)))
        .unwrap_or_else(|| " (write a report with --report FILE)".into());
    s.push_str(&format!(
        "cordon: {n} denial{}{where_}\n",
        if n == 1 { "" } else { "s" }
    ));
    for d in denials.iter().take(3) {
        let exe = Path::new(&d.exe)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let how = match (exe.is_empty(), d.errno.is_empty()) {
            (true, true) => String::new(),
            (true, false) => format!(" ({})", d.errno),
            (false, true) => format!(" ({exe})"),
            (false, false) => format!(" ({exe}, {})", d.errno),
        };
        s.push_str(&format!(
            "cordon:   {} {}{}: {}",
            field(&d.operation),
            field(&d.target),
            field(&how),
            field(&d.rule)
        ));
        if !d.suggestion.is_empty() {
            s.push_str(&format!(" -> {}", field(&d.suggestion)));
        }
        s.push('\n');
    }
    if n > 3 {
        s.push_str(&format!("cordon:   ... and {} more\n", n - 3));
    }
    s
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditLine {
    pub time: String,
    pub user: u32,
    pub host: String,
    pub command: Vec<String>,
    pub workspace: String,
    pub profile: String,
    pub profile_sha256: String,
    pub exit_code: i32,
    pub duration_ms: u64,
    pub denials: u64,
    pub report: Option<String>,
    /// Network mode "proxy": allowed connections per name (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<std::collections::BTreeMap<String, u64>>,
    /// The approval gates' decisions of the run (absent when none was asked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<crate::gates::Approval>,
}

/// The audit log, opened (and so checked) before the run: a governed run that
/// cannot be logged does not start.
#[derive(Debug)]
pub struct AuditLog {
    file: std::fs::File,
    path: PathBuf,
}

impl AuditLog {
    /// Open for appending through the directory opened at start (never
    /// through a link, never truncated).
    pub fn open(out: &OwnFile) -> Result<AuditLog> {
        Ok(AuditLog {
            file: out.open_append()?,
            path: out.path.clone(),
        })
    }

    /// Append one line with a single write(2) under an exclusive lock, so that
    /// concurrent runs never interleave or tear.
    pub fn append(&mut self, line: &AuditLine) -> Result<()> {
        let err = |source| Error::Output {
            what: "appending to the audit log",
            path: self.path.clone(),
            source,
        };
        let mut text =
            crate::term::json_line(line).map_err(|e| err(std::io::Error::other(e.to_string())))?;
        text.push('\n');
        let lock = nix::fcntl::Flock::lock(
            self.file.try_clone().map_err(err)?,
            nix::fcntl::FlockArg::LockExclusive,
        )
        .map_err(|(_, e)| err(e.into()))?;
        let n = nix::unistd::write(lock.as_fd(), text.as_bytes()).map_err(|e| err(e.into()))?;
        if n != text.len() {
            return Err(err(std::io::Error::other("short write")));
        }
        Ok(())
    }
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn typed_fields_keep_the_schema_s_strings() {
        use serde_json::json;
        let kinds = [
            (DenialKind::Fs, "fs"),
            (DenialKind::Net, "net"),
            (DenialKind::Syscall, "syscall"),
            (DenialKind::Limit, "limit"),
        ];
        for (k, s) in kinds {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<DenialKind>(json!(s)).unwrap(), k);
            assert_eq!(k.as_str(), s);
        }
        let by = [
            (ObservedBy::Audit, "audit"),
            (ObservedBy::SeccompNotify, "seccomp-notify"),
            (ObservedBy::Predicted, "predicted"),
            (ObservedBy::Guard, "guard"),
            (ObservedBy::Proxy, "proxy"),
            (ObservedBy::Approval, "approval"),
        ];
        for (k, s) in by {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(s));
            assert_eq!(serde_json::from_value::<ObservedBy>(json!(s)).unwrap(), k);
        }
        assert_eq!(
            serde_json::to_value(LandlockLevel::Partial).unwrap(),
            json!("partial")
        );
        assert_eq!(serde_json::to_value(OnOff::Off).unwrap(), json!("off"));
        assert!(serde_json::from_value::<DenialKind>(json!("disk")).is_err());
    }

    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_190_499_797)),
            "2026-11-20T16:01:39.797Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn newer_schema_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.json");
        std::fs::write(&p, r#"{"version": 2}"#).unwrap();
        let e = Report::read(&p).unwrap_err().to_string();
        assert!(e.contains("schema version 2 is newer"), "{e}");
    }

    #[test]
    fn audit_lines_append_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("audit.log");
        let line = AuditLine {
            time: "t".into(),
            user: 0,
            host: "h".into(),
            command: vec!["true".into()],
            workspace: "/w".into(),
            profile: "p".into(),
            profile_sha256: "x".into(),
            exit_code: 0,
            duration_ms: 1,
            denials: 0,
            report: None,
            domains: None,
            approvals: Vec::new(),
        };
        let out = |p: &Path| OwnFile::at(p, Own::AuditLog).and_then(|f| AuditLog::open(&f));
        let mut log = out(&p).unwrap();
        log.append(&line).unwrap();
        log.append(&line).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        for l in text.lines() {
            let back: AuditLine = serde_json::from_str(l).unwrap();
            assert_eq!(back, line);
        }
        assert!(out(Path::new("/proc/no/such/dir/log")).is_err());
    }
}
