//! Approval gates, the launcher's side: the questions waiting for an answer
//! (a gated execve or open still in the supervisor's hands, an exec held
//! stopped before its first instruction), the approvers that answer them (a
//! program outside the sandbox, the controlling terminal, a refusal), and
//! the check that what an exec really ran is what was decided.
//!
//! Why the check: letting a notified execve continue is not a boundary on its
//! own. Between the supervisor's read of the path and argv and the kernel's
//! own copy, another thread, a process sharing the memory, a tracer or a
//! swapped symbolic link can change what runs. So every execve of a run
//! with exec gates is held (PTRACE_SEIZE with PTRACE_O_TRACEEXEC, and an
//! interrupt for an exec that fails): at the exec event the new image has
//! not run one instruction, and `/proc/PID/exe` and `/proc/PID/cmdline` are
//! the kernel's copy, which nothing else can change. An approved exec whose
//! copy differs from what was approved is killed there; a gated one that
//! was not asked about (its memory changed after the read) is asked about
//! there, stopped. The decision made before the exec is the one the caller
//! sees as EPERM; the one made after it can only kill.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::PollFlags;
use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::gates::{Answer, Approval, Approver, GateKind, Gates, Parent, Request, RunInfo};
use crate::report::{Denial, DenialKind, ObservedBy};

/// Most an approver's output may be (its answer is one line).
const MAX_ANSWER: usize = 64 * 1024;
/// Most of an exec's argv kept for the check after it (bytes of cmdline).
const MAX_CMDLINE: usize = 256 * 1024;
/// The reason of a refusal repeated without asking (not recorded again).
const REPEATED: &str = "refused a moment ago for the same process and arguments";

/// Approver programs running at once; later questions wait their turn (their
/// time runs from when they were asked).
const MAX_PROGRAMS: usize = 8;
/// Questions waiting at once; beyond, refused without asking.
const MAX_WAITING: usize = 256;

/// Most decisions kept for the report (each is also one audit entry).
const MAX_RECORDS: usize = 1000;

/// What a question is about, and so how its answer is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An execve still in the supervisor's hands: answered with CONTINUE
    /// (then held) or EPERM.
    Exec { id: u64 },
    /// An exec that happened, stopped before its first instruction: let go,
    /// or killed.
    Held,
    /// An open of a gated file: answered with a read-only descriptor the
    /// supervisor opened, or EACCES.
    Read { id: u64, cloexec: bool },
    /// A connection the proxy holds (its token).
    Domain { token: u64 },
}

/// A decided question, for the monitor (or the proxy) to carry out.
#[derive(Debug)]
pub struct Decided {
    pub subject: Subject,
    pub pid: u32,
    pub allow: bool,
    /// Exec: what was approved (the path as the call named it, the argv).
    pub approved: Option<Approved>,
    /// Read: the gated file.
    pub path: Option<PathBuf>,
    /// The denial to record when refused.
    pub denial: Option<Denial>,
    /// The record of this decision, for marking it not run.
    pub record: Option<usize>,
}

enum Asker {
    /// Waiting for the terminal, which asks one question at a time.
    Queued,
    /// Waiting for one of the `MAX_PROGRAMS` approver programs to end.
    Waiting,
    Tty(Tty),
    Command(Program),
    /// Answered without asking (the `deny` approver, an earlier "for the run").
    Now(Answer, Option<String>),
}

struct Tty {
    fd: OwnedFd,
    saved: Option<nix::sys::termios::Termios>,
    line: Vec<u8>,
    /// What must be typed to allow: printed only in this question, which the
    /// payload cannot read back (it can draw a question of its own on the
    /// terminal, not learn this one's code).
    code: String,
}

/// Four letters from the kernel's random source.
fn code() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    // Letters that cannot be mistaken for one another.
    const ALPHABET: &[u8] = b"acdefhjkmnprstuvwxy";
    b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect()
}

struct Program {
    pgid: i32,
    pidfd: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    input: Vec<u8>,
    written: usize,
    stdout: Option<OwnedFd>,
    out: Vec<u8>,
}

struct Ask {
    subject: Subject,
    pid: u32,
    kind: GateKind,
    gate: usize,
    request: Request,
    asked: Instant,
    at_ms: u64,
    time: String,
    deadline: Instant,
    asker: Asker,
    /// Exec: the path as named and the argv the question is about.
    approved: Option<Approved>,
    path: Option<PathBuf>,
}

/// An exec as approved: the path as the call named it, the file it was
/// then (device and inode, seen from the caller's root), the argv, the
/// variables that steer the program ([`steering`]) and, for a script, its
/// `#!` line's words and the interpreter's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub named: String,
    pub file: Option<(u64, u64)>,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub script: Option<(Vec<String>, Option<FileId>)>,
}

impl Approved {
    /// `named` (resolved by the caller as `resolved`) with `argv` and the
    /// caller's `env`, for `pid`.
    pub fn new(
        pid: u32,
        named: String,
        resolved: Option<&Path>,
        argv: Vec<String>,
        env: Vec<String>,
    ) -> Approved {
        let seen = resolved.map(|p| PathBuf::from(format!("/proc/{pid}/root{}", p.display())));
        let file = seen.as_deref().and_then(identity);
        let script = seen.as_deref().and_then(shebang).map(|words| {
            let interp = PathBuf::from(format!("/proc/{pid}/root{}", words[0]));
            let id = identity(&interp);
            (words, id)
        });
        Approved {
            named,
            file,
            argv,
            env,
            script,
        }
    }
}

/// A file's device and inode.
pub type FileId = (u64, u64);

/// Device and inode of the file `p` leads to.
fn identity(p: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// The words of a script's `#!` line (the interpreter, and its one
/// argument if any, as the kernel splits it).
fn shebang(p: &Path) -> Option<Vec<String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).ok()?;
    let mut b = [0u8; 256];
    let n = f.read(&mut b).ok()?;
    let line = b[..n].strip_prefix(b"#!")?;
    let end = line.iter().position(|&c| c == b'\n').unwrap_or(line.len());
    let text = String::from_utf8_lossy(&line[..end]);
    let text = text.trim();
    let (interp, arg) = match text.split_once([' ', '\t']) {
        Some((i, rest)) => (i, Some(rest.trim()).filter(|r| !r.is_empty())),
        None => (text, None),
    };
    if interp.is_empty() {
        return None;
    }
    let mut words = vec![interp.to_string()];
    words.extend(arg.map(str::to_string));
    Some(words)
}

/// The variables that steer what a gated program does, shown to the
/// approver and compared at the exec event: git's, the dynamic loader's,
/// and those of the package managers and deploy tools gates are written
/// for. A value whose name looks like a credential is shown as "(hidden)"
/// (the comparison uses the real value).
pub const STEERING: &[&str] = &[
    "GIT_",
    "LD_",
    "NPM_CONFIG_",
    "npm_config_",
    "CARGO_",
    "KUBECONFIG",
    "TF_",
    "GH_",
    "DOCKER_",
    "HELM_",
    "PIP_",
    "UV_",
    "TWINE_",
];

pub fn steering<'a>(env: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = env
        .into_iter()
        .filter(|e| STEERING.iter().any(|p| e.starts_with(p)))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `NAME=value` as shown: the value of a credential ("(hidden)") by the
/// words of its name (`GH_TOKEN`, `NPM_CONFIG__AUTH`, `*_KEY`); git's
/// configuration variables always in full, since they redirect it.
fn shown_var(e: &str) -> String {
    let (name, _) = e.split_once('=').unwrap_or((e, ""));
    if name.starts_with("GIT_CONFIG_") {
        return e.to_string();
    }
    let upper = name.to_ascii_uppercase();
    let secret = upper.ends_with("_KEY")
        || upper.split('_').any(|w| {
            matches!(
                w,
                "TOKEN"
                    | "SECRET"
                    | "PASSWORD"
                    | "PASSWD"
                    | "PASS"
                    | "AUTH"
                    | "CREDENTIAL"
                    | "CREDENTIALS"
                    | "APIKEY"
            )
        });
    if secret {
        format!("{name}=(hidden)")
    } else {
        e.to_string()
    }
}

/// An exec let go and held (PTRACE_SEIZE) until its exec event.
#[derive(Debug, Clone)]
struct Held {
    /// What was approved, when it was asked about before the exec.
    approved: Option<Approved>,
    record: Option<usize>,
}

/// The proxy's side of `domains = "ask"`: a proxy thread puts its question
/// here and waits; the launcher's loop, woken through the pipe, asks the
/// approver and answers.
#[derive(Clone)]
pub struct DomainAsker(std::sync::Arc<DomainQueue>);

struct DomainQueue {
    questions: std::sync::Mutex<Vec<(String, std::sync::mpsc::Sender<bool>)>>,
    wake: OwnedFd,
    wait: Duration,
}

impl DomainAsker {
    /// Ask about `target` ("name:port"); false when refused, unanswered, or
    /// the run ended meanwhile.
    pub fn ask(&self, target: String) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        self.0
            .questions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((target, tx));
        let _ = nix::unistd::write(&self.0.wake, b"?");
        rx.recv_timeout(self.0.wait + Duration::from_secs(5))
            .unwrap_or(false)
    }
}

impl std::fmt::Debug for DomainAsker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DomainAsker")
    }
}

/// The run's approval gates at work.
pub struct Approvals {
    pub gates: Gates,
    run: RunInfo,
    started: Instant,
    /// Gates answered "for the rest of the run", per kind.
    for_run: BTreeSet<(u8, usize)>,
    asks: Vec<Ask>,
    held: BTreeMap<u32, Held>,
    tty_queue: VecDeque<usize>,
    pub records: Vec<Approval>,
    pub dropped: u64,
    /// Our own executable: a parent chain stops at cordon's own processes.
    own_exe: Option<PathBuf>,
    /// The gated programs' files, to know them under other names.
    known: Known,
    /// The run's cgroup.freeze, when it has one: frozen while the terminal
    /// asks, so that nothing of the payload draws over the question.
    freezer: Option<PathBuf>,
    /// Refusals of the last moments (pid, gate, argv or file): a shell that
    /// was refused tries the next PATH entry with the same argv, and is not
    /// asked twice.
    refused: VecDeque<(u32, GateKind, Vec<String>, Instant)>,
    /// `domains = "ask"`: the proxy's questions (the pipe's read end wakes us).
    domain: Option<(OwnedFd, std::sync::Arc<DomainQueue>)>,
    replies: BTreeMap<u64, std::sync::mpsc::Sender<bool>>,
    next_token: u64,
    /// Names asked about, so that "for the rest of the run" is per name.
    names: Vec<String>,
}

fn kind_key(k: GateKind) -> u8 {
    match k {
        GateKind::Exec => 0,
        GateKind::Read => 1,
        GateKind::Domain => 2,
    }
}

impl Approvals {
    pub fn new(gates: Gates, run: RunInfo, started: Instant) -> Approvals {
        let known = Known::new(&gates);
        Approvals {
            gates,
            run,
            started,
            for_run: BTreeSet::new(),
            asks: Vec::new(),
            held: BTreeMap::new(),
            tty_queue: VecDeque::new(),
            records: Vec::new(),
            dropped: 0,
            own_exe: std::fs::read_link("/proc/self/exe").ok(),
            known,
            freezer: None,
            refused: VecDeque::new(),
            domain: None,
            replies: BTreeMap::new(),
            next_token: 0,
            names: Vec::new(),
        }
    }

    /// For the proxy, when names outside the allowlist are asked about.
    pub fn domain_asker(&mut self) -> Option<DomainAsker> {
        if self.gates.domains != crate::gates::DomainAsk::Ask {
            return None;
        }
        if let Some((_, q)) = &self.domain {
            return Some(DomainAsker(q.clone()));
        }
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .ok()?;
        let q = std::sync::Arc::new(DomainQueue {
            questions: std::sync::Mutex::new(Vec::new()),
            wake: w,
            wait: self.gates.timeout,
        });
        self.domain = Some((r, q.clone()));
        Some(DomainAsker(q))
    }

    /// Take the proxy's new questions.
    fn take_domain_questions(&mut self) {
        let Some((r, q)) = &self.domain else {
            return;
        };
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(r, &mut buf), Ok(n) if n > 0) {}
        let questions = std::mem::take(&mut *q.questions.lock().unwrap_or_else(|e| e.into_inner()));
        for (target, tx) in questions {
            let token = self.next_token;
            self.next_token += 1;
            self.replies.insert(token, tx);
            let name = target.clone();
            let idx = match self.names.iter().position(|n| *n == name) {
                Some(i) => i,
                None => {
                    self.names.push(name);
                    self.names.len() - 1
                }
            };
            self.ask(
                Subject::Domain { token },
                GateKind::Domain,
                idx,
                0,
                target,
                Vec::new(),
                None,
                None,
            );
        }
    }

    /// Answer the proxy's question `token`.
    pub fn reply(&mut self, token: u64, allow: bool) {
        if let Some(tx) = self.replies.remove(&token) {
            let _ = tx.send(allow);
        }
    }

    /// The gate of an exec about to run: `program` as the call names it
    /// (resolved), or the gated program it is a link or copy of.
    pub fn gate_before(&self, program: &Path, argv: &[String]) -> Option<usize> {
        let canon = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_path_buf());
        self.gates
            .exec_gate(&canon, argv)
            .or_else(|| self.gates.exec_gate(program, argv))
            .or_else(|| {
                let alias = self.known.alias(&canon)?;
                self.gates.exec_gate(&alias, argv)
            })
    }

    pub fn exec_gated(&self) -> bool {
        !self.gates.exec.is_empty()
    }

    /// The request for a question about `target` by `pid`.
    fn request(
        &self,
        kind: GateKind,
        gate: usize,
        pid: u32,
        target: String,
        argv: Vec<String>,
        env: &[String],
    ) -> Request {
        let (text, rule) = match kind {
            GateKind::Exec => (
                self.gates.exec[gate].text.clone(),
                self.gates.exec[gate].rule(),
            ),
            GateKind::Read => (
                self.gates.read[gate].path.display().to_string(),
                self.gates.read[gate].rule(),
            ),
            GateKind::Domain => (
                target.clone(),
                format!("approve.domains \"ask\" ({})", self.gates.approver_origin),
            ),
        };
        Request {
            version: 1,
            kind,
            gate: text,
            rule,
            target,
            argv,
            env: env.iter().map(|e| shown_var(e)).collect(),
            cwd: std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            pid,
            parents: self.parents(pid),
            run: self.run.clone(),
            timeout_ms: self.gates.timeout.as_millis() as u64,
        }
    }

    /// The processes above `pid` in the run, nearest first, up to cordon's own.
    fn parents(&self, pid: u32) -> Vec<Parent> {
        let mut out = Vec::new();
        let mut p = ppid(pid);
        while let Some(q) = p {
            if q <= 1 || q == std::process::id() || out.len() >= 8 {
                break;
            }
            let exe = std::fs::read_link(format!("/proc/{q}/exe")).ok();
            if exe.is_some() && exe == self.own_exe {
                break;
            }
            out.push(Parent {
                pid: q,
                argv: cmdline(q, 4096).0,
            });
            p = ppid(q);
        }
        out
    }

    /// Ask about `target`: the approver is started (or the question queued for
    /// the terminal); the answer comes through [`Approvals::service`].
    #[allow(clippy::too_many_arguments)]
    pub fn ask(
        &mut self,
        subject: Subject,
        kind: GateKind,
        gate: usize,
        pid: u32,
        target: String,
        argv: Vec<String>,
        approved: Option<Approved>,
        path: Option<PathBuf>,
    ) {
        let now = Instant::now();
        let key = if argv.is_empty() {
            vec![target.clone()]
        } else {
            argv.clone()
        };
        while self
            .refused
            .front()
            .is_some_and(|r| now.duration_since(r.3) > Duration::from_secs(2))
        {
            self.refused.pop_front();
        }
        let again = self
            .refused
            .iter()
            .any(|r| r.0 == pid && r.1 == kind && r.2 == key);
        let env = approved.as_ref().map(|a| a.env.clone()).unwrap_or_default();
        let request = self.request(kind, gate, pid, target, argv, &env);
        let asker = if again {
            Asker::Now(Answer::Deny, Some(REPEATED.into()))
        } else if self.asks.len() >= MAX_WAITING {
            Asker::Now(
                Answer::Unanswered,
                Some(format!("{MAX_WAITING} questions already waiting")),
            )
        } else if self.for_run.contains(&(kind_key(kind), gate)) {
            Asker::Now(
                Answer::AllowRun,
                Some("allowed for the rest of the run".into()),
            )
        } else {
            match &self.gates.approver {
                Approver::Deny => Asker::Now(Answer::Deny, Some("approver \"deny\"".into())),
                Approver::Tty => Asker::Queued,
                Approver::Command(_) if self.programs_running() >= MAX_PROGRAMS => Asker::Waiting,
                Approver::Command(c) => start_program(c, &request),
            }
        };
        let queued = matches!(asker, Asker::Queued);
        self.asks.push(Ask {
            subject,
            pid,
            kind,
            gate,
            request,
            asked: now,
            at_ms: self.started.elapsed().as_millis() as u64,
            time: crate::report::rfc3339(SystemTime::now()),
            deadline: now + self.gates.timeout,
            asker,
            approved,
            path,
        });
        if queued {
            self.tty_queue.push_back(self.asks.len() - 1);
            self.next_tty();
        }
    }

    fn programs_running(&self) -> usize {
        self.asks
            .iter()
            .filter(|a| matches!(a.asker, Asker::Command(_)))
            .count()
    }

    /// Start waiting approver programs while there is room.
    fn next_programs(&mut self) {
        let Approver::Command(c) = self.gates.approver.clone() else {
            return;
        };
        let mut room = MAX_PROGRAMS.saturating_sub(self.programs_running());
        for a in &mut self.asks {
            if room == 0 {
                break;
            }
            if matches!(a.asker, Asker::Waiting) {
                a.asker = start_program(&c, &a.request);
                room -= 1;
            }
        }
    }

    pub fn set_freezer(&mut self, f: Option<PathBuf>) {
        self.freezer = f;
    }

    /// Freeze (or thaw) the run's processes around a terminal question.
    fn freeze(&self, on: bool) {
        if self.gates.approver != Approver::Tty {
            return;
        }
        if let Some(f) = &self.freezer {
            let _ = std::fs::write(f, if on { "1" } else { "0" });
            if on {
                // Running tasks stop at once; a write in progress ends first.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Start the terminal's next question if it is free.
    fn next_tty(&mut self) {
        if self.asks.iter().any(|a| matches!(a.asker, Asker::Tty(_))) {
            return;
        }
        let waiting = self.tty_queue.iter().any(|&i| {
            self.asks
                .get(i)
                .is_some_and(|a| matches!(a.asker, Asker::Queued))
        });
        // Thawed between questions, frozen while one is on the terminal.
        self.freeze(waiting);
        while let Some(i) = self.tty_queue.pop_front() {
            let Some(a) = self.asks.get_mut(i) else {
                continue;
            };
            if !matches!(a.asker, Asker::Queued) {
                continue;
            }
            a.asker = match Tty::start(&a.request, self.gates.timeout, self.freezer.is_some()) {
                Ok(t) => Asker::Tty(t),
                Err(why) => Asker::Now(Answer::Unanswered, Some(why)),
            };
            if matches!(a.asker, Asker::Tty(_)) {
                return;
            }
        }
    }

    /// Descriptors to poll, with the events wanted.
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut v = Vec::new();
        if let Some((r, _)) = &self.domain {
            v.push((r.as_fd(), PollFlags::POLLIN));
        }
        for a in &self.asks {
            match &a.asker {
                Asker::Tty(t) => v.push((t.fd.as_fd(), PollFlags::POLLIN)),
                Asker::Command(p) => {
                    if let Some(i) = &p.stdin {
                        v.push((i.as_fd(), PollFlags::POLLOUT));
                    }
                    if let Some(o) = &p.stdout {
                        v.push((o.as_fd(), PollFlags::POLLIN));
                    }
                }
                _ => {}
            }
        }
        v
    }

    /// When the next question runs out of time.
    pub fn wake_at(&self) -> Option<Instant> {
        let now = self.asks.iter().any(|a| matches!(a.asker, Asker::Now(..)));
        if now {
            return Some(Instant::now());
        }
        self.asks.iter().map(|a| a.deadline).min()
    }

    /// Move every question on (its descriptors are non-blocking); return the
    /// ones decided.
    pub fn service(&mut self) -> Vec<Decided> {
        self.take_domain_questions();
        let now = Instant::now();
        let mut answers: Vec<(usize, Answer, Option<String>)> = Vec::new();
        for (i, a) in self.asks.iter_mut().enumerate() {
            let got = match &mut a.asker {
                Asker::Now(ans, why) => Some((*ans, why.clone())),
                Asker::Tty(t) => t.poll(),
                Asker::Command(p) => p.poll(),
                Asker::Queued | Asker::Waiting => None,
            };
            match got {
                Some((ans, why)) => answers.push((i, ans, why)),
                None if now >= a.deadline => answers.push((
                    i,
                    Answer::Timeout,
                    Some(format!(
                        "no answer in {}",
                        crate::units::format_duration(self.gates.timeout)
                    )),
                )),
                None => {}
            }
        }
        if answers.is_empty() {
            return Vec::new();
        }
        let mut decided = Vec::new();
        let done: BTreeSet<usize> = answers.iter().map(|(i, ..)| *i).collect();
        for (i, ans, why) in answers {
            let a = &mut self.asks[i];
            if let Asker::Tty(t) = &mut a.asker {
                t.finish(ans);
            }
            if let Asker::Command(p) = &mut a.asker {
                p.kill();
            }
            if ans == Answer::AllowRun {
                self.for_run.insert((kind_key(a.kind), a.gate));
            }
            let repeated = why.as_deref() == Some(REPEATED);
            if !ans.allows() && !repeated && self.refused.len() < 64 {
                let key = if a.request.argv.is_empty() {
                    vec![a.request.target.clone()]
                } else {
                    a.request.argv.clone()
                };
                self.refused.push_back((a.pid, a.kind, key, Instant::now()));
            }
            if repeated {
                decided.push(Decided {
                    subject: a.subject.clone(),
                    pid: a.pid,
                    allow: false,
                    approved: None,
                    path: None,
                    denial: None,
                    record: None,
                });
                continue;
            }
            let approver = match (&a.asker, &self.gates.approver) {
                (Asker::Now(Answer::AllowRun, _), _) => "run".to_string(),
                (_, ap) => ap.kind().to_string(),
            };
            let record = Approval {
                kind: a.kind,
                rule: a.request.rule.clone(),
                approver,
                approver_command: match &self.gates.approver {
                    Approver::Command(c) => Some(c.clone()),
                    _ => None,
                },
                answer: ans,
                reason: why.clone(),
                shown: a.request.clone(),
                time: a.time.clone(),
                at_ms: a.at_ms,
                waited_ms: a.asked.elapsed().as_millis() as u64,
                ran: ans.allows(),
            };
            let index = if self.records.len() < MAX_RECORDS {
                self.records.push(record);
                Some(self.records.len() - 1)
            } else {
                self.dropped += 1;
                None
            };
            // The proxy records its own refusal of a name.
            let denial = (!ans.allows() && a.kind != GateKind::Domain)
                .then(|| denial(&self.gates, a, ans, why.as_deref()));
            decided.push(Decided {
                subject: a.subject.clone(),
                pid: a.pid,
                allow: ans.allows(),
                approved: a.approved.clone(),
                path: a.path.clone(),
                denial,
                record: index,
            });
        }
        let mut i = 0;
        self.asks.retain(|_| {
            i += 1;
            !done.contains(&(i - 1))
        });
        // Indices of queued questions moved: rebuild the queue in order.
        self.tty_queue = self
            .asks
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.asker, Asker::Queued))
            .map(|(i, _)| i)
            .collect();
        self.next_tty();
        self.next_programs();
        decided
    }

    /// Hold `pid`'s execve, about to be let go: it stops at its exec event
    /// (or, when the exec fails, on its way back), where [`Approvals::stopped`]
    /// looks at what the kernel ran. Err: it cannot be held (another tracer),
    /// and so must not run.
    pub fn hold(
        &mut self,
        pid: u32,
        approved: Option<Approved>,
        record: Option<usize>,
    ) -> nix::Result<()> {
        let p = Pid::from_raw(pid as i32);
        ptrace::seize(p, ptrace::Options::PTRACE_O_TRACEEXEC)?;
        if let Err(e) = ptrace::interrupt(p) {
            let _ = ptrace::detach(p, None);
            return Err(e);
        }
        self.held.insert(pid, Held { approved, record });
        Ok(())
    }

    pub fn holding(&self) -> bool {
        !self.held.is_empty()
    }

    pub fn held_pids(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    /// Whether `pid` is held (its wait statuses are ours).
    pub fn holds(&self, pid: u32) -> bool {
        self.held.contains_key(&pid)
    }

    /// A wait status of a held process. Returns a denial when it was killed
    /// (what ran was not what was approved).
    pub fn stopped(&mut self, st: WaitStatus) -> Option<Denial> {
        let pid = st.pid()?.as_raw() as u32;
        let held = self.held.get(&pid)?.clone();
        let p = Pid::from_raw(pid as i32);
        match st {
            WaitStatus::PtraceEvent(_, _, ev) if ev == libc::PTRACE_EVENT_EXEC => {
                self.held.remove(&pid);
                self.after_exec(pid, held)
            }
            WaitStatus::PtraceEvent(..) => {
                // The interrupt: the exec failed, nothing new runs.
                self.held.remove(&pid);
                let _ = ptrace::detach(p, None);
                if let Some(r) = held.record.and_then(|r| self.records.get_mut(r)) {
                    r.ran = false;
                }
                None
            }
            WaitStatus::Stopped(_, sig) => {
                // A signal on its way back from a failed exec: pass it on.
                self.held.remove(&pid);
                let _ = ptrace::detach(p, Some(sig));
                None
            }
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                self.held.remove(&pid);
                None
            }
            _ => None,
        }
    }

    /// At the exec event: what runs is `/proc/PID/exe` with `/proc/PID/cmdline`,
    /// `/proc/PID/environ` and the named path (`AT_EXECFN`), the kernel's
    /// copies, which only the new image could change and it has not run yet.
    fn after_exec(&mut self, pid: u32, held: Held) -> Option<Denial> {
        let p = Pid::from_raw(pid as i32);
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let (argv, complete) = cmdline(pid, MAX_CMDLINE);
        let env = environ(pid);
        if let Some(approved) = &held.approved {
            if complete && corresponds(approved, pid, &argv, &env) {
                let _ = ptrace::detach(p, None);
                return None;
            }
            let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
            let _ = ptrace::detach(p, None);
            if let Some(r) = held.record.and_then(|r| self.records.get_mut(r)) {
                r.ran = false;
            }
            return Some(changed(pid, &exe, &argv, &approved.argv));
        }
        match self.gate_of_run(pid, &exe, &argv, &env) {
            None if complete || !self.gates.gated_program(&exe, &argv) => {
                let _ = ptrace::detach(p, None);
                None
            }
            // Too long to check, of a gated program: not run.
            None => {
                let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
                let _ = ptrace::detach(p, None);
                Some(changed(pid, &exe, &argv, &[]))
            }
            Some(g) => {
                // Gated, and not asked about before the exec (its memory, a
                // link or the loader changed after the supervisor read it):
                // ask now, held.
                let target = exe.display().to_string();
                let approved = Approved {
                    named: execfn(pid).unwrap_or_default(),
                    file: identity(&exe),
                    argv: argv.clone(),
                    env,
                    script: None,
                };
                self.ask(
                    Subject::Held,
                    GateKind::Exec,
                    g,
                    pid,
                    target,
                    argv,
                    Some(approved),
                    None,
                );
                None
            }
        }
    }

    /// The gate of what an exec ran, seen through what the name does not
    /// tell: the script it named, a copy or link of a gated program under
    /// another name (same inode, or same size and contents), the program a
    /// dynamic loader was told to run (a path the caller resolves: its cwd,
    /// its descriptors), and code the loader is told to inject into a gated
    /// program (`LD_PRELOAD`, `LD_AUDIT`, `LD_LIBRARY_PATH`: asked about
    /// whatever the arguments).
    fn gate_of_run(
        &mut self,
        pid: u32,
        exe: &Path,
        argv: &[String],
        env: &[String],
    ) -> Option<usize> {
        if let Some(g) = self.gates.exec_gate_run(exe, argv, || execfn(pid)) {
            return Some(g);
        }
        let mut programs: Vec<(PathBuf, usize)> = vec![(exe.to_path_buf(), 0)];
        if let Some((i, prog)) = crate::gates::loader_program(exe, argv) {
            let seen = caller_path(pid, &prog);
            if let Some(g) = self.gates.exec_gate(&seen, &argv[i..]) {
                return Some(g);
            }
            programs.push((seen, i));
        }
        for (file, i) in programs {
            if let Some(alias) = self.known.alias(&file) {
                if let Some(g) = self.gates.exec_gate(&alias, &argv[i..]) {
                    return Some(g);
                }
            }
        }
        let injected = env.iter().any(|e| {
            ["LD_PRELOAD=", "LD_AUDIT=", "LD_LIBRARY_PATH="]
                .iter()
                .any(|v| e.starts_with(v) && e.len() > v.len())
        });
        if injected {
            let alias = self.known.alias(exe).unwrap_or_else(|| exe.to_path_buf());
            return self.gates.program_gate(&alias, argv);
        }
        None
    }

    /// A held exec's answer: let it go, or kill it.
    pub fn release(&mut self, pid: u32, allow: bool) {
        let p = Pid::from_raw(pid as i32);
        if !allow {
            let _ = nix::sys::signal::kill(p, Signal::SIGKILL);
        }
        let _ = ptrace::detach(p, None);
    }

    /// Everything still waiting, when the run is over: approvers killed, the
    /// terminal put back, held processes let go (they are being killed).
    pub fn finish(&mut self) {
        for a in &mut self.asks {
            match &mut a.asker {
                Asker::Tty(t) => t.finish(Answer::Unanswered),
                Asker::Command(p) => p.kill(),
                _ => {}
            }
        }
        self.asks.clear();
        self.replies.clear();
        self.freeze(false);
        for pid in std::mem::take(&mut self.held).into_keys() {
            let _ = ptrace::detach(Pid::from_raw(pid as i32), None);
        }
    }
}

fn denial(gates: &Gates, a: &Ask, ans: Answer, why: Option<&str>) -> Denial {
    let (kind, operation, errno) = match a.kind {
        GateKind::Exec => (DenialKind::Fs, "exec", "EPERM"),
        GateKind::Read => (DenialKind::Fs, "read", "EACCES"),
        GateKind::Domain => (DenialKind::Net, "connect", "ECONNREFUSED"),
    };
    let target = if a.kind == GateKind::Exec {
        let mut t = a.request.target.clone();
        for w in a.request.argv.iter().skip(1) {
            t.push(' ');
            t.push_str(w);
        }
        t
    } else {
        a.request.target.clone()
    };
    let answer = match ans {
        Answer::Deny => "denied",
        Answer::Timeout => "no answer",
        _ => "unanswered",
    };
    let approver = gates.approver.kind();
    Denial {
        kind,
        operation: operation.into(),
        target,
        pid: a.pid,
        exe: std::fs::read_link(format!("/proc/{}/exe", a.pid))
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        errno: if a.subject == Subject::Held {
            "SIGKILL".into()
        } else {
            errno.into()
        },
        rule: format!(
            "{} {answer} by approver \"{approver}\"{}",
            a.request.rule,
            why.map(|w| format!(": {w}")).unwrap_or_default()
        ),
        suggestion: String::new(),
        observed_by: ObservedBy::Approval,
        at_ms: a.at_ms,
    }
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("gates", &self.gates)
            .field("asking", &self.asks.len())
            .field("held", &self.held.len())
            .field("records", &self.records.len())
            .finish()
    }
}

impl Drop for Approvals {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Whether what the kernel ran is what was approved: the same file (device
/// and inode), argv, steering variables and named path; or, for an
/// approved script, the same interpreter (file and `#!` words) given the
/// named path and the approved arguments.
fn corresponds(a: &Approved, pid: u32, argv: &[String], env: &[String]) -> bool {
    let exe = identity(Path::new(&format!("/proc/{pid}/exe")));
    let named = execfn(pid);
    same_exec(
        a,
        exe,
        named.as_deref(),
        argv,
        &steering(env.iter().map(String::as_str)),
    )
}

/// The pure part of [`corresponds`].
fn same_exec(
    a: &Approved,
    exe: Option<(u64, u64)>,
    named: Option<&str>,
    argv: &[String],
    env: &[String],
) -> bool {
    if env != a.env.as_slice() || named != Some(a.named.as_str()) || exe.is_none() {
        return false;
    }
    if a.script.is_none() {
        return argv == a.argv.as_slice() && exe == a.file;
    }
    let Some((words, interp)) = &a.script else {
        return false;
    };
    let mut want = words.clone();
    want.push(a.named.clone());
    want.extend(a.argv.iter().skip(1).cloned());
    exe == *interp && argv == want.as_slice()
}

fn changed(pid: u32, exe: &Path, argv: &[String], approved: &[String]) -> Denial {
    Denial {
        kind: DenialKind::Fs,
        operation: "exec".into(),
        target: argv.join(" "),
        pid,
        exe: exe.display().to_string(),
        errno: "SIGKILL".into(),
        rule: if approved.is_empty() {
            "approve.exec: the exec of a gated program could not be checked (argv too long)".into()
        } else {
            format!(
                "approve.exec: killed before its first instruction: what the kernel ran is not what was approved ({})",
                approved.join(" ")
            )
        },
        suggestion: String::new(),
        observed_by: ObservedBy::Approval,
        at_ms: 0,
    }
}

/// The path the exec named (AT_EXECFN: the kernel's copy on the new image's
/// stack): for a script, the script, which `/proc/PID/exe` (its
/// interpreter) does not tell.
fn execfn(pid: u32) -> Option<String> {
    use std::os::unix::fs::FileExt;
    const AT_EXECFN: u64 = 31;
    let aux = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    let addr = aux
        .chunks_exact(16)
        .map(|c| {
            let w = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
            (w(&c[..8]), w(&c[8..]))
        })
        .find(|(k, _)| *k == AT_EXECFN)?
        .1;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; 4096];
    let n = mem.read_at(&mut buf, addr).ok()?;
    let end = buf[..n].iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// `/proc/PID/environ`, the steering variables only.
fn environ(pid: u32) -> Vec<String> {
    let b = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let all: Vec<String> = b
        .split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    steering(all.iter().map(String::as_str))
}

/// A path as process `pid` would open it: its descriptors
/// (`/proc/self/fd/N`), its cwd, its root; made canonical.
fn caller_path(pid: u32, p: &str) -> PathBuf {
    let within = if let Some(fd) = p
        .strip_prefix("/proc/self/fd/")
        .or_else(|| p.strip_prefix("/dev/fd/"))
    {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap_or_else(|_| PathBuf::from(p))
    } else if Path::new(p).is_absolute() {
        PathBuf::from(p)
    } else {
        std::fs::read_link(format!("/proc/{pid}/cwd"))
            .map(|c| c.join(p))
            .unwrap_or_else(|_| PathBuf::from(p))
    };
    std::fs::canonicalize(&within).unwrap_or(within)
}

/// The files the gates' programs are on this host: a file that is one of
/// them under another name (a link: the same inode; a copy: the same size
/// and contents) is that program.
#[derive(Debug, Default)]
struct Known {
    files: Vec<KnownFile>,
    /// Hashes of executed files of a gated program's size, per (device,
    /// inode, modification time): a file run many times is read once.
    seen: std::cell::RefCell<BTreeMap<FileVersion, Option<[u8; 32]>>>,
}

/// A file's device, inode and modification time (seconds, nanoseconds).
type FileVersion = (u64, u64, i64, i64);

#[derive(Debug)]
struct KnownFile {
    path: PathBuf,
    id: (u64, u64),
    size: u64,
    hash: std::cell::OnceCell<Option<[u8; 32]>>,
}

/// Most a file is hashed to compare it with a gated program.
const MAX_HASHED: u64 = 512 << 20;

impl Known {
    fn new(gates: &Gates) -> Known {
        use std::os::unix::fs::MetadataExt;
        let mut files: Vec<KnownFile> = Vec::new();
        for p in gates.exec.iter().flat_map(|g| g.programs.iter()) {
            if let Ok(m) = std::fs::metadata(p) {
                if files.iter().all(|f| f.id != (m.dev(), m.ino())) {
                    files.push(KnownFile {
                        path: p.clone(),
                        id: (m.dev(), m.ino()),
                        size: m.size(),
                        hash: std::cell::OnceCell::new(),
                    });
                }
            }
        }
        Known {
            files,
            seen: Default::default(),
        }
    }

    /// The gated program `file` is, under whatever name.
    fn alias(&self, file: &Path) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        if self.files.is_empty() {
            return None;
        }
        let m = std::fs::metadata(file).ok()?;
        let id = (m.dev(), m.ino());
        if let Some(f) = self.files.iter().find(|f| f.id == id) {
            return Some(f.path.clone());
        }
        let same_size: Vec<&KnownFile> = self.files.iter().filter(|f| f.size == m.size()).collect();
        if same_size.is_empty() || m.size() > MAX_HASHED {
            return None;
        }
        let key = (m.dev(), m.ino(), m.mtime(), m.mtime_nsec());
        let mut seen = self.seen.borrow_mut();
        if seen.len() > 1024 {
            seen.clear();
        }
        let h = (*seen.entry(key).or_insert_with(|| sha256_file(file)))?;
        same_size
            .into_iter()
            .find(|f| *f.hash.get_or_init(|| sha256_file(&f.path)) == Some(h))
            .map(|f| f.path.clone())
    }
}

fn sha256_file(p: &Path) -> Option<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match std::io::Read::read(&mut f, &mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(h.finalize().into())
}

fn ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `/proc/PID/cmdline` as an argv (at most `max` bytes), and whether whole.
fn cmdline(pid: u32, max: usize) -> (Vec<String>, bool) {
    use std::io::Read;
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/cmdline")) else {
        return (Vec::new(), false);
    };
    let mut b = Vec::new();
    let _ = f.take(max as u64 + 1).read_to_end(&mut b);
    let complete = b.len() <= max;
    b.truncate(max);
    if b.last() == Some(&0) {
        b.pop();
    }
    let argv = b
        .split(|&c| c == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    (argv, complete)
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(fl) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        );
    }
}

fn start_program(command: &[String], request: &Request) -> Asker {
    match Program::start(command, request) {
        Ok(p) => Asker::Command(p),
        Err(e) => Asker::Now(
            Answer::Unanswered,
            Some(format!("starting the approver {}: {e}", command[0])),
        ),
    }
}

impl Program {
    /// Start the approver with the request on its stdin.
    fn start(command: &[String], request: &Request) -> std::io::Result<Program> {
        let mut input = serde_json::to_vec(request).map_err(std::io::Error::other)?;
        input.push(b'\n');
        // A process group of its own: a timeout ends what it started too.
        let mut child = std::process::Command::new(&command[0])
            .args(&command[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()?;
        let pgid = child.id() as i32;
        // Its exit is reaped by the launcher's loop (a child like any other):
        // the pidfd is for killing it on a timeout without a reused pid.
        let pidfd = crate::sys::pidfd_open(child.id() as libc::pid_t, 0).ok();
        let stdin: Option<OwnedFd> = child.stdin.take().map(OwnedFd::from);
        let stdout: Option<OwnedFd> = child.stdout.take().map(OwnedFd::from);
        for fd in stdin.iter().chain(stdout.iter()) {
            set_nonblocking(fd);
        }
        Ok(Program {
            pgid,
            pidfd,
            stdin,
            input,
            written: 0,
            stdout,
            out: Vec::new(),
        })
    }

    fn poll(&mut self) -> Option<(Answer, Option<String>)> {
        if let Some(fd) = &self.stdin {
            match nix::unistd::write(fd, &self.input[self.written..]) {
                Ok(n) => self.written += n,
                Err(nix::errno::Errno::EAGAIN) => {}
                // It closed its stdin: it may answer without reading.
                Err(_) => self.written = self.input.len(),
            }
            if self.written >= self.input.len() {
                self.stdin = None;
            }
        }
        let fd = self.stdout.as_ref()?;
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.out.extend_from_slice(&buf[..n]);
                    if self.out.len() > MAX_ANSWER {
                        self.stdout = None;
                        return Some((
                            Answer::Unanswered,
                            Some("the approver's answer is too long".into()),
                        ));
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return None,
                Err(e) => {
                    self.stdout = None;
                    return Some((
                        Answer::Unanswered,
                        Some(format!("reading the approver: {e}")),
                    ));
                }
            }
        }
        self.stdout = None;
        let text = String::from_utf8_lossy(&self.out).into_owned();
        Some(crate::gates::parse_answer(&text))
    }

    fn kill(&mut self) {
        if let Some(p) = self.pidfd.take() {
            // The group first, while its leader (unreaped at worst) keeps the
            // group's id from being reused.
            let _ = nix::sys::signal::killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
            let _ = crate::sys::pidfd_send_signal(&p, libc::SIGKILL);
        }
        self.stdin = None;
        self.stdout = None;
    }
}

impl Tty {
    /// Ask on the controlling terminal, from outside the sandbox: type-ahead
    /// is dropped first, so a key pressed before the question cannot answer it.
    fn start(r: &Request, timeout: Duration, frozen: bool) -> Result<Tty, String> {
        use nix::fcntl::{OFlag, open};
        use nix::sys::stat::Mode;
        use nix::sys::termios::{self, LocalFlags, SetArg};
        let fd = open(
            "/dev/tty",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| format!("no terminal to ask on ({e})"))?;
        let fg = nix::unistd::tcgetpgrp(&fd).ok();
        if fg != Some(nix::unistd::getpgrp()) {
            return Err("cordon is not in its terminal's foreground".into());
        }
        let saved = termios::tcgetattr(&fd).ok();
        if let Some(s) = &saved {
            let mut t = s.clone();
            t.local_flags |= LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ECHOE;
            let _ = termios::tcsetattr(&fd, SetArg::TCSANOW, &t);
        }
        let _ = termios::tcflush(&fd, termios::FlushArg::TCIFLUSH);
        let f = crate::term::field;
        let mut text = String::new();
        text.push_str(&format!("\r\ncordon: approval needed: {}\r\n", f(&r.rule)));
        if frozen {
            text.push_str("  (the sandboxed processes are paused while this is asked: nothing they print can appear below)\r\n");
        }
        match r.kind {
            GateKind::Exec => {
                text.push_str(&format!("  program: {}\r\n", f(&r.target)));
                text.push_str(&format!("  argv:    {}\r\n", shown_argv(&r.argv)));
            }
            _ => text.push_str(&format!("  {}:    {}\r\n", kind_name(r.kind), f(&r.target))),
        }
        text.push_str(&format!("  cwd:     {}\r\n", f(&r.cwd)));
        for p in &r.parents {
            text.push_str(&format!(
                "  from:    [{}] {}\r\n",
                p.pid,
                shown_argv(&p.argv)
            ));
        }
        let code = code();
        text.push_str(&format!(
            "  type {code} to allow once, {code}! to allow \"{}\" for the rest of this run; anything else denies ({} without an answer denies)\r\ncordon: answer> ",
            f(&r.gate),
            crate::units::format_duration(timeout)
        ));
        let mut file = std::fs::File::from(fd.try_clone().map_err(|e| e.to_string())?);
        let _ = file.write_all(text.as_bytes());
        Ok(Tty {
            fd,
            saved,
            line: Vec::new(),
            code,
        })
    }

    fn poll(&mut self) -> Option<(Answer, Option<String>)> {
        let mut buf = [0u8; 256];
        loop {
            match nix::unistd::read(&self.fd, &mut buf) {
                Ok(0) => return Some((Answer::Unanswered, Some("the terminal closed".into()))),
                Ok(n) => {
                    self.line.extend_from_slice(&buf[..n]);
                    if let Some(end) = self.line.iter().position(|&c| c == b'\n' || c == b'\r') {
                        let word = String::from_utf8_lossy(&self.line[..end])
                            .trim()
                            .to_ascii_lowercase();
                        let once = self.code.as_str();
                        let run = format!("{once}!");
                        return Some(if word == once {
                            (Answer::Allow, Some("allowed on the terminal".into()))
                        } else if word == run {
                            (
                                Answer::AllowRun,
                                Some("allowed on the terminal for the rest of the run".into()),
                            )
                        } else {
                            (Answer::Deny, Some("denied on the terminal".into()))
                        });
                    }
                    if self.line.len() > 1024 {
                        return Some((Answer::Deny, Some("denied on the terminal".into())));
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => return None,
                Err(e) => {
                    return Some((
                        Answer::Unanswered,
                        Some(format!("reading the terminal: {e}")),
                    ));
                }
            }
        }
    }

    fn finish(&mut self, ans: Answer) {
        let said = match ans {
            Answer::Allow => "allowed once",
            Answer::AllowRun => "allowed for the rest of the run",
            Answer::Deny => "denied",
            Answer::Timeout => "no answer: denied",
            Answer::Unanswered => "denied",
        };
        let _ = nix::unistd::write(&self.fd, format!("\r\ncordon: {said}\r\n").as_bytes());
        if let Some(s) = self.saved.take() {
            let _ = nix::sys::termios::tcsetattr(&self.fd, nix::sys::termios::SetArg::TCSANOW, &s);
        }
    }
}

/// An argv as one line a person can read back exactly: each word escaped
/// (no control character reaches the terminal) and quoted when it holds a
/// space or a quote, or is empty.
fn shown_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let e = crate::term::field(a);
            if e.is_empty() || e.contains([' ', '\'', '"']) {
                format!("'{}'", e.replace('\'', "'\\''"))
            } else {
                e.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn kind_name(k: GateKind) -> &'static str {
    match k {
        GateKind::Exec => "exec",
        GateKind::Read => "file",
        GateKind::Domain => "name",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn approved(named: &str, file: u64, argv: &str) -> Approved {
        Approved {
            named: named.into(),
            file: Some((1, file)),
            argv: v(argv),
            env: Vec::new(),
            script: None,
        }
    }

    #[test]
    fn argv_is_shown_unambiguously_and_without_control_characters() {
        let a = vec![
            "git".to_string(),
            "push".into(),
            "a b".into(),
            "".into(),
            "\x1b]52;c;x\x07".into(),
        ];
        assert_eq!(shown_argv(&a), "git push 'a b' '' \\x1b]52;c;x\\x07");
    }

    #[test]
    fn what_ran_corresponds_to_what_was_approved() {
        let a = approved("/usr/bin/git", 7, "git push origin");
        let same = |a: &Approved, exe: u64, named: &str, argv: &str, env: &[&str]| {
            let env: Vec<String> = env.iter().map(|e| e.to_string()).collect();
            same_exec(a, Some((1, exe)), Some(named), &v(argv), &env)
        };
        assert!(same(&a, 7, "/usr/bin/git", "git push origin", &[]));
        assert!(!same(&a, 7, "/usr/bin/git", "git push evil", &[]));
        assert!(!same(&a, 7, "/usr/bin/git", "git push origin --force", &[]));
        // The same argv, another file (a link swapped after the decision).
        assert!(!same(&a, 8, "/usr/bin/git", "git push origin", &[]));
        // Another named path, or a variable that steers git, not shown.
        assert!(!same(&a, 7, "./upstream", "git push origin", &[]));
        assert!(!same(
            &a,
            7,
            "/usr/bin/git",
            "git push origin",
            &["GIT_DIR=/x"]
        ));
        // A script: its interpreter, as its #! line said, given the named
        // path and the arguments.
        let mut s = approved("./deploy.sh", 9, "./deploy.sh prod");
        s.script = Some((vec!["/bin/bash".into()], Some((1, 3))));
        assert!(same(
            &s,
            3,
            "./deploy.sh",
            "/bin/bash ./deploy.sh prod",
            &[]
        ));
        assert!(!same(
            &s,
            3,
            "./deploy.sh",
            "/bin/bash ./other.sh prod",
            &[]
        ));
        assert!(!same(
            &s,
            3,
            "./deploy.sh",
            "/bin/bash ./deploy.sh staging",
            &[]
        ));
        // Swapped for a script of another interpreter (`#!/usr/bin/git push`).
        assert!(!same(
            &s,
            7,
            "./deploy.sh",
            "/usr/bin/git push ./deploy.sh prod",
            &[]
        ));
        // Approved as a program, run as a script: not what was approved.
        assert!(!same(
            &a,
            3,
            "/usr/bin/git",
            "/bin/sh /usr/bin/git push origin",
            &[]
        ));
    }

    #[test]
    fn shebang_lines_split_as_the_kernel_splits_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s");
        std::fs::write(&p, "#!/usr/bin/env  python3 -u\nprint()\n").unwrap();
        assert_eq!(
            shebang(&p),
            Some(vec!["/usr/bin/env".into(), "python3 -u".into()])
        );
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        assert_eq!(shebang(&p), Some(vec!["/bin/sh".into()]));
        std::fs::write(&p, "\x7fELF").unwrap();
        assert_eq!(shebang(&p), None);
    }

    #[test]
    fn credentials_are_hidden_from_the_approver() {
        assert_eq!(shown_var("GIT_DIR=/x"), "GIT_DIR=/x");
        assert_eq!(shown_var("GH_TOKEN=abc"), "GH_TOKEN=(hidden)");
        assert_eq!(
            shown_var("NPM_CONFIG__AUTH=abc"),
            "NPM_CONFIG__AUTH=(hidden)"
        );
        assert_eq!(
            shown_var("CARGO_REGISTRY_TOKEN=abc"),
            "CARGO_REGISTRY_TOKEN=(hidden)"
        );
        assert_eq!(
            shown_var("GIT_CONFIG_KEY_0=remote.origin.pushurl"),
            "GIT_CONFIG_KEY_0=remote.origin.pushurl"
        );
        assert_eq!(shown_var("GIT_AUTHOR_NAME=me"), "GIT_AUTHOR_NAME=me");
        assert_eq!(
            steering(["PATH=/bin", "GIT_CONFIG_COUNT=1", "LD_PRELOAD=x"]),
            ["GIT_CONFIG_COUNT=1", "LD_PRELOAD=x"]
        );
    }
}
