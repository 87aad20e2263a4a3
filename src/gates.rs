//! Approval gates, the pure part: the `[approve]` section's typed values, the
//! validated gates of a policy, which gate an executed program and argv fall
//! under, the request an approver reads and the answer it gives. Nothing here
//! asks anyone or touches a process (the launcher's side is `approval`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// How long an approver has when the profile does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Who decides (`approve.approver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approver {
    /// Asked on the controlling terminal, from outside the sandbox.
    Tty,
    /// Refused and recorded (unattended runs).
    Deny,
    /// A program outside the sandbox: one JSON request on stdin, `allow` or
    /// `deny` on stdout.
    Command(Vec<String>),
}

impl Approver {
    /// As the report and the audit log name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Approver::Tty => "tty",
            Approver::Deny => "deny",
            Approver::Command(_) => "command",
        }
    }
}

impl Serialize for Approver {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Approver::Tty => s.serialize_str("tty"),
            Approver::Deny => s.serialize_str("deny"),
            Approver::Command(c) => {
                #[derive(Serialize)]
                struct T<'a> {
                    command: &'a [String],
                }
                T { command: c }.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Approver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Approver;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"tty\", \"deny\" or { command = [\"/path/to/program\", \"args\"] }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Approver, E> {
                match v {
                    "tty" => Ok(Approver::Tty),
                    "deny" => Ok(Approver::Deny),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Approver, A::Error> {
                let mut command: Option<Vec<String>> = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "command" => command = Some(map.next_value()?),
                        other => return Err(A::Error::unknown_field(other, &["command"])),
                    }
                }
                let command = command.ok_or_else(|| A::Error::missing_field("command"))?;
                if command.is_empty() || command[0].is_empty() {
                    return Err(A::Error::custom("the approver's command is empty"));
                }
                Ok(Approver::Command(command))
            }
        }
        d.deserialize_any(V)
    }
}

/// What a name outside `allow_domains` gets in mode "proxy" (`approve.domains`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainAsk {
    /// Refused, as without gates.
    #[default]
    Deny,
    /// The approver decides before the proxy connects.
    Ask,
}

/// One `approve.exec` pattern, split into words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecGate {
    /// As written in the profile.
    pub text: String,
    pub words: Vec<String>,
    /// "file:line" of the pattern.
    pub origin: String,
    /// The files the program's name leads to on this host (through PATH and
    /// symbolic links: `python3` is `/usr/bin/python3.11`), which the kernel
    /// names when it runs them.
    pub programs: Vec<PathBuf>,
}

impl ExecGate {
    /// Split a pattern on spaces; an empty one is an error.
    pub fn parse(text: &str, origin: String) -> Result<ExecGate, String> {
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        match words.first() {
            None => Err("an empty pattern".into()),
            Some(w) if w == "*" => Err(
                "a pattern starts with the program's name or path (\"*\" alone would gate every command)"
                    .into(),
            ),
            _ => Ok(ExecGate {
                text: text.to_string(),
                words,
                origin,
                programs: Vec::new(),
            }),
        }
    }

    /// The rule as reports name it.
    pub fn rule(&self) -> String {
        format!("approve.exec \"{}\" ({})", self.text, self.origin)
    }
}

/// One `approve.read` path: a file denied by the policy that may be opened
/// read-only once an approver says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadGate {
    pub path: PathBuf,
    pub origin: String,
}

impl ReadGate {
    pub fn rule(&self) -> String {
        format!("approve.read \"{}\" ({})", self.path.display(), self.origin)
    }
}

/// The validated gates of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gates {
    pub exec: Vec<ExecGate>,
    pub read: Vec<ReadGate>,
    pub domains: DomainAsk,
    pub approver: Approver,
    /// Where `approver` was set ("cordon's default" when no profile did).
    pub approver_origin: String,
    pub timeout: Duration,
}

impl Default for Gates {
    fn default() -> Gates {
        Gates {
            exec: Vec::new(),
            read: Vec::new(),
            domains: DomainAsk::Deny,
            approver: Approver::Tty,
            approver_origin: "cordon's default".into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Gates {
    /// Whether anything is gated at all.
    pub fn any(&self) -> bool {
        !self.exec.is_empty() || !self.read.is_empty() || self.domains == DomainAsk::Ask
    }

    /// The first exec gate the executed `program` (the file the kernel ran,
    /// resolved) with `argv` falls under. See [`matches`] for the rules.
    pub fn exec_gate(&self, program: &Path, argv: &[String]) -> Option<usize> {
        let candidates = effective(program, argv);
        self.exec
            .iter()
            .position(|g| candidates.iter().any(|(p, a)| matches(g, p, a)))
    }

    /// The gate of what an exec ran: the file and argv the kernel used, and
    /// `execfn`, the path the exec named (AT_EXECFN). When that path is in
    /// the argv after the program (a script run by its interpreter:
    /// `/bin/sh ./deploy.sh prod`), the script with its arguments is checked too.
    pub fn exec_gate_run(
        &self,
        exe: &Path,
        argv: &[String],
        execfn: impl FnOnce() -> Option<String>,
    ) -> Option<usize> {
        if let Some(g) = self.exec_gate(exe, argv) {
            return Some(g);
        }
        // Only a gate that argv[1] or argv[2] would fall under makes the
        // kernel's record of the named path worth reading.
        let (i, g) = (1..argv.len().min(3))
            .find_map(|i| Some((i, self.exec_gate(Path::new(&argv[i]), &argv[i..])?)))?;
        (execfn()? == argv[i]).then_some(g)
    }

    /// The first gate whose program is `program`, whatever the arguments.
    pub fn program_gate(&self, program: &Path, argv: &[String]) -> Option<usize> {
        let _ = argv;
        self.exec.iter().position(|g| program_matches(g, program))
    }

    /// Whether `program` could fall under some exec gate, whatever its arguments.
    pub fn gated_program(&self, program: &Path, argv: &[String]) -> bool {
        let candidates = effective(program, argv);
        self.exec.iter().any(|g| {
            candidates.iter().any(|(p, _)| {
                let w = &g.words[0];
                program_matches(g, p)
                    || dashed(base(&p.to_string_lossy()))
                        .is_some_and(|(h, _)| !w.contains('/') && glob(w, h))
            })
        })
    }

    /// The read gate for `path` (an absolute, resolved path), if any.
    pub fn read_gate(&self, path: &Path) -> Option<usize> {
        self.read.iter().position(|g| g.path == path)
    }
}

/// The dynamic loaders: `ld.so PROGRAM ARGS` runs PROGRAM without an execve
/// of its own, so the gate looks at PROGRAM.
fn is_loader(program: &Path) -> bool {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with("ld-linux") || name.starts_with("ld-musl") || name == "ld.so"
}

/// The loader's options that take a value (glibc's ld.so).
const LOADER_VALUE_OPTIONS: &[&str] = &[
    "--library-path",
    "--inhibit-rpath",
    "--audit",
    "--preload",
    "--argv0",
    "--glibc-hwcaps-prepend",
    "--glibc-hwcaps-mask",
];

/// A dynamic loader's program argument: its index in argv and the word.
pub fn loader_program(program: &Path, argv: &[String]) -> Option<(usize, String)> {
    if !is_loader(program) {
        return None;
    }
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if LOADER_VALUE_OPTIONS.contains(&a.as_str()) {
            i += 2;
        } else if a.starts_with("--") {
            i += 1;
        } else {
            return Some((i, a.clone()));
        }
    }
    None
}

/// The (program, argv) pairs a gate is checked against: the executed ones,
/// and, for a dynamic loader run directly, the program it loads.
fn effective(program: &Path, argv: &[String]) -> Vec<(PathBuf, Vec<String>)> {
    let mut out = vec![(program.to_path_buf(), argv.to_vec())];
    if let Some((i, p)) = loader_program(program, argv) {
        out.push((PathBuf::from(p), argv[i..].to_vec()));
    }
    out
}

/// Whether the first word of a pattern names `program`: a word with a `/`
/// is a glob over the whole path, any other a glob over its file name.
fn program_matches(g: &ExecGate, program: &Path) -> bool {
    if g.programs.iter().any(|p| p == program) {
        return true;
    }
    let word = g.words[0].as_str();
    if word.contains('/') {
        return glob(word, &program.to_string_lossy());
    }
    glob(word, base(&program.to_string_lossy()))
}

fn base(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// `X-Y` split at its first dash.
fn dashed(name: &str) -> Option<(&str, &str)> {
    name.split_once('-')
        .filter(|(h, t)| !h.is_empty() && !t.is_empty())
}

/// Whether a pattern's words match an executed program and argv.
///
/// - Word 1 names the program (see [`program_matches`]); argv[0] is not
///   trusted for it, since a caller chooses argv[0] freely.
/// - The next words match argv[1..] one by one: a word `*` matches any
///   number of arguments (none included), other words are globs where `*`
///   matches any characters and `?` one.
/// - A program run by a dashed name (`git-push origin`: a link to git, which
///   dispatches on the name it was called by) is also matched as
///   `git push origin`, whether the dash is in the file's name or in argv[0].
pub fn matches(g: &ExecGate, program: &Path, argv: &[String]) -> bool {
    let Some((first, rest)) = g.words.split_first() else {
        return false;
    };
    let args = argv.get(1..).unwrap_or(&[]);
    let with_tail = |tail: &str| {
        let mut a = vec![tail.to_string()];
        a.extend_from_slice(args);
        words_match(rest, &a)
    };
    if program_matches(g, program) {
        if words_match(rest, args) {
            return true;
        }
        if let Some((_, tail)) = argv.first().and_then(|a0| dashed(base(a0))) {
            return with_tail(tail);
        }
        return false;
    }
    let file = program.to_string_lossy();
    match dashed(base(&file)) {
        Some((head, tail)) if !first.contains('/') && glob(first, head) => with_tail(tail),
        _ => false,
    }
}

fn words_match(words: &[String], args: &[String]) -> bool {
    match words.split_first() {
        None => args.is_empty(),
        Some((w, rest)) if w == "*" => (0..=args.len()).any(|i| words_match(rest, &args[i..])),
        Some((w, rest)) => !args.is_empty() && glob(w, &args[0]) && words_match(rest, &args[1..]),
    }
}

use crate::units::glob_match as glob;

/// What is gated: an execve, an open of a gated file, a name the proxy was
/// asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    Exec,
    Read,
    Domain,
}

/// One process above the one asking, for the approver to see who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub pid: u32,
    pub argv: Vec<String>,
}

/// The request an approver reads (the `command` approver gets it as one JSON
/// document on stdin; `tty` shows it). Schema in the README.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub kind: GateKind,
    /// The pattern, path or name of the gate.
    pub gate: String,
    /// The gate with the profile line it comes from.
    pub rule: String,
    /// Exec: the executed file; read: the file; domain: the name and port.
    pub target: String,
    /// Exec: the argv; empty otherwise.
    #[serde(default)]
    pub argv: Vec<String>,
    /// Exec: the variables that steer the program (git's, the loader's, the
    /// package managers'), `NAME=value`, a credential's value "(hidden)".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    pub cwd: String,
    pub pid: u32,
    /// From the asking process's parent upwards, as far as the run goes.
    #[serde(default)]
    pub parents: Vec<Parent>,
    pub run: RunInfo,
    pub timeout_ms: u64,
}

/// The run a request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub profile: String,
    pub workspace: String,
    pub command: Vec<String>,
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Answer {
    /// This once.
    Allow,
    /// This gate, for the rest of the run (`tty`'s "a").
    AllowRun,
    Deny,
    /// No answer in time.
    Timeout,
    /// Could not be asked (no terminal, the program failed, an unreadable
    /// answer): refused.
    Unanswered,
}

impl Answer {
    pub fn allows(self) -> bool {
        matches!(self, Answer::Allow | Answer::AllowRun)
    }
}

/// A `command` approver's output: a first line `allow` or `deny`, optionally
/// followed by a reason, or a JSON object `{"decision": "allow"|"deny",
/// "reason": "..."}`. Anything else refuses.
pub fn parse_answer(out: &str) -> (Answer, Option<String>) {
    let text = out.trim();
    if text.starts_with('{') {
        #[derive(Deserialize)]
        struct J {
            decision: String,
            #[serde(default)]
            reason: Option<String>,
        }
        return match serde_json::from_str::<J>(text) {
            Ok(j) if j.decision == "allow" => (Answer::Allow, j.reason),
            Ok(j) if j.decision == "deny" => (Answer::Deny, j.reason),
            Ok(j) => (
                Answer::Unanswered,
                Some(format!("unknown decision {:?}", j.decision)),
            ),
            Err(e) => (Answer::Unanswered, Some(format!("unreadable answer: {e}"))),
        };
    }
    let line = text.lines().next().unwrap_or("");
    let (word, reason) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, Some(r.trim().to_string()).filter(|r| !r.is_empty())),
        None => (line, None),
    };
    match word {
        "allow" => (Answer::Allow, reason),
        "deny" => (Answer::Deny, reason),
        "" => (Answer::Unanswered, Some("no answer".into())),
        _ => (
            Answer::Unanswered,
            Some(format!("unreadable answer {:?}", crate::term::field(word))),
        ),
    }
}

/// One decision, as the report's `approvals` and the audit log keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub kind: GateKind,
    pub rule: String,
    /// "tty", "deny", "command" (with the program in `approver_command`), or
    /// "run" when an earlier "allow for the rest of the run" answered.
    pub approver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_command: Option<Vec<String>>,
    pub answer: Answer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the approver was shown (the request).
    pub shown: Request,
    /// When asked (RFC 3339, UTC) and after how long it was answered.
    pub time: String,
    pub at_ms: u64,
    pub waited_ms: u64,
    /// Whether what was approved is what ran: false when the process was
    /// killed because its exec changed after the decision (or, refused,
    /// never ran).
    #[serde(default = "yes")]
    pub ran: bool,
}

fn yes() -> bool {
    true
}

/// What `cordon explain` says about the gates for `query` (the program and
/// words of an `--exec` command line, when one was given): one line per
/// gate that applies, none without gates.
pub fn explain(
    gates: &Gates,
    query: &crate::explain::Query,
    exec: Option<&(PathBuf, Vec<String>)>,
) -> Vec<String> {
    use crate::explain::{Op, Query};
    let who = match &gates.approver {
        Approver::Command(c) => {
            format!("the approver program {} ({})", c[0], gates.approver_origin)
        }
        Approver::Tty => format!("on the terminal ({})", gates.approver_origin),
        Approver::Deny => format!(
            "nobody: approver \"deny\" refuses ({})",
            gates.approver_origin
        ),
    };
    match query {
        Query::Fs(Op::Exec, path) if !gates.exec.is_empty() => {
            let (program, words) = match exec {
                Some((p, w)) => (p.clone(), w.clone()),
                None => (path.clone(), vec![path.display().to_string()]),
            };
            let canon = std::fs::canonicalize(&program).unwrap_or(program.clone());
            match gates
                .exec_gate(&canon, &words)
                .or_else(|| gates.exec_gate(&program, &words))
            {
                Some(g) => vec![format!(
                    "  approval: {} gates it; asked {who}, {} without an answer denies",
                    gates.exec[g].rule(),
                    crate::units::format_duration(gates.timeout)
                )],
                None => vec![format!(
                    "  approval: no approve.exec pattern matches `{}`",
                    words.join(" ")
                )],
            }
        }
        Query::Fs(Op::Read, path) => match gates.read_gate(path) {
            Some(g) => vec![format!(
                "  approval: {} opens it read-only once approved; asked {who}",
                gates.read[g].rule()
            )],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(p: &str) -> Vec<String> {
        ExecGate::parse(p, "t:1".into()).unwrap().words
    }
    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }
    fn m(p: &str, program: &str, a: &str) -> bool {
        let g = Gates {
            exec: vec![ExecGate::parse(p, "t:1".into()).unwrap()],
            ..Gates::default()
        };
        g.exec_gate(Path::new(program), &argv(a)).is_some()
    }

    #[test]
    fn patterns_match_the_program_by_file_and_the_arguments_in_order() {
        assert!(m("git push *", "/usr/bin/git", "git push origin main"));
        assert!(
            m("git push *", "/usr/bin/git", "git push"),
            "* matches nothing too"
        );
        assert!(!m("git push *", "/usr/bin/git", "git status"));
        assert!(!m("git push *", "/usr/bin/git", "git -C . push"));
        assert!(m("git * push *", "/usr/bin/git", "git -C . push"));
        assert!(m("git * push *", "/usr/bin/git", "git push"));
        // argv[0] is the caller's to choose; the program is the file.
        assert!(m("git push *", "/usr/bin/git", "notgit push"));
        assert!(!m("git push *", "/usr/bin/echo", "git push"));
        assert!(m("/usr/bin/git push *", "/usr/bin/git", "git push"));
        assert!(!m("/usr/bin/git push *", "/opt/git", "git push"));
        assert!(m("npm publish *", "/usr/bin/npm", "npm publish --tag x"));
        assert!(m("kubectl *", "/usr/local/bin/kubectl", "kubectl"));
        assert!(m("terraform apply*", "/bin/terraform", "terraform apply-x"));
        assert!(!m(
            "terraform apply",
            "/bin/terraform",
            "terraform apply -auto-approve"
        ));
    }

    #[test]
    fn a_script_is_gated_by_its_own_name() {
        let g = Gates {
            exec: vec![ExecGate::parse("deploy.sh prod", "t:1".into()).unwrap()],
            ..Gates::default()
        };
        let sh = Path::new("/usr/bin/dash");
        let run = |a: &str, named: &'static str| {
            g.exec_gate_run(sh, &argv(a), || Some(named.to_string()))
        };
        assert_eq!(run("/bin/sh ./deploy.sh prod", "./deploy.sh"), Some(0));
        assert_eq!(run("/bin/sh -e ./deploy.sh prod", "./deploy.sh"), Some(0));
        assert_eq!(run("/bin/sh ./deploy.sh test", "./deploy.sh"), None);
        // The named path must be the one the kernel put there, not any argument.
        assert_eq!(run("/bin/sh ./deploy.sh prod", "/bin/sh"), None);
    }

    #[test]
    fn dashed_names_and_the_loader_are_seen_through() {
        // git-core's git-push is a link to git, which dispatches on argv[0].
        assert!(m(
            "git push *",
            "/usr/lib/git-core/git",
            "/usr/lib/git-core/git-push origin"
        ));
        assert!(m(
            "git push *",
            "/usr/lib/git-core/git-push",
            "git-push origin"
        ));
        assert!(!m("git push *", "/usr/lib/git-core/git", "git-status"));
        // ld.so runs the program named after its options without an execve.
        assert!(m(
            "git push *",
            "/lib64/ld-linux-x86-64.so.2",
            "ld.so --library-path /x /usr/bin/git push"
        ));
        assert!(!m(
            "git push *",
            "/lib64/ld-linux-x86-64.so.2",
            "ld.so /usr/bin/git status"
        ));
    }

    #[test]
    fn patterns_need_a_program() {
        assert!(ExecGate::parse("  ", "t".into()).is_err());
        assert!(ExecGate::parse("* push", "t".into()).is_err());
        assert_eq!(gate("git  push *"), ["git", "push", "*"]);
    }

    #[test]
    fn answers() {
        assert_eq!(parse_answer("allow\n"), (Answer::Allow, None));
        assert_eq!(
            parse_answer("deny  not on Fridays\nmore"),
            (Answer::Deny, Some("not on Fridays".into()))
        );
        assert_eq!(
            parse_answer(r#"{"decision":"allow","reason":"ok"}"#),
            (Answer::Allow, Some("ok".into()))
        );
        assert_eq!(parse_answer("").0, Answer::Unanswered);
        assert_eq!(parse_answer("yes").0, Answer::Unanswered);
        assert_eq!(
            parse_answer(r#"{"decision":"maybe"}"#).0,
            Answer::Unanswered
        );
        assert!(!Answer::Timeout.allows());
        assert!(Answer::AllowRun.allows());
    }

    #[test]
    fn approver_values() {
        #[derive(Deserialize)]
        struct T {
            a: Approver,
        }
        let t: T = toml::from_str("a = \"tty\"").unwrap();
        assert_eq!(t.a, Approver::Tty);
        let t: T = toml::from_str("a = { command = [\"/bin/x\", \"-y\"] }").unwrap();
        assert_eq!(t.a, Approver::Command(vec!["/bin/x".into(), "-y".into()]));
        assert!(toml::from_str::<T>("a = \"maybe\"").is_err());
        assert!(toml::from_str::<T>("a = { command = [] }").is_err());
        assert!(toml::from_str::<T>("a = { command = [\"/x\"], x = 1 }").is_err());
    }
}
