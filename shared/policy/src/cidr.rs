//! CIDR blocks (IPv4 and IPv6): parsing, containment and overlap.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A network block `address/prefix` whose host bits are zero.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    /// The network address, big-endian (IPv4 in the last 4 bytes). Bytes rather than a
    /// `u128` keep the type (and the errors that carry it) small.
    bits: [u8; 16],
    prefix: u8,
    v6: bool,
}

/// Why a string is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input} is not a CIDR: {problem}")]
pub struct CidrError {
    /// The offending text (at most 64 characters of it).
    pub input: String,
    /// What is wrong with it.
    pub problem: CidrProblem,
}

/// What is wrong with a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrProblem {
    /// No `/prefix`.
    #[error("expected address/prefix, e.g. 10.1.0.0/16")]
    NoPrefix,
    /// The address part is not an IP address.
    #[error("the address is not an IPv4 or IPv6 address")]
    BadAddress,
    /// The prefix is not a number up to 32 (IPv4) or 128 (IPv6).
    #[error("the prefix length must be a number from 0 to {0}")]
    BadPrefix(u8),
    /// Bits set below the prefix.
    #[error("host bits are set; the network address is {0}")]
    HostBitsSet(String),
}

fn width(v6: bool) -> u8 {
    if v6 {
        128
    } else {
        32
    }
}

fn mask(prefix: u8, v6: bool) -> u128 {
    let width = u32::from(width(v6));
    let full = if v6 { u128::MAX } else { u128::from(u32::MAX) };
    let host_bits = width.saturating_sub(u32::from(prefix));
    full.checked_shl(host_bits).map_or(0, |m| m & full)
}

fn split_ip(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

impl Cidr {
    /// Parses `address/prefix`; refuses host bits below the prefix.
    pub fn parse(input: &str) -> Result<Cidr, CidrError> {
        let fail = |problem| CidrError {
            input: input.chars().take(64).collect(),
            problem,
        };
        let (address, prefix) = input
            .split_once('/')
            .ok_or_else(|| fail(CidrProblem::NoPrefix))?;
        let ip: IpAddr = address.parse().map_err(|_| fail(CidrProblem::BadAddress))?;
        let (bits, v6) = split_ip(ip);
        let max = width(v6);
        let prefix: u8 = match prefix.parse() {
            Ok(p) if p <= max && !prefix.starts_with('+') => p,
            _ => return Err(fail(CidrProblem::BadPrefix(max))),
        };
        let network = bits & mask(prefix, v6);
        if network != bits {
            let canonical = Cidr {
                bits: network.to_be_bytes(),
                prefix,
                v6,
            };
            return Err(fail(CidrProblem::HostBitsSet(canonical.to_string())));
        }
        Ok(Cidr {
            bits: bits.to_be_bytes(),
            prefix,
            v6,
        })
    }

    /// The single-address block of `ip` (`/32` or `/128`).
    pub fn host(ip: IpAddr) -> Cidr {
        let (bits, v6) = split_ip(ip);
        Cidr {
            bits: bits.to_be_bytes(),
            prefix: width(v6),
            v6,
        }
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        let bits = self.number();
        if self.v6 {
            IpAddr::V6(bits.into())
        } else {
            // INVARIANT: IPv4 blocks keep their address in the low 32 bits.
            IpAddr::V4(u32::try_from(bits).unwrap_or(0).into())
        }
    }

    fn number(&self) -> u128 {
        u128::from_be_bytes(self.bits)
    }

    /// Whether `ip` lies in this block (never across address families).
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        let (bits, v6) = split_ip(ip);
        v6 == self.v6 && bits & mask(self.prefix, v6) == self.number()
    }

    /// Whether every address of `other` lies in this block.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.v6 == self.v6
            && other.prefix >= self.prefix
            && other.number() & mask(self.prefix, self.v6) == self.number()
    }

    /// Whether the two blocks share an address (for blocks: one contains the other).
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cidr({self})")
    }
}

impl FromStr for Cidr {
    type Err = CidrError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Cidr::parse(input)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Cidr {
        Cidr::parse(text).unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        assert_eq!(c("10.0.0.0/16").to_string(), "10.0.0.0/16");
        assert_eq!(c("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(c("10.1.2.3/32").to_string(), "10.1.2.3/32");
        assert_eq!(c("fd00:0::/8").to_string(), "fd00::/8");
        assert_eq!(c("::/0").prefix(), 0);
    }

    #[test]
    fn refuses_what_is_not_a_block() {
        let problem = |t: &str| Cidr::parse(t).unwrap_err().problem;
        assert_eq!(problem("10.0.0.0"), CidrProblem::NoPrefix);
        assert_eq!(problem("10.0.0.0/33"), CidrProblem::BadPrefix(32));
        assert_eq!(problem("10.0.0.0/-1"), CidrProblem::BadPrefix(32));
        assert_eq!(problem("10.0.0.0/+8"), CidrProblem::BadPrefix(32));
        assert_eq!(problem("fd00::/129"), CidrProblem::BadPrefix(128));
        assert_eq!(problem("10.0.0.256/24"), CidrProblem::BadAddress);
        assert_eq!(problem("host/24"), CidrProblem::BadAddress);
        assert_eq!(
            problem("10.1.2.3/16"),
            CidrProblem::HostBitsSet("10.1.0.0/16".to_owned())
        );
        let err = Cidr::parse("10.0.0.0/33").unwrap_err();
        assert_eq!(
            err.to_string(),
            "10.0.0.0/33 is not a CIDR: the prefix length must be a number from 0 to 32"
        );
    }

    #[test]
    fn containment() {
        assert!(c("10.0.0.0/8").contains(&c("10.1.0.0/16")));
        assert!(c("10.0.0.0/8").contains(&c("10.0.0.0/8")));
        assert!(!c("10.1.0.0/16").contains(&c("10.0.0.0/8")));
        assert!(!c("10.0.0.0/8").contains(&c("11.0.0.0/16")));
        assert!(c("0.0.0.0/0").contains(&c("192.168.1.0/24")));
        assert!(!c("0.0.0.0/0").contains(&c("fd00::/8")));
        assert!(c("10.1.0.0/16").contains_ip("10.1.255.255".parse().unwrap()));
        assert!(!c("10.1.0.0/16").contains_ip("10.2.0.0".parse().unwrap()));
        assert!(!c("0.0.0.0/0").contains_ip("::1".parse().unwrap()));
        assert!(c("fd00::/8").contains_ip("fd12::1".parse().unwrap()));
        assert!(Cidr::host("10.0.0.5".parse().unwrap()).contains_ip("10.0.0.5".parse().unwrap()));
    }

    #[test]
    fn overlap() {
        assert!(c("10.0.0.0/16").overlaps(&c("10.0.128.0/17")));
        assert!(c("10.0.128.0/17").overlaps(&c("10.0.0.0/16")));
        assert!(!c("10.0.0.0/17").overlaps(&c("10.0.128.0/17")));
        assert!(!c("10.0.0.0/16").overlaps(&c("10.1.0.0/16")));
        assert!(c("0.0.0.0/0").overlaps(&c("10.1.0.0/16")));
        assert!(!c("10.0.0.0/8").overlaps(&c("::/0")));
    }
}
