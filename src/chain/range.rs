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
    /// The provider named a span that works (a result cap): hold it for a few calls, then
    /// grow gently from there, not by doubling into the next refusal.
    hinted: bool,
    hold: u32,
}

/// Successful calls a hinted span is kept before growing again.
const HOLD_AFTER_HINT: u32 = 8;

impl AdaptiveRange {
    pub fn new(start: u64, max: u64) -> Self {
        Self { current: start.clamp(1, max), max, cap: None, hinted: false, hold: 0 }
    }

    pub fn get(&self) -> u64 {
        self.current
    }

    /// After a refused range of `asked` blocks: the provider's span when it named a smaller
    /// one, else half.
    pub fn shrink(&mut self, hint: Option<u64>, asked: u64) {
        self.hinted = matches!(hint, Some(span) if span < asked);
        self.hold = if self.hinted { HOLD_AFTER_HINT } else { 0 };
        self.current = match hint {
            Some(span) if span < asked => span.max(1),
            _ => (asked.min(self.current) / 2).max(1),
        };
    }

    /// After a refusal of `asked` blocks, with what the provider said (see `Failure::TooLarge`):
    /// a stated limit below the ask is kept as a ceiling (and a suggested span taken too);
    /// otherwise the suggested span, or half.
    pub fn refused(&mut self, span: Option<u64>, cap: Option<u64>, asked: u64) {
        match cap {
            Some(cap) if cap < asked => {
                self.cap_at(cap);
                if span.is_some() {
                    self.shrink(span, asked);
                }
            }
            _ => self.shrink(span, asked),
        }
    }

    /// A provider's stated range limit: never asked for more again.
    pub fn cap_at(&mut self, span: u64) {
        let span = span.max(1);
        self.cap = Some(self.cap.map_or(span, |c| c.min(span)));
        self.current = self.current.min(span);
    }

    /// The range after one more `grow` (what the next step will ask, when this one succeeds).
    pub fn grown(&self) -> u64 {
        let mut next = *self;
        next.grow();
        next.get()
    }

    pub fn grow(&mut self) {
        if self.hold > 0 {
            self.hold -= 1;
            return;
        }
        let limit = self.cap.unwrap_or(self.max).min(self.max);
        let step = if self.hinted { (self.current / 8).max(1) } else { self.current };
        self.current = (self.current + step).min(limit);
    }
}

/// What a failed RPC call asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Slow down; try the same call later.
    RateLimited,
    /// Ask for fewer blocks: `span` is a range the provider says works for this query (a
    /// result cap), `cap` a block-range limit it states for every query.
    TooLarge { span: Option<u64>, cap: Option<u64> },
    /// Anything else: an outage, a timeout, a bad answer. Back off and retry.
    Other,
}

static HINTED_RANGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[\s*(0x[0-9a-f]+)\s*,\s*(0x[0-9a-f]+)\s*\]").expect("valid regex"));
static LIMITED_TO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:limited to|up to|maximum|max(?:imum)? (?:block )?range(?: is)?)[^0-9]{0,12}([0-9][0-9,_]*)(k?)\s*(?:block)?")
        .expect("valid regex")
});

/// Reads an RPC error's text. Size complaints are recognised by their own phrases only (never
/// by a bare "exceeded" or "limit", which rate limits say too), so a rate limit never
/// collapses the range; a size complaint wrapped in a retry layer's "max retries" is still one.
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
        let rate_limited = RATE.iter().any(|needle| m.contains(needle));
        return if rate_limited { Failure::RateLimited } else { Failure::Other };
    }
    let span = HINTED_RANGE.captures(&m).and_then(|c| {
        let lo = u64::from_str_radix(c[1].trim_start_matches("0x"), 16).ok()?;
        let hi = u64::from_str_radix(c[2].trim_start_matches("0x"), 16).ok()?;
        (hi >= lo).then(|| hi - lo + 1)
    });
    let cap = LIMITED_TO.captures(&m).and_then(|c| {
        let n = c[1].replace([',', '_'], "").parse::<u64>().ok()?;
        Some(if &c[2] == "k" { n * 1000 } else { n })
    });
    Failure::TooLarge { span, cap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_to_one_and_grows_back_to_the_max() {
        let mut r = AdaptiveRange::new(8, 16);
        for _ in 0..5 {
            r.shrink(None, r.get());
        }
        assert_eq!(r.get(), 1);
        for _ in 0..10 {
            r.grow();
        }
        assert_eq!(r.get(), 16);
    }

    #[test]
    fn after_a_hinted_span_the_range_grows_gently() {
        let mut r = AdaptiveRange::new(1000, 5000);
        r.shrink(Some(200), 1000);
        assert_eq!(r.get(), 200);
        for _ in 0..HOLD_AFTER_HINT {
            r.grow();
        }
        assert_eq!(r.get(), 200, "the hinted span is held");
        r.grow();
        assert_eq!(r.get(), 225, "then an eighth more, not double");
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
            Failure::TooLarge { span: Some(32), cap: None }
        );
        // Alchemy-style: a range limit and a suggested range.
        assert_eq!(
            classify(
                "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range and no \
                 limit on the response size, or you can request any block range with a cap of 10K logs in the \
                 response. Based on your parameters, this block range should work: [0x1f4, 0x3e7]"
            ),
            Failure::TooLarge { span: Some(500), cap: Some(2000) }
        );
        assert_eq!(
            classify("You can make eth_getLogs requests with up to a 2K block range"),
            Failure::TooLarge { span: None, cap: Some(2000) }
        );
        // QuickNode-style range cap.
        assert_eq!(
            classify("eth_getLogs is limited to a 10,000 range"),
            Failure::TooLarge { span: None, cap: Some(10_000) }
        );
        assert_eq!(classify("eth_getLogs block range too large"), Failure::TooLarge { span: None, cap: None });
    }
}
