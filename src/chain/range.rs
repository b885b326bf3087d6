//! The getLogs block range and what a failed call means. A rate limit is never a range limit:
//! it is recognised first and waited out, with the range untouched. A range or result cap
//! takes the provider's own hint when it gives one, and halves otherwise.

use std::sync::LazyLock;

use regex::Regex;

#[derive(Debug, Clone, Copy)]
pub struct AdaptiveRange {
    current: u64,
    max: u64,
    /// The largest span the provider has said it accepts, once it has said so.
    cap: Option<u64>,
}

impl AdaptiveRange {
    pub fn new(start: u64, max: u64) -> Self {
        Self { current: start.clamp(1, max), max, cap: None }
    }

    pub fn get(&self) -> u64 {
        self.current
    }

    /// After a refused range: the provider's span when it named one, else half.
    pub fn shrink(&mut self, hint: Option<u64>) {
        self.current = match hint {
            Some(span) if span < self.current => {
                // A range cap is a property of the provider; a result cap only of this range.
                span.max(1)
            }
            _ => (self.current / 2).max(1),
        };
    }

    /// A provider's stated range limit: never asked for more again.
    pub fn cap_at(&mut self, span: u64) {
        let span = span.max(1);
        self.cap = Some(self.cap.map_or(span, |c| c.min(span)));
        self.current = self.current.min(span);
    }

    pub fn grow(&mut self) {
        let limit = self.cap.unwrap_or(self.max).min(self.max);
        self.current = (self.current * 2).min(limit);
    }
}

/// What a failed RPC call asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Slow down; try the same call later.
    RateLimited,
    /// Ask for fewer blocks. `span` is the provider's hint, `range_cap` whether it is a fixed
    /// limit on the block range (rather than on this range's result size).
    TooLarge { span: Option<u64>, range_cap: bool },
    /// Anything else: an outage, a timeout, a bad answer. Back off and retry.
    Other,
}

static HINTED_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]").expect("valid regex"));
static LIMITED_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:limited to|up to|maximum|max(?:imum)? (?:block )?range(?: is)?)[^0-9]{0,12}([0-9][0-9,_]*)(k?)\s*(?:block)?")
        .expect("valid regex")
});

/// Reads an RPC error's text. Rate limits first: several providers say "exceeded" or "limit"
/// for both, and a rate limit must never collapse the range.
pub fn classify(message: &str) -> Failure {
    let m = message.to_ascii_lowercase();
    const RATE: [&str; 9] = [
        "429",
        "rate limit",
        "rate exceeded",
        "too many requests",
        "compute units",
        "max retries exceeded",
        "throughput",
        "requests per second",
        "capacity exceeded",
    ];
    if RATE.iter().any(|needle| m.contains(needle)) {
        return Failure::RateLimited;
    }
    const SIZE: [&str; 8] = [
        "range too large",
        "block range",
        "too many results",
        "query returned more than",
        "response size",
        "log response size exceeded",
        "limited to a",
        "range is too wide",
    ];
    if !SIZE.iter().any(|needle| m.contains(needle)) {
        return Failure::Other;
    }
    if let Some(c) = HINTED_RANGE.captures(&m) {
        let lo = u64::from_str_radix(c[1].trim_start_matches("0x"), 16).ok();
        let hi = u64::from_str_radix(c[2].trim_start_matches("0x"), 16).ok();
        if let (Some(lo), Some(hi)) = (lo, hi)
            && hi >= lo
        {
            return Failure::TooLarge { span: Some(hi - lo + 1), range_cap: false };
        }
    }
    if let Some(c) = LIMITED_TO.captures(&m)
        && let Ok(n) = c[1].replace([',', '_'], "").parse::<u64>()
    {
        let n = if &c[2] == "k" { n * 1000 } else { n };
        return Failure::TooLarge { span: Some(n), range_cap: true };
    }
    Failure::TooLarge { span: None, range_cap: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_to_one_and_grows_back_to_the_max() {
        let mut r = AdaptiveRange::new(8, 16);
        for _ in 0..5 {
            r.shrink(None);
        }
        assert_eq!(r.get(), 1);
        for _ in 0..10 {
            r.grow();
        }
        assert_eq!(r.get(), 16);
    }

    #[test]
    fn a_stated_cap_is_never_exceeded_again() {
        let mut r = AdaptiveRange::new(1000, 5000);
        r.cap_at(500);
        for _ in 0..10 {
            r.grow();
        }
        assert_eq!(r.get(), 500);
    }

    #[test]
    fn rate_limits_are_never_size_complaints() {
        for text in [
            "HTTP error 429 with body: Too Many Requests",
            "Your app has exceeded its compute units per second capacity",
            "server returned an error response: error code -32005: rate exceeded",
            "Max retries exceeded HTTP error 429 with empty body",
            "daily request count exceeded, request rate limited",
        ] {
            assert_eq!(classify(text), Failure::RateLimited, "{text}");
        }
        assert_eq!(classify("connection refused"), Failure::Other);
    }

    #[test]
    fn providers_hints_are_read() {
        // Infura-style result cap with a range that works.
        assert_eq!(
            classify("query returned more than 10000 results. Try with this block range [0x10, 0x2f]."),
            Failure::TooLarge { span: Some(32), range_cap: false }
        );
        // Alchemy-style: a span and a suggested range; the range wins.
        assert_eq!(
            classify(
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no \
                 limit on the response size, or you can request any block range with a cap of 10K logs in the \
                 response. Based on your parameters, this block range should work: [0x1f4, 0x3e7]"
            ),
            Failure::TooLarge { span: Some(500), range_cap: false }
        );
        assert_eq!(
            classify("You can make eth_getLogs requests with up to a 2K block range"),
            Failure::TooLarge { span: Some(2000), range_cap: true }
        );
        // QuickNode-style range cap.
        assert_eq!(
            classify("eth_getLogs is limited to a 10,000 range"),
            Failure::TooLarge { span: Some(10_000), range_cap: true }
        );
        assert_eq!(classify("eth_getLogs block range too large"), Failure::TooLarge { span: None, range_cap: false });
    }
}
