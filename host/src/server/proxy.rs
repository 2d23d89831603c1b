//! Client addresses behind proxies: `[server] trusted_proxies` lists the networks of the
//! proxies in front of the host; a request arriving from one of them is taken to come
//! from the address its `X-Forwarded-For` names, read from the right and skipping
//! trusted hops, so per-address limits and audit records name the client, not the proxy.
//! From anyone else the header is ignored: a client cannot pick its own address.

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// One `trusted_proxies` entry: an address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyNet(IpNet);

impl TryFrom<String> for ProxyNet {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let net = match text.parse::<IpAddr>() {
            Ok(address) => IpNet::from(address),
            Err(_) => text.parse::<IpNet>().map_err(|_| {
                format!(
                    "trusted_proxies: `{text}` is not an address or a network like \
                     \"10.0.0.0/8\" or \"fd00::/8\""
                )
            })?,
        };
        Ok(Self(net))
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From the configured entries.
    pub fn new(entries: &[ProxyNet]) -> Self {
        Self(entries.iter().map(|entry| entry.0).collect())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a request that reached us from `peer`: `peer` itself unless it is
    /// a trusted proxy, else the rightmost `X-Forwarded-For` entry that is not (a hop we
    /// cannot read ends the walk at the last address we could).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer.ip();
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop.trim().parse::<IpAddr>() {
                Ok(address) => client = address,
                Err(_) => break,
            }
        }
        if client == peer.ip() {
            peer
        } else {
            SocketAddr::new(client, 0)
        }
    }
}

/// Step 2 of the edge: replaces the connection's address with the client's, for every
/// layer and handler after it. A plain map of the request (`MapRequestLayer`): an axum
/// `from_fn` middleware would copy the whole stack below it and box it, per request.
pub fn resolve_client(proxies: &TrustedProxies, mut request: Request) -> Request {
    if let Some(&ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client(peer, request.headers());
        if client != peer {
            request.extensions_mut().insert(ConnectInfo(client));
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            &entries
                .iter()
                .map(|e| ProxyNet::try_from(e.to_string()).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn client(proxies: &TrustedProxies, peer: &str, values: &[&str]) -> String {
        proxies
            .client(peer.parse().unwrap(), &forwarded(values))
            .ip()
            .to_string()
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1"]);
        // From the proxy: the client it names.
        assert_eq!(
            client(&trusted, "10.1.2.3:4000", &["203.0.113.9"]),
            "203.0.113.9"
        );
        // Through two proxies: the first untrusted address from the right.
        assert_eq!(
            client(&trusted, "127.0.0.1:4000", &["198.51.100.7, 10.9.9.9"]),
            "198.51.100.7"
        );
        // A client's own made-up entries left of the real one are not believed.
        assert_eq!(
            client(&trusted, "10.1.2.3:4000", &["1.1.1.1", "203.0.113.9"]),
            "203.0.113.9"
        );
        // From anyone else the header means nothing.
        assert_eq!(
            client(&trusted, "192.0.2.1:4000", &["203.0.113.9"]),
            "192.0.2.1"
        );
        // Garbage ends the walk at the last address we could read.
        assert_eq!(
            client(&trusted, "10.1.2.3:4000", &["203.0.113.9, junk"]),
            "10.1.2.3"
        );
        // No header: the proxy.
        assert_eq!(client(&trusted, "10.1.2.3:4000", &[]), "10.1.2.3");
        // IPv4 peers seen as IPv4-mapped IPv6 are matched too.
        assert_eq!(
            client(&trusted, "[::ffff:10.0.0.1]:4000", &["203.0.113.9"]),
            "203.0.113.9"
        );
        // Nothing trusted: nothing changes.
        assert_eq!(
            client(&proxies(&[]), "10.1.2.3:4000", &["203.0.113.9"]),
            "10.1.2.3"
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let error = ProxyNet::try_from("10.0.0.0/33".to_owned()).unwrap_err();
        assert!(
            error.contains("`10.0.0.0/33` is not an address or a network"),
            "{error}"
        );
        assert!(ProxyNet::try_from("fd00::/8".to_owned()).is_ok());
    }
}
