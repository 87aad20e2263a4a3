//! Library use: load a profile, validate it for this machine, plan it for this
//! kernel and print what would be enforced, without running anything.
//!
//!     cargo run --example explain_policy -- workspace-write /etc/hosts
use std::path::PathBuf;

use cordon::explain::{Op, Query, decide};
use cordon::plan::{DiskLister, Plan};
use cordon::policy::{Missing, Policy};
use cordon::probe::Host;
use cordon::profile::{Profile, ProfileRef};
use cordon::vars::Context;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let profile = args.next().unwrap_or_else(|| "workspace-write".into());
    let path = PathBuf::from(args.next().unwrap_or_else(|| "/etc/hosts".into()));

    let profile = Profile::load(&ProfileRef::parse(&profile))?; // TOML, extends merged
    let ctx = Context::from_process(None)?; // workspace = current directory
    let policy = Policy::new(&profile, &ctx, Missing::Skip)?; // validated, absolute
    let host = Host::probe();
    let plan = Plan::new(&policy, &host, None, &DiskLister); // what this kernel enforces

    println!(
        "landlock {}, namespaces {}",
        host.landlock,
        if plan.namespaces() { "on" } else { "off" }
    );
    println!(
        "{} Landlock rules, {} seccomp rules",
        plan.fs_rules.len(),
        policy.syscalls.rules.len()
    );
    for m in &plan.missing {
        println!("missing: {m}");
    }
    for op in [Op::Read, Op::Write, Op::Exec] {
        let v = decide(&policy, &plan, &Query::Fs(op, path.clone()));
        println!(
            "{} {}: {} ({})",
            op.as_str(),
            path.display(),
            if v.allowed { "allowed" } else { "denied" },
            v.rule
        );
    }
    Ok(())
}
