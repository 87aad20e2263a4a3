//! The child's environment: what `[env]` keeps, removes, sets and injects.
//! Loader and interpreter injection variables are always removed unless kept
//! by exact name. Pure: the caller supplies the host environment and secrets.

use std::collections::BTreeMap;

use crate::policy::EnvPolicy;
use crate::profile::Secret;
use crate::units::glob_match;

/// Variables that make a loader or interpreter run code chosen by whoever set
/// them. Globs; removed unless a `keep` entry names the variable exactly.
pub const INJECTION: &[&str] = &[
    "LD_*",
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCALDOMAIN",
    "LOCPATH",
    "MALLOC_*",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "PYTHONSTARTUP",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONBREAKPOINT",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "PERL5DB",
    "RUBYOPT",
    "RUBYLIB",
    "NODE_OPTIONS",
    "NODE_PATH",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
];

/// Why a variable was dropped (for `explain` and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    NotKept,
    Removed,
    Injection,
}

/// Decide one host variable: Ok(()) if it passes through, or why not.
pub fn decide(policy: &EnvPolicy, name: &str) -> Result<(), Dropped> {
    let exact_keep = policy.keep.iter().any(|k| k == name);
    if INJECTION.iter().any(|g| glob_match(g, name)) && !exact_keep {
        return Err(Dropped::Injection);
    }
    if policy.remove.iter().any(|g| glob_match(g, name)) {
        return Err(Dropped::Removed);
    }
    if exact_keep || policy.keep.iter().any(|g| glob_match(g, name)) {
        Ok(())
    } else {
        Err(Dropped::NotKept)
    }
}

/// The host variables a `remove` pattern took away (those that look like
/// credentials), each with the first pattern that matched, sorted by name:
/// what a failed run's summary names (an agent that lost its key says only
/// "Not logged in"). Names only, never values.
pub fn removed<'a>(
    policy: &'a EnvPolicy,
    host: impl Iterator<Item = &'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = host
        .filter(|name| decide(policy, name) == Err(Dropped::Removed))
        .filter(|name| {
            !policy.set.iter().any(|(k, _)| k == name)
                && !policy.secrets.iter().any(|(k, _)| k == name)
        })
        .filter_map(|name| {
            let by = policy.remove.iter().find(|g| glob_match(g, name))?;
            Some((name, by.as_str()))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A secret's value, or None for an optional one whose source is missing.
pub type SecretValue<E> = Result<Option<String>, E>;

/// The environment of the child: kept host variables, then `set`, then secrets.
/// `secret` resolves a secret source to its value (file read or host variable).
pub fn build<E>(
    policy: &EnvPolicy,
    host: &BTreeMap<String, String>,
    secret: &mut dyn FnMut(&str, &Secret) -> SecretValue<E>,
) -> Result<Vec<(String, String)>, E> {
    let mut out: BTreeMap<String, String> = host
        .iter()
        .filter(|(k, _)| decide(policy, k).is_ok())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &policy.set {
        out.insert(k.clone(), v.clone());
    }
    for (k, src) in &policy.secrets {
        // An optional secret whose source is missing is left out.
        if let Some(v) = secret(k, src)? {
            out.insert(k.clone(), v);
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::SecretSource;

    fn policy(keep: &[&str], remove: &[&str]) -> EnvPolicy {
        EnvPolicy {
            keep: keep.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
            set: vec![("CI".into(), "1".into())],
            secrets: vec![],
        }
    }

    #[test]
    fn removed_names_what_a_remove_pattern_took() {
        let mut p = policy(&["PATH"], &["*_KEY", "*_TOKEN"]);
        p.secrets = vec![(
            "OTHER_TOKEN".into(),
            Secret::required(SecretSource::From("OTHER_TOKEN".into())),
        )];
        let host = [
            "PATH",
            "GITHUB_TOKEN",
            "ANTHROPIC_API_KEY",
            "OTHER_TOKEN",
            "X",
        ];
        assert_eq!(
            removed(&p, host.into_iter()),
            vec![("ANTHROPIC_API_KEY", "*_KEY"), ("GITHUB_TOKEN", "*_TOKEN")],
            "X was only not kept, OTHER_TOKEN is passed as a secret: neither is named"
        );
        assert!(removed(&policy(&["*"], &[]), host.into_iter()).is_empty());
    }

    #[test]
    fn keep_remove_and_injection() {
        let p = policy(&["PATH", "LC_*", "*"], &["*_TOKEN", "AWS_*"]);
        assert_eq!(decide(&p, "PATH"), Ok(()));
        assert_eq!(decide(&p, "LC_ALL"), Ok(()));
        assert_eq!(decide(&p, "GITHUB_TOKEN"), Err(Dropped::Removed));
        assert_eq!(decide(&p, "AWS_SECRET_ACCESS_KEY"), Err(Dropped::Removed));
        assert_eq!(
            decide(&p, "LD_PRELOAD"),
            Err(Dropped::Injection),
            "a glob keep is not enough"
        );
        assert_eq!(decide(&p, "BASH_FUNC_x%%"), Err(Dropped::Injection));
        let exact = policy(&["LD_LIBRARY_PATH"], &[]);
        assert_eq!(
            decide(&exact, "LD_LIBRARY_PATH"),
            Ok(()),
            "kept by exact name"
        );
        assert_eq!(decide(&exact, "HOME"), Err(Dropped::NotKept));
    }

    #[test]
    fn build_sets_and_injects() {
        let p = EnvPolicy {
            secrets: vec![
                (
                    "API".into(),
                    Secret::required(SecretSource::From("HOST_API".into())),
                ),
                (
                    "MAYBE".into(),
                    Secret {
                        source: SecretSource::From("HOST_MAYBE".into()),
                        optional: true,
                    },
                ),
            ],
            ..policy(&["PATH"], &[])
        };
        let host: BTreeMap<String, String> =
            [("PATH", "/bin"), ("HOST_API", "s3cret"), ("OTHER", "x")]
                .into_iter()
                .map(|(a, b)| (a.into(), b.into()))
                .collect();
        let env = build(&p, &host, &mut |_, s| match &s.source {
            SecretSource::From(v) => match host.get(v) {
                Some(v) => Ok(Some(v.clone())),
                None if s.optional => Ok(None),
                None => Err(format!("{v} is not set")),
            },
            SecretSource::File(_) => unreachable!(),
        })
        .unwrap();
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["API", "CI", "PATH"]);
        assert_eq!(env[0].1, "s3cret");
    }
}
