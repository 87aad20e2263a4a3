//! `cordon replay`: re-run a report's command under the policy it recorded,
//! treating the report as untrusted input.
//!
//! In order: the report's hashes are recomputed (a mismatch is refused), its
//! signature is checked against this user's report key, the recorded policy is
//! compared with the local profile of the same name (same workspace), and a
//! foreign report or a wider policy needs a yes on the terminal (or `--yes`).
//! Recorded secrets are never read: each becomes a placeholder unless
//! `--secret` names it. Owns that sequence and the prompt; the digest and key
//! live in `trust`, the comparison in `policy_diff`, the launch in `commands`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::cli::ReplayArgs;
use crate::commands::{Launch, execute, show_text, warn};
use crate::error::{Error, Result, chain};
use crate::plan::{DiskLister, Plan};
use crate::policy::{Missing, Policy};
use crate::policy_diff::{Change, Effect, compare};
use crate::probe::Host;
use crate::profile::{Item, Origin, Profile, ProfileRef, Secret, SecretSource};
use crate::report::{ProfileInfo, Report};
use crate::trust::{self, Verdict, escape_controls as esc};
use crate::vars::Context;

/// The value a recorded secret gets when the user did not pass it: obviously
/// not a secret, and named in a warning.
pub const PLACEHOLDER: &str = "cordon-replay-placeholder";

/// One `--secret` argument: NAME (as the local profile defines it) or NAME=FILE.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretArg {
    Local,
    File(PathBuf),
}

fn parse_secret_args(args: &[String], cwd: &Path) -> Result<BTreeMap<String, SecretArg>> {
    let mut out = BTreeMap::new();
    for a in args {
        let (name, arg) = match a.split_once('=') {
            Some((n, f)) if !f.is_empty() => (n, SecretArg::File(cwd.join(f))),
            Some((n, _)) => {
                return Err(Error::Usage(format!(
                    "--secret {n}=: name a file after '=', or pass --secret {n}"
                )));
            }
            None => (a.as_str(), SecretArg::Local),
        };
        if name.is_empty() || name.contains('\0') {
            return Err(Error::Usage(format!("--secret {a}: no variable name")));
        }
        out.insert(name.to_string(), arg);
    }
    Ok(out)
}

/// Whether a replay may run without asking, and if not, why (one line).
pub fn confirmation(verdict: &Verdict, changes: &[Change]) -> Option<String> {
    let mut why = Vec::new();
    if let Verdict::Foreign(f) = verdict {
        why.push(format!(
            "the report is foreign ({f}): its command is one you have not seen"
        ));
    }
    let wider: Vec<&str> = changes
        .iter()
        .filter(|c| c.effect == Effect::Wider)
        .map(|c| c.what.as_str())
        .collect();
    if !wider.is_empty() {
        let mut list = wider.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if wider.len() > 3 {
            let _ = write!(list, ", and {} more", wider.len() - 3);
        }
        why.push(format!(
            "its policy is wider than the local profile: {}",
            esc(&list)
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// The local profile a report's profile is compared with: the built-in of that
/// name, or the file it names when that is a regular file here.
fn local_profile(info: &ProfileInfo) -> std::result::Result<Profile, String> {
    let r = if info.source == "builtin" {
        ProfileRef::Builtin(info.name.clone())
    } else {
        let p = PathBuf::from(&info.source);
        if !p.is_absolute() {
            return Err("its recorded source is not an absolute path".into());
        }
        // Never read a device or a FIFO because a report names it.
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() <= 1 << 20 => {}
            Ok(_) => return Err(format!("{} is not a profile file", esc(&info.source))),
            Err(e) => return Err(format!("{}: {e}", esc(&info.source))),
        }
        ProfileRef::Path(p)
    };
    Profile::load(&r).map_err(|e| esc(&chain(&e)))
}

/// A profile resolved for comparison: expanded, but `[env] set` as written (a
/// value may name a host variable, and that is what must be compared).
fn for_comparison(p: &Profile, ctx: &Context) -> Result<Profile> {
    let mut e = p.expand(ctx)?;
    e.env.set = p.env.set.clone();
    Ok(e)
}

/// `cordon replay`. Any error may quote the report (a program name, a key of
/// its profile): its text reaches the terminal escaped, its exit code unchanged.
pub fn command(args: ReplayArgs, inherited: &[RawFd]) -> Result<u8> {
    replay(args, inherited).map_err(|e| {
        let text = chain(&e);
        let safe = esc(&text);
        if safe == text {
            e
        } else {
            Error::Escaped {
                message: safe,
                code: e.exit_code(),
            }
        }
    })
}

fn replay(args: ReplayArgs, inherited: &[RawFd]) -> Result<u8> {
    let refuse = |reason: String| Error::ReplayRefused {
        report: args.report.clone(),
        reason,
    };
    let rep = Report::read(&args.report)?;
    let key = trust::load_key();
    let verdict = trust::verify(&rep, key.as_ref().map(Option::as_ref))
        .map_err(|t| refuse(format!("refused: {}", t.0)))?;
    let invoked_in = std::env::current_dir().map_err(|source| Error::Workspace {
        path: ".".into(),
        source,
    })?;
    let secret_args = parse_secret_args(&args.secret, &invoked_in)?;

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
    // The resolved profile is loaded through the same parser as any profile,
    // without its secrets and audit log: those come from this machine only.
    let mut resolved = rep.profile.resolved.clone();
    remap_paths(&mut resolved, &|s| {
        crate::vars::escape(&remap(&crate::vars::unescape(s)))
    });
    let recorded_secrets: BTreeMap<String, serde_json::Value> = resolved
        .pointer_mut("/env")
        .and_then(|e| e.as_object_mut())
        .and_then(|e| e.remove("secrets"))
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    let recorded_audit = resolved
        .as_object_mut()
        .and_then(|o| o.remove("audit"))
        .and_then(|a| a.get("log").and_then(|l| l.as_str()).map(str::to_string));
    let text = toml::to_string(&resolved).map_err(|e| {
        Error::Usage(format!(
            "{}: the recorded profile cannot be read back: {e}",
            args.report.display()
        ))
    })?;
    let name = format!(
        "{} (recorded profile {})",
        args.report.display(),
        esc(&rep.profile.name)
    );
    let mut profile = Profile::from_text(&name, &text, None)?;
    // Origins reach the terminal in denial messages: escaped like everything else.
    let origins = rep
        .profile
        .origins
        .iter()
        .map(|(k, v)| (k.clone(), v.iter().map(|o| esc(o)).collect()))
        .collect();
    profile.restore_origins(&origins);
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

    // The local profile of that name, resolved here with the same workspace.
    let local = local_profile(&rep.profile);
    let changes = match &local {
        Ok(l) => match for_comparison(l, &ctx) {
            Ok(le) => compare(&for_comparison(&profile, &ctx)?, &le),
            Err(e) => vec![no_local(&rep.profile, &esc(&chain(&e)))],
        },
        Err(why) => vec![no_local(&rep.profile, why)],
    };
    let need = confirmation(&verdict, &changes);

    // Secrets: named placeholders unless the user passed them.
    let local_secrets = local
        .as_ref()
        .map(|l| l.env.secrets.clone())
        .unwrap_or_default();
    let mut secret_lines = Vec::new();
    for name in secret_args.keys() {
        if !recorded_secrets.contains_key(name) {
            return Err(refuse(format!(
                "--secret {}: the report records no secret of that name",
                esc(name)
            )));
        }
    }
    for (name, recorded) in &recorded_secrets {
        let shown = esc(&format!("{name} (recorded as {recorded})"));
        match secret_args.get(name) {
            Some(SecretArg::Local) => {
                let item = local_secrets.get(name).ok_or_else(|| {
                    refuse(format!(
                        "--secret {}: the local profile defines no secret of that name; pass --secret {}=FILE",
                        esc(name),
                        esc(name)
                    ))
                })?;
                secret_lines.push(format!(
                    "secret {shown}: as the local profile defines it ({})",
                    item.origin
                ));
                profile.env.secrets.insert(name.clone(), item.clone());
            }
            Some(SecretArg::File(f)) => {
                secret_lines.push(format!(
                    "secret {shown}: from {}",
                    esc(&f.display().to_string())
                ));
                profile.env.secrets.insert(
                    name.clone(),
                    Item {
                        value: Secret::required(SecretSource::File(crate::vars::escape(
                            &f.to_string_lossy(),
                        ))),
                        origin: Origin::command_line("--secret"),
                    },
                );
            }
            None => {
                secret_lines.push(format!(
                    "secret {shown}: not read; set to \"{PLACEHOLDER}\" (pass --secret {} to take it as the local profile defines it, or --secret {}=FILE)",
                    esc(name),
                    esc(name)
                ));
                profile.env.set.insert(
                    name.clone(),
                    Item {
                        value: PLACEHOLDER.into(),
                        origin: Origin::command_line("replay placeholder"),
                    },
                );
            }
        }
    }
    // Where this run is logged, and who approves what it does, is this
    // machine's business, not the report's: a recorded approver program
    // would run outside the sandbox.
    profile.audit.log = local.as_ref().ok().and_then(|l| l.audit.log.clone());
    let recorded_approver = profile.approve.approver.take();
    profile.approve.approver = local.as_ref().ok().and_then(|l| l.approve.approver.clone());
    let approver_line = match recorded_approver {
        Some(Item {
            value: crate::gates::Approver::Command(c),
            ..
        }) => Some(format!(
            "the recorded approver {} is not used; {}",
            esc(&c.join(" ")),
            if profile.approve.approver.is_some() {
                "the local profile's is"
            } else {
                "gates ask on the terminal"
            }
        )),
        _ => None,
    };
    let audit_line = match (&recorded_audit, &profile.audit.log) {
        (Some(r), _) => Some(format!(
            "the recorded [audit] log {} is not used{}",
            esc(r),
            if profile.audit.log.is_some() {
                "; the local profile's is"
            } else {
                ""
            }
        )),
        _ => None,
    };

    let summary = describe(
        &args.report,
        &rep,
        &verdict,
        &local,
        (&recorded_ws, &new_ws),
        &cwd,
        &command,
        &changes,
        secret_lines
            .iter()
            .chain(audit_line.iter())
            .chain(approver_line.iter()),
    );
    if args.dry_run {
        print!("{summary}");
        if let Some(why) = &need {
            println!("# a replay would ask for confirmation: {why}");
        }
        let mut policy = Policy::new(&profile, &ctx, Missing::Skip)?;
        let plan = Plan::new(&policy, &Host::probe(), None, &DiskLister);
        // The filter follows the isolation this host would give the run.
        policy.syscalls.set_isolation(plan.isolation());
        // show_text escapes each line itself (term): escaping again would double
        // every backslash it wrote.
        crate::term::print(&show_text(&policy, &plan));
        return Ok(0);
    }
    if let Some(why) = need {
        if args.yes {
            if !args.quiet {
                warn(&format!("replaying without asking (--yes): {why}"));
            }
        } else {
            confirm_on_tty(&summary, &why).map_err(refuse)?;
        }
    }
    if !args.quiet {
        for l in &secret_lines {
            warn(l);
        }
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
            allow_unsafe_workspace: args.allow_unsafe_workspace,
            sign_report: verdict == Verdict::Signed,
            keep_report: false,
            print_errors: true,
            session: None,
            changes: true,
        },
        inherited,
    )
}

fn no_local(info: &ProfileInfo, why: &str) -> Change {
    Change {
        effect: Effect::Wider,
        what: format!(
            "no local profile {} to compare with ({why})",
            esc(&info.name)
        ),
    }
}

/// What would run and how it differs from here, every report value escaped.
#[allow(clippy::too_many_arguments)]
fn describe<'a>(
    report: &Path,
    rep: &Report,
    verdict: &Verdict,
    local: &std::result::Result<Profile, String>,
    (from, to): (&Path, &Path),
    cwd: &Path,
    command: &[OsString],
    changes: &[Change],
    notes: impl Iterator<Item = &'a String>,
) -> String {
    let d = |p: &Path| esc(&p.display().to_string());
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# replay of {} ({} denials recorded)",
        d(report),
        rep.denials.len()
    );
    let _ = writeln!(
        s,
        "# trust: {}",
        match verdict {
            Verdict::Signed => "written by this user's cordon (signature valid)".to_string(),
            Verdict::Foreign(f) => format!("FOREIGN: {f}"),
        }
    );
    let _ = writeln!(
        s,
        "# profile {} ({}){}",
        esc(&rep.profile.name),
        esc(&rep.profile.source),
        match local {
            Ok(_) => ", compared with the local profile of that name",
            Err(_) => "",
        }
    );
    let _ = writeln!(s, "# workspace {} -> {}", d(from), d(to));
    let _ = writeln!(s, "# cwd {}", d(cwd));
    let _ = writeln!(
        s,
        "# command {}",
        command
            .iter()
            .map(|a| shell_word(&esc(&a.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ")
    );
    if changes.is_empty() {
        let _ = writeln!(s, "# policy: the same as the local profile");
    }
    for c in changes {
        let _ = writeln!(
            s,
            "#   {} {}",
            match c.effect {
                Effect::Wider => "WIDER:   ",
                Effect::Narrower => "narrower:",
            },
            esc(&c.what)
        );
    }
    for n in notes {
        let _ = writeln!(s, "# {n}");
    }
    s
}

/// One argument as a shell would need it written, so that the words of the
/// printed command are the words that run.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%^".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Ask on the controlling terminal (never stdin, which may be the report's
/// author's pipe). No terminal, or anything but y/yes, is a refusal.
fn confirm_on_tty(summary: &str, why: &str) -> std::result::Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/tty")
        .map_err(|_| {
            format!(
                "needs confirmation: {why}; no terminal to ask on: pass --yes to replay it anyway (--dry-run shows it)"
            )
        })?;
    let mut w = &tty;
    let asked = write!(
        w,
        "{summary}cordon: this replay needs confirmation: {why}\ncordon: replay it? [y/N] "
    )
    .and_then(|_| w.flush());
    if asked.is_err() {
        return Err(format!(
            "needs confirmation: {why}; the terminal cannot be written"
        ));
    }
    let mut line = String::new();
    let _ = std::io::BufReader::new(&tty).read_line(&mut line);
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err("not confirmed on the terminal".into()),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::Foreign;

    fn change(effect: Effect, what: &str) -> Change {
        Change {
            effect,
            what: what.into(),
        }
    }

    #[test]
    fn signed_and_not_wider_needs_no_confirmation() {
        let narrower = [change(Effect::Narrower, "deny /x added")];
        assert_eq!(confirmation(&Verdict::Signed, &narrower), None);
    }

    #[test]
    fn foreign_or_wider_needs_confirmation_and_says_why() {
        let w = confirmation(&Verdict::Foreign(Foreign::Unsigned), &[]).unwrap();
        assert!(w.contains("not signed"), "{w}");
        let wider: Vec<Change> = ["write /", "network mode on (local off)", "a", "b"]
            .iter()
            .map(|w| change(Effect::Wider, w))
            .collect();
        let w = confirmation(&Verdict::Signed, &wider).unwrap();
        assert!(
            w.contains("write /, network mode on (local off), a, and 1 more"),
            "{w}"
        );
        assert!(!w.contains('\n'));
        let evil = [change(Effect::Wider, "write /\x1b[2J")];
        let w = confirmation(&Verdict::Signed, &evil).unwrap();
        assert!(!w.contains('\x1b'), "{w}");
    }

    #[test]
    fn printed_commands_quote_what_a_shell_would_split() {
        assert_eq!(shell_word("/usr/bin/touch"), "/usr/bin/touch");
        assert_eq!(shell_word("echo hi"), "'echo hi'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn secret_arguments() {
        let a = parse_secret_args(&["A".into(), "B=k.txt".into()], Path::new("/c")).unwrap();
        assert_eq!(a["A"], SecretArg::Local);
        assert_eq!(a["B"], SecretArg::File("/c/k.txt".into()));
        assert_eq!(
            parse_secret_args(&["C=/abs".into()], Path::new("/c")).unwrap()["C"],
            SecretArg::File("/abs".into())
        );
        assert!(parse_secret_args(&["=x".into()], Path::new("/c")).is_err());
        assert!(parse_secret_args(&["D=".into()], Path::new("/c")).is_err());
    }
}
