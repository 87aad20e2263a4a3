//! What the launcher keeps of one run's capture, within fixed caps: executed
//! commands (deduplicated by argv, with counts), argv bytes per entry and in
//! total, denials (deduplicated by operation and target), and the set that
//! deduplicates them. A payload decides how many events there are, never how
//! much memory the launcher uses or how large the report grows: past a cap,
//! entries are shortened or counted, and `capture.truncated` says which cap was
//! reached and how often.
//!
//! Owns the caps and the bookkeeping. Does not observe anything (`monitor`)
//! nor write the report (`report`).

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hash};

use crate::report::{Denial, Executed};

/// Distinct executed commands kept.
pub const MAX_EXECUTED: usize = 1000;
/// Bytes of one executed entry's argv (as JSON, escapes included).
pub const MAX_ARGV_ENTRY: usize = 16 * 1024;
/// Bytes of every executed entry's argv together.
pub const MAX_ARGV_TOTAL: usize = 1024 * 1024;
/// Denials kept in a report; the rest are counted in `capture.dropped`.
pub const MAX_DENIALS: usize = 1000;
/// Bytes of every kept denial's text together (as JSON).
pub const MAX_DENIAL_BYTES: usize = 1024 * 1024;
/// Distinct denials remembered for deduplication (64-bit hashes).
pub const MAX_SEEN: usize = 16 * 1024;
/// Landlock audit records waiting for the end of the run, and their bytes.
pub const MAX_PENDING: usize = 4096;
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Pids and Landlock domains remembered as the run's own.
pub const MAX_PIDS: usize = 64 * 1024;
pub const MAX_DOMAINS: usize = 1024;

/// Bytes `s` takes in a JSON string, as serde_json and `term` escape it, plus
/// the quotes and a separator line of pretty-printing. Budgets are counted in
/// this unit, so they bound the report's size, not only the launcher's memory.
pub fn json_cost(s: &str) -> usize {
    16 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\t' | '\r' => 2,
            '\0'..='\x1f' | '\x7f'..='\u{9f}' => 6,
            c => c.len_utf8().max(if ('\u{2000}'..='\u{20ff}').contains(&c) {
                6
            } else {
                0
            }),
        })
        .sum::<usize>()
}

/// Cut `argv` so that its cost stays within `limit`: the argument that crosses
/// it is cut at a character boundary, later ones are left out, and a last
/// element says what was left out. Returns the cost kept and whether it cut.
pub fn shorten(argv: &mut Vec<String>, limit: usize) -> (usize, bool) {
    let mut cost = 0;
    for i in 0..argv.len() {
        let c = json_cost(&argv[i]);
        if cost + c <= limit {
            cost += c;
            continue;
        }
        let room = limit.saturating_sub(cost + 16) / 6;
        let left: usize = argv[i..].iter().map(String::len).sum();
        let mut cut = room.min(argv[i].len());
        while !argv[i].is_char_boundary(cut) {
            cut -= 1;
        }
        argv[i].truncate(cut);
        argv.truncate(i + 1);
        let marker = format!("[cordon: argv shortened, {} bytes left out]", left - cut);
        cost += json_cost(&argv[i]) + json_cost(&marker);
        argv.push(marker);
        return (cost, true);
    }
    (cost, false)
}

/// The kept records and the caps' bookkeeping.
#[derive(Debug, Default)]
pub struct Bounds {
    hasher: RandomState,
    /// argv hash → index in `executed`.
    exec_index: HashMap<u64, usize>,
    argv_bytes: usize,
    denial_bytes: usize,
    seen: HashSet<u64>,
    /// Cap name → items it left out or shortened.
    pub truncated: BTreeMap<String, u64>,
}

impl Bounds {
    /// Count one item that the cap `what` left out or shortened.
    pub fn reached(&mut self, what: &str) {
        *self.truncated.entry(what.to_string()).or_default() += 1;
    }

    fn hash(&self, v: impl Hash) -> u64 {
        self.hasher.hash_one(v)
    }

    /// Keep one execve of `argv` (already read within [`MAX_ARGV_ENTRY`]; `cut`
    /// when the reader left some out): counted onto an identical earlier entry,
    /// or a new entry while the caps allow.
    pub fn exec(
        &mut self,
        executed: &mut Vec<Executed>,
        pid: u32,
        mut argv: Vec<String>,
        at_ms: u64,
        cut: bool,
    ) {
        let (cost, shortened) = shorten(&mut argv, MAX_ARGV_ENTRY);
        let h = self.hash(&argv);
        if let Some(&i) = self.exec_index.get(&h) {
            if let Some(e) = executed.get_mut(i).filter(|e| e.argv == argv) {
                e.count += 1;
                return;
            }
        }
        if executed.len() >= MAX_EXECUTED || self.argv_bytes + cost > MAX_ARGV_TOTAL {
            self.reached("executed");
            return;
        }
        if shortened || cut {
            self.reached("argv");
        }
        self.argv_bytes += cost;
        self.exec_index.entry(h).or_insert(executed.len());
        executed.push(Executed {
            pid,
            argv,
            at_ms,
            count: 1,
        });
    }

    /// Keep one denial unless the same operation on the same target was kept
    /// or counted already; past the caps it is counted in `dropped`.
    pub fn denial(&mut self, denials: &mut Vec<Denial>, dropped: &mut u64, d: Denial) {
        let h = self.hash((&d.operation, &d.target));
        if self.seen.contains(&h) {
            return;
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(h);
        } else {
            // Remembering more would grow without bound: from here on a repeat
            // may be counted twice.
            self.reached("dedup");
        }
        let cost = [
            d.kind.as_str(),
            &d.operation,
            &d.target,
            &d.exe,
            &d.errno,
            &d.rule,
            &d.suggestion,
            d.observed_by.as_str(),
        ]
        .iter()
        .map(|s| json_cost(s))
        .sum::<usize>()
            + 64;
        if denials.len() >= MAX_DENIALS || self.denial_bytes + cost > MAX_DENIAL_BYTES {
            *dropped += 1;
            self.reached("denials");
            return;
        }
        self.denial_bytes += cost;
        denials.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denial(target: &str) -> Denial {
        Denial {
            kind: crate::report::DenialKind::Syscall,
            operation: "chroot".into(),
            target: target.into(),
            pid: 1,
            exe: "/bin/x".into(),
            errno: "EPERM".into(),
            rule: "r".into(),
            suggestion: String::new(),
            observed_by: crate::report::ObservedBy::SeccompNotify,
            at_ms: 0,
        }
    }

    #[test]
    fn cost_counts_json_escapes() {
        assert_eq!(json_cost("ab"), 18);
        assert_eq!(json_cost("\x1b"), 22);
        assert_eq!(json_cost("\u{9b}"), 22);
        assert_eq!(json_cost("é"), 18);
    }

    #[test]
    fn shorten_cuts_within_the_limit_and_says_so() {
        let mut a = vec!["x".repeat(100); 100];
        let (cost, cut) = shorten(&mut a, 1000);
        assert!(cut);
        assert!(cost <= 1000 + json_cost(a.last().unwrap()), "{cost}");
        assert!(a.last().unwrap().contains("bytes left out"), "{a:?}");
        let mut b = vec!["é".repeat(400)];
        shorten(&mut b, 300);
        assert!(b[0].chars().all(|c| c == 'é'));
        let mut c = vec!["ok".to_string()];
        assert_eq!(shorten(&mut c, 1000), (18, false));
    }

    #[test]
    fn repeated_commands_are_counted_once() {
        let (mut b, mut ex) = (Bounds::default(), Vec::new());
        for i in 0..10 {
            b.exec(
                &mut ex,
                i,
                vec!["sleep".into(), "0.1".into()],
                i as u64,
                false,
            );
        }
        assert_eq!(ex.len(), 1);
        assert_eq!(ex[0].count, 10);
        assert_eq!(ex[0].pid, 0);
        assert!(b.truncated.is_empty());
    }

    #[test]
    fn executed_and_argv_stay_within_the_caps() {
        let (mut b, mut ex) = (Bounds::default(), Vec::new());
        for i in 0..400 {
            let argv: Vec<String> = (0..256)
                .map(|j| format!("{i}-{j}-{}", "y".repeat(4000)))
                .collect();
            b.exec(&mut ex, i, argv, 0, false);
        }
        let total: usize = ex
            .iter()
            .flat_map(|e| e.argv.iter())
            .map(|a| json_cost(a))
            .sum();
        assert!(total <= MAX_ARGV_TOTAL + ex.len() * 128, "{total}");
        assert!(
            b.truncated["executed"] > 0 && b.truncated["argv"] > 0,
            "{:?}",
            b.truncated
        );
        let mut ex2 = Vec::new();
        let mut b2 = Bounds::default();
        for i in 0..(MAX_EXECUTED as u32 + 5) {
            b2.exec(&mut ex2, i, vec![i.to_string()], 0, false);
        }
        assert_eq!(ex2.len(), MAX_EXECUTED);
        assert_eq!(b2.truncated["executed"], 5);
    }

    #[test]
    fn denials_are_deduplicated_and_capped() {
        let (mut b, mut ds, mut dropped) = (Bounds::default(), Vec::new(), 0);
        for _ in 0..3 {
            b.denial(&mut ds, &mut dropped, denial("/a"));
        }
        assert_eq!((ds.len(), dropped), (1, 0));
        for i in 0..(MAX_SEEN + 10) {
            b.denial(&mut ds, &mut dropped, denial(&format!("/p{i}")));
        }
        assert_eq!(ds.len(), MAX_DENIALS);
        assert_eq!(dropped as usize, MAX_SEEN + 10 - (MAX_DENIALS - 1));
        assert!(b.truncated["dedup"] > 0);
        assert!(b.seen.len() <= MAX_SEEN);
        let (mut b, mut ds, mut dropped) = (Bounds::default(), Vec::new(), 0);
        for i in 0..500 {
            b.denial(
                &mut ds,
                &mut dropped,
                denial(&format!("/{i}/{}", "z".repeat(4000))),
            );
        }
        assert!(ds.len() < 500 && dropped > 0, "the byte budget holds");
    }
}
