//! The differential test of `cordon explain` against the kernel: random trees
//! of directories, files, executables (copies of /bin/true, mode 755) and
//! symlinks in a temp workspace, random profiles (read/write/exec grants on
//! random subpaths, denies including nested ones and grants inside denies,
//! sometimes a read_only path, namespaces auto and off), then for every node
//! the explain engine's verdict (through the library, and through the CLI for
//! a few cases) and the kernel's answer under `cordon run` with that profile
//! (one sandboxed Python per run prints one line per case: OK or the errno).
//! Any disagreement (allowed vs denied, or the errno of a denial) fails,
//! printing the seed, the profile, the tree and the cases.
//!
//! Seeds: a fixed set (1..=20 plus regression seeds found by larger sweeps);
//! CORDON_DIFF_SEEDS=N runs seeds 1..=N instead, CORDON_DIFF_SEEDS=7,42
//! exactly those (to reproduce a failure).
//!
//! Files and directories belong to the running user (0644/0755), so DAC never
//! answers for the sandbox. Runs as root and as uid 65534.
//!
//! Fixed cases next to it: a device write (/dev/null, granted by every
//! built-in) and `deny` winning over a grant inside the denied path.

mod support;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cordon::explain::{Op, Query, Verdict, decide};
use cordon::plan::{DiskLister, Plan};
use cordon::policy::{Missing, Policy};
use cordon::probe::Host;
use cordon::profile::{Profile, ProfileRef};
use cordon::vars::Context;
use support::*;

// ---------------------------------------------------------------------------
// A seeded PRNG (xorshift64*): no new crates.
// ---------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03 | 1);
        for _ in 0..4 {
            r.next();
        }
        r
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

// ---------------------------------------------------------------------------
// Trees and profiles, as data (relative paths), materialized per run.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    /// A copy of /bin/true, mode 755.
    Exe,
    /// A symlink (absolute) to a file or executable of the tree.
    Link,
}

#[derive(Debug, Clone)]
struct Node {
    /// Relative to the workspace; "" is the workspace itself.
    rel: String,
    kind: Kind,
    /// For links: the target's `rel`.
    target: String,
}

fn depth(rel: &str) -> usize {
    if rel.is_empty() {
        0
    } else {
        rel.split('/').count()
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `rel` is `anc` or beneath it.
fn under(rel: &str, anc: &str) -> bool {
    anc.is_empty() || rel == anc || rel.starts_with(&format!("{anc}/"))
}

#[derive(Debug, Clone)]
struct Spec {
    seed: u64,
    nodes: Vec<Node>,
    /// (class, rel): class is read, write or exec.
    grants: Vec<(&'static str, String)>,
    deny: Vec<String>,
    read_only: Vec<String>,
}

fn gen_spec(seed: u64) -> Spec {
    let mut rng = Rng::new(seed);
    let mut nodes = vec![Node {
        rel: String::new(),
        kind: Kind::Dir,
        target: String::new(),
    }];
    let dirs_of = |nodes: &[Node], max_depth: usize| -> Vec<String> {
        nodes
            .iter()
            .filter(|n| n.kind == Kind::Dir && depth(&n.rel) < max_depth)
            .map(|n| n.rel.clone())
            .collect()
    };
    for i in 0..3 + rng.below(6) {
        let parent = rng.pick(&dirs_of(&nodes, 3)).clone();
        nodes.push(Node {
            rel: join(&parent, &format!("d{i}")),
            kind: Kind::Dir,
            target: String::new(),
        });
    }
    for i in 0..4 + rng.below(8) {
        let parent = rng.pick(&dirs_of(&nodes, 4)).clone();
        nodes.push(Node {
            rel: join(&parent, &format!("f{i}")),
            kind: Kind::File,
            target: String::new(),
        });
    }
    for i in 0..1 + rng.below(3) {
        let parent = rng.pick(&dirs_of(&nodes, 4)).clone();
        nodes.push(Node {
            rel: join(&parent, &format!("x{i}")),
            kind: Kind::Exe,
            target: String::new(),
        });
    }
    let files: Vec<String> = nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::File | Kind::Exe))
        .map(|n| n.rel.clone())
        .collect();
    for i in 0..rng.below(3) {
        let parent = rng.pick(&dirs_of(&nodes, 4)).clone();
        let target = rng.pick(&files).clone();
        nodes.push(Node {
            rel: join(&parent, &format!("l{i}")),
            kind: Kind::Link,
            target,
        });
    }

    let all: Vec<String> = nodes.iter().map(|n| n.rel.clone()).collect();
    let non_root: Vec<String> = all.iter().filter(|r| !r.is_empty()).cloned().collect();
    let classes = ["read", "write", "exec"];
    let mut grants: Vec<(&'static str, String)> = Vec::new();
    for _ in 0..1 + rng.below(5) {
        // The workspace itself now and then, else any node.
        let rel = if rng.chance(15) {
            String::new()
        } else {
            rng.pick(&non_root).clone()
        };
        grants.push((*rng.pick(&classes), rel));
    }
    let mut deny: Vec<String> = Vec::new();
    for _ in 0..rng.below(4) {
        // Mostly beneath a grant (the interesting case), else anywhere.
        let beneath: Vec<String> = non_root
            .iter()
            .filter(|r| grants.iter().any(|(_, g)| under(r, g) && *r != g))
            .cloned()
            .collect();
        let d = if !beneath.is_empty() && rng.chance(70) {
            rng.pick(&beneath).clone()
        } else {
            rng.pick(&non_root).clone()
        };
        let inside: Vec<String> = non_root
            .iter()
            .filter(|r| under(r, &d) && **r != d)
            .cloned()
            .collect();
        if !inside.is_empty() && rng.chance(30) {
            // A deny nested in a deny.
            deny.push(rng.pick(&inside).clone());
        }
        if !inside.is_empty() && rng.chance(25) {
            // A grant inside the denied path: the deny should win.
            grants.push((*rng.pick(&classes), rng.pick(&inside).clone()));
        }
        deny.push(d);
    }
    // Now and then a read_only path inside a writable grant (enforced with
    // namespaces only; without them it stays writable, and explain says so).
    let mut read_only = Vec::new();
    let inside_writable: Vec<String> = non_root
        .iter()
        .filter(|r| {
            grants
                .iter()
                .any(|(c, g)| *c == "write" && under(r, g) && *r != g)
        })
        .cloned()
        .collect();
    if !inside_writable.is_empty() && rng.chance(50) {
        read_only.push(rng.pick(&inside_writable).clone());
    }
    Spec {
        seed,
        nodes,
        grants,
        deny,
        read_only,
    }
}

/// What the sandboxed probe needs to run at all; the workspace gets only what
/// the random grants give.
const BASE_READ: &str = "\"/usr\", \"/etc\", { path = \"/bin\", optional = true }, { path = \"/sbin\", optional = true }, { path = \"/lib\", optional = true }, { path = \"/lib64\", optional = true }";
const BASE_EXEC: &str = "\"/usr\", { path = \"/bin\", optional = true }, { path = \"/sbin\", optional = true }, { path = \"/lib\", optional = true }, { path = \"/lib64\", optional = true }";

fn ws_path(rel: &str) -> String {
    if rel.is_empty() {
        "\"${WORKSPACE}\"".into()
    } else {
        format!("\"${{WORKSPACE}}/{rel}\"")
    }
}

fn profile_text(spec: &Spec, ns: Ns) -> String {
    let list = |class: &str| -> Vec<String> {
        spec.grants
            .iter()
            .filter(|(c, _)| *c == class)
            .map(|(_, r)| ws_path(r))
            .collect()
    };
    let mut read = vec![BASE_READ.to_string()];
    read.extend(list("read"));
    let mut exec = vec![BASE_EXEC.to_string()];
    exec.extend(list("exec"));
    let mut t = String::from("[filesystem]\n");
    let _ = writeln!(t, "read = [{}]", read.join(", "));
    let _ = writeln!(t, "write = [{}]", list("write").join(", "));
    let _ = writeln!(t, "exec = [{}]", exec.join(", "));
    let _ = writeln!(
        t,
        "deny = [{}]",
        spec.deny
            .iter()
            .map(|r| ws_path(r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        t,
        "read_only = [{}]",
        spec.read_only
            .iter()
            .map(|r| ws_path(r))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = write!(t, "\n[namespaces]\nmode = \"{}\"\n", ns.name());
    t
}

/// Create the tree in `ws`, owned by `user`, files 0644, executables 0755.
fn materialize(spec: &Spec, ws: &Path, user: User) {
    for n in &spec.nodes {
        let p = ws.join(&n.rel);
        match n.kind {
            Kind::Dir if n.rel.is_empty() => {}
            Kind::Dir => std::fs::create_dir(&p).unwrap(),
            Kind::File => std::fs::write(&p, format!("content of {}\n", n.rel)).unwrap(),
            Kind::Exe => {
                std::fs::copy("/bin/true", &p).unwrap();
            }
            Kind::Link => std::os::unix::fs::symlink(ws.join(&n.target), &p).unwrap(),
        }
    }
    chown_r(ws, user);
    for n in &spec.nodes {
        let mode = match n.kind {
            Kind::Dir | Kind::Exe => 0o755,
            Kind::File => 0o644,
            Kind::Link => continue,
        };
        std::fs::set_permissions(ws.join(&n.rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// One access to try: the probe's op ("list", "read", "write", "exec") and the path.
#[derive(Debug, Clone)]
struct Case {
    probe: &'static str,
    op: Op,
    path: PathBuf,
}

fn cases(spec: &Spec, ws: &Path) -> Vec<Case> {
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (i, n) in spec.nodes.iter().enumerate() {
        let p = ws.join(&n.rel);
        match n.kind {
            Kind::Dir => {
                reads.push(Case {
                    probe: "list",
                    op: Op::Read,
                    path: p.clone(),
                });
                // A new file in an existing directory.
                writes.push(Case {
                    probe: "write",
                    op: Op::Write,
                    path: p.join(format!("new{i}")),
                });
            }
            Kind::File => {
                reads.push(Case {
                    probe: "read",
                    op: Op::Read,
                    path: p.clone(),
                });
                writes.push(Case {
                    probe: "write",
                    op: Op::Write,
                    path: p,
                });
            }
            Kind::Exe => {
                reads.push(Case {
                    probe: "exec",
                    op: Op::Exec,
                    path: p.clone(),
                });
                reads.push(Case {
                    probe: "read",
                    op: Op::Read,
                    path: p,
                });
            }
            Kind::Link => reads.push(Case {
                probe: "read",
                op: Op::Read,
                path: p,
            }),
        }
    }
    // Writes last: appending and creating change nothing the reads look at.
    reads.extend(writes);
    reads
}

const PROBE: &str = r#"
import errno, os, subprocess, sys
a = sys.argv[1:]
for op, p in zip(a[::2], a[1::2]):
    try:
        if op == "list":
            os.listdir(p)
        elif op == "read":
            with open(p, "rb") as f:
                f.read()
        elif op == "write":
            with open(p, "ab") as f:
                f.write(b"x\n")
        elif op == "exec":
            code = subprocess.run([p]).returncode
            if code != 0:
                print("EXIT %d" % code, flush=True)
                continue
        print("OK", flush=True)
    except OSError as e:
        print(errno.errorcode.get(e.errno, "errno %s" % e.errno), flush=True)
"#;

/// The verdict of the library for `case` (the same engine as `cordon explain`).
fn library_verdicts(profile: &str, ws: &Path, user: User, cases: &[Case]) -> (Vec<Verdict>, bool) {
    let prof = Profile::load(&ProfileRef::Path(PathBuf::from(profile))).unwrap();
    let ctx = Context {
        workspace: ws.to_path_buf(),
        cwd: ws.to_path_buf(),
        home: Some(home(user)),
        tmpdir: "/tmp".into(),
        env: BTreeMap::new(),
    };
    let policy = Policy::new(&prof, &ctx, Missing::Skip).unwrap();
    let plan = Plan::new(&policy, &Host::probe(), None, &DiskLister);
    let v = cases
        .iter()
        .map(|c| decide(&policy, &plan, &Query::Fs(c.op, c.path.clone())))
        .collect();
    (v, plan.namespaces())
}

/// What the CLI says: (allowed, errno line).
fn cli_verdict(
    user: User,
    profile: &str,
    ws: &Path,
    c: &Case,
) -> (Option<i32>, Option<String>, String) {
    let flag = match c.op {
        Op::Read => "--read",
        Op::Write => "--write",
        Op::Exec => "--exec",
    };
    let out = cordon(user)
        .args(["explain", "-p", profile, "-w"])
        .arg(ws)
        .current_dir(ws)
        .arg(flag)
        .arg(&c.path)
        .output()
        .unwrap();
    let o = text(&out.stdout);
    let errno = o
        .lines()
        .find_map(|l| l.trim().strip_prefix("errno: ").map(str::to_string));
    (
        out.status.code(),
        errno,
        format!("{o}{}", text(&out.stderr)),
    )
}

fn describe(spec: &Spec, ws: &Path) -> String {
    let mut s = String::new();
    for n in &spec.nodes {
        let _ = match n.kind {
            Kind::Link => writeln!(s, "  {} -> {}", ws.join(&n.rel).display(), n.target),
            k => writeln!(s, "  {} ({k:?})", ws.join(&n.rel).display()),
        };
    }
    s
}

/// The outcome of one seed for one user and namespace mode.
#[derive(Debug, Default, Clone)]
struct Outcome {
    /// explain and the kernel disagree.
    disagreements: Vec<String>,
    /// A path at or beneath an existing deny that the kernel let through.
    deny_violations: Vec<String>,
    cases: usize,
    /// (namespaces, probe op, kernel answer) -> count: what the runs covered.
    seen: BTreeMap<(bool, &'static str, String), usize>,
}

fn canonical_case_path(p: &Path) -> PathBuf {
    match std::fs::canonicalize(p) {
        Ok(c) => c,
        Err(_) => std::fs::canonicalize(p.parent().unwrap())
            .unwrap()
            .join(p.file_name().unwrap()),
    }
}

fn run_seed(spec: &Spec, user: User, ns: Ns) -> Outcome {
    let ws_dir = tempdir(user);
    let ws = std::fs::canonicalize(ws_dir.path()).unwrap();
    materialize(spec, &ws, user);
    let text_ = profile_text(spec, ns);
    let profile_path = profile(
        shared_dir(),
        &format!("{}.toml", unique(&format!("diff-{}", spec.seed))),
        &text_,
    );
    let cases = cases(spec, &ws);
    // Decide everything before anything changes the tree; canonical paths too.
    let (verdicts, plan_ns) = library_verdicts(&profile_path, &ws, user, &cases);
    let canon: Vec<PathBuf> = cases.iter().map(|c| canonical_case_path(&c.path)).collect();
    let denied: Vec<PathBuf> = spec
        .deny
        .iter()
        .map(|r| ws.join(r))
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();

    // A few cases through the CLI, as the user: it must say what the library says.
    let mut out = Outcome {
        cases: cases.len(),
        ..Outcome::default()
    };
    let header = |extra: &str| {
        format!(
            "seed {} as {user}, {ns}{extra}\nprofile {profile_path}:\n{text_}tree:\n{}",
            spec.seed,
            describe(spec, &ws)
        )
    };
    for i in [0, cases.len() / 2, cases.len() - 1] {
        let c = &cases[i];
        let v = &verdicts[i];
        let (code, errno, all) = cli_verdict(user, &profile_path, &ws, c);
        let want = if v.allowed { 0 } else { 1 };
        if code != Some(want) || errno.as_deref() != v.errno {
            out.disagreements.push(format!(
                "{}\nCLI vs library: {} {}: library {} ({:?}, {}), `cordon explain` exit {code:?}:\n{all}",
                header(""),
                c.probe,
                c.path.display(),
                if v.allowed { "allowed" } else { "denied" },
                v.errno,
                v.rule
            ));
        }
    }

    // The kernel's answers.
    let reports = tempdir(user);
    let report = reports.path().join("r.json");
    let mut cmd = cordon(user);
    cmd.args(["run", "-q", "-p", &profile_path, "-w"])
        .arg(&ws)
        .current_dir(&ws)
        .arg("--report")
        .arg(&report)
        .args(["--", PYTHON, "-I", "-S", "-c", PROBE]);
    for c in &cases {
        cmd.arg(c.probe).arg(&c.path);
    }
    let o = cmd.output().unwrap();
    let got: Vec<String> = text(&o.stdout).lines().map(str::to_string).collect();
    if o.status.code() != Some(0) || got.len() != cases.len() {
        out.disagreements.push(format!(
            "{}\nthe probe did not answer every case (exit {:?}, {} of {} lines)\n--- stdout\n{}\n--- stderr\n{}",
            header(""),
            o.status.code(),
            got.len(),
            cases.len(),
            text(&o.stdout),
            text(&o.stderr)
        ));
        return out;
    }
    let r = read_report(&report);
    let run_ns = r["enforced"]["namespaces"] == "on";
    if run_ns != plan_ns {
        out.disagreements.push(format!(
            "{}\nthe library planned namespaces {plan_ns}, the run had {run_ns}: verdicts are not comparable",
            header("")
        ));
        return out;
    }
    let mut lines = Vec::new();
    let mut deny_lines = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let v = &verdicts[i];
        let k = &got[i];
        let agree = if v.allowed {
            k == "OK"
        } else {
            Some(k.as_str()) == v.errno
        };
        if !agree {
            lines.push(format!(
                "  {} {}: explain {} (errno {:?}; rule: {}), kernel {k}",
                c.probe,
                c.path.display(),
                if v.allowed { "allowed" } else { "denied" },
                v.errno.unwrap_or("-"),
                v.rule
            ));
        }
        *out.seen.entry((run_ns, c.probe, k.clone())).or_default() += 1;
        // Without namespaces the names in a denied directory can be listed when an
        // ancestor is listable (a documented gap): listing is not checked there.
        let gap = !run_ns && c.probe == "list";
        if let Some(d) = denied
            .iter()
            .find(|d| canon[i].starts_with(d))
            .filter(|_| !gap)
        {
            if k == "OK" {
                deny_lines.push(format!(
                    "  {} {} (beneath deny {}): kernel OK; explain {} ({})",
                    c.probe,
                    c.path.display(),
                    d.display(),
                    if v.allowed { "allowed" } else { "denied" },
                    v.rule
                ));
            }
        }
    }
    if !lines.is_empty() {
        out.disagreements.push(format!(
            "{}explain vs kernel:\n{}",
            header(""),
            lines.join("\n")
        ));
    }
    if !deny_lines.is_empty() {
        out.deny_violations.push(format!(
            "{}deny not enforced:\n{}",
            header(""),
            deny_lines.join("\n")
        ));
    }
    out
}

fn seeds() -> Vec<u64> {
    match std::env::var("CORDON_DIFF_SEEDS") {
        Ok(v) if v.contains(',') => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Ok(v) if v.trim().parse::<u64>().is_ok() => {
            (1..=v.trim().parse::<u64>().unwrap()).collect()
        }
        // 1..=20, and seeds larger sweeps found disagreements with (kept as regressions).
        _ => (1..=20).chain(REGRESSION_SEEDS.iter().copied()).collect(),
    }
}

/// Seed 29: a symlink inside a denied (masked) directory, namespaces auto.
const REGRESSION_SEEDS: &[u64] = &[29];

/// Every seed as every user in both namespace modes, once per test binary
/// (both property tests read the same runs).
fn outcomes() -> &'static Vec<(u64, User, Ns, Outcome)> {
    static ALL: OnceLock<Vec<(u64, User, Ns, Outcome)>> = OnceLock::new();
    ALL.get_or_init(|| {
        let users = users("explain_diff");
        let mut jobs = Vec::new();
        for seed in seeds() {
            for &user in &users {
                for ns in Ns::ALL {
                    jobs.push((seed, user, ns));
                }
            }
        }
        // Two workers: the runs are short and mostly wait on processes.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(seed, user, ns)) = jobs.get(i) else {
                            break;
                        };
                        let o = run_seed(&gen_spec(seed), user, ns);
                        results.lock().unwrap().push((i, (seed, user, ns, o)));
                    }
                });
            }
        });
        let mut r = results.into_inner().unwrap();
        r.sort_by_key(|(i, _)| *i);
        r.into_iter().map(|(_, x)| x).collect()
    })
}

#[test]
fn explain_agrees_with_the_kernel_on_random_trees() {
    let all = outcomes();
    let cases: usize = all.iter().map(|(_, _, _, o)| o.cases).sum();
    let bad: Vec<&String> = all
        .iter()
        .flat_map(|(_, _, _, o)| &o.disagreements)
        .collect();
    let mut seen: BTreeMap<(bool, &str, String), usize> = BTreeMap::new();
    for (_, _, _, o) in all {
        for (k, n) in &o.seen {
            *seen.entry(k.clone()).or_default() += n;
        }
    }
    eprintln!(
        "explain_diff: {} runs, {cases} cases; (namespaces, op, kernel answer) -> count: {seen:?}",
        all.len()
    );
    // The fixed seeds must exercise both answers of every op in both modes, and
    // the read-only view's EROFS: otherwise agreement proves little.
    if std::env::var_os("CORDON_DIFF_SEEDS").is_none() && !all.is_empty() {
        for ns in [true, false] {
            for op in ["list", "read", "write", "exec"] {
                let ok = seen.get(&(ns, op, "OK".to_string())).copied().unwrap_or(0);
                let denied: usize = seen
                    .iter()
                    .filter(|((n, o, k), _)| *n == ns && *o == op && k != "OK")
                    .map(|(_, c)| c)
                    .sum();
                assert!(
                    ok > 0 && denied > 0,
                    "namespaces {ns}, {op}: {ok} allowed and {denied} denied cases: the generator covers too little"
                );
            }
        }
        assert!(
            seen.keys().any(|(n, _, k)| *n && k == "EROFS"),
            "no EROFS case with namespaces"
        );
    }
    assert!(
        bad.is_empty(),
        "{} of {} runs: explain disagrees with the kernel\n\n{}",
        bad.len(),
        all.len(),
        bad.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// "deny: no access at all, even under a broader grant" — and under a
/// narrower one inside it: the kernel must refuse every access at or beneath
/// an existing denied path.
#[test]
fn deny_holds_on_random_trees() {
    let all = outcomes();
    let bad: Vec<&String> = all
        .iter()
        .flat_map(|(_, _, _, o)| &o.deny_violations)
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} runs: a denied path was accessible\n\n{}",
        bad.len(),
        all.len(),
        bad.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

#[test]
fn generator_is_deterministic_and_varied() {
    let a = gen_spec(7);
    let b = gen_spec(7);
    assert_eq!(format!("{:?}", a.nodes), format!("{:?}", b.nodes));
    assert_eq!(a.grants, b.grants);
    assert_eq!(a.deny, b.deny);
    // Over the fixed seeds: nested denies, grants inside denies, read_only, links.
    let specs: Vec<Spec> = (1..=20).map(gen_spec).collect();
    let nested = specs.iter().any(|s| {
        s.deny
            .iter()
            .any(|d| s.deny.iter().any(|e| e != d && under(e, d)))
    });
    let grant_in_deny = specs.iter().any(|s| {
        s.deny
            .iter()
            .any(|d| s.grants.iter().any(|(_, g)| under(g, d)))
    });
    let deny_under_grant = specs.iter().any(|s| {
        s.deny
            .iter()
            .any(|d| s.grants.iter().any(|(_, g)| under(d, g) && d != g))
    });
    let ro = specs.iter().any(|s| !s.read_only.is_empty());
    let links = specs
        .iter()
        .any(|s| s.nodes.iter().any(|n| n.kind == Kind::Link));
    assert!(
        nested && grant_in_deny && deny_under_grant && ro && links,
        "nested {nested}, grant in deny {grant_in_deny}, deny under grant {deny_under_grant}, read_only {ro}, links {links}"
    );
}

// ---------------------------------------------------------------------------
// Fixed cases.
// ---------------------------------------------------------------------------

/// /dev/null is granted write by every built-in, and the kernel writes it in
/// both modes (a device node on the read-only view is still writable):
/// explain must say allowed.
#[test]
fn explain_agrees_on_device_writes() {
    for user in users("explain_agrees_on_device_writes") {
        for ns in Ns::ALL {
            let ctx = format!("write /dev/null as {user}, {ns}");
            let ws = tempdir(user);
            let p = ns_profile("workspace-write", ns);
            let kernel = probe(user, &p, ws.path(), &[], &[], &[("write", "/dev/null")]);
            let out = cordon(user)
                .args(["explain", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .args(["--write", "/dev/null"])
                .output()
                .unwrap();
            assert_eq!(kernel, ["OK"], "{ctx}: the kernel refused");
            assert_code(
                &out,
                0,
                format!("{ctx}: explain disagrees with the kernel (which wrote it)"),
            );
        }
    }
}

/// `deny = [A]` with `read = [A/b]`: the deny wins in both modes (without
/// namespaces the plan drops the grant; with them nothing masks A when no
/// grant covers A itself).
#[test]
fn deny_wins_over_a_grant_inside_it() {
    for user in users("deny_wins_over_a_grant_inside_it") {
        for ns in Ns::ALL {
            let ctx = format!("deny A, read A/b as {user}, {ns}");
            let ws = tempdir(user);
            std::fs::create_dir_all(ws.path().join("a/b")).unwrap();
            std::fs::write(ws.path().join("a/b/f"), "x\n").unwrap();
            chown_r(ws.path(), user);
            let probe_dir = probe_py().parent().unwrap().display().to_string();
            let p = profile_ns(
                "deny-grant-inside",
                &format!(
                    "[filesystem]\nread = [{BASE_READ}, \"{probe_dir}\", \"${{WORKSPACE}}/a/b\"]\nexec = [{BASE_EXEC}]\ndeny = [\"${{WORKSPACE}}/a\"]\n"
                ),
                ns,
            );
            let f = std::fs::canonicalize(ws.path()).unwrap().join("a/b/f");
            let kernel = probe(
                user,
                &p,
                ws.path(),
                &[],
                &[],
                &[("read", f.to_str().unwrap())],
            );
            let out = cordon(user)
                .args(["explain", "-p", &p, "-w"])
                .arg(ws.path())
                .current_dir(ws.path())
                .arg("--read")
                .arg(&f)
                .output()
                .unwrap();
            assert_eq!(
                kernel,
                ["EACCES"],
                "{ctx}: the kernel let the read through; explain says:\n{}",
                text(&out.stdout)
            );
            assert_code(&out, 1, format!("{ctx}: explain"));
        }
    }
}

/// A symlink inside a denied directory, pointing at a readable file outside
/// it. With namespaces the denied directory is masked (mode 000), so the path
/// through it does not resolve; without them Landlock checks only the target.
#[test]
fn explain_agrees_on_a_symlink_inside_a_denied_directory() {
    for user in users("explain_agrees_on_a_symlink_inside_a_denied_directory") {
        for ns in Ns::ALL {
            let ctx = format!("read ws/a/link -> ws/f with ws/a denied, as {user}, {ns}");
            let ws = tempdir(user);
            let wsc = std::fs::canonicalize(ws.path()).unwrap();
            std::fs::create_dir(wsc.join("a")).unwrap();
            std::fs::write(wsc.join("f"), "x\n").unwrap();
            std::os::unix::fs::symlink(wsc.join("f"), wsc.join("a/link")).unwrap();
            chown_r(&wsc, user);
            let probe_dir = probe_py().parent().unwrap().display().to_string();
            let p = profile_ns(
                "deny-symlink",
                &format!(
                    "[filesystem]\nread = [{BASE_READ}, \"{probe_dir}\", \"${{WORKSPACE}}\"]\nexec = [{BASE_EXEC}]\ndeny = [\"${{WORKSPACE}}/a\"]\n"
                ),
                ns,
            );
            let link = wsc.join("a/link");
            let kernel = probe(
                user,
                &p,
                &wsc,
                &[],
                &[],
                &[("read", link.to_str().unwrap())],
            );
            let out = cordon(user)
                .args(["explain", "-p", &p, "-w"])
                .arg(&wsc)
                .current_dir(&wsc)
                .arg("--read")
                .arg(&link)
                .output()
                .unwrap();
            let explained = if out.status.code() == Some(0) {
                "OK".to_string()
            } else {
                text(&out.stdout)
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("errno: ").map(str::to_string))
                    .unwrap_or_default()
            };
            assert!(
                kernel.len() == 1 && kernel[0] == explained,
                "{ctx}: the kernel answered {kernel:?}, explain {explained}:\n{}",
                text(&out.stdout)
            );
        }
    }
}
