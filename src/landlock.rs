//! Landlock: the plan's file-system rules, TCP port rules and scopes become a
//! `landlock::RulesetCreated` during preparation (every path opened, every rule
//! added, in the launcher); `restrict` only calls `landlock_restrict_self` in the
//! child and checks the crate's enforcement status against the plan.
//!
//! cordon requests the rights of the ABI it is tested against ([`plan::abi::TARGET`]);
//! the crate's best-effort mode drops what an older kernel lacks, and the plan has
//! already decided whether that is acceptable. A status that disagrees with the
//! plan is an error, never a silent success.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::error::{Error, Result};
use crate::plan::{self, FsRule, Plan};
use crate::policy;

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

/// A ruleset ready to be enforced in the child.
#[derive(Debug)]
pub struct Prepared {
    ruleset: Option<RulesetCreated>,
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

/// Build the ruleset for `plan`: open every path, add every rule. Runs in the launcher.
pub fn prepare(plan: &Plan, log_new_exec: bool) -> Result<Prepared> {
    if plan.landlock_abi == 0 {
        return Ok(Prepared {
            ruleset: None,
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
    for rule in &plan.fs_rules {
        created = match add_path_rule(created, rule) {
            Ok(c) => c,
            // The tree changed since planning (a sibling was removed): nothing to grant.
            Err(_) if !rule.path.exists() => return prepare_again(plan, log_new_exec),
            Err(e) => return Err(e),
        };
    }
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
        expect_full,
        late: plan.fs_rules_late.clone(),
    })
}

/// A path vanished between planning and opening it: plan rules again without it.
fn prepare_again(plan: &Plan, log_new_exec: bool) -> Result<Prepared> {
    let mut p = plan.clone();
    p.fs_rules.retain(|r| r.path.exists());
    prepare(&p, log_new_exec)
}

/// Open `rule.path` and add it. On error the ruleset is consumed with it; the
/// caller either plans again or fails.
fn add_path_rule(created: RulesetCreated, rule: &FsRule) -> Result<RulesetCreated> {
    let fd = PathFd::new(&rule.path).map_err(|e| Error::LandlockPath {
        path: rule.path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    // The plan knows the kind from readdir or stat; the crate checks it again
    // (and a mismatch shows as a partial enforcement, which restrict refuses).
    let dir = rule.dir;
    let access = rights(rule.access, dir);
    if access.is_empty() {
        return Ok(created);
    }
    created
        .add_rule(PathBeneath::new(fd, access))
        .map_err(Error::LandlockRuleset)
}

impl Prepared {
    /// Enforce on the calling thread (the child, after no_new_privs).
    pub fn restrict(self) -> Result<Enforced, String> {
        let Some(mut rs) = self.ruleset else {
            return Ok(Enforced::None);
        };
        for rule in &self.late {
            rs = add_path_rule(rs, rule).map_err(|e| crate::error::chain(&e))?;
        }
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
}
