//! Names on the network: `[network] allow_domains` and `deny_domains` as typed
//! patterns, the normal form names are compared in, and the decisions of
//! network mode "proxy" (may this name, address and port be reached? may this
//! name resolve?). Pure: nothing here resolves or connects; `proxy` does, and
//! asks these functions.
//!
//! Names are compared in one form: ASCII lower case, no trailing dot, each
//! non-ASCII label in punycode (IDNA's `xn--` form; Unicode case folding is
//! `char::to_lowercase`, without IDNA's full mapping and normalisation, so a
//! profile should list international names in their `xn--` form when in doubt).

use std::net::IpAddr;

/// A named set of domains for `[network] presets` (mode "proxy"): what a
/// package manager or a code host needs, reviewed in one place. Each opens
/// exactly the names listed by [`Preset::domains`], and what those hosts
/// accept (an upload to a registry, a push to any repository of the code
/// host) is then reachable too.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// npm and yarn registries.
    Npm,
    /// PyPI (pip, uv, poetry).
    Pypi,
    /// crates.io (cargo).
    Crates,
    /// The Go module proxy and checksum database.
    Go,
    /// github.com: git over HTTPS, the API, archives and release assets.
    Github,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Npm,
        Preset::Pypi,
        Preset::Crates,
        Preset::Go,
        Preset::Github,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Npm => "npm",
            Preset::Pypi => "pypi",
            Preset::Crates => "crates",
            Preset::Go => "go",
            Preset::Github => "github",
        }
    }

    /// The names it allows (exact names: no wildcard, so that a paste or
    /// user-content host of the same company stays out unless listed).
    pub fn domains(self) -> &'static [&'static str] {
        match self {
            Preset::Npm => &[
                "registry.npmjs.org",
                "registry.yarnpkg.com",
                "repo.yarnpkg.com",
            ],
            Preset::Pypi => &["pypi.org", "files.pythonhosted.org"],
            Preset::Crates => &["crates.io", "index.crates.io", "static.crates.io"],
            Preset::Go => &["proxy.golang.org", "sum.golang.org"],
            Preset::Github => &[
                "github.com",
                "api.github.com",
                "codeload.github.com",
                "objects.githubusercontent.com",
                "raw.githubusercontent.com",
                "release-assets.githubusercontent.com",
            ],
        }
    }
}

/// One entry of `allow_domains` or `deny_domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// This name only.
    Exact(String),
    /// `*.example.com`: every name below example.com, not example.com itself.
    Below(String),
    /// An address, which a client may then name literally, and which names
    /// may resolve to even where it is loopback, private or link-local.
    Ip(IpAddr),
}

impl Pattern {
    /// Parse a profile's entry. Err: why it is not a name, a `*.` pattern or an address.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        let t = text.trim();
        if let Some(ip) = ip_literal(t) {
            return Ok(Pattern::Ip(ip));
        }
        if let Some(rest) = t.strip_prefix("*.") {
            return normalize(rest).map(Pattern::Below);
        }
        if t.contains('*') {
            return Err(format!(
                "\"{t}\": a wildcard may only be the whole first label (\"*.example.com\")"
            ));
        }
        normalize(t).map(Pattern::Exact)
    }

    fn matches(&self, t: &Target) -> bool {
        match (self, t) {
            (Pattern::Exact(e), Target::Name(n)) => e == n,
            (Pattern::Below(d), Target::Name(n)) => {
                n.len() > d.len() + 1 && n.ends_with(d.as_str()) && {
                    let cut = n.len() - d.len() - 1;
                    n.as_bytes()[cut] == b'.'
                }
            }
            (Pattern::Ip(a), Target::Ip(b)) => same_ip(*a, *b),
            _ => false,
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(n) => f.write_str(n),
            Pattern::Below(d) => write!(f, "*.{d}"),
            Pattern::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// What a client asked to reach: a name in normal form, or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Name(String),
    Ip(IpAddr),
}

impl Target {
    /// A host as a client wrote it (`example.com`, `Example.COM.`, `1.2.3.4`, `[::1]`).
    pub fn parse(host: &str) -> Result<Target, String> {
        match ip_literal(host) {
            Some(ip) => Ok(Target::Ip(ip)),
            None => normalize(host).map(Target::Name),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Name(n) => f.write_str(n),
            Target::Ip(a) => write!(f, "{a}"),
        }
    }
}

/// Why a request was refused: the rule, and the smallest change that would allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub suggestion: String,
}

/// The rules of mode "proxy", in normal form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub allow: Vec<Pattern>,
    pub deny: Vec<Pattern>,
    pub ports: Vec<u16>,
}

/// The ports a proxy connects to when a profile lists none.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

impl Rules {
    /// May the client ask for `t` on `port`? Ok: the allow rule that matched.
    /// Deny rules win over allow rules.
    pub fn check(&self, t: &Target, port: u16) -> Result<String, Refusal> {
        if let Some(d) = self.deny.iter().find(|p| p.matches(t)) {
            return Err(Refusal {
                rule: format!("[network] deny_domains \"{d}\""),
                suggestion: format!("remove \"{d}\" from [network] deny_domains"),
            });
        }
        let allowed = self.allow.iter().find(|p| p.matches(t));
        let Some(rule) = allowed else {
            return Err(match t {
                Target::Ip(a) => Refusal {
                    rule: "an address is reached only when [network] allow_domains lists it".into(),
                    suggestion: format!("add \"{a}\" to [network] allow_domains"),
                },
                Target::Name(n) => Refusal {
                    rule: "not in [network] allow_domains".into(),
                    suggestion: format!("add \"{n}\" to [network] allow_domains"),
                },
            });
        };
        if !self.ports.contains(&port) {
            return Err(Refusal {
                rule: format!("port {port} is not in [network] allow_ports"),
                suggestion: format!("add {port} to [network] allow_ports"),
            });
        }
        Ok(rule.to_string())
    }

    /// Whether a refusal of `t:port` may be put to an approver
    /// (`approve.domains = "ask"`): a name (not an address) that only the
    /// allowlist refuses, on an allowed port.
    pub fn askable(&self, t: &Target, port: u16) -> bool {
        matches!(t, Target::Name(_))
            && !self.deny.iter().any(|p| p.matches(t))
            && self.ports.contains(&port)
    }

    /// May `name` resolve inside the sandbox (mode "proxy")? The same name
    /// rules as [`Rules::check`], whatever the port.
    pub fn may_resolve(&self, name: &str) -> Result<(), Refusal> {
        let t = Target::Name(name.to_string());
        let port = self.ports.first().copied().unwrap_or(443);
        match self.check(&t, port) {
            Ok(_) => Ok(()),
            Err(r) => Err(r),
        }
    }

    /// The addresses of `t` the proxy may connect to: loopback, private,
    /// link-local, metadata and other special addresses only where an `Ip`
    /// rule lists that address, whatever a name resolves to (DNS rebinding).
    /// `localhost` (and `*.localhost`), when allowed by its own exact rule, may
    /// be loopback. Err when none is left.
    pub fn usable(&self, t: &Target, addrs: &[IpAddr]) -> Result<Vec<IpAddr>, Refusal> {
        let listed = |a: IpAddr| {
            self.allow
                .iter()
                .any(|p| matches!(p, Pattern::Ip(b) if same_ip(*b, a)))
        };
        let local_name = match t {
            Target::Name(n) => {
                (n == "localhost" || n.ends_with(".localhost"))
                    && self
                        .allow
                        .iter()
                        .any(|p| matches!(p, Pattern::Exact(e) if e == n))
            }
            Target::Ip(_) => false,
        };
        let denied = |a: IpAddr| {
            self.deny
                .iter()
                .find(|p| matches!(p, Pattern::Ip(b) if same_ip(*b, a)))
        };
        let ok: Vec<IpAddr> = addrs
            .iter()
            .copied()
            .filter(|a| denied(*a).is_none())
            .filter(|a| match special(*a) {
                None => true,
                Some(Special::Loopback) if local_name => true,
                Some(_) => listed(*a),
            })
            .collect();
        if !ok.is_empty() {
            return Ok(ok);
        }
        // An address on the deny list, whichever name leads to it.
        if let Some(d) = addrs.iter().find_map(|a| denied(*a)) {
            return Err(Refusal {
                rule: format!("{t} resolves to {d}, which [network] deny_domains lists"),
                suggestion: format!("remove \"{d}\" from [network] deny_domains"),
            });
        }
        let first = addrs.first().copied();
        Err(match first {
            None => Refusal {
                rule: "the name does not resolve".into(),
                suggestion: "check the name".into(),
            },
            Some(a) => Refusal {
                rule: format!(
                    "{t} resolves to {a}, a {} address, which is reached only when [network] allow_domains lists it",
                    special(a).map_or("special", Special::what)
                ),
                suggestion: format!("add \"{a}\" to [network] allow_domains"),
            },
        })
    }
}

/// Addresses that a name allowed by the profile must not lead to by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Loopback,
    Private,
    LinkLocal,
    Metadata,
    Other,
}

impl Special {
    fn what(self) -> &'static str {
        match self {
            Special::Loopback => "loopback",
            Special::Private => "private",
            Special::LinkLocal => "link-local",
            Special::Metadata => "cloud metadata",
            Special::Other => "reserved",
        }
    }
}

/// Whether `a` is loopback, private, link-local, a cloud metadata address or
/// otherwise not a public unicast address.
pub fn special(a: IpAddr) -> Option<Special> {
    match a {
        IpAddr::V4(v) => {
            let o = v.octets();
            if v == std::net::Ipv4Addr::new(169, 254, 169, 254) {
                Some(Special::Metadata)
            } else if v.is_loopback() {
                Some(Special::Loopback)
            } else if v.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                // RFC 1918 and carrier-grade NAT (100.64.0.0/10).
                Some(Special::Private)
            } else if v.is_link_local() {
                Some(Special::LinkLocal)
            } else if v.is_unspecified()
                || v.is_broadcast()
                || v.is_multicast()
                || o[0] == 0
                || o[0] >= 240
            {
                Some(Special::Other)
            } else {
                None
            }
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return special(IpAddr::V4(v4));
            }
            let s = v.segments();
            if v == "fd00:ec2::254"
                .parse::<std::net::Ipv6Addr>()
                .expect("literal")
            {
                Some(Special::Metadata)
            } else if v.is_loopback() {
                Some(Special::Loopback)
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some(Special::Private)
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some(Special::LinkLocal)
            } else if v.is_unspecified() || v.is_multicast() || (s[0] == 0x64 && s[1] == 0xff9b) {
                // NAT64 (64:ff9b::/96) reaches any IPv4 address, private ones included.
                Some(Special::Other)
            } else {
                None
            }
        }
    }
}

/// The same address, an IPv4-mapped IPv6 address taken for its IPv4 one.
pub fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |x: IpAddr| match x {
        IpAddr::V6(v) => v.to_ipv4_mapped().map_or(x, IpAddr::V4),
        v => v,
    };
    canon(a) == canon(b)
}

/// An address literal: `1.2.3.4`, `::1`, `[::1]`. Not the shorthand forms
/// (`127.1`, `0x7f000001`) that some resolvers accept: those are names here,
/// and no name rule can match them, so they are refused.
fn ip_literal(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// The normal form of a name: ASCII lower case, no trailing dot, non-ASCII
/// labels in punycode. Err: not a host name.
pub fn normalize(name: &str) -> Result<String, String> {
    let n = name.strip_suffix('.').unwrap_or(name);
    if n.is_empty() {
        return Err("an empty name".into());
    }
    let mut out = String::with_capacity(n.len());
    for (i, label) in n.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        if label.is_empty() {
            return Err(format!("\"{name}\" has an empty label"));
        }
        if label.is_ascii() {
            for c in label.chars() {
                if !(c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(format!("\"{name}\" holds {c:?}, which no host name has"));
                }
                out.push(c.to_ascii_lowercase());
            }
        } else {
            let lower: String = label.chars().flat_map(char::to_lowercase).collect();
            if lower
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '/')
            {
                return Err(format!("\"{name}\" holds characters no host name has"));
            }
            out.push_str("xn--");
            out.push_str(&punycode(&lower));
        }
        let label_len = out.len() - out.rfind('.').map_or(0, |d| d + 1);
        if label_len > 63 {
            return Err(format!("\"{name}\" has a label longer than 63 bytes"));
        }
    }
    if out.len() > 253 {
        return Err(format!("\"{name}\" is longer than 253 bytes"));
    }
    Ok(out)
}

/// The nameservers of a resolv.conf text, in order; glibc's default
/// (127.0.0.1) where it names none.
pub fn resolvers(conf: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = conf
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        // A scope (fe80::1%eth0) is the interface's business, not the address's.
        .filter_map(|a| a.split('%').next()?.parse().ok())
        .collect();
    if out.is_empty() {
        out.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    out
}

/// RFC 3492's encoding of one label (without the `xn--` prefix).
fn punycode(label: &str) -> String {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    fn adapt(mut delta: u32, points: u32, first: bool) -> u32 {
        delta /= if first { 700 } else { 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + 38)
    }
    fn digit(d: u32) -> char {
        (if d < 26 {
            b'a' + d as u8
        } else {
            b'0' + (d - 26) as u8
        }) as char
    }
    let cps: Vec<u32> = label.chars().map(u32::from).collect();
    let mut out: String = label.chars().filter(char::is_ascii).collect();
    let basic = out.len() as u32;
    if basic > 0 {
        out.push('-');
    }
    let (mut n, mut delta, mut bias, mut h) = (128u32, 0u32, 72u32, basic);
    while (h as usize) < cps.len() {
        let m = cps.iter().copied().filter(|&c| c >= n).min().unwrap_or(n);
        delta = delta.saturating_add((m - n).saturating_mul(h + 1));
        n = m;
        for &c in &cps {
            if c < n {
                delta = delta.saturating_add(1);
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out.push(digit(q));
                bias = adapt(delta, h + 1, h == basic);
                delta = 0;
                h += 1;
            }
        }
        delta += 1;
        n += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> Rules {
        Rules {
            allow: allow.iter().map(|a| Pattern::parse(a).unwrap()).collect(),
            deny: deny.iter().map(|a| Pattern::parse(a).unwrap()).collect(),
            ports: DEFAULT_PORTS.to_vec(),
        }
    }

    fn name(n: &str) -> Target {
        Target::parse(n).unwrap()
    }

    #[test]
    fn presets_hold_exact_valid_names() {
        for p in Preset::ALL {
            assert!(!p.domains().is_empty());
            for d in p.domains() {
                assert_eq!(
                    Pattern::parse(d),
                    Ok(Pattern::Exact(d.to_string())),
                    "{}",
                    p.name()
                );
            }
        }
        assert!(
            !Preset::Github
                .domains()
                .contains(&"gist.githubusercontent.com")
        );
    }

    #[test]
    fn resolvers_of_resolv_conf() {
        let r = resolvers(
            "# x\nsearch a.b\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver bad\noptions edns0\n",
        );
        assert_eq!(
            r,
            vec![
                "127.0.0.53".parse::<IpAddr>().unwrap(),
                "fe80::1".parse().unwrap()
            ]
        );
        assert_eq!(resolvers(""), vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn names_compare_in_one_form() {
        assert_eq!(normalize("Api.OpenAI.com.").unwrap(), "api.openai.com");
        assert_eq!(
            normalize("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(normalize("MÜNCHEN.de").unwrap(), "xn--mnchen-3ya.de");
        assert_eq!(normalize("例え.jp").unwrap(), "xn--r8jz45g.jp");
        for bad in ["", ".", "a..b", "a b.com", "a/b.com", "x:1"] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(normalize(&"a".repeat(64)).is_err());
    }

    #[test]
    fn wildcards_match_below_not_the_apex() {
        let r = rules(&["*.githubusercontent.com", "crates.io"], &[]);
        assert!(r.check(&name("raw.githubusercontent.com"), 443).is_ok());
        assert!(r.check(&name("a.b.githubusercontent.com"), 443).is_ok());
        assert!(r.check(&name("githubusercontent.com"), 443).is_err());
        assert!(r.check(&name("evilgithubusercontent.com"), 443).is_err());
        assert!(r.check(&name("CRATES.IO."), 80).is_ok());
        assert!(r.check(&name("static.crates.io"), 443).is_err());
        assert!(Pattern::parse("api.*.com").is_err());
        assert!(Pattern::parse("*").is_err());
    }

    #[test]
    fn deny_wins_and_says_which_rule() {
        let r = rules(
            &["*.githubusercontent.com"],
            &["gist.githubusercontent.com"],
        );
        let e = r
            .check(&name("gist.githubusercontent.com"), 443)
            .unwrap_err();
        assert!(
            e.rule
                .contains("deny_domains \"gist.githubusercontent.com\""),
            "{e:?}"
        );
        let e = r.check(&name("paste.example"), 443).unwrap_err();
        assert_eq!(
            e.suggestion,
            "add \"paste.example\" to [network] allow_domains"
        );
    }

    #[test]
    fn ports_and_ip_literals() {
        let r = rules(&["example.com", "203.0.113.7"], &[]);
        let e = r.check(&name("example.com"), 22).unwrap_err();
        assert_eq!(e.suggestion, "add 22 to [network] allow_ports");
        assert!(r.check(&name("93.184.216.34"), 443).is_err());
        assert!(r.check(&name("203.0.113.7"), 443).is_ok());
        assert!(r.check(&name("[::ffff:203.0.113.7]"), 443).is_ok());
        // Shorthand forms are names no rule matches.
        assert!(r.check(&Target::parse("127.1").unwrap(), 443).is_err());
    }

    #[test]
    fn names_do_not_lead_to_special_addresses() {
        let r = rules(&["example.com", "localhost", "10.0.0.5"], &[]);
        let pubaddr: IpAddr = "93.184.216.34".parse().unwrap();
        for bad in [
            "169.254.169.254",
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "100.64.0.1",
            "0.0.0.0",
            "fd00:ec2::254",
            "::1",
            "fe80::1",
            "fc00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            let a: IpAddr = bad.parse().unwrap();
            assert!(special(a).is_some(), "{bad}");
            assert!(r.usable(&name("example.com"), &[a]).is_err(), "{bad}");
            // A public address beside it is used, the special one dropped.
            assert_eq!(
                r.usable(&name("example.com"), &[a, pubaddr]).unwrap(),
                vec![pubaddr]
            );
        }
        let e = r
            .usable(&name("example.com"), &["169.254.169.254".parse().unwrap()])
            .unwrap_err();
        assert!(e.rule.contains("cloud metadata"), "{e:?}");
        // Listed addresses and an explicitly allowed localhost are usable.
        assert!(
            r.usable(&name("example.com"), &["10.0.0.5".parse().unwrap()])
                .is_ok()
        );
        assert!(
            r.usable(&name("localhost"), &["127.0.0.1".parse().unwrap()])
                .is_ok()
        );
        assert!(
            r.usable(&name("localhost"), &["169.254.169.254".parse().unwrap()])
                .is_err()
        );
        assert!(special(pubaddr).is_none());
    }

    #[test]
    fn a_denied_address_is_denied_whatever_name_leads_to_it() {
        let r = rules(&["*.test"], &["198.18.0.10"]);
        let a: IpAddr = "198.18.0.10".parse().unwrap();
        let b: IpAddr = "198.18.0.11".parse().unwrap();
        let e = r.usable(&name("api.test"), &[a]).unwrap_err();
        assert!(e.rule.contains("deny_domains"), "{e:?}");
        assert_eq!(r.usable(&name("api.test"), &[a, b]).unwrap(), vec![b]);
        let m: IpAddr = "::ffff:198.18.0.10".parse().unwrap();
        assert!(r.usable(&name("api.test"), &[m]).is_err());
    }
}
