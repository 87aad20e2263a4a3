//! Landlock: the plan's file-system rules, TCP port rules and scopes become a
//! `landlock::RulesetCreated` in the launcher (every path opened and every rule
//! added there, before the child may enforce it); `restrict` only calls
//! `landlock_restrict_self` in the child and checks the crate's enforcement
//! status against the plan.
//!
//! cordon requests the rights of the ABI it is tested against ([`plan::abi::TARGET`]);
//! the crate's best-effort mode drops what an older kernel lacks, and the plan has
//! already decided whether that is acceptable. A status that disagrees with the
//! plan is an error, never a silent success.
//!
//! Path rules bypass the crate ([`sys::landlock_add_path_rule`]): it `fstat`s every
//! fd to learn what the plan already knows (directory or not), and with a couple
//! of hundred rules (deny expansion without namespaces) those calls were a
//! sizeable part of startup. The rights are cut to what the ruleset handles on
//! this kernel, as the crate would; a rule whose kind no longer matches the plan
//! fails (EINVAL) instead of being degraded.

use std::os::fd::{AsFd, OwnedFd};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::plan::{self, FsRule, Plan};
use crate::{policy, sys};

const TARGET: ABI = ABI::V7;

/// The rights of one of our access classes, on a directory or on a file.
fn rights(a: policy::Access, dir: bool) -> BitFlags<AccessFs> {
    let mut r = BitFlags::EMPTY;
    if a.contains(policy::Access::LIST) {
        r |= AccessFs::ReadDir;
    }
    if a.can_read() {
        r |= AccessFs::ReadFile | AccessFs::ReadDir;
    }
    if a.can_exec() {
        r |= AccessFs::Execute;
    }
    if a.can_write() {
        // Everything write gives, except creating device nodes.
        r |= AccessFs::from_write(TARGET) & !(AccessFs::MakeChar | AccessFs::MakeBlock);
    }
    if !dir {
        r &= AccessFs::from_file(TARGET);
    }
    r
}

/// What the ruleset handles on this kernel: the requested rights minus what its
/// ABI lacks (the crate drops those from the ruleset in best-effort mode).
fn handled_on(abi: i32) -> BitFlags<AccessFs> {
    AccessFs::from_all(TARGET) & !AccessFs::ResolveUnix & AccessFs::from_all(ABI::from(abi))
}

/// The ruleset's fd, for adding path rules without the crate.
#[derive(Debug)]
struct RawRuleset {
    fd: OwnedFd,
    handled: BitFlags<AccessFs>,
}

/// O_PATH fds opened for rules, closed in batches: close_range(2) over a run
/// of consecutive fds costs one syscall where close(2) costs one per fd. Kept
/// well below any RLIMIT_NOFILE a launcher runs with.
const FD_BATCH: usize = 128;

/// A ruleset ready to be enforced in the child.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<RulesetCreated>,
    raw: Option<RawRuleset>,
    /// What the plan expects the kernel to enforce.
    expect_full: bool,
    /// Rules on paths the child mounts afresh (/proc): added in the child.
    late: Vec<FsRule>,
}

/// What the kernel enforced, as the crate reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Full,
    Partial,
    None,
}

impl Enforced {
    pub fn as_str(self) -> &'static str {
        match self {
            Enforced::Full => "full",
            Enforced::Partial => "partial",
            Enforced::None => "none",
        }
    }
}

/// Create the ruleset for `plan` with its TCP rules and scopes. Runs in the
/// launcher; the file-system rules follow with [`Prepared::add_rules`].
pub fn prepare(plan: &Plan, log_new_exec: bool) -> Result<Prepared> {
    if plan.landlock_abi == 0 {
        return Ok(Prepared {
            ruleset: None,
            raw: None,
            expect_full: false,
            late: Vec::new(),
        });
    }
    let mut rs = Ruleset::default().set_compatibility(CompatLevel::BestEffort);
    let handled = AccessFs::from_all(TARGET) & !AccessFs::ResolveUnix;
    rs = rs.handle_access(handled).map_err(Error::LandlockRuleset)?;
    if plan.tcp.is_some() {
        rs = rs
            .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
            .map_err(Error::LandlockRuleset)?;
    }
    let mut scopes: BitFlags<Scope> = BitFlags::EMPTY;
    if plan.scope_abstract_unix {
        scopes |= Scope::AbstractUnixSocket;
    }
    if plan.scope_signal {
        scopes |= Scope::Signal;
    }
    if !scopes.is_empty() {
        rs = rs.scope(scopes).map_err(Error::LandlockRuleset)?;
    }
    let mut created = rs.create().map_err(Error::LandlockRuleset)?;
    if log_new_exec && plan.landlock_abi >= plan::abi::AUDIT {
        // Denials after execve are logged to the audit subsystem (ABI 7).
        created = created.log_new_exec(true).map_err(Error::LandlockRuleset)?;
    }
    // A second fd on the same ruleset: the crate keeps its own private. None when
    // the crate found no Landlock after all; it then reports NotEnforced, which
    // restrict refuses.
    let raw = created
        .try_clone()
        .map_err(|e| Error::Launch {
            step: "duplicating the Landlock ruleset fd",
            source: e,
        })
        .map(Option::<OwnedFd>::from)?
        .map(|fd| RawRuleset {
            fd,
            handled: handled_on(plan.landlock_abi),
        });
    if let Some((connect, bind)) = &plan.tcp {
        for &port in connect {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(Error::LandlockRuleset)?;
        }
        for &port in bind {
            created = created
                .add_rule(NetPort::new(port, AccessNet::BindTcp))
                .map_err(Error::LandlockRuleset)?;
        }
    }
    let expect_full = plan.landlock_abi >= plan::abi::TARGET;
    Ok(Prepared {
        ruleset: Some(created),
        raw,
        expect_full,
        late: one_per_path(&plan.fs_rules_late),
    })
}

/// `rules` with the rights of rules on the same path joined into one rule: the
/// child pays an open, an add and a close per rule, and two rules on one inode
/// grant what one with the rights of both grants (a writable and executable
/// /tmp is two grants).
fn one_per_path(rules: &[FsRule]) -> Vec<FsRule> {
    let mut out: Vec<FsRule> = Vec::with_capacity(rules.len());
    for r in rules {
        match out.iter_mut().find(|o| o.path == r.path && o.dir == r.dir) {
            Some(o) => o.access |= r.access,
            None => out.push(r.clone()),
        }
    }
    out
}

impl RawRuleset {
    /// Open `rule.path` and add it. Returns the O_PATH fd, which the caller
    /// closes (the kernel holds its own reference), or None when the rule
    /// carries no right this kernel handles (the crate skips those too).
    fn add(&self, rule: &FsRule) -> Result<Option<OwnedFd>> {
        // The plan knows the kind from readdir or stat: no fstat here. A path that
        // became a directory since gets file rights only (a subset); one that
        // stopped being a directory makes the kernel refuse the directory rights.
        let access = rights(rule.access, rule.dir) & self.handled;
        if access.is_empty() {
            return Ok(None);
        }
        // Plan paths are canonical or readdir entries other than symlinks: a
        // symlink here was put in place since planning, and must not be followed
        // into a grant of its target.
        let fd = nix::fcntl::open(
            &rule.path,
            OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| Error::LandlockPath {
            path: rule.path.clone(),
            source: e.into(),
        })?;
        sys::landlock_add_path_rule(self.fd.as_fd(), fd.as_fd(), access.bits()).map_err(|e| {
            Error::LandlockRule {
                path: rule.path.clone(),
                source: e,
            }
        })?;
        Ok(Some(fd))
    }
}

impl Prepared {
    /// Open every path of `plan.fs_rules` and add it. Runs in the launcher: before
    /// the fork without namespaces; with them, after the clone, while init builds
    /// its network namespace (the child shares the ruleset through its copy of
    /// the fd, and enforces it only once the launcher says go).
    pub fn add_rules(&self, plan: &Plan) -> Result<()> {
        let Some(raw) = &self.raw else {
            return Ok(());
        };
        let mut open = Vec::with_capacity(plan.fs_rules.len().min(FD_BATCH));
        for rule in &plan.fs_rules {
            match raw.add(rule) {
                Ok(Some(fd)) => open.push(fd),
                Ok(None) => {}
                // Removed since planning (a sibling of an expansion): nothing to
                // grant, exactly as if planned without it.
                Err(_) if !rule.path.exists() => {}
                Err(e) => {
                    sys::close_all(open);
                    return Err(e);
                }
            }
            if open.len() == FD_BATCH {
                sys::close_all(std::mem::take(&mut open));
            }
        }
        sys::close_all(open);
        Ok(())
    }

    /// Enforce on the calling thread (the child, after no_new_privs).
    pub fn restrict(self) -> Result<Enforced, String> {
        let Some(rs) = self.ruleset else {
            return Ok(Enforced::None);
        };
        if let Some(raw) = &self.raw {
            for rule in &self.late {
                raw.add(rule).map_err(|e| crate::error::chain(&e))?;
            }
        }
        drop(self.raw);
        let status = rs
            .restrict_self()
            .map_err(|e| format!("landlock_restrict_self: {e}"))?;
        let got = match status.ruleset {
            RulesetStatus::FullyEnforced => Enforced::Full,
            RulesetStatus::PartiallyEnforced => Enforced::Partial,
            RulesetStatus::NotEnforced => Enforced::None,
        };
        // The plan already refused (or warned about) everything an older ABI lacks;
        // a kernel that enforces less than planned is an error.
        if self.expect_full && got != Enforced::Full {
            return Err(format!(
                "Landlock enforced {} although this kernel reported ABI {}",
                got.as_str(),
                TARGET as i32
            ));
        }
        if got == Enforced::None {
            return Err("Landlock did not enforce the ruleset".into());
        }
        Ok(got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Access as A;

    #[test]
    fn access_classes_map_to_rights() {
        assert_eq!(rights(A::LIST, true), AccessFs::ReadDir);
        assert_eq!(
            rights(A::READ, true),
            AccessFs::ReadFile | AccessFs::ReadDir
        );
        assert_eq!(rights(A::READ, false), BitFlags::from(AccessFs::ReadFile));
        assert!(rights(A::EXEC, true).contains(AccessFs::Execute | AccessFs::ReadFile));
        let w = rights(A::WRITE, true);
        assert!(w.contains(
            AccessFs::WriteFile
                | AccessFs::Truncate
                | AccessFs::MakeReg
                | AccessFs::Refer
                | AccessFs::RemoveFile
        ));
        assert!(
            !w.contains(AccessFs::MakeChar)
                && !w.contains(AccessFs::MakeBlock)
                && !w.contains(AccessFs::Execute)
        );
        assert!(
            !rights(A::WRITE, false).contains(AccessFs::MakeReg),
            "file rules carry file rights only"
        );
    }

    fn plan(abi: i32, rules: Vec<FsRule>) -> Plan {
        Plan {
            fs_rules: rules,
            ..Plan::empty(abi)
        }
    }

    fn rule(path: std::path::PathBuf, dir: bool) -> FsRule {
        FsRule {
            path,
            access: A::READ,
            dir,
            why: plan::Why::Grant(crate::profile::Origin {
                source: "t".into(),
                line: None,
                column: None,
                key: None,
            }),
        }
    }

    #[test]
    fn late_rules_on_one_path_become_one() {
        let mut w = rule("/tmp".into(), true);
        w.access = A::WRITE;
        let mut x = rule("/tmp".into(), true);
        x.access = A::EXEC;
        let pts = rule("/dev/pts".into(), true);
        let got = one_per_path(&[w, pts.clone(), x]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].access, A::WRITE | A::EXEC);
        assert_eq!(
            rights(got[0].access, true),
            rights(A::WRITE, true) | rights(A::EXEC, true)
        );
        assert_eq!(got[1], pts);
    }

    #[test]
    fn vanished_paths_are_skipped_and_a_changed_kind_fails() {
        let abi = crate::probe::Host::probe()
            .landlock
            .abi()
            .min(plan::abi::TARGET);
        if abi == 0 {
            return crate::testing::skip(
                "vanished_paths_are_skipped_and_a_changed_kind_fails",
                "no Landlock here",
            );
        }
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "").unwrap();
        // Removed between planning and preparing: prepared without it.
        let p = plan(
            abi,
            vec![
                rule(d.path().to_path_buf(), true),
                rule(d.path().join("gone"), false),
                rule(file.clone(), false),
            ],
        );
        let prepared = |p: &Plan| prepare(p, false).and_then(|x| x.add_rules(p));
        assert!(prepared(&p).is_ok());
        // Planned as a directory, a file now: the kernel refuses the directory
        // rights, and so do we (never a silently narrower rule).
        let e = prepared(&plan(abi, vec![rule(file, true)])).unwrap_err();
        assert!(matches!(e, Error::LandlockRule { .. }), "{e}");
        // A symlink put in place of a planned entry is not followed.
        let link = d.path().join("l");
        std::os::unix::fs::symlink(d.path(), &link).unwrap();
        let e = prepared(&plan(abi, vec![rule(link, true)])).unwrap_err();
        assert!(matches!(e, Error::LandlockRule { .. }), "{e}");
    }
}
