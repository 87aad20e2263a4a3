//! How a recorded policy differs from a local one, item by item: wider (the
//! recorded policy allows something the local one does not), narrower, or a
//! note. Pure: both sides are resolved profiles (variables expanded, `[env] set`
//! as written) that the caller built with the same workspace.
//!
//! Owns the ordering of modes and limits and the catch-all that calls every
//! key it does not compare item by item "wider", so that a key added to the
//! schema later fails closed. Does not load profiles or decide what to do.

use std::collections::BTreeSet;
use std::path::Path;

use crate::profile::{Item, NetMode, NsMode, PathEntry, Permit, Profile};
use crate::units::glob_match;
use crate::vars::unescape;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Effect {
    Wider,
    Narrower,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub effect: Effect,
    pub what: String,
}

/// Keys compared item by item below; any other key that differs is "wider".
const COMPARED: &[&str] = &[
    "description",
    "filesystem.read",
    "filesystem.write",
    "filesystem.exec",
    "filesystem.deny",
    "filesystem.read_only",
    "network.mode",
    "network.connect_tcp",
    "network.bind_tcp",
    "network.abstract_unix",
    // Item by item when both are mode "proxy"; otherwise the mode decides.
    "network.allow_domains",
    "network.deny_domains",
    "network.allow_ports",
    "network.presets",
    "env.remove",
    "env.set",
    // Never read from a report: replay takes secrets from the command line.
    "env.secrets",
    "limits.timeout",
    "limits.memory",
    "limits.processes",
    "limits.open_files",
    "limits.cpu",
    "limits.file_size",
    "syscalls.deny",
    "syscalls.allow",
    "capabilities.keep",
    "namespaces.mode",
    "process.signal_outside",
    // Never read from a report: replay appends to the local profile's log.
    "audit.log",
];

fn paths(l: &[Item<PathEntry>]) -> Vec<String> {
    l.iter().map(|i| unescape(&i.value.path)).collect()
}

/// `p` is one of `roots` or beneath one (component-wise, so /a/bc is not under /a/b).
fn under(p: &str, roots: &[String]) -> bool {
    roots
        .iter()
        .any(|r| p == r || Path::new(p).starts_with(Path::new(r)))
}

fn strings(l: &[Item<String>]) -> Vec<String> {
    l.iter().map(|i| i.value.clone()).collect()
}

/// The items only one side lists: more of a grant (`grants`) is wider,
/// more of a refusal narrower.
fn items<T: Ord + std::fmt::Display>(
    push: &mut impl FnMut(Effect, String),
    what: &str,
    rec: &BTreeSet<T>,
    local: &BTreeSet<T>,
    grants: bool,
) {
    let (more, fewer) = if grants {
        (Effect::Wider, Effect::Narrower)
    } else {
        (Effect::Narrower, Effect::Wider)
    };
    for x in rec.difference(local) {
        push(more, format!("{what} {x} added"));
    }
    for x in local.difference(rec) {
        push(fewer, format!("{what} {x} removed"));
    }
}

fn net_rank(m: NetMode) -> u8 {
    match m {
        NetMode::Off => 0,
        NetMode::Proxy => 1,
        NetMode::Filtered => 2,
        NetMode::On => 3,
    }
}

fn ns_rank(m: NsMode) -> u8 {
    match m {
        NsMode::Off => 0,
        NsMode::Auto => 1,
        NsMode::Required => 2,
    }
}

fn mode_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn cap_name(s: &str) -> String {
    let u = s.to_ascii_uppercase();
    if u.starts_with("CAP_") {
        u
    } else {
        format!("CAP_{u}")
    }
}

/// Compare the recorded policy with the local one.
pub fn compare(rec: &Profile, local: &Profile) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |effect, what: String| out.push(Change { effect, what });
    let (rf, lf) = (&rec.filesystem, &local.filesystem);

    // Grants: a recorded path not beneath a local grant of its class is wider.
    let l_read: Vec<String> = [paths(&lf.read), paths(&lf.write), paths(&lf.exec)].concat();
    let r_read: Vec<String> = [paths(&rf.read), paths(&rf.write), paths(&rf.exec)].concat();
    for (class, r, l, r_all, l_all) in [
        ("read", paths(&rf.read), paths(&lf.read), &r_read, &l_read),
        (
            "write",
            paths(&rf.write),
            paths(&lf.write),
            &paths(&rf.write),
            &paths(&lf.write),
        ),
        (
            "exec",
            paths(&rf.exec),
            paths(&lf.exec),
            &paths(&rf.exec),
            &paths(&lf.exec),
        ),
    ] {
        for p in r.iter().filter(|p| !under(p, l_all)) {
            push(
                Effect::Wider,
                format!("{class} {p} (not under any local {class} grant)"),
            );
        }
        for p in l.iter().filter(|p| !under(p, r_all)) {
            push(
                Effect::Narrower,
                format!("{class} {p} (granted locally, not recorded)"),
            );
        }
    }
    // Carve-outs: a local one the recorded policy lacks is wider.
    for (class, r, l) in [
        ("deny", paths(&rf.deny), paths(&lf.deny)),
        ("read_only", paths(&rf.read_only), paths(&lf.read_only)),
    ] {
        for p in l.iter().filter(|p| !under(p, &r)) {
            push(Effect::Wider, format!("{class} {p} removed"));
        }
        for p in r.iter().filter(|p| !under(p, &l)) {
            push(Effect::Narrower, format!("{class} {p} added"));
        }
    }

    let (rn, ln) = (rec.net_mode(), local.net_mode());
    if rn != ln {
        let effect = if net_rank(rn) > net_rank(ln) {
            Effect::Wider
        } else {
            Effect::Narrower
        };
        push(
            effect,
            format!("network mode {} (local {})", mode_name(&rn), mode_name(&ln)),
        );
    } else if rn == NetMode::Filtered {
        for (what, r, l) in [
            (
                "connect_tcp",
                &rec.network.connect_tcp,
                &local.network.connect_tcp,
            ),
            ("bind_tcp", &rec.network.bind_tcp, &local.network.bind_tcp),
        ] {
            let l: BTreeSet<u16> = l.iter().map(|i| i.value).collect();
            let r: BTreeSet<u16> = r.iter().map(|i| i.value).collect();
            items(&mut push, &format!("network {what}"), &r, &l, true);
        }
    } else if rn == NetMode::Proxy {
        // More allowed names or ports is wider; more denied names is narrower.
        let set = |l: &[Item<String>]| -> BTreeSet<String> {
            l.iter()
                .map(|i| format!("\"{}\"", i.value.trim().to_ascii_lowercase()))
                .collect()
        };
        let ports = |l: &[Item<u16>]| -> BTreeSet<u16> {
            let s: BTreeSet<u16> = l.iter().map(|i| i.value).collect();
            if s.is_empty() {
                crate::netname::DEFAULT_PORTS.into_iter().collect()
            } else {
                s
            }
        };
        let allowed = |n: &crate::profile::Network| -> BTreeSet<String> {
            let mut s = set(&n.allow_domains);
            for p in &n.presets {
                s.extend(p.value.domains().iter().map(|d| format!("\"{d}\"")));
            }
            s
        };
        let (rn, ln) = (&rec.network, &local.network);
        let what = "network allow_domains";
        items(&mut push, what, &allowed(rn), &allowed(ln), true);
        let what = "network deny_domains";
        items(
            &mut push,
            what,
            &set(&rn.deny_domains),
            &set(&ln.deny_domains),
            false,
        );
        let what = "network allow_ports";
        items(
            &mut push,
            what,
            &ports(&rn.allow_ports),
            &ports(&ln.allow_ports),
            true,
        );
    }
    for (what, r, l) in [
        (
            "network abstract_unix",
            &rec.network.abstract_unix,
            &local.network.abstract_unix,
        ),
        (
            "process signal_outside",
            &rec.process.signal_outside,
            &local.process.signal_outside,
        ),
    ] {
        let allow = |v: &Option<Item<Permit>>| v.as_ref().map(|i| i.value) == Some(Permit::Allow);
        match (allow(r), allow(l)) {
            (true, false) => push(Effect::Wider, format!("{what} allow (local deny)")),
            (false, true) => push(Effect::Narrower, format!("{what} deny (local allow)")),
            _ => {}
        }
    }

    // Environment: what reaches the payload from the host.
    let (rk, lk) = (strings(&rec.env.keep), strings(&local.env.keep));
    for k in rk
        .iter()
        .filter(|k| !lk.iter().any(|l| l == *k || glob_match(l, k)))
    {
        push(Effect::Wider, format!("env keep {k} added"));
    }
    for k in lk.iter().filter(|k| !rk.contains(k)) {
        push(Effect::Narrower, format!("env keep {k} removed"));
    }
    let (rr, lr) = (strings(&rec.env.remove), strings(&local.env.remove));
    for k in lr.iter().filter(|k| !rr.contains(k)) {
        push(Effect::Wider, format!("env remove {k} removed"));
    }
    for k in rr.iter().filter(|k| !lr.contains(k)) {
        push(Effect::Narrower, format!("env remove {k} added"));
    }
    // A set value may name a host variable (${GITHUB_TOKEN}): any recorded
    // value the local profile does not set the same way is wider.
    for (k, v) in &rec.env.set {
        if local.env.set.get(k).map(|l| &l.value) != Some(&v.value) {
            push(Effect::Wider, format!("env set {k} = {:?}", v.value));
        }
    }
    for k in local
        .env
        .set
        .keys()
        .filter(|k| !rec.env.set.contains_key(*k))
    {
        push(Effect::Narrower, format!("env set {k} removed"));
    }

    let (ra, la) = (strings(&rec.syscalls.allow), strings(&local.syscalls.allow));
    for s in ra.iter().filter(|s| !la.contains(s)) {
        push(Effect::Wider, format!("syscalls allow {s} added"));
    }
    let (rd, ld) = (strings(&rec.syscalls.deny), strings(&local.syscalls.deny));
    for s in ld.iter().filter(|s| !rd.contains(s)) {
        push(Effect::Wider, format!("syscalls deny {s} removed"));
    }
    for s in rd.iter().filter(|s| !ld.contains(s)) {
        push(Effect::Narrower, format!("syscalls deny {s} added"));
    }
    let lc: Vec<String> = local
        .capabilities
        .keep
        .iter()
        .map(|i| cap_name(&i.value))
        .collect();
    for c in rec.capabilities.keep.iter().map(|i| cap_name(&i.value)) {
        if !lc.contains(&c) {
            push(Effect::Wider, format!("capabilities keep {c} added"));
        }
    }

    let (rl, ll) = (&rec.limits, &local.limits);
    let mut limit = |name: &str, r: Option<(u128, String)>, l: Option<(u128, String)>| match (r, l)
    {
        (None, Some((_, ls))) => push(Effect::Wider, format!("limits {name} removed (local {ls})")),
        (Some((rv, rs)), Some((lv, ls))) if rv > lv => push(
            Effect::Wider,
            format!("limits {name} raised to {rs} (local {ls})"),
        ),
        (Some((rv, rs)), Some((lv, _))) if rv < lv => {
            push(Effect::Narrower, format!("limits {name} lowered to {rs}"))
        }
        (Some((_, rs)), None) => push(Effect::Narrower, format!("limits {name} {rs} added")),
        _ => {}
    };
    fn dur(o: &Option<Item<crate::units::HumanDuration>>) -> Option<(u128, String)> {
        let i = o.as_ref()?;
        Some((i.value.0.get()?.as_millis(), mode_name(&i.value)))
    }
    fn size(o: &Option<Item<crate::units::HumanSize>>) -> Option<(u128, String)> {
        let i = o.as_ref()?;
        Some((i.value.0.get()? as u128, mode_name(&i.value)))
    }
    fn count(o: &Option<Item<crate::units::Count>>) -> Option<(u128, String)> {
        let i = o.as_ref()?;
        let v = i.value.0.get()?;
        Some((v as u128, v.to_string()))
    }
    limit("timeout", dur(&rl.timeout), dur(&ll.timeout));
    limit("cpu", dur(&rl.cpu), dur(&ll.cpu));
    limit("memory", size(&rl.memory), size(&ll.memory));
    limit("file_size", size(&rl.file_size), size(&ll.file_size));
    limit("processes", count(&rl.processes), count(&ll.processes));
    limit("open_files", count(&rl.open_files), count(&ll.open_files));

    let (rm, lm) = (rec.ns_mode(), local.ns_mode());
    if rm != lm {
        let effect = if ns_rank(rm) < ns_rank(lm) {
            Effect::Wider
        } else {
            Effect::Narrower
        };
        push(
            effect,
            format!(
                "namespaces mode {} (local {})",
                mode_name(&rm),
                mode_name(&lm)
            ),
        );
    }

    // Anything else that differs: keys this comparison does not know yet.
    let (a, b) = (
        serde_json::to_value(rec).unwrap_or_default(),
        serde_json::to_value(local).unwrap_or_default(),
    );
    let obj = |v: &serde_json::Value, k: &str| v.get(k).and_then(|t| t.as_object()).cloned();
    let tables: BTreeSet<String> = [&a, &b]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    for t in tables {
        let (ta, tb) = (obj(&a, &t), obj(&b, &t));
        if ta.is_none() && tb.is_none() {
            if !COMPARED.contains(&t.as_str()) && a.get(&t) != b.get(&t) {
                push(
                    Effect::Wider,
                    format!("{t} differs (not compared item by item)"),
                );
            }
            continue;
        }
        let (ta, tb) = (ta.unwrap_or_default(), tb.unwrap_or_default());
        let keys: BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
        for k in keys {
            let key = format!("{t}.{k}");
            if !COMPARED.contains(&key.as_str()) && ta.get(k) != tb.get(k) {
                push(
                    Effect::Wider,
                    format!("[{t}] {k} differs (not compared item by item)"),
                );
            }
        }
    }
    out.sort_by_key(|c| c.effect);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = r#"
[filesystem]
read = ["/"]
write = ["/w", "/dev/null"]
exec = ["/usr"]
deny = ["/h/.ssh", "/h/.cargo/credentials*"]
read_only = ["/w/.git/hooks"]
[network]
mode = "off"
[env]
keep = ["PATH", "LC_*"]
remove = ["*_TOKEN"]
set = { CI = "1" }
[limits]
timeout = "2h"
processes = 100
[syscalls]
deny = ["ptrace"]
[namespaces]
mode = "auto"
"#;

    fn p(text: &str) -> Profile {
        Profile::from_text("t", text, None).unwrap()
    }

    fn wider(rec: &str) -> Vec<String> {
        compare(&p(rec), &p(LOCAL))
            .into_iter()
            .filter(|c| c.effect == Effect::Wider)
            .map(|c| c.what)
            .collect()
    }

    #[test]
    fn the_same_policy_is_neither_wider_nor_narrower() {
        assert_eq!(compare(&p(LOCAL), &p(LOCAL)), vec![]);
    }

    #[test]
    fn each_widening_is_named() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "write = [\"/w\", \"/dev/null\"]",
                "write = [\"/w\", \"/dev/null\", \"/\"]",
                "write / ",
            ),
            ("exec = [\"/usr\"]", "exec = [\"/usr\", \"/w\"]", "exec /w "),
            ("deny = [\"/h/.ssh\", ", "deny = [", "deny /h/.ssh removed"),
            (
                "read_only = [\"/w/.git/hooks\"]",
                "read_only = []",
                "read_only /w/.git/hooks removed",
            ),
            (
                "mode = \"off\"",
                "mode = \"on\"",
                "network mode on (local off)",
            ),
            (
                "keep = [\"PATH\", \"LC_*\"]",
                "keep = [\"PATH\", \"*\"]",
                "env keep * added",
            ),
            (
                "remove = [\"*_TOKEN\"]",
                "remove = []",
                "env remove *_TOKEN removed",
            ),
            (
                "set = { CI = \"1\" }",
                "set = { CI = \"${GITHUB_TOKEN}\" }",
                "env set CI",
            ),
            ("timeout = \"2h\"\n", "", "limits timeout removed"),
            (
                "processes = 100",
                "processes = 1000",
                "limits processes raised to 1000",
            ),
            (
                "deny = [\"ptrace\"]",
                "deny = []\nallow = [\"mount\"]",
                "syscalls allow mount added",
            ),
            (
                "deny = [\"ptrace\"]",
                "deny = []",
                "syscalls deny ptrace removed",
            ),
            (
                "mode = \"auto\"",
                "mode = \"off\"",
                "namespaces mode off (local auto)",
            ),
        ];
        for (from, to, want) in cases {
            assert!(LOCAL.contains(from), "{from}");
            let rec = LOCAL.replacen(from, to, 1);
            let w = wider(&rec);
            assert!(
                w.iter()
                    .any(|c| c.starts_with(want.trim_end()) || c.contains(want)),
                "{from} -> {to}: wanted {want:?} in {w:?}"
            );
        }
        let w = wider(&format!("{LOCAL}[capabilities]\nkeep = [\"net_admin\"]\n"));
        assert_eq!(w, ["capabilities keep CAP_NET_ADMIN added"]);
        let w = wider(&format!("{LOCAL}[process]\nsignal_outside = \"allow\"\n"));
        assert_eq!(w, ["process signal_outside allow (local deny)"]);
        let w = wider(&LOCAL.replace(
            "mode = \"off\"",
            "mode = \"off\"\nabstract_unix = \"allow\"",
        ));
        assert_eq!(w, ["network abstract_unix allow (local deny)"]);
    }

    #[test]
    fn proxy_rules_that_widen_are_named() {
        let local = LOCAL.replace(
            "mode = \"off\"",
            "mode = \"proxy\"\nallow_domains = [\"api.test\"]\ndeny_domains = [\"gist.test\"]",
        );
        let wider_than = |rec: &str| -> Vec<String> {
            compare(&p(rec), &p(&local))
                .into_iter()
                .filter(|c| c.effect == Effect::Wider)
                .map(|c| c.what)
                .collect()
        };
        assert_eq!(wider_than(&local), Vec::<String>::new());
        let rec = local.replace("[\"api.test\"]", "[\"api.test\", \"*.evil.test\"]");
        assert_eq!(
            wider_than(&rec),
            ["network allow_domains \"*.evil.test\" added"]
        );
        let rec = local.replace("deny_domains = [\"gist.test\"]", "deny_domains = []");
        assert_eq!(
            wider_than(&rec),
            ["network deny_domains \"gist.test\" removed"]
        );
        let rec =
            format!("{local}\n").replace("[\"gist.test\"]", "[\"gist.test\"]\npresets = [\"go\"]");
        let w = wider_than(&rec);
        assert!(
            w.contains(&"network allow_domains \"proxy.golang.org\" added".to_string()),
            "{w:?}"
        );
        let rec = local.replace(
            "[\"gist.test\"]",
            "[\"gist.test\"]\nallow_ports = [443, 80, 22]",
        );
        assert_eq!(wider_than(&rec), ["network allow_ports 22 added"]);
        // "on" and "filtered" are wider than "proxy"; "off" is narrower.
        let rec = LOCAL.replace("mode = \"off\"", "mode = \"filtered\"");
        assert_eq!(wider_than(&rec), ["network mode filtered (local proxy)"]);
        assert!(wider_than(LOCAL).is_empty());
    }

    #[test]
    fn narrower_and_covered_changes_are_not_wider() {
        // A grant beneath a local one, a longer deny list, a lower limit.
        let rec = LOCAL
            .replace(
                "write = [\"/w\", \"/dev/null\"]",
                "write = [\"/w/sub\", \"/dev/null\"]",
            )
            .replace("deny = [\"/h/.ssh\", ", "deny = [\"/h\", \"/h/.ssh\", ")
            .replace("processes = 100", "processes = 10");
        assert_eq!(wider(&rec), Vec::<String>::new());
        let all = compare(&p(&rec), &p(LOCAL));
        assert!(all.iter().any(|c| c.what == "deny /h added"), "{all:?}");
        assert!(
            all.iter().any(|c| c.what.starts_with("write /w ")),
            "{all:?}"
        );
        // /wx is not beneath /w.
        let rec = LOCAL.replace("write = [\"/w\",", "write = [\"/wx\",");
        assert!(wider(&rec).iter().any(|c| c.starts_with("write /wx ")));
    }
}
