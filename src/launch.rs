//! One launch, start to end: the profile's policy checked against the
//! workspace, the guard's launch state, cordon's own files opened, the child
//! prepared, spawned (in new namespaces or a session's) and supervised, what
//! it changed put back, and its report and audit line written. `cordon run`,
//! `replay` and a session's workers each build a [`Launch`] and call
//! [`execute`]; nothing here knows the command line.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::error::{Error, Result};
use crate::monitor::{CaptureOptions, Monitor};
use crate::outfile::{Own, OwnFile};
use crate::policy::{Carve, Kind, Missing, Policy};
use crate::probe::{Host, Userns};
use crate::profile::{NsMode, Overrides, Profile, ProfileRef};
use crate::report::{self, AuditLine, AuditLog, Report};
use crate::sandbox::{self, Options, Prepared, Signals, SpawnError};
use crate::supervise;
use crate::vars::Context;

/// Print a warning of cordon's own on stderr.
pub fn warn(msg: &str) {
    crate::term::eprintln_line(&format!("cordon: warning: {msg}"));
}

/// Load a profile by name or path, with `overrides` layered on, and the run's context.
pub fn load(
    r: &str,
    overrides: &Overrides,
    workspace: Option<PathBuf>,
) -> Result<(Profile, Context)> {
    let ctx = Context::from_process(workspace)?;
    let mut p = Profile::load(&ProfileRef::parse(r))?;
    // The repository's own policy tightens the profile; the command line's
    // flags are the user's and come last.
    p.apply_repo_local(&ctx.workspace)?;
    p.apply_overrides(overrides, &ctx.cwd);
    Ok((p, ctx))
}

/// One run to launch: the profile (merged, overrides applied), its context,
/// the command, and the launcher's own options. `run` and `replay` both build one.
#[derive(Debug)]
pub struct Launch {
    pub profile: Profile,
    pub ctx: Context,
    pub command: Vec<OsString>,
    pub best_effort: bool,
    pub verbose: bool,
    pub quiet: bool,
    pub dry_run: bool,
    pub report: Option<PathBuf>,
    pub audit_log: Option<PathBuf>,
    pub trace: bool,
    /// Capture refused syscalls and executed commands (on unless --no-capture).
    pub capture: bool,
    /// Record the files the run changed in the report (on unless --no-changes;
    /// needs capture and a report).
    pub changes: bool,
    /// Run in `/`, a system directory or the home directory itself.
    pub allow_unsafe_workspace: bool,
    /// Sign the report with this user's key (not for the replay of a foreign
    /// report: one confirmation must not make its command trusted for good).
    pub sign_report: bool,
    /// Build the report even when no file keeps it, for a caller that reads
    /// it (a session's command, the library's `Outcome`).
    pub keep_report: bool,
    /// Print why the command did not run (126, 127) on stderr, as every
    /// other error is; the library's commands get it in their `Outcome`.
    pub print_errors: bool,
    /// A session's namespaces to run in (see `sandbox::SessionNs`).
    pub session: Option<std::sync::Arc<crate::sandbox::SessionNs>>,
}

/// How a launch ended: the contract's exit code and, when one was built,
/// the run's report.
#[derive(Debug)]
pub struct Finished {
    pub code: u8,
    pub report: Option<Report>,
}

/// Print the preparation's warnings `prep` and the guard's from `guard_shown`
/// on: those not printed yet (some come only once the child is held).
fn warn_new(prep: &[String], guard: Option<&crate::guard::Guard>, guard_shown: usize) {
    let guard = guard
        .iter()
        .flat_map(|g| g.warnings.iter().skip(guard_shown));
    for w in prep.iter().chain(guard) {
        warn(w);
    }
}

/// Launch, supervise, report. Returns the contract's exit code.
pub fn execute(l: Launch, inherited: &[RawFd]) -> Result<u8> {
    execute_kept(l, inherited).map(|f| f.code)
}

/// [`execute`], returning the report too when `l.keep_report` asked for it
/// (or a file keeps it). It changes this process's signal mask and makes it
/// a child subreaper: its caller is a launcher process of its own (the CLI, a
/// session's worker), never an embedding program.
pub fn execute_kept(l: Launch, inherited: &[RawFd]) -> Result<Finished> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    if !l.allow_unsafe_workspace {
        let home = l.ctx.home.as_deref();
        if let Some(why) = crate::policy::workspace_hazard(&l.ctx.workspace, home) {
            return Err(Error::UnsafeWorkspace {
                path: l.ctx.workspace.clone(),
                why,
            });
        }
    }
    crate::timing::mark("workspace-check");
    let host = Host::probe();
    crate::timing::mark("host-probe");
    // Without namespaces the run gets a temporary directory of its own, which
    // ${TMPDIR} names (with them, init mounts a private tmpfs instead).
    let ns_likely = l.profile.ns_mode() != NsMode::Off && host.userns == Userns::Available;
    let mut run_tmp = None;
    if !ns_likely {
        run_tmp = Some(crate::scratch::RunTmp::create(&l.ctx.tmpdir)?);
    }
    let mut policy = policy_in(&l, run_tmp.as_ref())?;
    crate::timing::mark("policy");
    if !l.dry_run {
        let (p, failed) = report_key_first(&l, run_tmp.as_ref(), policy)?;
        policy = p;
        if let Some(e) = failed.filter(|_| !l.quiet) {
            warn(&e);
        }
    }
    // Before anything runs: the launch state of every file that would make the
    // host's next command run code (put back when the run ends).
    let share = if l.dry_run {
        crate::guard::Share::Look
    } else {
        crate::guard::Share::Run
    };
    crate::timing::mark("report-key");
    // What the mount view binds now; the launch state itself is kept while the
    // child builds its sandbox (Guard::record, in spawn's held window).
    let mut guard = crate::guard::Guard::launch(&policy, share);
    if let Some(g) = &guard {
        policy.fs.guarded = g.carves();
    }
    crate::timing::mark("guard");
    // Fail closed before anything runs: a governed run that cannot be logged does not start.
    let audit_path = l.audit_log.clone().or_else(|| policy.audit_log.clone());
    let (mut audit_log, report_out) =
        own_files(&mut policy, audit_path.as_deref(), l.report.as_deref())?;
    let opts = Options {
        best_effort: l.best_effort,
        capture: l.capture || l.trace,
        trace: l.trace,
        // Recorded only for a report: nothing else shows it, and a run without one
        // keeps its stderr and its opens exactly as before.
        changes: (l.capture || l.trace) && l.changes && l.report.is_some(),
    };
    // Blocked before the fork so that no signal is lost; the payload unblocks them.
    crate::timing::mark("own-files");
    let signals = Signals::block()?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::Launch {
        step: "becoming a child subreaper",
        source: e.into(),
    })?;
    let capture = CaptureOptions {
        notify: opts.capture,
        trace: opts.trace,
    };
    let (mut monitor, end) = Monitor::new(capture, &host, started);
    attach_gates(&mut monitor, &policy, &l.command, started);
    crate::changes::attach(&mut monitor, &policy, opts.changes);
    crate::timing::mark("monitor");
    let mut prep = Prepared::new(policy, &host, &l.command, opts, inherited, None)?;
    if let Some(s) = &l.session {
        match prep.join_session(s) {
            Ok(()) => monitor.sandbox_since(s.started),
            Err(why) if !l.quiet => {
                warn(&format!(
                    "this command runs in a sandbox of its own, apart from the session's loopback, processes and /tmp: {why}"
                ));
            }
            Err(_) => {}
        }
    }
    crate::timing::mark("prepare-rest");
    prep.attach_capture(end);
    let mut retried = false;
    let mut proxy = None;
    // Warnings printed so far: of the preparation, of the guard.
    let (mut shown, mut guard_shown) = (0, 0);
    let spawned = loop {
        if l.verbose || l.dry_run {
            // -v says which cgroups hold the run and what the guard found: made
            // and kept now rather than while the child is held.
            if let Err(e) = prep.make_cgroups() {
                prep.release_cgroups();
                return Err(e);
            }
            if let Some(g) = guard.as_mut() {
                g.record();
            }
        }
        if !l.quiet {
            warn_new(&prep.warnings[shown..], guard.as_ref(), guard_shown);
        }
        shown = prep.warnings.len();
        guard_shown = guard.as_ref().map_or(0, |g| g.warnings.len());
        if l.verbose || l.dry_run {
            crate::term::eprint(&describe_run(&prep, &host));
            if let Some(g) = &guard {
                crate::term::eprintln_line(&format!(
                    "cordon: guard: {} paths protected ({} bound read-only), {} git directories, {} directory entries read in {} µs",
                    g.protected().count(),
                    prep.policy.fs.guarded.len(),
                    g.git_dirs(),
                    g.visited(),
                    g.cost.as_micros()
                ));
            }
        }
        if l.dry_run {
            prep.release_cgroups();
            return match prep.unresolved.take() {
                Some(e) => Err(e),
                None => Ok(Finished {
                    code: 0,
                    report: None,
                }),
            };
        }
        // Not found or not executable: nothing runs, and the report says why.
        if let Some(e) = prep.unresolved.take() {
            break Err(e);
        }
        let mut record = || {
            if let Some(g) = guard.as_mut() {
                g.record();
            }
            Ok(())
        };
        match sandbox::spawn(&mut prep, &signals, &mut monitor, &mut record) {
            Ok(mut s) => {
                monitor.adopt(s.pid.as_raw() as u32);
                if let Some(a) = monitor.approvals.as_mut() {
                    a.set_freezer(prep.freezer());
                }
                // Mode "proxy": serving since before the payload could run.
                proxy = s.proxy.take();
                // Made while the child was held (a partial memory limit, a
                // guard walk stopped at its bounds).
                if !l.quiet {
                    warn_new(&prep.warnings[shown..], guard.as_ref(), guard_shown);
                }
                break Ok(s);
            }
            // Its execve failed (126, 127): the run happened, without a program.
            Err(SpawnError::Failed(
                e @ Error::Child {
                    code: crate::error::exit::NOT_EXECUTABLE | crate::error::exit::NOT_FOUND,
                    ..
                },
            )) => break Err(e),
            Err(SpawnError::NsUnavailable(why))
                if prep.policy.namespaces == NsMode::Auto && !retried =>
            {
                retried = true;
                if l.verbose {
                    warn(&format!(
                        "namespaces unavailable ({why}); running with Landlock and seccomp alone"
                    ));
                }
                let (m, end) = Monitor::new(capture, &host, started);
                monitor = m;
                attach_gates(&mut monitor, &prep.policy, &l.command, started);
                prep.release_cgroups();
                let tmp = crate::scratch::RunTmp::create(&l.ctx.tmpdir)?;
                let policy = policy_again(&l, &tmp, &prep.policy)?;
                run_tmp = Some(tmp);
                crate::changes::attach(&mut monitor, &policy, opts.changes);
                prep = Prepared::new(policy, &host, &l.command, opts, inherited, Some(&why))?;
                prep.attach_capture(end);
                shown = 0;
            }
            Err(SpawnError::NsUnavailable(why)) => {
                prep.release_cgroups();
                return Err(Error::Unenforceable {
                    missing: format!("namespaces are unavailable: {why}"),
                });
            }
            Err(SpawnError::Failed(e)) => {
                prep.release_cgroups();
                return Err(e);
            }
        }
    };
    crate::timing::mark("child-exec");
    let (outcome, mut exiting, not_executed) = match spawned {
        Ok(spawned) => {
            let (o, e) = supervise::supervise(
                spawned,
                &signals,
                prep.timeout(),
                started,
                &mut monitor,
                &prep.policy,
                &prep.plan,
            );
            (o, e, None)
        }
        Err(e) => (
            supervise::Outcome::not_executed(e.exit_code(), started),
            supervise::Exiting::none(),
            Some(e),
        ),
    };
    crate::timing::mark("payload");
    // The tree is gone (supervise killed what was left, also after a timeout or a
    // forwarded signal; init, if it is still exiting, reaped it all first):
    // nothing writes to the run's directory any more.
    if let Some(t) = run_tmp.take() {
        let shown = t.path().display().to_string();
        if let Err(e) = t.remove() {
            warn(&format!(
                "removing the run's temporary directory {shown}: {e}"
            ));
        }
    }
    monitor.finish(&prep.policy, &prep.plan);
    // The tree is gone, so are the proxy's clients: what it refused joins the
    // denials, what it served the report.
    let network = proxy.take().map(|p: crate::proxy::Proxy| {
        let rec = p.finish();
        let refused = rec.denials.len() as u64 + rec.dropped;
        monitor.denials.extend(rec.denials);
        report::NetworkRecord {
            domains: rec.domains,
            refused,
        }
    });
    crate::timing::mark("monitor-finish");
    // Nothing of the run is left: put back what it changed, first in the report.
    if let Some(g) = &guard {
        let (found, note) = g.finish(started);
        monitor.denials.splice(0..0, found);
        monitor.notes.extend(note);
    }
    crate::timing::mark("guard-finish");
    let changes = crate::changes::finish(&mut monitor);
    // The cgroups go once init has left them (its namespaces torn down meanwhile).
    exiting.reap();
    prep.release_cgroups();
    crate::timing::mark("cgroup-release");

    let mut failed = Vec::new();
    let mut kept = None;
    // The full report only when something keeps it: building it (the resolved
    // profile as JSON, its hash) is a measurable share of a short run.
    if l.report.is_some() || audit_log.is_some() || l.keep_report {
        let mut rep = build_report(
            &l,
            &prep,
            &host,
            &monitor,
            &outcome,
            started_at,
            not_executed.as_ref(),
        );
        rep.changes = changes.clone();
        rep.network = network.clone();
        if l.report.is_some() {
            let key = match l.sign_report.then(crate::trust::ensure_key) {
                None => None,
                Some(Ok(k)) => Some(k),
                Some(Err(e)) => {
                    if !l.quiet {
                        warn(&format!("the report is not signed: {e}"));
                    }
                    None
                }
            };
            rep.integrity = Some(crate::trust::seal(&rep, key.as_ref()));
        }
        if let Some(out) = &report_out {
            if let Err(e) = rep.write_to(out) {
                failed.push(e);
            }
        }
        if let Some(log) = &mut audit_log {
            let line = AuditLine {
                time: rep.started_at.clone(),
                user: host.uid,
                host: report::hostname(),
                command: rep.command.clone(),
                workspace: rep.workspace.clone(),
                profile: rep.profile.name.clone(),
                profile_sha256: rep.profile.sha256.clone(),
                exit_code: rep.exit_code,
                duration_ms: rep.duration_ms,
                denials: rep.denials.len() as u64 + rep.capture.dropped,
                domains: network.as_ref().map(|n| n.domains.clone()),
                approvals: rep.approvals.clone(),
                report: l.report.as_ref().map(|p| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                }),
            };
            if let Err(e) = log.append(&line) {
                failed.push(e);
            }
        }
        if l.keep_report {
            kept = Some(rep);
        }
    }
    // What main prints for any other error, printed here because the run
    // still ends with its report and summary.
    if let Some(e) = not_executed.as_ref().filter(|_| l.print_errors) {
        crate::term::eprintln_line(&format!("cordon: {}", crate::error::chain(e)));
    }
    if !l.quiet {
        crate::term::eprint(&report::summary(
            &monitor.denials,
            monitor.dropped,
            l.report.as_deref(),
        ));
        if let Some(c) = &changes {
            crate::term::eprint(&c.summary(l.report.as_deref()));
        }
        if outcome.code() != 0 {
            crate::term::eprint(&removed_summary(&prep.policy.env));
        }
    }
    // The launcher exits as soon as this returns, and none of these has a Drop
    // with an effect beyond memory and descriptors, which the exit releases at
    // once; dropping them piece by piece cost ~70 µs of every run.
    std::mem::forget((l, prep, monitor, host));
    if failed.is_empty() {
        return Ok(Finished {
            code: outcome.code(),
            report: kept,
        });
    }
    // A record that was asked for and could not be written fails the run, so
    // that a payload cannot decide whether CI keeps it; the command's status
    // went into whatever could be written.
    for e in &failed {
        crate::term::eprintln_line(&format!("cordon: {}", crate::error::chain(e)));
    }
    Ok(Finished {
        code: crate::error::exit::LAUNCHER,
        report: kept,
    })
}

/// A payload that can write where the report key would live could plant one
/// and so sign forged reports: make the key before a run whose writable roots
/// cover its place, then the policy again, so that its deny masks a path that
/// exists. Returns the policy and why the key could not be made, if it could not.
fn report_key_first(
    l: &Launch,
    tmp: Option<&crate::scratch::RunTmp>,
    policy: Policy,
) -> Result<(Policy, Option<String>)> {
    let writable = policy
        .fs
        .grants
        .iter()
        .filter(|g| g.access.can_write())
        .map(|g| g.path.as_path());
    match crate::trust::guard_key_location(writable) {
        Ok(false) => Ok((policy, None)),
        Ok(true) => Ok((policy_in(l, tmp)?, None)),
        Err(e) => Ok((policy, Some(e.to_string()))),
    }
}

/// A session's namespaces, prepared as a command of `l` would prepare its own
/// (the same policy, guard carves and audit-log mask), so that a command whose
/// view is still this one can run in them. None when `l` runs without
/// namespaces here.
pub fn prepare_session(l: &Launch) -> Result<Option<crate::sandbox::SessionNs>> {
    let host = Host::probe();
    let ns_likely = l.profile.ns_mode() != NsMode::Off && host.userns == Userns::Available;
    if !ns_likely {
        return Ok(None);
    }
    // The report key first, as a command would make it (a key made later
    // would change every later command's view, and none could join).
    let (mut policy, _) = report_key_first(l, None, policy_in(l, None)?)?;
    if let Some(g) = crate::guard::Guard::launch(&policy, crate::guard::Share::Look) {
        policy.fs.guarded = g.carves();
    }
    let audit_path = l.audit_log.clone().or_else(|| policy.audit_log.clone());
    let _ = own_files(&mut policy, audit_path.as_deref(), None)?;
    let opts = Options {
        best_effort: l.best_effort,
        capture: l.capture || l.trace,
        trace: l.trace,
        changes: false,
    };
    let prep = Prepared::new(policy, &host, &l.command, opts, &[], None)?;
    if !prep.namespaces() {
        return Ok(None);
    }
    crate::sandbox::start_session(prep).map(Some)
}

/// After a failed run: the host variables a `remove` pattern of the profile
/// took away (a tool that lost its API key often says only "Not logged in").
/// Names and patterns, never values; nothing when none was removed.
fn removed_summary(env: &crate::policy::EnvPolicy) -> String {
    let host: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .collect();
    let removed = crate::env::removed(env, host.iter().map(String::as_str));
    if removed.is_empty() {
        return String::new();
    }
    let shown: Vec<String> = removed
        .iter()
        .take(5)
        .map(|(name, by)| {
            format!(
                "{} (matched {})",
                crate::term::field(name),
                crate::term::field(by)
            )
        })
        .collect();
    let more = match removed.len() {
        n if n > 5 => format!(" and {} more", n - 5),
        _ => String::new(),
    };
    format!(
        "cordon: the profile removed {}{more} from the environment; to pass one, name it in [env.secrets] (NAME = {{ from = \"NAME\" }})\n",
        shown.join(", ")
    )
}

/// Open the directories of the audit log and the report before the run, refuse
/// either inside a writable root of the run, open the log (append-only), and
/// deny the run the log: masked with namespaces, carved out without, through
/// the policy's own `deny` list like any denied path.
fn own_files(
    policy: &mut Policy,
    audit: Option<&Path>,
    report: Option<&Path>,
) -> Result<(Option<AuditLog>, Option<OwnFile>)> {
    if audit.is_none() && report.is_none() {
        return Ok((None, None));
    }
    let audit = audit.map(|p| OwnFile::at(p, Own::AuditLog)).transpose()?;
    let report = report.map(|p| OwnFile::at(p, Own::Report)).transpose()?;
    let roots: Vec<PathBuf> = policy
        .fs
        .grants
        .iter()
        .filter(|g| g.access.can_write())
        .map(|g| g.path.clone())
        .collect();
    for f in audit.iter().chain(report.iter()) {
        f.refuse_inside(roots.iter().map(PathBuf::as_path))?;
    }
    let log = audit.as_ref().map(AuditLog::open).transpose()?;
    if let Some(r) = &report {
        r.check_writable()?;
    }
    if let Some(f) = &audit {
        policy.fs.deny.push(Carve {
            path: f.canonical(),
            exists: true,
            kind: Kind::Other,
            origin: crate::profile::Origin {
                source: "the audit log (cordon's own)".into(),
                line: None,
                column: None,
                key: None,
            },
        });
    }
    Ok((log, report))
}

/// Make the run's own temporary directory under the host's ${TMPDIR} and the
/// policy with ${TMPDIR} naming it (namespaces off). `slot` keeps it, so that
/// it is removed on every way out.
/// The policy of this launch, with `${TMPDIR}` naming the run's own directory
/// when there is one (no namespaces).
fn policy_in(l: &Launch, tmp: Option<&crate::scratch::RunTmp>) -> Result<Policy> {
    let Some(t) = tmp else {
        return Policy::new(&l.profile, &l.ctx, Missing::Skip);
    };
    let mut ctx = l.ctx.clone();
    ctx.tmpdir = t.path().to_path_buf();
    ctx.env
        .insert("TMPDIR".into(), t.path().to_string_lossy().into_owned());
    let mut policy = Policy::new(&l.profile, &ctx, Missing::Skip)?;
    policy.run_tmp = Some(t.path().to_path_buf());
    Ok(policy)
}

/// The policy again, for the fallback without namespaces: expanded with the
/// run's own `${TMPDIR}`, and keeping what the launch added to the first one
/// (the guard's read-only paths, the audit log's carve-out).
fn policy_again(l: &Launch, tmp: &crate::scratch::RunTmp, first: &Policy) -> Result<Policy> {
    let mut policy = policy_in(l, Some(tmp))?;
    policy.fs.guarded = first.fs.guarded.clone();
    let fresh = Policy::new(&l.profile, &l.ctx, Missing::Skip)?;
    for c in &first.fs.deny {
        if !fresh.fs.deny.iter().any(|d| d.path == c.path) {
            policy.fs.deny.push(c.clone());
        }
    }
    Ok(policy)
}

fn argv_strings(command: &[OsString]) -> Vec<String> {
    command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The approval gates of `policy`, if any, on the monitor that serves them.
fn attach_gates(monitor: &mut Monitor, policy: &Policy, command: &[OsString], started: Instant) {
    if policy.gates.any() {
        monitor.approvals = Some(crate::approval::Approvals::new(
            policy.gates.clone(),
            crate::gates::RunInfo {
                profile: policy.name.clone(),
                workspace: policy.workspace.display().to_string(),
                command: argv_strings(command),
            },
            started,
        ));
    }
}

fn build_report(
    l: &Launch,
    prep: &Prepared,
    host: &Host,
    monitor: &Monitor,
    outcome: &supervise::Outcome,
    started_at: SystemTime,
    not_executed: Option<&Error>,
) -> Report {
    let plan = &prep.plan;
    // The resolved profile, except `[env] set` as written: an expanded value may
    // carry an environment value, and reports never do.
    let mut resolved = prep.policy.resolved.clone();
    resolved.env.set = l.profile.env.set.clone();
    let landlock = if plan.landlock_abi == 0 {
        report::LandlockLevel::None
    } else if plan.missing.is_empty() {
        report::LandlockLevel::Full
    } else {
        report::LandlockLevel::Partial
    };
    let mut missing: Vec<String> = plan.missing.iter().map(|p| p.to_string()).collect();
    missing.extend(plan.warnings.iter().cloned());
    missing.extend(prep.limit_notes.iter().cloned());
    let mut executed = monitor.executed.clone();
    if executed.is_empty() && not_executed.is_none() {
        // Without capture, the one command we started ourselves.
        executed.push(report::Executed {
            pid: 0,
            argv: argv_strings(&l.command),
            at_ms: 0,
            count: 1,
        });
    }
    Report {
        version: report::SCHEMA_VERSION,
        cordon_version: env!("CARGO_PKG_VERSION").into(),
        started_at: report::rfc3339(started_at),
        duration_ms: outcome.duration.as_millis() as u64,
        command: argv_strings(&l.command),
        cwd: prep.policy.cwd.display().to_string(),
        workspace: prep.policy.workspace.display().to_string(),
        profile: report::ProfileInfo {
            name: prep.policy.name.clone(),
            source: prep.policy.source.clone(),
            sha256: report::profile_sha256(&l.profile.texts),
            resolved: serde_json::to_value(&resolved).unwrap_or_default(),
            origins: resolved.origins(),
            repo_local: l.profile.repo_local.clone(),
        },
        host: report::HostInfo {
            kernel: host.kernel.clone(),
            landlock_abi: host.landlock.abi(),
            namespaces: plan.namespaces(),
            uid: host.uid,
        },
        enforced: report::Enforced {
            landlock,
            seccomp: host.seccomp,
            namespaces: if plan.namespaces() {
                report::OnOff::On
            } else {
                report::OnOff::Off
            },
            missing,
        },
        exit_code: outcome.code() as i32,
        signal: outcome.signal,
        timed_out: outcome.timed_out,
        executed,
        approvals: monitor
            .approvals
            .as_ref()
            .map(|a| a.records.clone())
            .unwrap_or_default(),
        denials: monitor.denials.clone(),
        capture: report::Capture {
            sources: monitor.sources.clone(),
            notes: monitor.notes.clone(),
            dropped: monitor.dropped,
            truncated: monitor.truncated(),
        },
        integrity: None,
        changes: None,
        not_executed: not_executed.map(|e| e.to_string()),
        network: None,
    }
}

/// One line of cordon's text output: whatever the fields hold (paths from a
/// profile or a directory listing), it stays one line, with no control
/// character in it (`term`).
macro_rules! out_line {
    ($s:expr, $($fmt:tt)*) => {
        crate::term::push_line(&mut $s, &format!($($fmt)*))
    };
}

/// What a run will enforce, for --verbose and --dry-run.
fn describe_run(prep: &Prepared, host: &Host) -> String {
    let mut s = String::new();
    let plan = &prep.plan;
    out_line!(
        s,
        "cordon: profile {} on Linux {} (uid {})",
        prep.policy.name,
        host.kernel,
        host.euid
    );
    out_line!(s, "cordon: command {}", prep.program.display());
    out_line!(
        s,
        "cordon: namespaces: {}",
        if plan.namespaces() {
            format!("on ({})", plan.ns_reason)
        } else {
            format!("off ({})", plan.ns_reason)
        }
    );
    out_line!(
        s,
        "cordon: landlock: {} ({} rules{})",
        host.landlock,
        plan.fs_rules.len(),
        if plan.tcp.is_some() {
            ", TCP ports"
        } else {
            ""
        }
    );
    out_line!(
        s,
        "cordon: seccomp: {} rules; network {}",
        prep.policy.syscalls.rules.len(),
        net_name(&prep.policy)
    );
    out_line!(
        s,
        "cordon: unix sockets: {}",
        if host.seccomp && host.user_notif {
            format!(
                "connect and send mediated: sockets made inside, and {} unix_connect entr{}",
                prep.policy.unix.allowed.len(),
                if prep.policy.unix.allowed.len() == 1 {
                    "y"
                } else {
                    "ies"
                }
            )
        } else {
            "NOT mediated (no seccomp user notification)".to_string()
        }
    );
    if let Some(m) = &plan.mounts {
        let runtime: Vec<String> = m
            .masks
            .iter()
            .filter(|(p, _)| p.starts_with("/run/user"))
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !runtime.is_empty() {
            out_line!(
                s,
                "cordon: masked runtime directory: {}",
                runtime.join(", ")
            );
        }
    }
    out_line!(s, "cordon: processes: {}", prep.processes.describe());
    out_line!(s, "cordon: memory: {}", prep.memory.describe());
    for n in &prep.limit_notes {
        out_line!(s, "cordon: {n}");
    }
    for g in &plan.gaps {
        out_line!(s, "cordon: not covered in this mode: {g}");
    }
    s
}

fn net_name(p: &Policy) -> String {
    match &p.net {
        crate::policy::Network::Off => "off".into(),
        crate::policy::Network::On => "on".into(),
        crate::policy::Network::Filtered { connect, bind, .. } => {
            format!("filtered (connect {connect:?}, bind {bind:?})")
        }
        crate::policy::Network::Proxy(r) => {
            let list = |v: &[crate::netname::Pattern]| {
                v.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "proxy (allow [{}], deny [{}], ports {:?})",
                list(&r.allow),
                list(&r.deny),
                r.ports
            )
        }
    }
}
