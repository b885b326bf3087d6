//! While a watcher is far behind the head (more than `chain::status::FAR_BEHIND` blocks), an info
//! line every 10 s: blocks behind, blocks per second since the last line, and the time it
//! would take at that rate.

use std::time::{Duration, Instant};

use crate::chain::status::FAR_BEHIND;

pub const EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct CatchUpLog {
    /// When the last line (or the start of this catch-up) was, and the block processed then.
    last: Option<(Instant, u64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CatchUp {
    pub behind: u64,
    pub blocks_per_second: f64,
    /// None while nothing was processed since the last line.
    pub eta_secs: Option<u64>,
}

impl CatchUpLog {
    /// What to report now, if a line is due.
    pub fn tick(&mut self, now: Instant, head: u64, processed: u64) -> Option<CatchUp> {
        let behind = head.saturating_sub(processed);
        if behind <= FAR_BEHIND {
            self.last = None;
            return None;
        }
        let Some((at, from)) = self.last else {
            self.last = Some((now, processed));
            return None;
        };
        let elapsed = now.duration_since(at);
        if elapsed < EVERY {
            return None;
        }
        self.last = Some((now, processed));
        let rate = processed.saturating_sub(from) as f64 / elapsed.as_secs_f64();
        let eta_secs = (rate > 0.0).then(|| (behind as f64 / rate).ceil() as u64);
        Some(CatchUp { behind, blocks_per_second: rate, eta_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_every_ten_seconds_only_while_far_behind() {
        let start = Instant::now();
        let mut log = CatchUpLog::default();
        assert_eq!(log.tick(start, 10_000, 0), None, "the first tick starts the clock");
        assert_eq!(log.tick(start + Duration::from_secs(5), 10_000, 500), None, "not yet 10 s");
        let line = log.tick(start + Duration::from_secs(10), 10_000, 2_000).expect("a line after 10 s");
        assert_eq!(line, CatchUp { behind: 8_000, blocks_per_second: 200.0, eta_secs: Some(40) });
        assert_eq!(log.tick(start + Duration::from_secs(21), 10_000, 9_500), None, "caught up to within 1,000");
        assert_eq!(log.tick(start + Duration::from_secs(22), 20_000, 9_500), None, "far behind again: a new start");
        let stuck = log.tick(start + Duration::from_secs(32), 20_000, 9_500).expect("a line");
        assert_eq!(stuck.eta_secs, None, "no progress, no estimate");
    }
}
