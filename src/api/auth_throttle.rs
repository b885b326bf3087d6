//! Slows guessing of the admin token (the admin API's bearer token and the console's sign-in):
//! a client gets `FREE_FAILURES` wrong tries a minute; past them every try from it, right or
//! wrong, answers 429 with `Retry-After` until its minute is over. A client is an IPv4 address
//! or an IPv6 /64 (one host's usual allocation: its 2^64 addresses are one guesser). Memory is
//! bounded: past `MAX_CLIENTS` tracked clients the expired ones are dropped, then the oldest,
//! so a flood of addresses can neither grow the map nor fill a slot others would share (an
//! operator at an address that never failed is never slowed by it).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_CLIENTS: usize = 100_000;

#[derive(Debug, Default)]
pub struct AuthThrottle {
    /// Per client: failures in its current window and when the window started.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// The client an address belongs to: itself for IPv4, its /64 for IPv6.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

impl AuthThrottle {
    /// Ok when `client` may try now; else how long until it may.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        self.check_at(client, Instant::now())
    }

    /// Counts a wrong try by `client`.
    pub fn failed(&self, client: IpAddr) {
        self.failed_at(client, Instant::now())
    }

    fn check_at(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&client_key(client)) {
            Some((count, since)) if *count >= FREE_FAILURES && now.duration_since(*since) < WINDOW => {
                Err(WINDOW - now.duration_since(*since))
            }
            _ => Ok(()),
        }
    }

    fn failed_at(&self, client: IpAddr, now: Instant) {
        let key = client_key(client);
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&key) && failures.len() >= MAX_CLIENTS {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
            if failures.len() >= MAX_CLIENTS {
                let oldest = failures.iter().min_by_key(|(_, (_, since))| *since).map(|(k, _)| *k);
                failures.remove(&oldest.expect("a full map has an oldest entry"));
            }
        }
        let entry = failures.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_slowed_after_its_free_failures_until_its_window_ends() {
        let throttle = AuthThrottle::default();
        let (one, other): (IpAddr, IpAddr) = ("203.0.113.1".parse().unwrap(), "203.0.113.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert!(throttle.check_at(one, start).is_ok());
            throttle.failed_at(one, start);
        }
        let wait = throttle.check_at(one, start + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        assert!(throttle.check_at(other, start).is_ok(), "another client is not slowed");
        assert!(throttle.check_at(one, start + WINDOW).is_ok(), "a new window");
        throttle.failed_at(one, start + WINDOW);
        assert!(throttle.check_at(one, start + WINDOW).is_ok(), "the count starts again");
    }

    #[test]
    fn an_ipv6_64_is_one_client_and_an_ipv4_is_one_address() {
        let throttle = AuthThrottle::default();
        let start = Instant::now();
        for i in 0..FREE_FAILURES {
            let address: IpAddr = format!("2001:db8:1:2::{:x}", i + 1).parse().unwrap();
            throttle.failed_at(address, start);
        }
        let fresh: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        assert!(throttle.check_at(fresh, start).is_err(), "another address of the same /64 is slowed");
        assert!(throttle.check_at("2001:db8:1:3::1".parse().unwrap(), start).is_ok(), "the next /64 is not");
        assert!(throttle.check_at("203.0.113.1".parse().unwrap(), start).is_ok());
    }

    #[test]
    fn a_full_table_drops_its_oldest_clients_and_never_slows_a_new_one() {
        let throttle = AuthThrottle::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(1);
        for i in 0..MAX_CLIENTS as u32 {
            throttle.failed_at(IpAddr::V4((0x0a00_0000 + i).into()), start);
        }
        // The flood goes on from new addresses, each with a wrong try or more.
        for i in 0..FREE_FAILURES * 2 {
            throttle.failed_at(IpAddr::V4((0x0b00_0000 + i).into()), later);
        }
        let operator: IpAddr = "192.0.2.77".parse().unwrap();
        assert!(throttle.check_at(operator, later).is_ok(), "an address that never failed is not slowed");
        throttle.failed_at(operator, later);
        assert!(throttle.check_at(operator, later).is_ok(), "its first wrong try is its own");
        assert_eq!(throttle.failures.lock().unwrap().len(), MAX_CLIENTS, "bounded");
    }
}
