//! Outbound HTTP (webhooks, the webhook boundary driver): the one client every delivery uses,
//! guarded against server-side request forgery. By default it refuses loopback, private,
//! link-local (cloud metadata at 169.254.169.254), shared, multicast and reserved addresses,
//! unless an operator allows a range (`outbound_allow_cidrs`). The check runs twice: when a URL
//! is set (a clear 400 or start-up error naming the field) and when a delivery connects, on the
//! addresses DNS actually returned (a name can resolve elsewhere later), and on the literal
//! address of a URL (a resolver is never asked about those). Redirects are never followed: a
//! redirect to an internal address would bypass the check, and a webhook has no reason to move.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Upper bound on the length of an outbound URL.
pub const URL_BYTES_MAX: usize = 2048;
/// Upper bound on the time to open a connection.
pub const CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// An IPv4 or IPv6 network, `address/prefix` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `127.0.0.1/32`, `fd00::/8` or a bare address. Host bits must be
    /// zero, so a typo such as `10.0.0.1/8` is refused rather than silently widened.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 or IPv6 network like 10.0.0.0/8"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix {
            None => bits,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        let cidr = Cidr {
            network,
            prefix_len,
        };
        if bits_of(network) & !cidr.mask() != 0 {
            return Err(format!(
                "{text:?}: the address has bits set beyond the prefix"
            ));
        }
        Ok(cidr)
    }

    fn mask(&self) -> u128 {
        let bits = if self.network.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(bits - self.prefix_len);
        let all = if bits == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all.checked_shl(host_bits).unwrap_or(0) & all
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        bits_of(ip) & self.mask() == bits_of(self.network) & self.mask()
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn bits_of(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why an address is not reachable by default, `None` for a public address.
pub fn internal_kind(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 0 || ip.is_broadcast() {
        Some("unspecified")
    } else if a == 100 && (64..128).contains(&b) {
        Some("shared (carrier-grade NAT)")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignments")
    } else if a == 198 && (18..20).contains(&b) {
        Some("benchmarking")
    } else if ip.is_multicast() || a >= 240 {
        Some("multicast or reserved")
    } else if ip.is_documentation() {
        Some("documentation")
    } else {
        None
    }
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("private (unique local)")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if let Some(v4) = embedded_v4(ip) {
        // NAT64, 6to4 and IPv4-compatible forms reach the IPv4 address they carry.
        internal_v4(v4)
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation")
    } else {
        None
    }
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        Some(low(s[6], s[7]))
    } else if s[0] == 0x2002 {
        Some(low(s[1], s[2]))
    } else if s[..6] == [0; 6] {
        Some(low(s[6], s[7]))
    } else {
        None
    }
}

/// Which addresses outbound HTTP may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Internal ranges an operator allowed explicitly; public addresses are always allowed.
    pub allow: Vec<Cidr>,
}

impl OutboundPolicy {
    /// `Err` names why `ip` is refused.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|cidr| cidr.contains(ip)) {
            return Ok(());
        }
        match internal_kind(ip) {
            None => Ok(()),
            Some(kind) => Err(format!(
                "{ip} is a {kind} address; allow its range in outbound_allow_cidrs to use it"
            )),
        }
    }

    /// Checks a URL's text: an http(s) URL of bounded length, without credentials, whose host
    /// is not an internal address (an IP literal in any form the URL parser takes, such as
    /// `2130706433` or `0x7f.1`, is normalised first) and not `localhost`. A name that resolves
    /// to an internal address is caught when connecting.
    pub fn check_url(&self, text: &str) -> Result<Url, String> {
        if text.len() > URL_BYTES_MAX || text.chars().any(char::is_whitespace) {
            return Err(format!(
                "must be an http(s) URL of at most {URL_BYTES_MAX} characters"
            ));
        }
        let url = Url::parse(text).map_err(|e| format!("is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http(s) URL".to_owned());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        let host = url
            .host_str()
            .ok_or_else(|| "must name a host".to_owned())?;
        // The parser has already normalised any IPv4 form to dotted decimal.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(url);
        }
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if (name == "localhost" || name.ends_with(".localhost"))
            && self.check_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_err()
        {
            return Err(
                "names localhost, a loopback address; allow 127.0.0.1/32 in \
                        outbound_allow_cidrs to use it"
                    .to_owned(),
            );
        }
        Ok(url)
    }

    /// The client of every outbound delivery: this policy at connect time, no redirects, no
    /// proxy from the environment (a proxy would resolve the name itself, past the check).
    pub fn client(&self, timeout: StdDuration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: self.clone(),
            }))
            .build()
    }
}

/// Resolves with the system resolver, then keeps only the addresses the policy allows.
#[derive(Debug)]
struct GuardedResolver {
    policy: OutboundPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused = Some(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refused.unwrap_or_else(|| "no address".to_owned());
                return Err(format!("refused to connect to {host}: {why}").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        let one = Cidr::parse("127.0.0.1").unwrap_or_else(|e| panic!("{e}"));
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("fd00::/8").unwrap_or_else(|e| panic!("{e}"));
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("0.0.0.0/0").is_ok_and(|c| c.contains(ip("8.8.8.8"))));
        assert!(Cidr::parse("::/0").is_ok_and(|c| c.contains(ip("2001:db8::1"))));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "fd00::/129",
            "x/8",
            "10.0.0.0/",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn internal_addresses_are_refused_by_default() {
        let policy = OutboundPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
        ] {
            assert!(policy.check_ip(ip(internal)).is_err(), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(policy.check_ip(ip(public)).is_ok(), "{public}");
        }
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses() {
        let refusing = GuardedResolver {
            policy: OutboundPolicy::default(),
        };
        let Ok(name) = "localhost".parse::<Name>() else {
            panic!("a name")
        };
        assert!(
            refusing.resolve(name).await.is_err(),
            "localhost is loopback"
        );
        let allowing = GuardedResolver {
            policy: OutboundPolicy {
                allow: ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|c| Cidr::parse(c).ok())
                    .collect(),
            },
        };
        let Ok(name) = "localhost".parse::<Name>() else {
            panic!("a name")
        };
        let addrs: Vec<SocketAddr> = match allowing.resolve(name).await {
            Ok(addrs) => addrs.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn urls_are_checked_after_normalising_the_host() {
        let policy = OutboundPolicy::default();
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:5432/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://017700000001/",
            "http://127.1/",
            "http://[::1]:8080/",
            "http://[::ffff:7f00:1]/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://10.0.0.1/",
            "ftp://example.com/",
            "http://user:pw@example.com/",
            "not a url",
        ] {
            assert!(policy.check_url(bad).is_err(), "{bad}");
        }
        assert!(policy.check_url("https://hooks.example.com/x").is_ok());
        let allowed = OutboundPolicy {
            allow: vec![Cidr::parse("127.0.0.1/32").unwrap_or_else(|e| panic!("{e}"))],
        };
        assert!(allowed.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(allowed.check_url("http://2130706433/").is_ok());
        assert!(allowed.check_url("http://localhost:9000/").is_ok());
        assert!(allowed.check_url("http://127.0.0.2/").is_err());
    }
}
