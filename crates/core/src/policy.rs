//! The destination policy: which hosts and addresses the server may call.
//!
//! A publisher chooses the URL the server calls, so without a policy any
//! publisher can make the server call cloud metadata services, the
//! internal network or the server's own API, and read the answers back
//! through callbacks, logs or the DLQ. Self-hosted users do deliver to
//! internal services, so private addresses cannot simply be forbidden:
//! the operator lists what to allow and deny, and `serve` starts from a
//! deny list of link-local and metadata addresses.
//!
//! Rules: a destination that matches an allow rule is allowed; else one
//! that matches a deny rule (the operator's, the defaults, or the server's
//! own listening addresses) is refused; else it is allowed. `*` matches
//! everything, so `--destination-deny '*'` plus allow rules is an
//! allow-list.
//!
//! The same check runs at publish on the URL (numeric hosts normalised:
//! `2852039166`, `0x7f000001`, `[::ffff:169.254.169.254]` are the
//! addresses they denote) and at delivery on every resolved address and
//! redirect hop.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One allow or deny rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Every destination.
    Any,
    /// Addresses in a network (a bare address is a /32 or /128).
    Net(IpNet),
    /// A host name, or with a leading `.` / `*.` every name under it.
    Host(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid destination rule {0:?}: use a CIDR (10.0.0.0/8), an address, a host name, *.domain or *")]
pub struct RuleError(pub String);

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, RuleError> {
        let t = s.trim();
        if t == "*" {
            return Ok(Rule::Any);
        }
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(Rule::Net(normalize_net(net)));
        }
        if let Ok(ip) = t
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            return Ok(Rule::Net(IpNet::from(normalize_ip(ip))));
        }
        let name = t.trim_start_matches('*').to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let body = name.strip_prefix('.').unwrap_or(name);
        if body.is_empty() || !body.split('.').all(label_ok) {
            return Err(RuleError(s.into()));
        }
        Ok(Rule::Host(name.to_string()))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Any => f.write_str("*"),
            Rule::Net(n) => write!(f, "{n}"),
            Rule::Host(h) if h.starts_with('.') => write!(f, "*{h}"),
            Rule::Host(h) => f.write_str(h),
        }
    }
}

impl Rule {
    fn matches_ip(&self, ip: IpAddr) -> bool {
        match self {
            Rule::Any => true,
            Rule::Net(n) => n.contains(&ip),
            Rule::Host(_) => false,
        }
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            Rule::Any => true,
            Rule::Net(_) => false,
            Rule::Host(h) if h.starts_with('.') => name.ends_with(h.as_str()) || name == &h[1..],
            Rule::Host(h) => name == h,
        }
    }
}

/// Parses a comma-separated list of rules (flags and environment).
pub fn parse_rules(list: &str) -> Result<Vec<Rule>, RuleError> {
    list.split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(Rule::from_str)
        .collect()
}

/// What `qstash serve` refuses unless allowed: link-local addresses (where
/// every cloud's metadata service lives) and the metadata names and
/// addresses outside that range.
pub fn serve_default_deny() -> Vec<Rule> {
    [
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    ]
    .iter()
    .map(|r| r.parse().expect("default rules parse"))
    .collect()
}

/// Where a refused destination's rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Deny,
    Default,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("destination {target} is not allowed: {why}")]
pub struct Denied {
    pub target: String,
    pub why: String,
}

#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    allow: Vec<Rule>,
    deny: Vec<(Rule, Source)>,
    /// The port the API listens on, and the addresses that reach it.
    own_port: Option<u16>,
    own_ips: Vec<IpAddr>,
    own_any: bool,
}

impl DestinationPolicy {
    /// Allows everything (`qstash dev`, unless rules are given).
    pub fn allow_all() -> Self {
        Self::default()
    }

    /// `allow` and `deny` from the operator; `defaults` are added to the
    /// deny rules (the serve defaults, or none).
    pub fn new(allow: Vec<Rule>, deny: Vec<Rule>, defaults: Vec<Rule>) -> Self {
        let deny = deny
            .into_iter()
            .map(|r| (r, Source::Deny))
            .chain(defaults.into_iter().map(|r| (r, Source::Default)))
            .collect();
        Self {
            allow,
            deny,
            ..Self::default()
        }
    }

    /// Refuses the API's own listening address (no publish loops, no
    /// reading the API through a delivery). When it listens on every
    /// interface, `local_ips` are the machine's addresses.
    pub fn deny_own_address(mut self, listen: SocketAddr, local_ips: Vec<IpAddr>) -> Self {
        let ip = normalize_ip(listen.ip());
        self.own_port = Some(listen.port());
        self.own_any = ip.is_unspecified();
        self.own_ips = local_ips.into_iter().map(normalize_ip).collect();
        self.own_ips.push(ip);
        self
    }

    /// Checks a destination URL as given at publish: its host name against
    /// the name rules, or its address (normalised) against every rule.
    /// `localhost` is taken as the loopback addresses it always denotes.
    pub fn check_url(&self, url: &str) -> Result<(), Denied> {
        let Ok(parsed) = url::Url::parse(url) else {
            return Ok(()); // Not a URL: validation refuses it elsewhere.
        };
        self.check_parsed(&parsed)
    }

    /// [`check_url`](Self::check_url) of a URL already parsed (a delivery
    /// parses its destination once for the check and the request).
    pub fn check_parsed(&self, parsed: &url::Url) -> Result<(), Denied> {
        let port = parsed.port_or_known_default();
        let target = || parsed.host_str().unwrap_or_default().to_string();
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(&target(), IpAddr::V4(ip), port),
            Some(url::Host::Ipv6(ip)) => self.check_ip(&target(), IpAddr::V6(ip), port),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.check_name(&name)?;
                if name == "localhost" || name.ends_with(".localhost") {
                    for ip in [
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ] {
                        self.check_ip(&name, ip, port)?;
                    }
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Checks a host name against the name rules.
    pub fn check_name(&self, name: &str) -> Result<(), Denied> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.allow.iter().any(|r| r.matches_name(&name)) {
            return Ok(());
        }
        match self.deny.iter().find(|(r, _)| r.matches_name(&name)) {
            Some((rule, source)) => Err(denied(&name, &name, rule, *source)),
            None => Ok(()),
        }
    }

    /// Checks one address `host` denotes or resolves to; `port` is the
    /// destination port when known (the own-address rule needs it).
    pub fn check_ip(&self, host: &str, ip: IpAddr, port: Option<u16>) -> Result<(), Denied> {
        let ip = normalize_ip(ip);
        if self.allow.iter().any(|r| r.matches_ip(ip)) {
            return Ok(());
        }
        if let Some((rule, source)) = self.deny.iter().find(|(r, _)| r.matches_ip(ip)) {
            return Err(denied(host, &ip.to_string(), rule, *source));
        }
        if self.is_own(ip, port) {
            return Err(Denied {
                target: host.to_string(),
                why: format!(
                    "{ip} port {} is this server's own API (own listening address)",
                    port.unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Whether any rule could refuse something (a dev server with no
    /// rules skips the checks).
    pub fn is_open(&self) -> bool {
        self.deny.is_empty() && self.own_port.is_none()
    }

    fn is_own(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let Some(own) = self.own_port else {
            return false;
        };
        if port != Some(own) {
            return false;
        }
        ip.is_unspecified() || self.own_ips.contains(&ip) || (self.own_any && ip.is_loopback())
    }
}

fn denied(host: &str, matched: &str, rule: &Rule, source: Source) -> Denied {
    let from = match source {
        Source::Deny => "--destination-deny",
        Source::Default => "the default deny list of qstash serve",
    };
    Denied {
        target: host.to_string(),
        why: format!("{matched} matches rule {rule} ({from}); allow it with --destination-allow"),
    }
}

/// The IPv4 address behind IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) IPv6 forms, which reach
/// the same host; other addresses unchanged.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let embedded = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
            let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if compatible || nat64 {
                IpAddr::V4(embedded)
            } else {
                IpAddr::V6(v6)
            }
        }
        v4 => v4,
    }
}

fn normalize_net(net: IpNet) -> IpNet {
    match (net, normalize_ip(net.addr())) {
        (IpNet::V6(n), IpAddr::V4(v4)) if n.prefix_len() >= 96 => {
            IpNet::new(IpAddr::V4(v4), n.prefix_len() - 96).unwrap_or(net)
        }
        _ => net,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve() -> DestinationPolicy {
        DestinationPolicy::new(vec![], vec![], serve_default_deny()).deny_own_address(
            "0.0.0.0:8080".parse().unwrap(),
            vec!["10.1.2.3".parse().unwrap()],
        )
    }

    #[test]
    fn every_numeric_form_of_the_metadata_address_is_refused() {
        let p = serve();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://2852039166/",
            "http://0xa9fea9fe/",
            "http://0251.0376.0251.0376/",
            "http://169.254.43518/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./x",
        ] {
            let e = p.check_url(url).unwrap_err();
            assert!(e.to_string().contains("rule"), "{url}: {e}");
        }
    }

    #[test]
    fn own_address_is_refused_only_on_its_port() {
        let p = serve();
        for url in [
            "http://127.0.0.1:8080/v2/keys",
            "http://0x7f000001:8080/v2/keys",
            "http://localhost:8080/v2/keys",
            "http://[::1]:8080/",
            "http://0.0.0.0:8080/",
            "http://10.1.2.3:8080/",
        ] {
            let e = p.check_url(url).unwrap_err();
            assert!(e.to_string().contains("own"), "{url}: {e}");
        }
        for url in [
            "http://127.0.0.1:9000/",
            "http://localhost:9000/",
            "http://10.0.0.1/",
            "https://example.com/",
        ] {
            assert_eq!(p.check_url(url), Ok(()), "{url}");
        }
    }

    #[test]
    fn allow_wins_over_deny_and_star_makes_an_allow_list() {
        let p = DestinationPolicy::new(
            parse_rules("169.254.10.0/24, api.internal, *.corp.example").unwrap(),
            parse_rules("*").unwrap(),
            serve_default_deny(),
        );
        assert_eq!(p.check_url("http://169.254.10.5/"), Ok(()));
        assert_eq!(p.check_url("http://api.internal/"), Ok(()));
        assert_eq!(p.check_url("http://x.corp.example/"), Ok(()));
        assert!(p.check_url("http://169.254.169.254/").is_err());
        assert!(p.check_url("https://example.com/").is_err());
        let e = p
            .check_ip("evil.test", "10.0.0.1".parse().unwrap(), Some(80))
            .unwrap_err();
        assert!(e.to_string().contains("--destination-deny"), "{e}");
    }

    #[test]
    fn resolved_addresses_are_checked_normalised() {
        let p = DestinationPolicy::new(vec![], parse_rules("10.0.0.0/8").unwrap(), vec![]);
        assert!(p
            .check_ip("a", "::ffff:10.1.1.1".parse().unwrap(), None)
            .is_err());
        assert!(p.check_ip("a", "11.0.0.1".parse().unwrap(), None).is_ok());
    }

    #[test]
    fn rules_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_rules("10.0.0.0/8,::ffff:0:0/96,1.2.3.4,[::1],*.Example.COM,host").unwrap(),
            vec![
                Rule::Net("10.0.0.0/8".parse().unwrap()),
                Rule::Net("0.0.0.0/0".parse().unwrap()),
                Rule::Net("1.2.3.4/32".parse().unwrap()),
                Rule::Net("::1/128".parse().unwrap()),
                Rule::Host(".example.com".into()),
                Rule::Host("host".into()),
            ]
        );
        for bad in ["10.0.0.0/33", "a b", "http://x", "*."] {
            assert!(parse_rules(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dev_allows_everything() {
        let p = DestinationPolicy::allow_all();
        assert!(p.is_open());
        assert_eq!(p.check_url("http://169.254.169.254/"), Ok(()));
    }
}
