//! Capabilities: drop every set (bounding, ambient, inheritable, permitted,
//! effective) except the profile's `keep`, in the order the kernel requires,
//! then read back and verify. Runs in the child before no_new_privs.

use caps::{CapSet, Capability, CapsHashSet};

/// Drop everything but `keep`. Errors are strings: this runs after the fork,
/// where the launcher's error type is not needed; the parent reports them.
pub fn drop_all_except(keep: &[Capability]) -> Result<(), String> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(|e| format!("reading capabilities: {e}"))?;
    // Bounding first: dropping it needs CAP_SETPCAP, which goes with the permitted set.
    // Without CAP_SETPCAP (an unprivileged run without a user namespace) the bounding
    // set cannot shrink; no_new_privs then keeps execve from gaining anything from it.
    if permitted.contains(&Capability::CAP_SETPCAP) {
        // Drop blindly rather than read each one first: one prctl per capability.
        let last = last_cap();
        for cap in caps::all() {
            if !keep.contains(&cap) && cap.index() <= last {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(|e| format!("dropping {cap} from the bounding set: {e}"))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient)
        .map_err(|e| format!("clearing ambient capabilities: {e}"))?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Inheritable, &kept)
        .map_err(|e| format!("setting inheritable capabilities: {e}"))?;
    caps::set(None, CapSet::Effective, &kept)
        .map_err(|e| format!("setting effective capabilities: {e}"))?;
    caps::set(None, CapSet::Permitted, &kept)
        .map_err(|e| format!("setting permitted capabilities: {e}"))?;
    // A non-root uid loses permitted capabilities at execve; ambient ones survive it.
    for cap in &kept {
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| format!("raising ambient {cap}: {e}"))?;
    }
    verify(&kept)
}

/// The highest capability this kernel knows (newer names in the crate may be unknown here).
fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

fn verify(kept: &CapsHashSet) -> Result<(), String> {
    // Ambient needs no check: the kernel keeps it within permitted and inheritable.
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        let now = caps::read(None, set).map_err(|e| format!("reading capabilities: {e}"))?;
        if !now.is_subset(kept) {
            return Err(format!(
                "capabilities still present after dropping: {:?} in {set:?}",
                now.difference(kept).collect::<Vec<_>>()
            ));
        }
    }
    Ok(())
}
