//! The library's per-command cost, in one process, side by side with a bare
//! spawn: `sandbox.command("/bin/true").status()` against
//! `std::process::Command::new("/bin/true").status()` (posix_spawn), rounds
//! interleaved, medians and the ratio printed. benches/session.sh runs it.
//!
//!     cargo run --release --example session_bench -- [ROUNDS] [PROFILE]
use std::time::{Duration, Instant};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let profile = args.next().unwrap_or_else(|| "workspace-write".into());
    let sandbox = match cordon::Sandbox::builder().profile(&profile).build() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("session_bench: {}", cordon::error::chain(&e));
            std::process::exit(125);
        }
    };
    let (mut bare, mut sandboxed) = (Vec::new(), Vec::new());
    for i in 0..rounds + 20 {
        let t = Instant::now();
        let st = std::process::Command::new("/bin/true")
            .status()
            .expect("bare spawn");
        let b = t.elapsed();
        let t = Instant::now();
        let o = sandbox
            .command("/bin/true")
            .status()
            .expect("sandboxed spawn");
        let s = t.elapsed();
        assert!(st.success() && o.success(), "/bin/true failed");
        if i >= 20 {
            bare.push(b);
            sandboxed.push(s);
        }
    }
    let (b, s) = (median(&mut bare), median(&mut sandboxed));
    println!(
        "| spawn + wait of /bin/true, in-process ({rounds} interleaved rounds) | median ms | x bare |"
    );
    println!("|---|---:|---:|");
    println!(
        "| `std::process::Command` (posix_spawn) | {:.2} | 1.00 |",
        b.as_secs_f64() * 1e3
    );
    println!(
        "| `cordon::Sandbox::command` (-p {profile}) | {:.2} | {:.2} |",
        s.as_secs_f64() * 1e3,
        s.as_secs_f64() / b.as_secs_f64()
    );
}
