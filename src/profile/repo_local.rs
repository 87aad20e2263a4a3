//! The repo-local policy: `.cordon.toml` at the workspace root, applied on top
//! of the profile when present. It may only tighten (more denies, read-only
//! paths, refused syscalls, removed variables, lower limits, a narrower
//! network); a key that could widen is an error naming it. The guard keeps the
//! payload from writing it. Pure but for reading the file.

use std::path::Path;
use std::sync::Arc;

use super::{Chain, Item, NetMode, Permit, Profile, apply_raw, parse, read_profile_file};
use crate::error::{Error, Result};
use crate::units::Limit;

/// Its name, at the workspace root.
pub const FILE: &str = ".cordon.toml";

/// What may be said, for the error message.
const MAY: &str = "a repo-local policy may only tighten: filesystem.deny, filesystem.read_only, \
syscalls.deny, env.remove, lower limits, network.mode \"off\" (or \"filtered\"/\"proxy\" over \"on\"), \
network.deny_domains, abstract_unix and signal_outside \"deny\", approve.exec, approve.approver \"deny\", \
approve.domains \"deny\", a shorter approve.timeout";

impl Profile {
    /// Apply `workspace/.cordon.toml` when it exists. Ok(false): none there.
    pub fn apply_repo_local(&mut self, workspace: &Path) -> Result<bool> {
        let path = workspace.join(FILE);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            // The guard keeps the file itself as it was, not what a link
            // leads to (a file elsewhere in the workspace, the payload's to
            // rewrite): the policy is the file at the root, or nothing.
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::InvalidValue {
                    origin: path.display().to_string(),
                    message: "a symbolic link; the repo-local policy must be a regular file at the workspace root".into(),
                });
            }
            _ => {}
        }
        let bytes = read_profile_file(&path)?;
        let name = path.display().to_string();
        let text: Arc<str> = String::from_utf8(bytes)
            .map_err(|_| Error::InvalidValue {
                origin: name.clone(),
                message: "not UTF-8 text".into(),
            })?
            .into();
        let raw = parse(&name, &text)?;
        if raw.extends.is_some() {
            return Err(Error::InvalidValue {
                origin: format!("{name}: key \"extends\""),
                message: format!("widens the profile ({MAY})"),
            });
        }
        let mut r = Profile::default();
        apply_raw(
            &mut r,
            &name,
            raw,
            text.clone(),
            None,
            &mut Chain::default(),
        )?;
        self.tighten(r)?;
        self.texts.push(text);
        self.repo_local = Some(name);
        Ok(true)
    }

    /// Merge `r` (one parsed repo-local file) if it only tightens.
    fn tighten(&mut self, r: Profile) -> Result<()> {
        let widens = |origin: &super::Origin| Error::InvalidValue {
            origin: origin.located(),
            message: format!("widens the profile ({MAY})"),
        };
        let fs = &r.filesystem;
        for list in [&fs.read, &fs.write, &fs.exec, &fs.unprotect] {
            if let Some(i) = list.first() {
                return Err(widens(&i.origin));
            }
        }
        let first = |v: &[Item<String>]| v.first().map(|i| i.origin.clone());
        let net = &r.network;
        let mut wide = [
            net.connect_tcp.first().map(|i| i.origin.clone()),
            net.bind_tcp.first().map(|i| i.origin.clone()),
            net.unix_connect.first().map(|i| i.origin.clone()),
            first(&net.allow_domains),
            net.allow_ports.first().map(|i| i.origin.clone()),
            net.presets.first().map(|i| i.origin.clone()),
            first(&r.env.keep),
            r.env.set.values().next().map(|i| i.origin.clone()),
            r.env.secrets.values().next().map(|i| i.origin.clone()),
            first(&r.syscalls.allow),
            first(&r.capabilities.keep),
            r.namespaces.mode.as_ref().map(|i| i.origin.clone()),
            r.audit.log.as_ref().map(|i| i.origin.clone()),
            // A read gate opens a denied file; asking about names the
            // allowlist refuses, or another approver, could say yes.
            r.approve.read.first().map(|i| i.origin.clone()),
            r.approve
                .domains
                .as_ref()
                .filter(|i| i.value == crate::gates::DomainAsk::Ask)
                .map(|i| i.origin.clone()),
            r.approve
                .approver
                .as_ref()
                .filter(|i| i.value != crate::gates::Approver::Deny)
                .map(|i| i.origin.clone()),
        ]
        .into_iter()
        .flatten();
        // The network: "off" always narrows; "filtered" or "proxy" (with their
        // lists) only narrow "on".
        let base = self.network.mode.as_ref().map_or(NetMode::Off, |m| m.value);
        let mut net_lists_ok = false;
        if let Some(m) = &r.network.mode {
            match (base, m.value) {
                (_, NetMode::Off) => {}
                (NetMode::On, NetMode::Filtered | NetMode::Proxy) => net_lists_ok = true,
                (b, v) if b == v => {}
                _ => return Err(widens(&m.origin)),
            }
        }
        if let Some(o) = wide.find(|o| {
            !(net_lists_ok
                && matches!(
                    o.key,
                    Some(
                        "network.connect_tcp"
                            | "network.bind_tcp"
                            | "network.allow_domains"
                            | "network.allow_ports"
                            | "network.presets"
                    )
                ))
        }) {
            return Err(widens(&o));
        }
        for p in [&r.network.abstract_unix, &r.process.signal_outside]
            .into_iter()
            .flatten()
        {
            if p.value == Permit::Allow {
                return Err(widens(&p.origin));
            }
        }
        // Limits: lower (or a limit where the profile has none), never higher.
        fn lower<T: PartialOrd + Copy>(base: Option<Limit<T>>, new: Limit<T>) -> bool {
            match (base, new) {
                (None | Some(Limit::Unlimited), _) => true,
                (Some(Limit::Max(_)), Limit::Unlimited) => false,
                (Some(Limit::Max(b)), Limit::Max(n)) => n <= b,
            }
        }
        let (l, b) = (&r.limits, &self.limits);
        macro_rules! limit {
            ($f:ident) => {
                if let Some(i) = &l.$f {
                    if !lower(b.$f.as_ref().map(|x| x.value.0), i.value.0) {
                        return Err(Error::InvalidValue {
                            origin: i.origin.located(),
                            message: "higher than the profile's (a repo-local policy may only lower limits)".into(),
                        });
                    }
                }
            };
        }
        limit!(timeout);
        limit!(memory);
        limit!(processes);
        limit!(open_files);
        limit!(cpu);
        limit!(file_size);
        if let Some(t) = &r.approve.timeout {
            let base = self
                .approve
                .timeout
                .as_ref()
                .map_or(crate::gates::DEFAULT_TIMEOUT, |b| {
                    b.value.0.get().unwrap_or(std::time::Duration::MAX)
                });
            if t.value.0.get().is_none_or(|d| d > base) {
                return Err(Error::InvalidValue {
                    origin: t.origin.located(),
                    message: "longer than the profile's (a repo-local policy may only shorten approve.timeout)".into(),
                });
            }
        }

        // Tightens: merge.
        let Profile {
            filesystem,
            network,
            env,
            limits,
            syscalls,
            process,
            approve,
            ..
        } = r;
        self.approve.exec.extend(approve.exec);
        if approve.approver.is_some() {
            self.approve.approver = approve.approver;
        }
        if approve.domains.is_some() {
            self.approve.domains = approve.domains;
        }
        if approve.timeout.is_some() {
            self.approve.timeout = approve.timeout;
        }
        self.filesystem.deny.extend(filesystem.deny);
        self.filesystem.read_only.extend(filesystem.read_only);
        self.syscalls.deny.extend(syscalls.deny);
        self.env.remove.extend(env.remove);
        self.network.deny_domains.extend(network.deny_domains);
        if let Some(m) = network.mode {
            if m.value != base {
                self.network.mode = Some(m);
                self.network.connect_tcp = network.connect_tcp;
                self.network.bind_tcp = network.bind_tcp;
                self.network.allow_domains = network.allow_domains;
                self.network.allow_ports = network.allow_ports;
                self.network.presets = network.presets;
            }
        }
        if network.abstract_unix.is_some() {
            self.network.abstract_unix = network.abstract_unix;
        }
        if process.signal_outside.is_some() {
            self.process.signal_outside = process.signal_outside;
        }
        macro_rules! set {
            ($f:ident) => {
                if limits.$f.is_some() {
                    self.limits.$f = limits.$f;
                }
            };
        }
        set!(timeout);
        set!(memory);
        set!(processes);
        set!(open_files);
        set!(cpu);
        set!(file_size);
        Ok(())
    }
}
