//! Where alarm webhooks may connect (issue 15, item 10).
//!
//! A webhook is a request the server makes on an admin's behalf; pointed at the cloud's
//! instance metadata service it would hand out the node's credentials (a blind SSRF whose
//! answer status lands in the alarm history). So:
//!
//! - **Refused** by default: link-local addresses (`169.254.0.0/16`, `fe80::/10` — where AWS,
//!   GCP, Azure, Oracle and DigitalOcean answer metadata requests), the other metadata
//!   addresses (`fd00:ec2::254` of AWS over IPv6, `100.100.100.200` of Alibaba Cloud), the
//!   unspecified addresses (`0.0.0.0/8`, `::`, which reach the local host), multicast,
//!   broadcast and the reserved `240.0.0.0/4`. IPv4 addresses written inside IPv6 (mapped
//!   `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`) are judged as the IPv4
//!   address they reach.
//! - **Allowed** by default: everything else — public addresses, private ranges (`10/8`,
//!   `172.16/12`, `192.168/16`, `fc00::/7`) and loopback, because in-cluster receivers (a
//!   chat bridge, an Alertmanager, `svc.cluster.local` names) and a test receiver on the same
//!   host are what webhooks legitimately reach.
//! - `--alarm-webhook-allow-cidr` ([`EgressPolicy::allow`]) lets chosen refused ranges through.
//!
//! Enforcement is on addresses, at every hop: a URL whose host is an address literal (in any
//! spelling the URL standard accepts — `2852039166`, `0251.0376.0251.0376`, `0xa9fea9fe` are
//! all `169.254.169.254`) is checked when the alarm is stored and before each request;
//! a host name is resolved by [`GuardedResolver`], which checks every address it gets and
//! hands the HTTP client only those — the connection goes to the address that was checked, so
//! DNS rebinding between a check and the connect is impossible. Redirects are followed (at
//! most [`MAX_REDIRECTS`]) only after the same checks on the new URL. Proxies from the
//! environment are not used: a proxy would resolve names itself, out of reach of the checks.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use ipnet::IpNet;

/// Redirects followed per delivery.
pub const MAX_REDIRECTS: usize = 5;

/// A connection refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The host as written in the URL.
    pub host: String,
    /// The address it is or resolves to.
    pub ip: IpAddr,
    pub why: &'static str,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host == self.ip.to_string() {
            write!(f, "{} is {}", self.ip, self.why)?;
        } else {
            write!(f, "{} resolves to {}, {}", self.host, self.ip, self.why)?;
        }
        write!(
            f,
            "; alarm webhooks may not reach it unless the server allows it (--alarm-webhook-allow-cidr)"
        )
    }
}

impl std::error::Error for Refused {}

/// Resolves host names; the system resolver in production, a table in tests.
pub trait Lookup: Send + Sync {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'static>>;
}

/// The system resolver (getaddrinfo, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'static>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// The destinations policy of webhooks.
#[derive(Clone)]
pub struct EgressPolicy {
    /// Ranges allowed although refused by default.
    pub allow: Vec<IpNet>,
    pub lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressPolicy")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy {
            allow: Vec::new(),
            lookup: Arc::new(SystemLookup),
        }
    }
}

/// Parses `a.b.c.d/n`, `x::y/n` or a bare address (one host).
pub fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an address range (CIDR such as 169.254.10.0/24 or fd00:ec2::254/128) nor an address"))
}

/// The IPv4 address an IPv6 address stands for, if it embeds one that the network would
/// deliver to an IPv4 host: mapped (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`, deprecated but
/// parsed) and the NAT64 well-known prefix (`64:ff9b::/96`).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    None
}

/// Why an address is refused by default, or `None`.
pub fn default_refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_refusal(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return v4_refusal(v4);
            }
            let s = v6.segments();
            if v6.is_unspecified() {
                Some("the unspecified address (it reaches this host)")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("the AWS instance metadata service (IPv6)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address (fe80::/10)")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

fn v4_refusal(v4: Ipv4Addr) -> Option<&'static str> {
    let o = v4.octets();
    if o[0] == 0 {
        Some("the unspecified address (0.0.0.0/8, it reaches this host)")
    } else if v4.is_link_local() {
        Some("a link-local address (169.254.0.0/16), where cloud metadata services answer")
    } else if v4 == Ipv4Addr::new(100, 100, 100, 200) {
        Some("the Alibaba Cloud metadata service")
    } else if v4.is_broadcast() {
        Some("the broadcast address")
    } else if v4.is_multicast() {
        Some("a multicast address")
    } else if o[0] >= 240 {
        Some("a reserved address (240.0.0.0/4)")
    } else {
        None
    }
}

impl EgressPolicy {
    /// Why the policy refuses `ip`, or `None` when webhooks may connect to it.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let why = default_refusal(ip)?;
        let allowed = |a: IpAddr| self.allow.iter().any(|n| n.contains(&a));
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if allowed(ip) || v4.is_some_and(allowed) {
            None
        } else {
            Some(why)
        }
    }

    /// Checks a URL whose host is an address literal; names pass here (the resolver checks
    /// them at connect time).
    pub fn check_literal(&self, url: &reqwest::Url) -> Result<(), Refused> {
        // The URL standard has already turned every IPv4 spelling into dotted decimal and
        // put IPv6 in brackets; anything else is a name.
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        match self.refusal(ip) {
            None => Ok(()),
            Some(why) => Err(Refused {
                host: ip.to_string(),
                ip,
                why,
            }),
        }
    }

    /// Resolves `host` and checks every address: all must be allowed.
    pub async fn resolve(
        &self,
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let ips = self.lookup.lookup(host).await?;
        if ips.is_empty() {
            return Err(format!("{host}: no address").into());
        }
        for &ip in &ips {
            if let Some(why) = self.refusal(ip) {
                return Err(Box::new(Refused {
                    host: host.to_string(),
                    ip,
                    why,
                }));
            }
        }
        Ok(ips)
    }

    /// The HTTP client of webhook deliveries: names resolved and checked by
    /// [`GuardedResolver`], redirects re-checked, no proxy, no pooled connections (each
    /// delivery resolves and checks again).
    pub fn client(&self, timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
        let policy = self.clone();
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
            }
            if !matches!(attempt.url().scheme(), "http" | "https") {
                let scheme = attempt.url().scheme().to_string();
                return attempt.error(format!("a redirect to a {scheme}: URL"));
            }
            match policy.check_literal(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        });
        reqwest::Client::builder()
            .timeout(timeout)
            .redirect(redirects)
            .dns_resolver(Arc::new(GuardedResolver(self.clone())))
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
    }
}

/// The resolver of the webhook client: resolves, checks every address, returns only checked
/// addresses (the client connects to exactly these).
pub struct GuardedResolver(pub EgressPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = policy.resolve(&host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The policy's refusal somewhere in an error's source chain.
pub fn refusal_in<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> Option<&'static str> {
        let u = reqwest::Url::parse(url).unwrap();
        EgressPolicy::default()
            .check_literal(&u)
            .err()
            .map(|r| r.why)
    }

    #[test]
    fn metadata_and_link_local_are_refused_in_every_spelling() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",          // decimal
            "http://0251.0376.0251.0376/", // octal
            "http://0xa9fea9fe/",          // hex
            "http://0xa9.0xfe.0xa9.0xfe/", // hex octets
            "http://169.254.43518/",       // a.b.c with 16-bit last part
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://100.100.100.200/",
            "http://0.0.0.0:8080/",
            "http://0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
        ] {
            assert!(refused(url).is_some(), "{url} was let through");
        }
    }

    #[test]
    fn in_cluster_private_and_loopback_receivers_are_allowed() {
        for url in [
            "http://127.0.0.1:9000/hook",
            "http://[::1]:9000/hook",
            "http://10.96.0.15/hook",
            "http://172.20.1.1/hook",
            "http://192.168.1.10/hook",
            "http://[fd12:3456::1]/hook",
            "https://hooks.slack.com/services/T/B/X",
            "http://alertmanager.monitoring.svc.cluster.local:9093/api/v2/alerts",
            "http://100.64.0.1/",
        ] {
            assert_eq!(refused(url), None, "{url}");
        }
    }

    #[test]
    fn an_allowed_range_lets_its_addresses_through_and_no_others() {
        let p = EgressPolicy {
            allow: vec![
                parse_cidr("169.254.170.0/24").unwrap(),
                parse_cidr("fd00:ec2::254").unwrap(),
            ],
            ..Default::default()
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(p.refusal(ip("169.254.170.2")), None);
        assert_eq!(p.refusal(ip("::ffff:169.254.170.2")), None);
        assert_eq!(p.refusal(ip("fd00:ec2::254")), None);
        assert!(p.refusal(ip("169.254.169.254")).is_some());
        assert!(parse_cidr("169.254.0.0/33").is_err());
        assert!(parse_cidr("metadata").unwrap_err().contains("CIDR"));
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }

    /// A table of names, as a DNS server under someone else's control would answer.
    struct Table(Vec<(&'static str, Vec<IpAddr>)>);

    impl Lookup for Table {
        fn lookup(
            &self,
            host: &str,
        ) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send + 'static>> {
            let r = self
                .0
                .iter()
                .find(|(h, _)| *h == host)
                .map(|(_, ips)| ips.clone())
                .ok_or_else(|| std::io::Error::other(format!("{host}: unknown")));
            Box::pin(async move { r })
        }
    }

    #[tokio::test]
    async fn a_name_is_refused_if_any_of_its_addresses_is() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let p = EgressPolicy {
            allow: Vec::new(),
            lookup: Arc::new(Table(vec![
                ("hook.example", vec![ip("203.0.113.7")]),
                (
                    "sneaky.example",
                    vec![ip("203.0.113.7"), ip("169.254.169.254")],
                ),
                ("mapped.example", vec![ip("::ffff:169.254.169.254")]),
                ("imds6.example", vec![ip("fd00:ec2::254")]),
            ])),
        };
        assert_eq!(
            p.resolve("hook.example").await.unwrap(),
            vec![ip("203.0.113.7")]
        );
        for host in ["sneaky.example", "mapped.example", "imds6.example"] {
            let e = p.resolve(host).await.unwrap_err();
            let r = refusal_in(&*e).unwrap_or_else(|| panic!("{host}: {e}"));
            assert_eq!(r.host, host);
            assert!(e.to_string().contains("--alarm-webhook-allow-cidr"), "{e}");
        }
    }
}
