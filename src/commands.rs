//! The subcommands: thin glue from the command line to the library (a
//! [`Launch`] for `run` and `shell`, the pipeline's stages for `profile show`
//! and `doctor`), and what those print.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cli::{
    ExplainArgs, NetFlag, ProfileArgs, ProfileCommand, ReportCommand, RunArgs, RunOptions,
    ShellArgs,
};
use crate::error::{Error, Result};
use crate::monitor::{CaptureOptions, Monitor};
use crate::plan::{DiskLister, Plan, Why, abi};
use crate::policy::{Missing, Policy};
use crate::probe::{Host, Landlock, Userns};
use crate::profile::{self, NetMode, Overrides, Profile, ProfileRef};
use crate::report::Report;

pub use crate::launch::{Finished, Launch, execute, execute_kept, load, warn};

macro_rules! out_line {
    ($s:expr, $($fmt:tt)*) => {
        crate::term::push_line(&mut $s, &format!($($fmt)*))
    };
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

/// `cordon explain`.
pub fn explain(args: ExplainArgs) -> Result<u8> {
    let (profile, ctx) = crate::launch::load(
        &args.profile.profile,
        &Overrides::default(),
        args.profile.workspace.clone(),
    )?;
    let mut policy = Policy::new(&profile, &ctx, Missing::Skip)?;
    let guard = crate::guard::Guard::apply(&mut policy, crate::guard::Share::Look);
    let host = Host::probe();
    let plan = Plan::new(&policy, &host, None, &DiskLister);
    policy.syscalls.set_isolation(plan.isolation());
    let abs = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            ctx.cwd.join(p)
        }
    };
    let mut exec_words: Option<(PathBuf, Vec<String>)> = None;
    let query = if let Some(p) = &args.read {
        crate::explain::Query::Fs(crate::explain::Op::Read, abs(p))
    } else if let Some(p) = &args.write {
        crate::explain::Query::Fs(crate::explain::Op::Write, abs(p))
    } else if let Some(p) = &args.exec {
        // A command line ("git push origin main"): its program, found as a
        // shell would, and its words for the approval gates.
        let words: Vec<String> = p
            .to_string_lossy()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let program = match words.first() {
            Some(w) if words.len() > 1 && !w.contains('/') => {
                crate::policy::find_program(w, &ctx).unwrap_or_else(|| PathBuf::from(w))
            }
            Some(w) if words.len() > 1 => abs(&PathBuf::from(w)),
            _ => abs(p),
        };
        exec_words = Some((program.clone(), words));
        crate::explain::Query::Fs(crate::explain::Op::Exec, program)
    } else if let Some(p) = args.connect.as_ref().filter(|p| p.starts_with('/')) {
        crate::explain::Query::ConnectUnix(PathBuf::from(p))
    } else if let Some(hp) = &args.connect {
        let (host, port) = hp
            .rsplit_once(':')
            .ok_or_else(|| Error::Usage(format!("--connect {hp}: expected HOST:PORT")))?;
        let port = port
            .parse()
            .map_err(|_| Error::Usage(format!("--connect {hp}: invalid port")))?;
        crate::explain::Query::Connect(host.trim_matches(['[', ']']).to_string(), port)
    } else if let Some(port) = args.bind {
        crate::explain::Query::Bind(port)
    } else if let Some(name) = &args.syscall {
        crate::explain::Query::Syscall(name.clone())
    } else {
        return Err(Error::Usage(
            "explain needs one of --read, --write, --exec, --connect, --bind, --syscall".into(),
        ));
    };
    let v = crate::explain::decide(&policy, &plan, &query);
    // Each line escaped whole: the path asked about and the rule's paths may
    // hold control characters, and none may reach the terminal.
    let mut out = String::new();
    let mut line = |l: String| crate::term::push_line(&mut out, &l);
    line(format!(
        "{}: {query}",
        if v.allowed { "allowed" } else { "denied" }
    ));
    line(format!("  rule: {}", v.rule));
    if let Some(e) = v.errno {
        line(format!("  errno: {e}"));
    }
    if let Some(s) = &v.suggestion {
        if !v.allowed {
            line(format!("  change: {s}"));
        }
    }
    if let (true, crate::explain::Query::Fs(crate::explain::Op::Write, path), Some(g)) =
        (v.allowed, &query, &guard)
    {
        // Allowed during the run, undone when it ends.
        if let Some(p) = g
            .protected()
            .find(|p| crate::policy::beneath(path, &p.path))
        {
            println!(
                "  guard: {} is put back when the run ends ({}); add {} to [filesystem] unprotect to keep changes",
                p.path.display(),
                p.rule(),
                crate::explain::q(&p.path)
            );
        }
    }
    for l in crate::gates::explain(&policy.gates, &query, exec_words.as_ref()) {
        line(l);
    }
    if !plan.namespaces() {
        line(format!("  namespaces: off ({})", plan.ns_reason));
    }
    crate::term::print(&out);
    Ok(if v.allowed { 0 } else { 1 })
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
