//! The client's address: the connection's peer, or, when that peer is one of `[server]
//! trusted_proxies`, the address the one header `[server] forwarded_header` names gives
//! (`X-Forwarded-For`, or `Forwarded` of RFC 7239). The other header is never read: a proxy
//! that writes one passes a client's own copy of the other through. The list is read from the
//! right (the nearest hop first), skipping trusted proxies: the first address not trusted is
//! the client, since only the proxies we trust append truthfully and anything further left may
//! be written by the client itself.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;

use super::AppState;
use crate::config::ForwardedHeader;

/// The client's address, for per-client caps and slowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts, state))
    }
}

impl ClientAddr {
    pub fn of(parts: &Parts, state: &AppState) -> Self {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(addr)| addr.ip());
        ClientAddr(client_of(peer, &parts.headers, &state.trusted_proxies, state.forwarded_header))
    }
}

/// The client behind `peer`; see the module's comment.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet], header: ForwardedHeader) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops = match header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded_for(headers),
    };
    let hops = hops.unwrap_or_default();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            // A hop a trusted proxy could not name (`unknown`, an obfuscated id): the nearest
            // address known is all there is.
            None => return client,
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    return client;
                }
            }
        }
    }
    client
}

/// The `for=` of every `Forwarded` element, in order (None where it is not an address).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return None;
    }
    let mut hops = Vec::new();
    for element in values.iter().flat_map(|v| v.split(',')) {
        let found = element.split(';').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            key.trim().eq_ignore_ascii_case("for").then(|| node_address(value.trim().trim_matches('"')))
        });
        if let Some(hop) = found {
            hops.push(hop);
        }
    }
    Some(hops)
}

/// The addresses of `X-Forwarded-For`, in order.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let values: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return None;
    }
    Some(values.iter().flat_map(|v| v.split(',')).map(|hop| node_address(hop.trim())).collect())
}

/// An address from a node name: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`, `[2001:db8::1]:4711`, `2001:db8::1`.
fn node_address(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.parse::<SocketAddr>().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ForwardedHeader::{Forwarded, XForwardedFor};
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| crate::config::parse_net(n).unwrap()).collect()
    }

    #[test]
    fn an_untrusted_peers_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_of(ip("198.51.100.7"), &h, &nets(&["10.0.0.0/8"]), XForwardedFor), ip("198.51.100.7"));
        assert_eq!(client_of(ip("10.0.0.2"), &h, &[], XForwardedFor), ip("10.0.0.2"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_a_forged_left_part_is_ignored() {
        let trusted = nets(&["10.0.0.0/8", "127.0.0.1"]);
        // The client wrote "1.2.3.4" itself; the proxy appended the address it saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(client_of(ip("127.0.0.1"), &h, &trusted, XForwardedFor), ip("203.0.113.9"));
        // Two trusted proxies in a row.
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, XForwardedFor), ip("203.0.113.9"));
        // No header: the proxy itself.
        assert_eq!(client_of(ip("10.0.0.2"), &HeaderMap::new(), &trusted, XForwardedFor), ip("10.0.0.2"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let trusted = nets(&["10.0.0.0/8"]);
        // nginx's X-Forwarded-For beside a client's own Forwarded passed through: the client
        // chose 192.0.2.60 and the proxy saw 198.51.100.1.
        let h = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, XForwardedFor), ip("198.51.100.1"));
        // A Forwarded proxy with a client's own X-Forwarded-For passed through.
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, Forwarded), ip("192.0.2.60"));
        // Only the other header: the proxy itself, never the client's word.
        let own = headers(&[("forwarded", "for=192.0.2.60")]);
        assert_eq!(client_of(ip("10.0.0.2"), &own, &trusted, XForwardedFor), ip("10.0.0.2"));
    }

    #[test]
    fn forwarded_elements_and_node_names_are_read() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("forwarded", "for=192.0.2.60;proto=http, For=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, Forwarded), ip("2001:db8:cafe::17"));
        let h = headers(&[("forwarded", "for=\"192.0.2.43:47011\"")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, Forwarded), ip("192.0.2.43"));
        // A hop the proxy could not name: the nearest known address.
        let h = headers(&[("forwarded", "for=192.0.2.60, for=unknown")]);
        assert_eq!(client_of(ip("10.0.0.2"), &h, &trusted, Forwarded), ip("10.0.0.2"));
    }
}
