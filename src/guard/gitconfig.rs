//! Git configuration keys that make git run a program (or read a file that
//! can), and the neutraliser the guard applies to the configuration of a
//! repository that a run created (`git init`, `git clone`, or a payload's own).
//!
//! Owns the key list and a line-based reader of git's config syntax that only
//! finds keys; it never evaluates values, follows includes or runs git. Does
//! not decide which files are read (see the guard's module).

/// A dangerous key: `section.[subsection.]name`, compared case-insensitively,
/// `*` standing for any subsection. With `bang_only`, only a value starting
/// with `!` (a shell command) is dangerous.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub pattern: &'static str,
    pub bang_only: bool,
    pub why: &'static str,
}

const fn key(pattern: &'static str, why: &'static str) -> Key {
    Key {
        pattern,
        bang_only: false,
        why,
    }
}

/// The keys a repository's own config must not carry out of a run.
pub const DANGEROUS: &[Key] = &[
    key("core.fsmonitor", "runs a program on git status, diff, add"),
    key(
        "core.hookspath",
        "moves hooks to a directory of the payload's",
    ),
    key("core.sshcommand", "runs a program on fetch and push"),
    key("core.gitproxy", "runs a program on git:// fetches"),
    key("core.pager", "runs a program on log, diff, show"),
    key("core.editor", "runs a program on commit, rebase -i"),
    key("core.askpass", "runs a program when a password is asked"),
    key("core.alternaterefscommand", "runs a program on fetch"),
    key("sequence.editor", "runs a program on rebase -i"),
    key("pager.*", "runs a program as a command's pager"),
    key("interactive.difffilter", "runs a program on add -p"),
    key("diff.external", "runs a program on diff"),
    key("diff.*.command", "runs a program on diff"),
    key("diff.*.textconv", "runs a program on diff, log -p, blame"),
    key("merge.*.driver", "runs a program on merge, rebase, pull"),
    key("filter.*.clean", "runs a program on add, status, diff"),
    key("filter.*.smudge", "runs a program on checkout"),
    key(
        "filter.*.process",
        "runs a program on add, status, checkout",
    ),
    key("include.path", "reads another config file"),
    key("includeif.*.path", "reads another config file"),
    Key {
        pattern: "alias.*",
        bang_only: true,
        why: "a shell alias runs a program",
    },
    Key {
        pattern: "submodule.*.update",
        bang_only: true,
        why: "runs a program on submodule update",
    },
    key("credential.helper", "runs a program on fetch and push"),
    key("credential.*.helper", "runs a program on fetch and push"),
    key(
        "gpg.program",
        "runs a program on commit -S, log --show-signature",
    ),
    key("gpg.*.program", "runs a program on signing and verifying"),
    key("remote.*.uploadpack", "runs a program on fetch"),
    key("remote.*.receivepack", "runs a program on push"),
    key(
        "uploadpack.packobjectshook",
        "runs a program on fetch from here",
    ),
    key(
        "protocol.allow",
        "enables ext:: remotes, which run a program",
    ),
    key(
        "protocol.*.allow",
        "enables ext:: remotes, which run a program",
    ),
    key("hook.*.command", "config-based hooks (git 2.46+)"),
    key("trace2.eventtarget", "writes to any path"),
    key("trace2.normaltarget", "writes to any path"),
    key("trace2.perftarget", "writes to any path"),
    key("difftool.*.cmd", "runs a program on difftool"),
    key("mergetool.*.cmd", "runs a program on mergetool"),
    key("web.browser", "runs a program on help --web"),
    key("browser.*.cmd", "runs a program on help --web"),
    key("man.*.cmd", "runs a program on help"),
    key("sendemail.smtpserver", "may name a program"),
    key(
        "lfs.customtransfer.*.path",
        "runs a program on lfs transfers",
    ),
    key(
        "lfs.standalonetransferagent",
        "selects a custom transfer program",
    ),
];

/// The first dangerous key `name` (lowercase `section.sub.key`) matches, given its value.
pub fn dangerous(name: &str, value: &str) -> Option<&'static Key> {
    DANGEROUS
        .iter()
        .find(|k| matches(k.pattern, name) && (!k.bang_only || value.trim_start().starts_with('!')))
}

fn matches(pattern: &str, name: &str) -> bool {
    // name is section[.subsection].key; a subsection may itself contain dots.
    let (Some((section, _)), Some((_, key))) = (name.split_once('.'), name.rsplit_once('.')) else {
        return false;
    };
    let sub = name
        .get(section.len() + 1..name.len() - key.len())
        .map(|s| s.trim_end_matches('.'))
        .unwrap_or("");
    let p: Vec<&str> = pattern.split('.').collect();
    match p.as_slice() {
        [s, "*"] => section == *s,
        [s, k] => section == *s && sub.is_empty() && key == *k,
        [s, "*", k] => section == *s && !sub.is_empty() && key == *k,
        [s, a, "*", k] => {
            section == *s
                && key == *k
                && sub
                    .strip_prefix(a)
                    .is_some_and(|r| r.len() > 1 && r.starts_with('.'))
        }
        _ => false,
    }
}

/// One key found in a config text: its lowercase name, its value's first line,
/// and the lines (0-based, inclusive) it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub name: String,
    pub value: String,
    pub first: usize,
    pub last: usize,
    /// The key shares its first line with a section header (`[core] x = y`).
    pub after_header: Option<usize>,
}

/// Every key of a config text, in order. Lines that are neither a header, a key,
/// a comment nor blank are returned as a key named "" (git would refuse the
/// file; the neutraliser comments them out too).
pub fn keys(text: &str) -> Vec<Found> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::new();
    let mut section = String::new();
    let mut i = 0;
    while i < lines.len() {
        let mut rest = lines[i].trim_start();
        let mut after_header = None;
        if rest.starts_with('[') {
            match header(rest) {
                Some((name, used)) => {
                    section = name;
                    let tail = rest[used..].trim_start();
                    if tail.is_empty() || tail.starts_with('#') || tail.starts_with(';') {
                        i += 1;
                        continue;
                    }
                    after_header = Some(rest.len() - tail.len());
                    rest = tail;
                }
                None => {
                    out.push(Found {
                        name: String::new(),
                        value: String::new(),
                        first: i,
                        last: i,
                        after_header: None,
                    });
                    i += 1;
                    continue;
                }
            }
        }
        if rest.is_empty() || rest.starts_with('#') || rest.starts_with(';') {
            i += 1;
            continue;
        }
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(rest.len());
        let first = i;
        let name = &rest[..name_len];
        let value = rest[name_len..]
            .trim_start()
            .strip_prefix('=')
            .unwrap_or("")
            .trim()
            .to_string();
        // A value continues on the next line after an unescaped trailing backslash.
        let mut line = lines[i];
        while continues(line) && i + 1 < lines.len() {
            i += 1;
            line = lines[i];
        }
        let full = if section.is_empty() || name.is_empty() {
            String::new()
        } else {
            format!("{section}.{}", name.to_ascii_lowercase())
        };
        out.push(Found {
            name: full,
            value,
            first,
            last: i,
            after_header,
        });
        i += 1;
    }
    out
}

/// Parse `[section]`, `[section "sub"]` or `[section.sub]`: the lowercase
/// section with its subsection, and the bytes used.
fn header(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut i = 1;
    let mut name = String::new();
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'.') {
        name.push(b[i].to_ascii_lowercase() as char);
        i += 1;
    }
    if name.is_empty() {
        return None;
    }
    if i < b.len() && b[i] == b' ' {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if b.get(i) != Some(&b'"') {
            return None;
        }
        i += 1;
        let mut sub = Vec::new();
        loop {
            match b.get(i)? {
                b'"' => break,
                b'\\' => {
                    sub.push(*b.get(i + 1)?);
                    i += 2;
                }
                c => {
                    sub.push(*c);
                    i += 1;
                }
            }
        }
        i += 1;
        // Subsections are case-sensitive, but a dangerous one is dangerous in any case.
        name.push('.');
        name.push_str(&String::from_utf8_lossy(&sub).to_ascii_lowercase());
    }
    if b.get(i) != Some(&b']') {
        return None;
    }
    Some((name, i + 1))
}

/// Whether a key line ends with a backslash that continues the value (outside
/// a comment; an even run of backslashes is literal).
fn continues(line: &str) -> bool {
    let mut quoted = false;
    let mut escaped = false;
    let mut run = 0;
    for c in line.chars() {
        if escaped {
            escaped = false;
            run = 0;
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                run = 1;
                continue;
            }
            '"' => quoted = !quoted,
            '#' | ';' if !quoted => return false,
            _ => {}
        }
        run = 0;
    }
    escaped && run == 1
}

/// The text with every dangerous key (and every unparseable line) commented
/// out, and the keys removed with their reasons. None when nothing is dangerous.
pub fn neutralise(text: &str) -> Option<(String, Vec<(String, &'static str)>)> {
    let found = keys(text);
    let bad: Vec<(&Found, &'static str)> = found
        .iter()
        .filter_map(|f| {
            if f.name.is_empty() {
                Some((f, "a line git cannot parse"))
            } else {
                dangerous(&f.name, &f.value).map(|k| (f, k.why))
            }
        })
        .collect();
    if bad.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    for (f, _) in &bad {
        for (n, line) in lines.iter_mut().enumerate().take(f.last + 1).skip(f.first) {
            match f.after_header {
                Some(at) if n == f.first => {
                    let indent = line.len() - line.trim_start().len();
                    let (head, tail) = line.split_at(indent + at);
                    *line = format!("{head}\n# cordon removed: {tail}");
                }
                _ => *line = format!("# cordon removed: {line}"),
            }
        }
    }
    let removed = bad
        .iter()
        .map(|(f, why)| {
            let name = if f.name.is_empty() {
                format!("line {}", f.first + 1)
            } else {
                f.name.clone()
            };
            (name, *why)
        })
        .collect();
    Some((lines.join("\n"), removed))
}

/// The values of `section.key` (lowercase) in a config text, for the paths a
/// user's own config points at (core.hooksPath, include.path).
pub fn values(text: &str, name: &str) -> Vec<String> {
    keys(text)
        .into_iter()
        .filter(|f| matches(name, &f.name))
        .map(|f| unquote(&f.value))
        .collect()
}

fn unquote(v: &str) -> String {
    let v = v.split([' ', '\t']).next().unwrap_or("");
    v.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_every_header_form() {
        let t = "[core]\n\tfsmonitor = /x\n[diff \"Bin\"]\n\ttextconv = cat\n[filter.lfs]\nclean = y\n[alias] st = !sh\n";
        let names: Vec<String> = keys(t).into_iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "core.fsmonitor",
                "diff.bin.textconv",
                "filter.lfs.clean",
                "alias.st"
            ]
        );
    }

    #[test]
    fn dangerous_keys_match_subsections_and_bang_aliases() {
        assert!(dangerous("core.fsmonitor", "true").is_some());
        assert!(dangerous("diff.bin.textconv", "cat").is_some());
        assert!(dangerous("diff.a.b.textconv", "cat").is_some());
        assert!(dangerous("includeif.gitdir:/x/.path", "y").is_some());
        assert!(dangerous("alias.st", "!sh -c x").is_some());
        assert!(dangerous("alias.st", "status").is_none());
        assert!(dangerous("submodule.x.update", "checkout").is_none());
        assert!(dangerous("submodule.x.update", "!sh").is_some());
        assert!(dangerous("lfs.customtransfer.x.path", "/y").is_some());
        assert!(dangerous("core.bare", "false").is_none());
        assert!(dangerous("remote.origin.url", "x").is_none());
        assert!(dangerous("submodule.x.path", "x").is_none());
        assert!(dangerous("diff.textconv", "x").is_none());
    }

    #[test]
    fn neutralise_comments_out_dangerous_keys_and_keeps_the_rest() {
        let t =
            "[core]\n\tbare = false\n\tfsmonitor = \"/tmp/x\"\n[remote \"origin\"]\n\turl = u\n";
        let (out, removed) = neutralise(t).unwrap();
        assert_eq!(
            out,
            "[core]\n\tbare = false\n# cordon removed: \tfsmonitor = \"/tmp/x\"\n[remote \"origin\"]\n\turl = u\n"
        );
        assert_eq!(removed[0].0, "core.fsmonitor");
        let found: Vec<String> = keys(&out).into_iter().map(|f| f.name).collect();
        assert_eq!(found, ["core.bare", "remote.origin.url"]);
        assert!(neutralise("[core]\n\tbare = true\n").is_none());
    }

    #[test]
    fn neutralise_handles_a_key_on_the_header_line_and_continuations() {
        let t = "[core] hooksPath = /h\n[core]\n\tpager = a\\\n  b\n[user]\nname = n\n";
        let (out, _) = neutralise(t).unwrap();
        let left: Vec<String> = keys(&out).into_iter().map(|f| f.name).collect();
        assert_eq!(left, ["user.name"], "{out}");
        // A comment's backslash does not continue it; an escaped one does not either.
        assert!(!continues("x = y # c\\"));
        assert!(!continues("x = y\\\\"));
        assert!(continues("x = y\\"));
    }

    #[test]
    fn unparseable_lines_are_commented_out() {
        let (out, removed) = neutralise("[core\nfsmonitor = x\n").unwrap();
        assert!(out.starts_with("# cordon removed: [core"), "{out}");
        assert_eq!(removed[0].0, "line 1");
    }

    #[test]
    fn values_reads_hookspath() {
        let t = "[core]\n\thooksPath = .githooks\n[include]\n\tpath = \"../shared.cfg\"\n";
        assert_eq!(values(t, "core.hookspath"), [".githooks"]);
        assert_eq!(values(t, "include.path"), ["../shared.cfg"]);
    }
}
