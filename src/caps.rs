//! Capabilities: drop every set (bounding, ambient, inheritable, permitted,
//! effective) except the profile's `keep`, in the order the kernel requires,
//! then read back and verify. Runs in the child before no_new_privs.
//!
//! This runs on every launch, so it makes the fewest calls that do the job: the
//! bounding set by number up to the kernel's last capability (found by EINVAL,
//! so capabilities newer than the caps crate are dropped too), then the three
//! other sets in one capset and one capget to verify.

use caps::{CapSet, Capability};

use crate::sys::{self, CapSets};

/// The bounding set holds at most 64 capabilities (two 32-bit words).
const MAX_CAPS: u32 = 64;

/// Drop everything but `keep`. Errors are strings: this runs after the fork,
/// where the launcher's error type is not needed; the parent reports them.
pub fn drop_all_except(keep: &[Capability]) -> Result<(), String> {
    let keep_mask = keep.iter().fold(0u64, |m, c| m | c.bitmask());
    let now = sys::capget().map_err(|e| format!("reading capabilities: {e}"))?;
    // Bounding first: dropping it needs CAP_SETPCAP, which goes with the permitted set.
    // Without CAP_SETPCAP (an unprivileged run without a user namespace) the bounding
    // set cannot shrink; no_new_privs then keeps execve from gaining anything from it.
    if now.permitted & Capability::CAP_SETPCAP.bitmask() != 0 {
        for cap in 0..MAX_CAPS {
            if keep_mask & (1 << cap) != 0 {
                continue;
            }
            match sys::capbset_drop(cap) {
                Ok(()) => {}
                // Past the kernel's last capability: nothing more to drop.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) && cap > 0 => break,
                Err(e) => {
                    return Err(format!(
                        "dropping capability {cap} from the bounding set: {e}"
                    ));
                }
            }
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    let kept = now.permitted & keep_mask;
    let want = CapSets {
        effective: kept,
        permitted: kept,
        inheritable: kept,
    };
    sys::capset(want).map_err(|e| format!("setting capabilities: {e}"))?;
    // A non-root uid loses permitted capabilities at execve; ambient ones survive it.
    for cap in keep.iter().filter(|c| kept & c.bitmask() != 0) {
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| format!("raising ambient {cap}: {e}"))?;
    }
    verify(kept)
}

fn verify(kept: u64) -> Result<(), String> {
    // Ambient needs no check: the kernel keeps it within permitted and inheritable.
    let now = sys::capget().map_err(|e| format!("reading capabilities: {e}"))?;
    for (set, mask) in [
        ("effective", now.effective),
        ("permitted", now.permitted),
        ("inheritable", now.inheritable),
    ] {
        let extra = mask & !kept;
        if extra != 0 {
            let names: Vec<String> = caps::all()
                .into_iter()
                .filter(|c| extra & c.bitmask() != 0)
                .map(|c| c.to_string())
                .collect();
            return Err(format!(
                "capabilities still present after dropping: {} in the {set} set (mask {extra:#x})",
                names.join(", ")
            ));
        }
    }
    Ok(())
}
