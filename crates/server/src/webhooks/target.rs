//! Where deliveries may go. An endpoint's URL is `http` or `https`; unless the server runs with
//! `--webhooks-allow-private`, its host may not be, or resolve to, an address inside the
//! operator's network or the machine itself (server-side request forgery): loopback, private,
//! shared (carrier-grade NAT), link-local, unique-local, multicast, broadcast, documentation and
//! unspecified ranges. Names are resolved again before each connection
//! ([`CheckedResolver`]), so a name that later points inside is refused then too.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Longest endpoint URL.
pub const URL_BYTES_MAX: usize = 2_048;

/// Time a host name has to resolve when an endpoint is made or changed.
pub const RESOLVE_TIMEOUT_MS: u64 = 2_000;

/// Why a URL is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the URL does not parse: {0}")]
    Malformed(String),
    #[error("the URL must be http or https")]
    Scheme,
    #[error("the URL is longer than {URL_BYTES_MAX} bytes")]
    TooLong,
    #[error("the URL may not carry a user name or password")]
    Credentials,
    #[error("the URL's host {0} is a loopback, private or reserved address")]
    Private(String),
    #[error("the URL's host {0} does not resolve")]
    Unresolved(String),
}

/// Checks a URL as given by a client; resolves its host name unless `allow_private`.
pub async fn check(text: &str, allow_private: bool) -> Result<url::Url, Refused> {
    if text.len() > URL_BYTES_MAX {
        return Err(Refused::TooLong);
    }
    let url = url::Url::parse(text).map_err(|e| Refused::Malformed(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Credentials);
    }
    let host = url.host().ok_or_else(|| Refused::Malformed("no host".into()))?;
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    match host {
        url::Host::Ipv4(ip) => public(IpAddr::V4(ip), &ip.to_string())?,
        url::Host::Ipv6(ip) => public(IpAddr::V6(ip), &ip.to_string())?,
        url::Host::Domain(name) => {
            let timeout = std::time::Duration::from_millis(RESOLVE_TIMEOUT_MS);
            let found: Vec<SocketAddr> =
                tokio::time::timeout(timeout, tokio::net::lookup_host((name, port)))
                    .await
                    .map_err(|_| Refused::Unresolved(name.to_owned()))?
                    .map_err(|_| Refused::Unresolved(name.to_owned()))?
                    .collect();
            if found.is_empty() {
                return Err(Refused::Unresolved(name.to_owned()));
            }
            for address in found {
                public(address.ip(), name)?;
            }
        }
    }
    Ok(url)
}

fn public(ip: IpAddr, host: &str) -> Result<(), Refused> {
    if is_internal(ip) {
        return Err(Refused::Private(host.to_owned()));
    }
    Ok(())
}

/// Whether `ip` is inside a network a webhook may not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || first & 0xfe00 == 0xfc00 // unique local fc00::/7
                || first & 0xffc0 == 0xfe80 // link-local fe80::/10
                || first & 0xffc0 == 0xfec0 // site-local fec0::/10 (deprecated)
                || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
                || first == 0x0064 && ip.segments()[1] == 0xff9b // NAT64 to any IPv4
                || ip == Ipv6Addr::from(0x0000_0000_0000_0000_0000_0000_0000_0001u128)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && b & 0xc0 == 64) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && b & 0xfe == 18) // benchmarking 198.18.0.0/15
        || a >= 240 // reserved
}

/// A resolver for the delivery client that drops internal addresses (unless allowed), so a name
/// is checked each time it is connected to.
#[derive(Clone)]
pub struct CheckedResolver {
    pub allow_private: bool,
}

type Addresses = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for CheckedResolver {
    type Response = Addresses;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addresses, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> =
                found.filter(|a| allow_private || !is_internal(a.ip())).collect();
            if allowed.is_empty() {
                return Err(std::io::Error::other(format!(
                    "{} resolves to no address a webhook may reach",
                    name.as_str()
                )));
            }
            Ok(allowed.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_hosts_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1/hook",
            "http://localhost:8080/hook",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://224.0.0.1/",
        ] {
            assert!(
                matches!(check(url, false).await, Err(Refused::Private(_))),
                "{url} was not refused"
            );
            assert!(check(url, true).await.is_ok(), "{url} refused while allowed");
        }
    }

    #[tokio::test]
    async fn only_http_urls_without_credentials_are_taken() {
        assert!(check("https://93.184.215.14/hooks", false).await.is_ok());
        assert_eq!(check("ftp://93.184.215.14/", false).await, Err(Refused::Scheme));
        assert_eq!(check("http://u:p@93.184.215.14/", false).await, Err(Refused::Credentials));
        assert!(matches!(check("not a url", true).await, Err(Refused::Malformed(_))));
        let long = format!("https://93.184.215.14/{}", "a".repeat(URL_BYTES_MAX));
        assert_eq!(check(&long, true).await, Err(Refused::TooLong));
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for ip in ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
