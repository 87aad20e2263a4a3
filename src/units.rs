//! Humane durations ("90s", "10m", "1h30m") and sizes ("512MiB", "4GiB", "10G"),
//! plus the tiny glob used for variable names and file names. Pure functions.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A limit value: a bound, or explicitly none (so a child profile can lift a parent's limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit<T> {
    Unlimited,
    Max(T),
}

impl<T: Copy> Limit<T> {
    pub fn get(self) -> Option<T> {
        match self {
            Limit::Unlimited => None,
            Limit::Max(v) => Some(v),
        }
    }
}

/// Parse "90s", "10m", "2h", "1h30m", "500ms", "1d". A bare number is refused:
/// "timeout = 30" is ambiguous, and a sandbox should not guess.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration `{s}` (examples: \"90s\", \"10m\", \"2h\", \"1h30m\")"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration `{s}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            "" => return Err(format!("duration `{s}` needs a unit (ms, s, m, h, d)")),
            other => {
                return Err(format!(
                    "unknown duration unit `{other}` in `{s}` (use ms, s, m, h, d)"
                ));
            }
        };
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration `{s}` is too large"))?;
    }
    if total.is_zero() {
        return Err(format!("duration `{s}` is zero"));
    }
    Ok(total)
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let mut s = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// Parse "4GiB", "512MiB", "10G", "1.5GiB", "4096" (bytes). Binary and decimal units
/// are both accepted because both are common; "G" means GiB as in ulimit and Docker.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    if num.is_empty() {
        return Err(format!(
            "invalid size `{s}` (examples: \"512MiB\", \"4GiB\")"
        ));
    }
    let mult: u64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ));
        }
    };
    let value = if num.contains('.') {
        let f: f64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
        let v = f * mult as f64;
        if !v.is_finite() || v >= u64::MAX as f64 {
            return Err(format!("size `{s}` is too large"));
        }
        v as u64
    } else {
        let n: u64 = num
            .parse()
            .map_err(|_| format!("size `{s}` is too large"))?;
        n.checked_mul(mult)
            .ok_or_else(|| format!("size `{s}` is too large"))?
    };
    if value == 0 {
        return Err(format!("size `{s}` is zero"));
    }
    Ok(value)
}

pub fn format_size(n: u64) -> String {
    for (unit, len) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if n >= len && n.is_multiple_of(len) {
            return format!("{}{unit}", n / len);
        }
    }
    format!("{n}B")
}

/// Match `name` against a glob with `*` (any run, including empty) and `?` (one char).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

// ---- serde: limits are strings in the TOML ("30m", "4GiB", "unlimited") ----

/// A duration as written in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Limit<Duration>);

/// A size as written in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanSize(pub Limit<u64>);

/// A count (processes, open files): an integer, or "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub Limit<u64>);

#[derive(Deserialize)]
#[serde(untagged)]
enum StrOrInt {
    Str(String),
    Int(i64),
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration string such as \"30m\" or \"unlimited\"")
        })? {
            StrOrInt::Str(s) if s == "unlimited" => Ok(HumanDuration(Limit::Unlimited)),
            StrOrInt::Str(s) => parse_duration(&s)
                .map(|d| HumanDuration(Limit::Max(d)))
                .map_err(serde::de::Error::custom),
            StrOrInt::Int(n) => Err(serde::de::Error::custom(format!(
                "duration {n} needs a unit: write \"{n}s\" or \"{n}m\""
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a size string such as \"4GiB\" or \"unlimited\"")
        })? {
            StrOrInt::Str(s) if s == "unlimited" => Ok(HumanSize(Limit::Unlimited)),
            StrOrInt::Str(s) => parse_size(&s)
                .map(|n| HumanSize(Limit::Max(n)))
                .map_err(serde::de::Error::custom),
            StrOrInt::Int(n) if n > 0 => Ok(HumanSize(Limit::Max(n as u64))),
            StrOrInt::Int(n) => Err(serde::de::Error::custom(format!(
                "size {n} must be positive"
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StrOrInt::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a positive integer or \"unlimited\""))?
        {
            StrOrInt::Str(s) if s == "unlimited" => Ok(Count(Limit::Unlimited)),
            StrOrInt::Str(s) => Err(serde::de::Error::custom(format!(
                "expected a positive integer or \"unlimited\", found \"{s}\""
            ))),
            StrOrInt::Int(n) if n > 0 => Ok(Count(Limit::Max(n as u64))),
            StrOrInt::Int(n) => Err(serde::de::Error::custom(format!("{n} must be positive"))),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Limit::Unlimited => s.serialize_str("unlimited"),
            Limit::Max(d) => s.serialize_str(&format_duration(d)),
        }
    }
}

impl Serialize for HumanSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Limit::Unlimited => s.serialize_str("unlimited"),
            Limit::Max(n) => s.serialize_str(&format_size(n)),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Limit::Unlimited => s.serialize_str("unlimited"),
            Limit::Max(n) => s.serialize_u64(n),
        }
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Limit::Unlimited => f.write_str("unlimited"),
            Limit::Max(d) => f.write_str(&format_duration(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in [
            "",
            "30",
            "m",
            "10x",
            "1.5h",
            "0s",
            "-1s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        for bad in ["", "GiB", "4XB", "0", "99999999999TiB", "1.2.3G"] {
            assert!(parse_size(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(format_size(4 << 30), "4GiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn globs() {
        assert!(glob_match("*_TOKEN", "GITHUB_TOKEN"));
        assert!(!glob_match("*_TOKEN", "GITHUB_TOKENS"));
        assert!(glob_match("*_SECRET*", "AWS_SECRET_ACCESS_KEY"));
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("credentials*", "credentials.toml"));
        assert!(glob_match("*PASSWORD*", "DB_PASSWORD_FILE"));
        assert!(!glob_match("PATH", "PATHS"));
    }
}
