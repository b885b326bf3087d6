//! The getLogs block range: halves when the node says the range or result is too large,
//! doubles back after successes, within [1, max].

#[derive(Debug, Clone, Copy)]
pub struct AdaptiveRange {
    current: u64,
    max: u64,
}

impl AdaptiveRange {
    pub fn new(start: u64, max: u64) -> Self {
        Self { current: start.clamp(1, max), max }
    }

    pub fn get(&self) -> u64 {
        self.current
    }

    pub fn shrink(&mut self) {
        self.current = (self.current / 2).max(1);
    }

    pub fn grow(&mut self) {
        self.current = (self.current * 2).min(self.max);
    }
}

/// Whether an RPC error means "ask for less" rather than "try again later".
pub fn is_too_large(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["too large", "too many", "range", "limit exceeded", "exceed", "response size", "query returned more than"]
        .iter()
        .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_to_one_and_grows_back_to_the_max() {
        let mut r = AdaptiveRange::new(8, 16);
        for _ in 0..5 {
            r.shrink();
        }
        assert_eq!(r.get(), 1);
        for _ in 0..10 {
            r.grow();
        }
        assert_eq!(r.get(), 16);
    }

    #[test]
    fn recognises_providers_size_complaints() {
        assert!(is_too_large("query returned more than 10000 results"));
        assert!(is_too_large("eth_getLogs block range too large, max 2000"));
        assert!(!is_too_large("connection refused"));
    }
}
