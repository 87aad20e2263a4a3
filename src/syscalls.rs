//! Syscall names and numbers for the target architecture, from the generated
//! table (tools/gen-syscalls.py). An unknown name is a validation error that
//! names the architecture.

#[cfg(target_arch = "x86_64")]
#[path = "syscalls_x86_64.rs"]
mod table;

#[cfg(not(target_arch = "x86_64"))]
mod table {
    // Only x86_64 has a generated table so far; every name is unknown elsewhere,
    // and building the filter refuses with a clear error.
    pub(crate) const TABLE: &[(&str, i64)] = &[];
}

/// The number of `name` on this architecture.
pub fn number(name: &str) -> Option<i64> {
    table::TABLE
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table::TABLE[i].1)
}

/// The table's own `'static` spelling of `name`, if it is a syscall here.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    table::TABLE
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| table::TABLE[i].0)
}

/// The name of syscall `nr`, for reports.
pub fn name(nr: i64) -> Option<&'static str> {
    table::TABLE
        .iter()
        .find(|(_, n)| *n == nr)
        .map(|(name, _)| *name)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_matches_libc() {
        assert!(table::TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(number("read"), Some(libc::SYS_read));
        assert_eq!(number("clone3"), Some(libc::SYS_clone3));
        assert_eq!(
            number("landlock_restrict_self"),
            Some(libc::SYS_landlock_restrict_self)
        );
        assert_eq!(number("ptrace"), Some(libc::SYS_ptrace));
        assert_eq!(name(libc::SYS_openat), Some("openat"));
        assert_eq!(number("frobnicate"), None);
    }
}
