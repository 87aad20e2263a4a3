//! The subcommands: thin glue from the CLI to the pipeline
//! (profile -> policy -> prepared -> spawn -> supervise) and to the reports
//! that `profile show` and `doctor` print.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Instant;

use crate::cli::{NetFlag, ProfileArgs, ProfileCommand, RunArgs};
use crate::error::{Error, Result};
use crate::plan::{DiskLister, Plan, Why, abi};
use crate::policy::{Missing, Policy};
use crate::probe::{Host, Landlock, Userns};
use crate::profile::{self, NetMode, NsMode, Overrides, Profile, ProfileRef};
use crate::sandbox::{self, Options, Prepared, Signals, SpawnError};
use crate::supervise;
use crate::vars::Context;

/// Print a warning of cordon's own on stderr.
pub fn warn(msg: &str) {
    eprintln!("cordon: warning: {msg}");
}

fn load(r: &str, overrides: &Overrides, workspace: Option<PathBuf>) -> Result<(Profile, Context)> {
    let ctx = Context::from_process(workspace)?;
    let mut p = Profile::load(&ProfileRef::parse(r))?;
    p.apply_overrides(overrides, &ctx.cwd);
    Ok((p, ctx))
}

/// `cordon run`.
pub fn run(args: RunArgs, inherited: &[RawFd]) -> Result<u8> {
    let started = Instant::now();
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
        report: _,
        audit_log: _,
        trace: _,
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
    let (p, ctx) = load(&profile, &overrides, workspace)?;
    let policy = Policy::new(&p, &ctx, Missing::Skip)?;
    let host = Host::probe();
    let opts = Options { best_effort };
    // Blocked before the fork so that no signal is lost; the payload unblocks them.
    let signals = Signals::block()?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| Error::Launch {
        step: "becoming a child subreaper",
        source: e.into(),
    })?;
    let mut prep = Prepared::new(policy, &host, &command, opts, inherited, None)?;
    let mut retried = false;
    let spawned = loop {
        if !quiet {
            for w in &prep.warnings {
                warn(w);
            }
        }
        if verbose || dry_run {
            eprint!("{}", describe_run(&prep, &host));
        }
        if dry_run {
            return Ok(0);
        }
        match sandbox::spawn(&mut prep, &signals) {
            Ok(s) => break s,
            Err(SpawnError::NsUnavailable(why))
                if prep.policy.namespaces == NsMode::Auto && !retried =>
            {
                retried = true;
                if verbose {
                    warn(&format!(
                        "namespaces unavailable ({why}); running with Landlock and seccomp alone"
                    ));
                }
                prep = Prepared::new(prep.policy, &host, &command, opts, inherited, Some(&why))?;
            }
            Err(SpawnError::NsUnavailable(why)) => {
                return Err(Error::Unenforceable {
                    missing: format!("namespaces are unavailable: {why}"),
                });
            }
            Err(SpawnError::Failed(e)) => return Err(e),
        }
    };
    let outcome = supervise::supervise(spawned, &signals, prep.timeout(), started);
    crate::limits::cleanup(&prep.processes);
    Ok(outcome.code())
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
            let policy = Policy::new(&p, &ctx, Missing::Skip)?;
            let host = Host::probe();
            let plan = Plan::new(&policy, &host, None, &DiskLister);
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
    let _ = writeln!(
        out,
        "user namespaces:  {}",
        match &host.userns {
            Userns::Available =>
                "available (mount view, PID namespace, network namespace)".to_string(),
            Userns::Unavailable(why) => format!("unavailable: {why}"),
        }
    );
    let _ = writeln!(out, "no_new_privs:     always set");
    let _ = writeln!(out, "\nbuilt-in profiles (workspace: current directory):");
    let mut default_ok = false;
    for (name, _) in profile::BUILTINS {
        let verdict = match builtin_verdict(name, &host) {
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
    Ok(Plan::new(&policy, host, None, &DiskLister))
}

/// `cordon replay`.
pub fn replay(_args: crate::cli::ReplayArgs) -> Result<u8> {
    Err(Error::Usage("replay is not implemented yet".into()))
}
