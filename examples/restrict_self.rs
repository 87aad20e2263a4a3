//! Library use: sandbox and run one command through the same pipeline as
//! `cordon run` (profile -> policy -> prepared -> spawn -> supervise).
//!
//!     cargo run --example restrict_self -- /bin/sh -c 'touch /etc/x; echo $?'
use std::ffi::OsString;
use std::time::Instant;

use cordon::commands::{Launch, execute};
use cordon::profile::{Profile, ProfileRef};
use cordon::vars::Context;

fn main() {
    let command: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = if command.is_empty() {
        vec!["/bin/true".into()]
    } else {
        command
    };
    let started = Instant::now();
    let launch = Launch {
        profile: Profile::load(&ProfileRef::parse("workspace-write")).expect("built-in profile"),
        ctx: Context::from_process(None).expect("current directory"),
        command,
        best_effort: false,
        verbose: true,
        quiet: false,
        dry_run: false,
        report: None,
        audit_log: None,
        trace: false,
        capture: true,
        changes: true,
        allow_unsafe_workspace: false,
        sign_report: true,
    };
    let code = match execute(launch, &cordon::sandbox::inherited_fds()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("restrict_self: {}", cordon::error::chain(&e));
            e.exit_code()
        }
    };
    eprintln!("restrict_self: exit {code} after {:?}", started.elapsed());
    std::process::exit(code as i32);
}
