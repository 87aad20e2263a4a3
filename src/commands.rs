//! The subcommands: thin glue from the CLI to the pipeline
//! (profile -> policy -> prepared -> spawn -> supervise) and to the reports
//! that `profile show` and `doctor` print.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::cli::{
    NetFlag, ProfileArgs, ProfileCommand, ReportCommand, RunArgs, RunOptions, ShellArgs,
};
use crate::error::{Error, Result};
use crate::monitor::{CaptureOptions, Monitor};
use crate::outfile::{Own, OwnFile};
use crate::plan::{DiskLister, Plan, Why, abi};
use crate::policy::{Carve, Kind, Missing, Policy};
use crate::probe::{Host, Landlock, Userns};
use crate::profile::{self, NetMode, NsMode, Overrides, Profile, ProfileRef};
use crate::report::{self, AuditLine, AuditLog, Report};
use crate::sandbox::{self, Options, Prepared, Signals, SpawnError};
use crate::supervise;
use crate::vars::Context;

/// Print a warning of cordon's own on stderr.
pub fn warn(msg: &str) {
    crate::term::eprintln_line(&format!("cordon: warning: {msg}"));
}

/// Load a profile by name or path, with `overrides` layered on, and the run's context.
pub(crate) fn load(
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

/// `cordon run`.
pub fn run(args: RunArgs, inherited: &[RawFd]) -> Result<u8> {
    launch(args, Vec::new(), inherited)
}

/// `cordon shell`: `run` of an interactive shell whose prompt starts with
/// "(cordon:PROFILE)": PS1 for every shell, and PROMPT_COMMAND, which puts
/// the marker back when bash's startup files set a PS1 of their own.
pub fn shell(args: ShellArgs, inherited: &[RawFd]) -> Result<u8> {
    let program = args.shell.unwrap_or_else(|| {
        pick_shell(std::env::var_os("SHELL").as_deref(), &|p: &Path| {
            p.is_file()
        })
    });
    let marker = format!("(cordon:{})", shell_label(&args.options.profile.profile));
    let set = vec![
        (
            "CORDON_SHELL".to_string(),
            args.options.profile.profile.clone(),
        ),
        ("PS1".to_string(), format!("{marker} \\w \\$ ")),
        (
            "PROMPT_COMMAND".to_string(),
            format!("case \"$PS1\" in \"{marker}\"*) ;; *) PS1=\"{marker} $PS1\" ;; esac"),
        ),
    ];
    let run = RunArgs {
        options: args.options,
        command: vec![program.into_os_string(), "-i".into()],
    };
    launch(run, set, inherited)
}

/// The shell `cordon shell` runs: `$SHELL` when it names a shell that exists
/// (not nologin or false), else bash, else sh.
fn pick_shell(env: Option<&std::ffi::OsStr>, exists: &dyn Fn(&Path) -> bool) -> PathBuf {
    const SHELLS: &[&str] = &[
        "bash", "zsh", "fish", "sh", "dash", "ksh", "mksh", "tcsh", "csh",
    ];
    if let Some(s) = env.map(Path::new) {
        let named = s
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| SHELLS.contains(&n));
        if s.is_absolute() && named && exists(s) {
            return s.to_path_buf();
        }
    }
    ["/bin/bash", "/usr/bin/bash"]
        .into_iter()
        .map(Path::new)
        .find(|p| exists(p))
        .unwrap_or(Path::new("/bin/sh"))
        .to_path_buf()
}

/// A profile as the prompt shows it: a built-in's name, a file's stem.
fn shell_label(profile: &str) -> String {
    let shown = if profile.contains('/') || profile.ends_with(".toml") {
        Path::new(profile)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| profile.to_string())
    } else {
        profile.to_string()
    };
    // Printed by the shell in every prompt: nothing a terminal or a shell
    // would act on, and no bidirectional or invisible formatting characters
    // (they would reorder or hide what the prompt shows).
    let format = |c: char| matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}');
    shown
        .chars()
        .map(|c| {
            if c.is_control() || format(c) || c == '"' || c == '$' || c == '`' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `cordon completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Result<u8> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, "cordon", &mut text);
    print_out(&text, "writing the completion script")
}

/// `text` to stdout; a reader that went away early is not an error.
fn print_out(text: &[u8], step: &'static str) -> Result<u8> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::Launch { step, source: e })
        }
        _ => Ok(0),
    }
}

/// `cordon man`.
pub fn man() -> Result<u8> {
    use clap::CommandFactory;
    let mut text = Vec::new();
    clap_mangen::Man::new(crate::cli::Cli::command())
        .render(&mut text)
        .map_err(|e| Error::Launch {
            step: "writing the manual page",
            source: e,
        })?;
    print_out(&text, "writing the manual page")
}

/// `run`, with `set` added to the profile's `[env] set` (cordon shell's prompt).
fn launch(args: RunArgs, set: Vec<(String, String)>, inherited: &[RawFd]) -> Result<u8> {
    let RunArgs {
        options:
            RunOptions {
                profile: ProfileArgs { profile, workspace },
                best_effort,
                allow_read,
                allow_write,
                allow_exec,
                net,
                allow_domain,
                verbose,
                quiet,
                dry_run,
                report,
                audit_log,
                trace,
                no_capture,
                no_changes,
                allow_unsafe_workspace,
            },
        command,
    } = args;
    let overrides = Overrides {
        set,
        ..overrides(allow_read, allow_write, allow_exec, net, allow_domain)
    };
    crate::timing::mark("arguments");
    let (profile, ctx) = load(&profile, &overrides, workspace)?;
    crate::timing::mark("profile");
    execute(
        Launch {
            profile,
            ctx,
            command,
            best_effort,
            verbose,
            quiet,
            dry_run,
            report,
            audit_log,
            trace,
            capture: !no_capture,
            changes: !no_capture && !no_changes,
            allow_unsafe_workspace,
            sign_report: true,
            keep_report: false,
            print_errors: true,
            session: None,
        },
        inherited,
    )
}

/// The profile's last layer from `run`'s `--allow-*` and `--net` flags.
pub(crate) fn overrides(
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    exec: Vec<PathBuf>,
    net: Option<NetFlag>,
    domains: Vec<String>,
) -> Overrides {
    Overrides {
        read,
        write,
        exec,
        net: net.map(|n| match n {
            NetFlag::Off => NetMode::Off,
            NetFlag::On => NetMode::On,
            NetFlag::Proxy => NetMode::Proxy,
        }),
        domains,
        set: Vec::new(),
    }
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
        // A payload that can write where the report key would live could plant
        // one and so sign forged reports: make the key first, then the policy
        // again, so that its deny masks a path that exists.
        let writable = policy
            .fs
            .grants
            .iter()
            .filter(|g| g.access.can_write())
            .map(|g| g.path.as_path());
        match crate::trust::guard_key_location(writable) {
            Ok(false) => {}
            Ok(true) => policy = policy_in(&l, run_tmp.as_ref())?,
            Err(e) if !l.quiet => warn(&e.to_string()),
            Err(_) => {}
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
    let mut policy = policy_in(l, None)?;
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
        "none"
    } else if plan.missing.is_empty() {
        "full"
    } else {
        "partial"
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
            landlock: landlock.into(),
            seccomp: host.seccomp,
            namespaces: if plan.namespaces() { "on" } else { "off" }.into(),
            missing,
        },
        exit_code: outcome.code() as i32,
        signal: outcome.signal,
        timed_out: outcome.timed_out,
        executed,
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

/// `cordon profile ...`.
pub fn profile(cmd: ProfileCommand) -> Result<u8> {
    match cmd {
        ProfileCommand::List => {
            for (name, _) in profile::BUILTINS {
                let p = Profile::load(&ProfileRef::Builtin(name.to_string()))?;
                crate::term::print(&format!(
                    "{name:<16} {}\n",
                    crate::term::field(&p.description.unwrap_or_default())
                ));
            }
            Ok(0)
        }
        ProfileCommand::Init { output } => match output {
            None => print_out(profile::STARTER.as_bytes(), "writing the starter profile"),
            Some(path) => {
                use std::io::Write;
                // Never over an existing file (or through a link planted there).
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .and_then(|mut f| f.write_all(profile::STARTER.as_bytes()))
                    .map_err(|e| Error::Output {
                        what: "writing the starter profile",
                        path: path.clone(),
                        source: e,
                    })?;
                Ok(0)
            }
        },
        ProfileCommand::Check {
            profile,
            strict,
            workspace,
        } => {
            let (p, ctx) = load(&profile, &Overrides::default(), workspace)?;
            let policy = Policy::new(
                &p,
                &ctx,
                if strict {
                    Missing::Error
                } else {
                    Missing::Skip
                },
            )?;
            for w in policy.warnings() {
                warn(&w);
            }
            crate::term::print(&format!("{}: ok\n", crate::term::field(&p.name)));
            Ok(0)
        }
        ProfileCommand::Show {
            profile,
            workspace,
            json,
        } => {
            let (p, ctx) = load(&profile, &Overrides::default(), workspace)?;
            let mut policy = Policy::new(&p, &ctx, Missing::Skip)?;
            let guard = crate::guard::Guard::apply(&mut policy, crate::guard::Share::Look);
            let host = Host::probe();
            let plan = Plan::new(&policy, &host, None, &DiskLister);
            policy.syscalls.set_isolation(plan.isolation());
            if json {
                let mut v = show_json(&policy, &plan);
                v["guard"] = guard_json(guard.as_ref());
                v["repo_local"] = serde_json::json!(p.repo_local);
                println!("{}", crate::term::json_pretty(&v).unwrap_or_default());
            } else {
                if let Some(r) = &p.repo_local {
                    crate::term::print(&format!(
                        "# repo-local policy applied (it may only tighten): {}\n",
                        crate::term::field(r)
                    ));
                }
                crate::term::print(&show_text(&policy, &plan));
                crate::term::print(&guard_text(guard.as_ref(), plan.namespaces()));
            }
            Ok(0)
        }
    }
}

fn show_json(policy: &Policy, plan: &Plan) -> serde_json::Value {
    let rules: Vec<serde_json::Value> = plan
        .fs_rules
        .iter()
        .map(|r| serde_json::json!({"path": r.path, "access": r.access.to_string(), "why": why(&r.why)}))
        .collect();
    serde_json::json!({
        "name": policy.name,
        "source": policy.source,
        "resolved": policy.resolved,
        "workspace": policy.workspace,
        "deny": policy.fs.deny.iter().map(|c| serde_json::json!({"path": c.path, "exists": c.exists, "origin": c.origin.to_string()})).collect::<Vec<_>>(),
        "expanded": plan.expansions.iter().map(|e| serde_json::json!({"grant": e.grant, "origin": e.grant_origin.to_string(), "around": e.carve})).collect::<Vec<_>>(),
        "masked": plan.mounts.as_ref().map(|m| m.masks.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "read_only_binds": plan.mounts.as_ref().map(|m| m.read_only.clone()).unwrap_or_default(),
        "private_tmpfs": plan.mounts.as_ref().map(|m| m.scratch.iter().map(|t| serde_json::json!({"path": t.path, "writable": t.writable, "noexec": t.noexec, "kept": t.keep.iter().map(|k| k.path.clone()).collect::<Vec<_>>()})).collect::<Vec<_>>()).unwrap_or_default(),
        "devices": crate::scratch::REACHABLE,
        "terminal": plan.terminal,
        "landlock_rules": rules,
        "syscalls": policy.syscalls.describe(),
        "unix_connect": policy.unix.allowed.iter().map(|a| serde_json::json!({"path": a.written, "origin": a.origin.to_string()})).collect::<Vec<_>>(),
        "namespaces": plan.namespaces(),
        "missing": plan.missing.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "skipped": policy.fs.skipped.iter().map(|(i, _)| i.value.clone()).collect::<Vec<_>>(),
    })
}

/// The guard's list and what it protects in this workspace, for `profile show`.
fn guard_text(guard: Option<&crate::guard::Guard>, ns: bool) -> String {
    let mut s =
        String::from("\n# ---- guard: files that make the host's next command run code ----\n");
    let Some(g) = guard else {
        s.push_str("# guard: off (the workspace is not writable)\n");
        return s;
    };
    s.push_str(&crate::guard::describe());
    s.push_str(&format!(
        "# guard: kept at launch and put back when the run ends{}\n",
        if ns {
            "; those that exist at the top are also bound read-only"
        } else {
            ""
        }
    ));
    for p in g.protected() {
        s.push_str(&format!("# protected {}\n", p.path.display()));
    }
    s
}

fn guard_json(guard: Option<&crate::guard::Guard>) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = crate::guard::ENTRIES
        .iter()
        .map(|e| serde_json::json!({"name": e.name, "dir": e.dir, "any_directory": e.depth == crate::guard::Depth::Any, "tool": e.tool, "why": e.why}))
        .chain(crate::guard::GIT_ENTRIES.iter().map(|e| {
            serde_json::json!({"name": format!("<git dir>/{}", e.name), "dir": e.dir, "any_directory": true, "tool": "git", "why": e.why})
        }))
        .collect();
    serde_json::json!({
        "on": guard.is_some(),
        "entries": entries,
        "protected": guard.map(|g| g.protected().map(|p| serde_json::json!({"path": p.path, "rule": p.rule()})).collect::<Vec<_>>()).unwrap_or_default(),
    })
}

fn why(w: &Why) -> String {
    match w {
        Why::Grant(o) => format!("grant at {o}"),
        Why::Sibling { grant, carve } => {
            format!("grant at {grant}, expanded around {}", carve.display())
        }
        Why::Ancestor { grant, carve } => format!(
            "ancestor of {} (grant at {grant}): listing only",
            carve.display()
        ),
        Why::Private { grant, note } => format!("{note} (grant at {grant})"),
    }
}

/// The resolved profile as TOML for `profile show`. TOML writes a string with
/// a line feed as a multi-line string, whose lines a reader cannot tell from
/// the profile's own: when any string holds a control character, each such
/// string is shown escaped (`term`) instead, keys then in sorted order.
fn shown_toml(p: &Profile) -> String {
    fn clean(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => {
                let e = crate::term::field(s);
                let changed = e != s.as_str();
                *s = e.into_owned();
                changed
            }
            serde_json::Value::Array(a) => a.iter_mut().fold(false, |c, v| clean(v) | c),
            serde_json::Value::Object(o) => {
                o.retain(|_, v| !v.is_null());
                o.values_mut().fold(false, |c, v| clean(v) | c)
            }
            _ => false,
        }
    }
    let mut v = serde_json::to_value(p).unwrap_or_default();
    if !clean(&mut v) {
        return p.to_toml();
    }
    toml::to_string(&v).unwrap_or_default()
}

pub(crate) fn show_text(policy: &Policy, plan: &Plan) -> String {
    let mut s = String::new();
    out_line!(
        s,
        "# profile {} ({}), workspace {}",
        policy.name,
        policy.source,
        policy.workspace.display()
    );
    s.push_str("# resolved: extends merged, variables expanded\n\n");
    s.push_str(&shown_toml(&policy.resolved));
    s.push_str("\n# ---- what this kernel enforces ----\n");
    out_line!(
        s,
        "# namespaces: {} ({})",
        if plan.namespaces() { "on" } else { "off" },
        plan.ns_reason
    );
    if let Some(m) = &plan.mounts {
        for (p, noexec) in &m.writable {
            out_line!(
                s,
                "# writable root {}{}",
                p.display(),
                if *noexec { " (noexec)" } else { "" }
            );
        }
        for p in &m.read_only {
            out_line!(s, "# read-only bind {}", p.display());
        }
        for (p, _) in &m.masks {
            out_line!(s, "# deny: masked {}", p.display());
        }
        for t in &m.scratch {
            let keep: Vec<String> = t
                .keep
                .iter()
                .map(|k| k.path.display().to_string())
                .collect();
            let _ = writeln!(
                s,
                "# private tmpfs {} ({}{}){}",
                t.path.display(),
                if t.writable { "writable" } else { "read-only" },
                if t.noexec { ", noexec" } else { "" },
                if keep.is_empty() {
                    String::new()
                } else {
                    format!(", host paths kept: {}", keep.join(", "))
                }
            );
        }
        let _ = writeln!(
            s,
            "# fresh /dev: {}; a new devpts instance; private /dev/shm ({})",
            crate::scratch::REACHABLE,
            if m.dev.shm_writable {
                "writable"
            } else {
                "read-only"
            }
        );
    }
    let _ = writeln!(
        s,
        "# unix sockets: connect and send reach pathname sockets made inside the sandbox (writable root, created during the run){}",
        if policy.unix.allowed.is_empty() {
            " only"
        } else {
            ", and:"
        }
    );
    for a in &policy.unix.allowed {
        let _ = writeln!(s, "#   unix_connect {} ({})", a.written, a.origin);
    }
    for e in &plan.expansions {
        out_line!(
            s,
            "# deny: grant {} ({}) expanded around {}",
            e.grant.display(),
            e.grant_origin,
            e.carve.display()
        );
    }
    for (g, c) in &plan.dropped {
        out_line!(
            s,
            "# deny: grant {} ({}) dropped, inside denied {}",
            g.path.display(),
            g.origin,
            c.display()
        );
    }
    for c in policy.fs.deny.iter().filter(|c| !c.exists) {
        out_line!(
            s,
            "# deny: {} does not exist here ({})",
            c.path.display(),
            c.origin
        );
    }
    for (i, warn) in &policy.fs.skipped {
        out_line!(
            s,
            "# skipped {} ({}): does not exist{}",
            i.value.display(),
            i.origin,
            if *warn { "" } else { ", optional" }
        );
    }
    out_line!(s, "# landlock rules: {}", plan.fs_rules.len());
    for r in &plan.fs_rules {
        out_line!(s, "#   {} {} ({})", r.access, r.path.display(), why(&r.why));
    }
    out_line!(s, "# seccomp: refused syscalls");
    for line in policy.syscalls.describe() {
        out_line!(s, "#   {line}");
    }
    for m in &plan.missing {
        out_line!(s, "# MISSING on this kernel: {m}");
    }
    for w in &plan.warnings {
        out_line!(s, "# not enforced: {w}");
    }
    for g in &plan.gaps {
        out_line!(s, "# not covered in this mode: {g}");
    }
    s
}

/// `cordon doctor`.
pub fn doctor() -> Result<u8> {
    let host = Host::probe();
    let mut out = String::new();
    let _ = writeln!(out, "kernel:           Linux {}", host.kernel);
    let _ = writeln!(
        out,
        "uid:              {}{}",
        host.euid,
        if host.is_root() { " (root)" } else { "" }
    );
    let _ = writeln!(out, "landlock:         {}", host.landlock);
    let abi_now = host.landlock.abi();
    for (need, what) in [
        (
            1,
            "read, write, execute, create and remove files beneath granted paths",
        ),
        (abi::REFER, "rename and link across directories (refer)"),
        (abi::TRUNCATE, "truncate"),
        (abi::TCP, "TCP bind and connect by port"),
        (abi::IOCTL_DEV, "ioctl on device files"),
        (abi::SCOPES, "scopes: abstract unix sockets, signals"),
        (abi::AUDIT, "audit logging of denials"),
    ] {
        let _ = writeln!(
            out,
            "  {} ABI {need}: {what}",
            if abi_now >= need { "yes" } else { "NO " }
        );
    }
    let _ = writeln!(
        out,
        "seccomp:          {}",
        if host.seccomp {
            "filters available"
        } else {
            "UNAVAILABLE"
        }
    );
    let _ = writeln!(
        out,
        "  user notification: {}",
        if host.user_notif { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "unix sockets:     {}",
        if host.seccomp && host.user_notif {
            "connect and sends mediated by the supervisor: pathname sockets made inside the sandbox, or in [network] unix_connect (not in a nested cordon: no listener there; then namespaces mask the user's runtime directory only)"
        } else {
            "NOT mediated (no seccomp user notification): with namespaces only the masks hide host sockets; without, profiles are refused"
        }
    );
    let _ = writeln!(
        out,
        "  Landlock right: none up to ABI {} (planned: ABI {})",
        abi::TARGET,
        crate::unix_policy::LANDLOCK_UNIX_ABI
    );
    let ns = match (&host.userns, crate::probe::try_namespaces()) {
        (Userns::Available, Ok(())) => {
            "available: read-only mount view, PID namespace, network namespace when off".to_string()
        }
        (Userns::Unavailable(why), _) => {
            format!("unavailable: {why} (mode auto falls back to Landlock and seccomp)")
        }
        (_, Err(e)) => format!("unavailable: {e} (mode auto falls back to Landlock and seccomp)"),
    };
    let _ = writeln!(out, "user namespaces:  {ns}");
    let _ = writeln!(
        out,
        "capabilities:     dropped from every set; verified after dropping"
    );
    let _ = writeln!(out, "no_new_privs:     always set");
    let _ = writeln!(
        out,
        "process limit:    {}",
        if !host.is_root() {
            "RLIMIT_NPROC (counts the sandbox's own processes in its user namespace)".to_string()
        } else {
            match crate::limits::pids_cgroup_base() {
                Some(base) => format!("pids cgroup under {base} (root bypasses RLIMIT_NPROC)"),
                None => {
                    "NO writable pids cgroup: profiles with [limits] processes are refused as root"
                        .into()
                }
            }
        }
    );
    let _ = writeln!(
        out,
        "memory limit:     {}",
        match crate::limits::memory_cgroup_base() {
            Some(base) => format!(
                "memory cgroup under {} (counts shared mappings, memfds, /dev/shm)",
                base.display()
            ),
            None => "PARTIAL: RLIMIT_DATA only (no writable memory cgroup): shared mappings, memfds and /dev/shm are not counted".into(),
        }
    );
    let (m, _) = Monitor::new(
        CaptureOptions {
            notify: true,
            trace: false,
        },
        &host,
        Instant::now(),
    );
    let mut sources: Vec<String> = Vec::new();
    if host.user_notif {
        sources.push("seccomp-notify (refused syscalls, executed commands)".into());
    }
    sources.extend(
        m.sources
            .iter()
            .map(|s| format!("{s} (Landlock denial records)")),
    );
    let _ = writeln!(
        out,
        "denial capture:   {}",
        if sources.is_empty() {
            "none".into()
        } else {
            sources.join(", ")
        }
    );
    for n in &m.notes {
        let _ = writeln!(out, "  {n}");
    }
    let _ = writeln!(out, "\nbuilt-in profiles (workspace: current directory):");
    let mut default_ok = false;
    for (name, _) in profile::BUILTINS {
        let result = builtin_verdict(name, &host);
        let gaps = result.as_ref().map(|p| p.gaps.clone()).unwrap_or_default();
        let verdict = match result {
            Ok(plan) => {
                let full = plan.missing.is_empty() && plan.refuse.is_none();
                if *name == profile::DEFAULT_PROFILE {
                    default_ok = full;
                }
                let layers = format!(
                    "Landlock {}, seccomp {}, namespaces {}",
                    if plan.landlock_abi > 0 { "on" } else { "off" },
                    if host.seccomp { "on" } else { "off" },
                    if plan.namespaces() { "on" } else { "off" }
                );
                if full {
                    format!("fully enforced ({layers})")
                } else {
                    let m: Vec<String> = plan
                        .missing
                        .iter()
                        .map(|p| p.to_string())
                        .chain(plan.refuse.clone())
                        .collect();
                    format!("NOT fully enforced: {}", m.join("; "))
                }
            }
            Err(e) => format!("error: {}", crate::error::chain(&e)),
        };
        let _ = writeln!(out, "  {name:<16} {verdict}");
        for g in &gaps {
            let _ = writeln!(out, "  {:<16} {g}", "");
        }
    }
    // What the fallback mode leaves open, so nobody learns it from a run:
    // namespaces "off", or "auto" where user namespaces are refused.
    if let Ok(plan) = builtin_plan(profile::DEFAULT_PROFILE, &host, Some("namespaces off")) {
        if !plan.gaps.is_empty() {
            let _ = writeln!(
                out,
                "\nwithout namespaces ([namespaces] mode = \"off\", or where user namespaces are refused), {} leaves open:",
                profile::DEFAULT_PROFILE
            );
            for g in &plan.gaps {
                let _ = writeln!(out, "  - {g}");
            }
        }
    }
    if matches!(host.landlock, Landlock::Abi(_)) && !default_ok {
        let _ = writeln!(
            out,
            "\nthe default profile cannot be fully enforced here; run with --best-effort to accept the gaps"
        );
    }
    crate::term::print(&out);
    Ok(if default_ok { 0 } else { 1 })
}

fn builtin_verdict(name: &str, host: &Host) -> Result<Plan> {
    let (p, ctx) = load(name, &Overrides::default(), None)?;
    let policy = Policy::new(&p, &ctx, Missing::Skip)?;
    let mut plan = Plan::new(&policy, host, None, &DiskLister);
    // Built-in default limits left out here: listed with the profile.
    let lhost = crate::limits::Host::probe(host.is_root(), plan.namespaces());
    let (_, notes) = crate::limits::effective(&policy.limits, lhost);
    plan.gaps = notes;
    Ok(plan)
}

/// The plan of a built-in here; `no_ns` plans it as if namespaces had failed.
fn builtin_plan(name: &str, host: &Host, no_ns: Option<&str>) -> Result<Plan> {
    let (p, ctx) = load(name, &Overrides::default(), None)?;
    let policy = Policy::new(&p, &ctx, Missing::Skip)?;
    Ok(Plan::new(&policy, host, no_ns, &DiskLister))
}

/// `cordon report ...`.
pub fn report(cmd: ReportCommand) -> Result<u8> {
    match cmd {
        ReportCommand::Diff { report } => {
            let rep = Report::read(&report)?;
            match &rep.changes {
                Some(c) => print!("{}", c.render()),
                None => println!(
                    "no change record in {} (written without it: --no-changes, --no-capture, no seccomp user notification, or an older cordon)",
                    crate::changes::escape(&report.display().to_string())
                ),
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_is_one_that_exists_and_is_a_shell() {
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let env = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            pick_shell(env("/usr/bin/zsh").as_deref(), &all),
            Path::new("/usr/bin/zsh")
        );
        // nologin, false, a relative name or a missing file: bash.
        for s in ["/usr/sbin/nologin", "/bin/false", "zsh"] {
            assert_eq!(
                pick_shell(env(s).as_deref(), &all),
                Path::new("/bin/bash"),
                "{s}"
            );
        }
        assert_eq!(
            pick_shell(None, &|p: &Path| p == Path::new("/usr/bin/bash")),
            Path::new("/usr/bin/bash")
        );
        assert_eq!(
            pick_shell(env("/bin/zsh").as_deref(), &none),
            Path::new("/bin/sh")
        );
    }

    #[test]
    fn the_prompt_names_the_profile_and_nothing_a_terminal_acts_on() {
        assert_eq!(shell_label("workspace-write"), "workspace-write");
        assert_eq!(shell_label("./ci/agent.toml"), "agent");
        assert_eq!(shell_label("/x/a\u{1b}]52;c;$(id)`.toml"), "a_]52;c;_(id)_");
        assert_eq!(shell_label("/x/safe\u{202E}lmot.toml"), "safe_lmot");
    }
}
