//! Phase timings of one launch, for measuring what each mechanism costs per
//! run (benches/phases.sh). Printed to stderr, one `cordon-timing: µs phase`
//! line per mark, only when the launcher's own environment has
//! `CORDON_TIMINGS=1`; otherwise a mark is one relaxed atomic load.
//!
//! Owns nothing else. The payload never sees these lines: they are printed by
//! the launcher, and a payload cannot set the launcher's environment.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();
/// 0: not yet read; 1: off; 2: on.
static ON: AtomicU8 = AtomicU8::new(0);

/// The origin of the marks: call first thing in `main`.
pub fn start() {
    START.get_or_init(Instant::now);
}

/// The end of the phase named `what`, when timings are on.
pub fn mark(what: &str) {
    let on = match ON.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var_os("CORDON_TIMINGS").is_some_and(|v| v == "1");
            ON.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        v => v == 2,
    };
    if on {
        use std::io::Write;
        let t = START.get_or_init(Instant::now).elapsed();
        // One write per line: stderr is unbuffered, and strace shows the marks whole.
        let line = format!("cordon-timing: {} {what}\n", t.as_micros());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}
