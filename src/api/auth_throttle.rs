//! Slows guessing of the admin token (the admin API's bearer token and the console's sign-in):
//! a client address gets `FREE_FAILURES` wrong tries a minute; past them every try from it,
//! right or wrong, answers 429 with `Retry-After` until its minute is over. Memory is bounded:
//! past `MAX_CLIENTS` tracked addresses the expired ones are dropped, and if that is not
//! enough, new addresses share one slot (so a flood of addresses slows itself, not the map).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE_FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_CLIENTS: usize = 100_000;
/// The slot addresses share when the map is full.
const OVERFLOW: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[derive(Debug, Default)]
pub struct AuthThrottle {
    /// Per address: failures in its current window and when the window started.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
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
        let key = if failures.contains_key(&client) || failures.len() < MAX_CLIENTS { client } else { OVERFLOW };
        match failures.get(&key) {
            Some((count, since)) if *count >= FREE_FAILURES && now.duration_since(*since) < WINDOW => {
                Err(WINDOW - now.duration_since(*since))
            }
            _ => Ok(()),
        }
    }

    fn failed_at(&self, client: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if !failures.contains_key(&client) && failures.len() >= MAX_CLIENTS {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let key = if failures.contains_key(&client) || failures.len() < MAX_CLIENTS { client } else { OVERFLOW };
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
}
