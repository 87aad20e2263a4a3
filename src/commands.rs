//! The subcommands: thin glue from the CLI to the pipeline
//! (profile -> policy -> prepared -> spawn -> supervise) and to the reports
//! that `profile show` and `doctor` print.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::cli::{NetFlag, ProfileArgs, ProfileCommand, RunArgs};
use crate::error::{Error, Result};
use crate::monitor::{CaptureOptions, Monitor};
use crate::plan::{DiskLister, Plan, Why, abi};
use crate::policy::{Missing, Policy};
use crate::probe::{Host, Landlock, Userns};
use crate::profile::{self, NetMode, NsMode, Overrides, Profile, ProfileRef};
use crate::report::{self, AuditLine, AuditLog, Report};
use crate::sandbox::{self, Options, Prepared, Signals, SpawnError};
use crate::supervise;
use crate::vars::Context;

/// Print a warning of cordon's own on stderr.
pub fn warn(msg: &str) {
    eprintln!("cordon: warning: {msg}");
}

/// Load a profile by name or path, with `overrides` layered on, and the run's context.
pub(crate) fn load(
    r: &str,
    overrides: &Overrides,
    workspace: Option<PathBuf>,
) -> Result<(Profile, Context)> {
    let ctx = Context::from_process(workspace)?;
    let mut p = Profile::load(&ProfileRef::parse(r))?;
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
}

/// `cordon run`.
pub fn run(args: RunArgs, inherited: &[RawFd]) -> Result<u8> {
    let RunArgs {
        profile: ProfileArgs { profile, workspace },
        best_effort,
        allow_read,
        allow_write,
        allow_exec,
        net,
        verbose,
        quiet,
        dry_run,
        report,
        audit_log,
        trace,
        no_capture,
        command,
    } = args;
    let overrides = Overrides {
        read: allow_read,
        write: allow_write,
        exec: allow_exec,
        net: net.map(|n| match n {
            NetFlag::Off => NetMode::Off,
            NetFlag::On => NetMode::On,
        }),
    };
    let (profile, ctx) = load(&profile, &overrides, workspace)?;
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
        },
        inherited,
    )
}

/// Launch, supervise, report. Returns the contract's exit code.
pub fn execute(l: Launch, inherited: &[RawFd]) -> Result<u8> {
    let started = Instant::now();
    let started_at = SystemTime::now();
    let policy = Policy::new(&l.profile, &l.ctx, Missing::Skip)?;
    // Fail closed before anything runs: a governed run that cannot be logged does not start.
    let audit_path = l.audit_log.clone().or_else(|| policy.audit_log.clone());
    let mut audit_log = audit_path.as_deref().map(AuditLog::open).transpose()?;
    if let Some(r) = &l.report {
        report::check_writable(r)?;
    }
    let host = Host::probe();
    let opts = Options {
        best_effort: l.best_effort,
        capture: l.capture || l.trace,
        trace: l.trace,
    };
    // Blocked before the fork so that no signal is lost; the payload unblocks them.
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
    let mut prep = Prepared::new(policy, &host, &l.command, opts, inherited, None)?;
    prep.attach_capture(end);
    let mut retried = false;
    let spawned = loop {
        if !l.quiet {
            for w in &prep.warnings {
                warn(w);
            }
        }
        if l.verbose || l.dry_run {
            eprint!("{}", describe_run(&prep, &host));
        }
        if l.dry_run {
            prep.release_cgroups();
            return Ok(0);
        }
        match sandbox::spawn(&mut prep, &signals, &mut monitor) {
            Ok(s) => {
                monitor.adopt(s.pid.as_raw() as u32);
                break s;
            }
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
                prep = Prepared::new(prep.policy, &host, &l.command, opts, inherited, Some(&why))?;
                prep.attach_capture(end);
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
    let outcome = supervise::supervise(
        spawned,
        &signals,
        prep.timeout(),
        started,
        &mut monitor,
        &prep.policy,
        &prep.plan,
    );
    prep.release_cgroups();
    monitor.finish(&prep.policy, &prep.plan);

    let mut failed = None;
    // The full report only when something keeps it: building it (the resolved
    // profile as JSON, its hash) is a measurable share of a short run.
    if l.report.is_some() || audit_log.is_some() {
        let rep = build_report(&l, &prep, &host, &monitor, &outcome, started_at);
        if let Some(path) = &l.report {
            if let Err(e) = rep.write(path) {
                failed = Some(e);
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
                report: l.report.as_ref().map(|p| {
                    std::path::absolute(p)
                        .unwrap_or_else(|_| p.clone())
                        .display()
                        .to_string()
                }),
            };
            if let Err(e) = log.append(&line) {
                failed.get_or_insert(e);
            }
        }
    }
    if !l.quiet {
        eprint!(
            "{}",
            report::summary(&monitor.denials, monitor.dropped, l.report.as_deref())
        );
    }
    if let Some(e) = failed {
        // The command ran and its status stands; the record of it failed.
        eprintln!("cordon: {}", crate::error::chain(&e));
    }
    // The launcher exits as soon as this returns, and none of these has a Drop
    // with an effect beyond memory and descriptors, which the exit releases at
    // once; dropping them piece by piece cost ~70 µs of every run.
    std::mem::forget((l, prep, monitor, host));
    Ok(outcome.code())
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
    if executed.is_empty() {
        // Without capture, the one command we started ourselves.
        executed.push(report::Executed {
            pid: 0,
            argv: argv_strings(&l.command),
            at_ms: 0,
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
        },
    }
}

/// What a run will enforce, for --verbose and --dry-run.
fn describe_run(prep: &Prepared, host: &Host) -> String {
    let mut s = String::new();
    let plan = &prep.plan;
    let _ = writeln!(
        s,
        "cordon: profile {} on Linux {} (uid {})",
        prep.policy.name, host.kernel, host.euid
    );
    let _ = writeln!(s, "cordon: command {}", prep.program.display());
    let _ = writeln!(
        s,
        "cordon: namespaces: {}",
        if plan.namespaces() {
            format!("on ({})", plan.ns_reason)
        } else {
            format!("off ({})", plan.ns_reason)
        }
    );
    let _ = writeln!(
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
    let _ = writeln!(
        s,
        "cordon: seccomp: {} rules; network {}",
        prep.policy.syscalls.rules.len(),
        net_name(&prep.policy)
    );
    let _ = writeln!(s, "cordon: processes: {}", prep.processes.describe());
    let _ = writeln!(s, "cordon: memory: {}", prep.memory.describe());
    for n in &prep.limit_notes {
        let _ = writeln!(s, "cordon: {n}");
    }
    for g in &plan.gaps {
        let _ = writeln!(s, "cordon: not covered in this mode: {g}");
    }
    s
}

fn net_name(p: &Policy) -> String {
    match &p.net {
        crate::policy::Network::Off => "off".into(),
        crate::policy::Network::On => "on".into(),
        crate::policy::Network::Filtered { connect, bind } => {
            format!("filtered (connect {connect:?}, bind {bind:?})")
        }
    }
}

/// `cordon profile ...`.
pub fn profile(cmd: ProfileCommand) -> Result<u8> {
    match cmd {
        ProfileCommand::List => {
            for (name, _) in profile::BUILTINS {
                let p = Profile::load(&ProfileRef::Builtin(name.to_string()))?;
                println!("{name:<16} {}", p.description.unwrap_or_default());
            }
            Ok(0)
        }
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
            println!("{}: ok", p.name);
            Ok(0)
        }
        ProfileCommand::Show {
            profile,
            workspace,
            json,
        } => {
            let (p, ctx) = load(&profile, &Overrides::default(), workspace)?;
            let mut policy = Policy::new(&p, &ctx, Missing::Skip)?;
            let host = Host::probe();
            let plan = Plan::new(&policy, &host, None, &DiskLister);
            policy.syscalls.set_isolation(plan.isolation());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&show_json(&policy, &plan)).unwrap_or_default()
                );
            } else {
                print!("{}", show_text(&policy, &plan));
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
        "landlock_rules": rules,
        "syscalls": policy.syscalls.describe(),
        "namespaces": plan.namespaces(),
        "missing": plan.missing.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "skipped": policy.fs.skipped.iter().map(|(i, _)| i.value.clone()).collect::<Vec<_>>(),
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
    }
}

fn show_text(policy: &Policy, plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# profile {} ({}), workspace {}",
        policy.name,
        policy.source,
        policy.workspace.display()
    );
    let _ = writeln!(s, "# resolved: extends merged, variables expanded\n");
    s.push_str(&policy.resolved.to_toml());
    let _ = writeln!(s, "\n# ---- what this kernel enforces ----");
    let _ = writeln!(
        s,
        "# namespaces: {} ({})",
        if plan.namespaces() { "on" } else { "off" },
        plan.ns_reason
    );
    if let Some(m) = &plan.mounts {
        for (p, noexec) in &m.writable {
            let _ = writeln!(
                s,
                "# writable root {}{}",
                p.display(),
                if *noexec { " (noexec)" } else { "" }
            );
        }
        for p in &m.read_only {
            let _ = writeln!(s, "# read-only bind {}", p.display());
        }
        for (p, _) in &m.masks {
            let _ = writeln!(s, "# deny: masked {}", p.display());
        }
    }
    for e in &plan.expansions {
        let _ = writeln!(
            s,
            "# deny: grant {} ({}) expanded around {}",
            e.grant.display(),
            e.grant_origin,
            e.carve.display()
        );
    }
    for (g, c) in &plan.dropped {
        let _ = writeln!(
            s,
            "# deny: grant {} ({}) dropped, inside denied {}",
            g.path.display(),
            g.origin,
            c.display()
        );
    }
    for c in policy.fs.deny.iter().filter(|c| !c.exists) {
        let _ = writeln!(
            s,
            "# deny: {} does not exist here ({})",
            c.path.display(),
            c.origin
        );
    }
    for (i, warn) in &policy.fs.skipped {
        let _ = writeln!(
            s,
            "# skipped {} ({}): does not exist{}",
            i.value.display(),
            i.origin,
            if *warn { "" } else { ", optional" }
        );
    }
    let _ = writeln!(s, "# landlock rules: {}", plan.fs_rules.len());
    for r in &plan.fs_rules {
        let _ = writeln!(s, "#   {} {} ({})", r.access, r.path.display(), why(&r.why));
    }
    let _ = writeln!(s, "# seccomp: refused syscalls");
    for line in policy.syscalls.describe() {
        let _ = writeln!(s, "#   {line}");
    }
    for m in &plan.missing {
        let _ = writeln!(s, "# MISSING on this kernel: {m}");
    }
    for w in &plan.warnings {
        let _ = writeln!(s, "# not enforced: {w}");
    }
    for g in &plan.gaps {
        let _ = writeln!(s, "# not covered in this mode: {g}");
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
    if matches!(host.landlock, Landlock::Abi(_)) && !default_ok {
        let _ = writeln!(
            out,
            "\nthe default profile cannot be fully enforced here; run with --best-effort to accept the gaps"
        );
    }
    print!("{out}");
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

/// `cordon replay`: the recorded command under the recorded resolved policy
/// (not whatever the profile file says today), with the recorded workspace
/// remapped to `--workspace` so a CI violation reproduces on a laptop.
pub fn replay(args: crate::cli::ReplayArgs, inherited: &[RawFd]) -> Result<u8> {
    let rep = Report::read(&args.report)?;
    let recorded_ws = PathBuf::from(&rep.workspace);
    let new_ws = match &args.workspace {
        Some(w) => std::fs::canonicalize(w).map_err(|source| Error::Workspace {
            path: w.clone(),
            source,
        })?,
        None => recorded_ws.clone(),
    };
    let remap = |s: &str| -> String {
        match Path::new(s).strip_prefix(&recorded_ws) {
            Ok(rest) if rest.as_os_str().is_empty() => new_ws.display().to_string(),
            Ok(rest) => new_ws.join(rest).display().to_string(),
            Err(_) => s.to_string(),
        }
    };
    // The resolved profile is loaded through the same parser as any profile.
    let mut resolved = rep.profile.resolved.clone();
    remap_paths(&mut resolved, &|s| {
        crate::vars::escape(&remap(&crate::vars::unescape(s)))
    });
    let text = toml::to_string(&resolved).map_err(|e| {
        Error::Usage(format!(
            "{}: the recorded profile cannot be read back: {e}",
            args.report.display()
        ))
    })?;
    let name = format!(
        "{} (recorded profile {})",
        args.report.display(),
        rep.profile.name
    );
    let mut profile = Profile::from_text(&name, &text, None)?;
    profile.restore_origins(&rep.profile.origins);
    profile.name = rep.profile.name.clone();
    profile.source = rep.profile.source.clone();
    let cwd = PathBuf::from(remap(&rep.cwd));
    let cwd = if cwd.is_dir() { cwd } else { new_ws.clone() };
    std::env::set_current_dir(&cwd).map_err(|source| Error::Workspace {
        path: cwd.clone(),
        source,
    })?;
    let ctx = Context::from_process(Some(new_ws.clone()))?;
    let command: Vec<OsString> = rep
        .command
        .iter()
        .map(|a| OsString::from(remap(a)))
        .collect();
    if command.is_empty() {
        return Err(Error::Usage(format!(
            "{}: the report records no command",
            args.report.display()
        )));
    }
    if args.dry_run {
        println!(
            "# replay of {} ({} denials recorded)",
            args.report.display(),
            rep.denials.len()
        );
        println!(
            "# workspace {} -> {}",
            recorded_ws.display(),
            new_ws.display()
        );
        println!("# cwd {}", cwd.display());
        println!(
            "# command {}",
            command
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut policy = Policy::new(&profile, &ctx, Missing::Skip)?;
        let plan = Plan::new(&policy, &Host::probe(), None, &DiskLister);
        policy.syscalls.set_isolation(plan.isolation());
        print!("{}", show_text(&policy, &plan));
        return Ok(0);
    }
    execute(
        Launch {
            profile,
            ctx,
            command,
            best_effort: false,
            verbose: false,
            quiet: args.quiet,
            dry_run: false,
            report: args.report_to,
            audit_log: None,
            trace: args.trace,
            capture: true,
        },
        inherited,
    )
}

/// Apply `f` to every path-like string of a resolved profile (JSON form):
/// the file-system lists and `[audit] log`.
fn remap_paths(v: &mut serde_json::Value, f: &dyn Fn(&str) -> String) {
    if let Some(fs) = v.get_mut("filesystem").and_then(|f| f.as_object_mut()) {
        for list in fs.values_mut().filter_map(|l| l.as_array_mut()) {
            for e in list {
                match e {
                    serde_json::Value::String(s) => *s = f(s),
                    serde_json::Value::Object(o) => {
                        if let Some(serde_json::Value::String(s)) = o.get_mut("path") {
                            *s = f(s);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(serde_json::Value::String(s)) = v.pointer_mut("/audit/log") {
        *s = f(s);
    }
}
