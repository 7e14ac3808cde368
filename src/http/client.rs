//! Who a request comes from: the socket's peer, or, when that peer is a trusted proxy, the
//! nearest address in `X-Forwarded-For` that is not one. Used in logs and for the optional cap
//! on concurrent requests per client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client address of a request. Walks `X-Forwarded-For` from the right (the entries the
/// trusted proxies appended), skipping trusted proxies; an entry that is not an address ends the
/// walk, and the last trusted hop is used.
pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

/// Concurrent requests per client address, capped.
#[derive(Debug)]
pub struct PerClient {
    cap: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A place taken by one request; given back on drop.
#[derive(Debug)]
pub struct ClientSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerClient {
    pub fn new(cap: usize) -> Self {
        PerClient {
            cap,
            counts: Arc::default(),
        }
    }

    /// A place for `ip`, or `None` when it already has `cap` requests running.
    pub fn enter(&self, ip: IpAddr) -> Option<ClientSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().expect("header value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let h = headers(&["198.51.100.7, 10.1.2.3"]);
        assert_eq!(
            client_addr(ip("10.9.9.9"), &h, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_addr(ip("203.0.113.1"), &h, &trusted),
            ip("203.0.113.1")
        );
        assert_eq!(client_addr(ip("10.9.9.9"), &h, &[]), ip("10.9.9.9"));
        // A client cannot hide behind a spoofed left-most entry.
        let spoofed = headers(&["1.2.3.4", "198.51.100.7"]);
        assert_eq!(
            client_addr(ip("10.9.9.9"), &spoofed, &trusted),
            ip("198.51.100.7")
        );
        let garbage = headers(&["nonsense, 10.1.2.3"]);
        assert_eq!(
            client_addr(ip("10.9.9.9"), &garbage, &trusted),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn per_client_cap_counts_running_requests() {
        let cap = PerClient::new(2);
        let a = cap.enter(ip("192.0.2.1")).expect("first");
        let _b = cap.enter(ip("192.0.2.1")).expect("second");
        assert!(cap.enter(ip("192.0.2.1")).is_none());
        assert!(cap.enter(ip("192.0.2.2")).is_some());
        drop(a);
        assert!(cap.enter(ip("192.0.2.1")).is_some());
    }
}
