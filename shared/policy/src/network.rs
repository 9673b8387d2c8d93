//! Endpoints, their rules, and connections (SPEC-policy sections 1 and 7).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cidr::{Cidr, CidrError};
use crate::ids::PrincipalId;
use crate::scope::Scope;
use crate::wildcard::Pattern;

/// A transport or application protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP (ports are still matched; rules for ICMP usually say `*`).
    Icmp,
    /// In a rule: every protocol.
    Any,
    /// HTTP (community endpoints only).
    Http,
    /// HTTPS (community endpoints only).
    Https,
}

impl Protocol {
    /// Whether a rule listing `self` covers traffic of `protocol`.
    pub fn covers(self, protocol: Protocol) -> bool {
        self == Protocol::Any || self == protocol
    }

    /// Whether only community endpoints may use it.
    pub fn is_application(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }
}

impl FromStr for Protocol {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "ICMP" => Protocol::Icmp,
            "ANY" => Protocol::Any,
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            _ => {
                return Err(format!(
                    "{text:?} is not TCP, UDP, ICMP, ANY, HTTP or HTTPS"
                ))
            }
        })
    }
}

/// A port range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

/// `ports` of a rule: `"*"`, or a comma-separated list of ports and ranges
/// (`"443"`, `"8000-8100"`, `"80,443"`). The canonical text lists the ranges in ascending
/// order, without spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Every port.
    All,
    /// These ranges (at least one).
    Ranges(BTreeSet<PortRange>),
}

impl Ports {
    /// Parses the `ports` text.
    pub fn parse(text: &str) -> Result<Ports, String> {
        let bad = |why: &str| format!("{:?} is not a port list: {why}", shorten(text));
        if text.trim() == "*" {
            return Ok(Ports::All);
        }
        let mut ranges = BTreeSet::new();
        for item in text.split(',') {
            let item = item.trim();
            let port = |p: &str| -> Result<u16, String> {
                match p.trim().parse::<u16>() {
                    Ok(n) if n > 0 && !p.trim().starts_with('+') => Ok(n),
                    _ => Err(bad("ports are numbers from 1 to 65535")),
                }
            };
            let range = match item.split_once('-') {
                Some((first, last)) => PortRange {
                    first: port(first)?,
                    last: port(last)?,
                },
                None => {
                    let p = port(item)?;
                    PortRange { first: p, last: p }
                }
            };
            if range.first > range.last {
                return Err(bad("a range must go from low to high"));
            }
            ranges.insert(range);
        }
        Ok(Ports::Ranges(ranges))
    }

    /// Whether `port` is covered.
    pub fn covers(&self, port: u16) -> bool {
        match self {
            Ports::All => true,
            Ports::Ranges(ranges) => ranges.iter().any(|r| (r.first..=r.last).contains(&port)),
        }
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ports::All => f.write_str("*"),
            Ports::Ranges(ranges) => {
                for (i, r) in ranges.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    if r.first == r.last {
                        write!(f, "{}", r.first)?;
                    } else {
                        write!(f, "{}-{}", r.first, r.last)?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Ports {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ports {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ports::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Where traffic goes: an address the flow check is asked about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// An IP address.
    Ip(IpAddr),
    /// A host name, lower case, without a trailing dot.
    Fqdn(String),
}

/// Why a string is not a host name.
fn check_fqdn(text: &str, allow_wildcard: bool) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    let bad = |why: &str| format!("{:?} is not a host name: {why}", shorten(text));
    if name.is_empty() || name.len() > 253 {
        return Err(bad("it must have 1 to 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each label must have 1 to 63 characters"));
        }
        let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || (allow_wildcard && c == '*');
        if !label.chars().all(ok) {
            return Err(bad("labels hold letters, digits and '-'"));
        }
    }
    Ok(name)
}

impl FromStr for Address {
    type Err = String;
    /// An IP address, or else a host name.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Address::Ip(ip));
        }
        check_fqdn(text, false).map(Address::Fqdn)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(ip) => write!(f, "{ip}"),
            Address::Fqdn(name) => f.write_str(name),
        }
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A rule's `destination`: a CIDR block (a bare IP is its /32 or /128), or a host name
/// pattern (`*` as in operations: `*.contoso.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Addresses in this block.
    Cidr(Cidr),
    /// Host names matching this pattern.
    Fqdn(Pattern),
}

impl Destination {
    /// Parses a destination: contains `/` → CIDR; an IP → its host block; else a host name.
    pub fn parse(text: &str) -> Result<Destination, String> {
        if text.contains('/') {
            return Cidr::parse(text)
                .map(Destination::Cidr)
                .map_err(|e: CidrError| e.to_string());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Destination::Cidr(Cidr::host(ip)));
        }
        let name = check_fqdn(text, true)?;
        Pattern::parse(&name)
            .map(Destination::Fqdn)
            .map_err(|e| e.to_string())
    }

    /// Whether traffic to `address` goes to this destination.
    pub fn covers(&self, address: &Address) -> bool {
        match (self, address) {
            (Destination::Cidr(block), Address::Ip(ip)) => block.contains_ip(*ip),
            (Destination::Fqdn(pattern), Address::Fqdn(name)) => pattern.matches_lowercase(name),
            _ => false,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Cidr(block) => write!(f, "{block}"),
            Destination::Fqdn(pattern) => f.write_str(pattern.as_str()),
        }
    }
}

impl Serialize for Destination {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Destination::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One rule of an endpoint's `ruleCollection`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointRule {
    /// Unique within its endpoint.
    pub endpoint_rule_name: String,
    /// Where.
    pub destination: Destination,
    /// Which ports.
    pub ports: Ports,
    /// Which protocols.
    pub protocols: BTreeSet<Protocol>,
}

impl EndpointRule {
    /// Whether the rule covers the traffic.
    pub fn covers(&self, to: &Address, port: u16, protocol: Protocol) -> bool {
        self.destination.covers(to)
            && self.ports.covers(port)
            && self.protocols.iter().any(|p| p.covers(protocol))
    }
}

/// An enclave endpoint or community endpoint (which one is in its `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// Its scope.
    pub id: Scope,
    /// Its rules.
    pub rule_collection: Vec<EndpointRule>,
    /// Connections created to or updated on it also need one approval from these
    /// (section 6.1).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub approvers: BTreeSet<PrincipalId>,
}

/// A connection's state. `Connected` is read as `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConnectionState {
    /// Waiting for approval of its creation.
    PendingApproval,
    /// Waiting for approval of an update (the previous configuration stays in force).
    PendingUpdate,
    /// Carries traffic.
    #[serde(alias = "Connected")]
    Active,
    /// Carries nothing (e.g. its endpoint was deleted).
    Disconnected,
    /// Could not be set up.
    Failed,
}

/// A connection from an enclave to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connection {
    /// Its scope (`/communities/{c}/enclaveConnections/{n}`).
    pub id: Scope,
    /// The enclave traffic comes from.
    pub source_resource_id: Scope,
    /// Which addresses of that enclave (inside its address space).
    pub source_cidr: Cidr,
    /// The endpoint traffic goes to.
    pub destination_endpoint_id: Scope,
    /// Its state.
    pub state: ConnectionState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(Ports::parse("*").unwrap(), Ports::All);
        let p = Ports::parse("8000-8100, 443").unwrap();
        assert_eq!(p.to_string(), "443,8000-8100");
        assert!(p.covers(443) && p.covers(8000) && p.covers(8100));
        assert!(!p.covers(444) && !p.covers(8101));
        for bad in ["", "0", "65536", "10-5", "a", "1-", "+5"] {
            assert!(Ports::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn destinations() {
        let ip = |t: &str| Address::Ip(t.parse().unwrap());
        let d = Destination::parse("10.2.0.0/16").unwrap();
        assert!(d.covers(&ip("10.2.3.4")) && !d.covers(&ip("10.3.0.1")));
        let host = Destination::parse("10.2.0.7").unwrap();
        assert_eq!(host.to_string(), "10.2.0.7/32");
        let fqdn = Destination::parse("*.Contoso.com.").unwrap();
        assert!(fqdn.covers(&"API.contoso.com".parse().unwrap()));
        assert!(!fqdn.covers(&ip("10.2.3.4")));
        assert!(Destination::parse("10.0.0.0/33").is_err());
        assert!(Destination::parse("bad_host").is_err());
        assert!("a..b".parse::<Address>().is_err());
    }

    #[test]
    fn rules_and_protocols() {
        let rule = EndpointRule {
            endpoint_rule_name: "r".into(),
            destination: Destination::parse("10.2.0.0/16").unwrap(),
            ports: Ports::parse("443").unwrap(),
            protocols: BTreeSet::from([Protocol::Tcp]),
        };
        let to = Address::Ip("10.2.0.1".parse().unwrap());
        assert!(rule.covers(&to, 443, Protocol::Tcp));
        assert!(!rule.covers(&to, 443, Protocol::Udp));
        assert!(!rule.covers(&to, 80, Protocol::Tcp));
        let mut any = rule.clone();
        any.protocols = BTreeSet::from([Protocol::Any]);
        assert!(any.covers(&to, 443, Protocol::Icmp));
        assert_eq!("https".parse::<Protocol>().unwrap(), Protocol::Https);
        assert_eq!(
            serde_json::from_str::<ConnectionState>("\"Connected\"").unwrap(),
            ConnectionState::Active
        );
    }
}
