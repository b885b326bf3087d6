//! The chain's pace, as the watcher sees it between heads: how many seconds a block takes, and
//! so how many blocks a poll should expect. Only a cost choice (how many headers to ask with
//! the head); every answer is judged the same whatever it guessed.

use crate::completeness::BlockHead;

/// The most headers asked with the head in one poll.
const MAX_EXPECTED: u64 = 32;

#[derive(Debug, Clone, Copy, Default)]
pub struct Pace {
    last_head: Option<(u64, i64)>,
    block_secs: Option<f64>,
}

impl Pace {
    /// Learns from a head read (its number and timestamp against the last one's).
    pub fn saw(&mut self, head: &BlockHead) {
        if let Some((number, time)) = self.last_head
            && head.number > number
            && head.time > time
        {
            let secs = (head.time - time) as f64 / (head.number - number) as f64;
            self.block_secs = Some(self.block_secs.map_or(secs, |s| 0.8 * s + 0.2 * secs));
        }
        self.last_head = Some((head.number, head.time));
    }

    /// How many blocks were made between a block of time `since` and `now` (chain seconds); 0
    /// before the pace is known.
    pub fn blocks_due(&self, since: i64, now: i64) -> u64 {
        let elapsed = (now - since).max(0) as f64;
        self.block_secs.map_or(0, |secs| ((elapsed / secs.max(0.001)) as u64).min(MAX_EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{B256, Bloom};

    fn head(number: u64, time: i64) -> BlockHead {
        BlockHead { number, hash: B256::ZERO, parent: B256::ZERO, time, bloom: Bloom::default() }
    }

    #[test]
    fn the_pace_is_learned_between_heads_and_says_how_many_blocks_came() {
        let mut pace = Pace::default();
        assert_eq!(pace.blocks_due(0, 100), 0, "unknown before two heads");
        pace.saw(&head(10, 100));
        pace.saw(&head(14, 108));
        assert_eq!(pace.blocks_due(108, 114), 3);
        assert_eq!(pace.blocks_due(108, 100), 0, "a clock behind the block says none");
        assert_eq!(pace.blocks_due(0, 1_000_000), MAX_EXPECTED);
        // The same head again (or an older one) teaches nothing.
        pace.saw(&head(14, 108));
        pace.saw(&head(12, 104));
        assert_eq!(pace.blocks_due(108, 114), 3);
    }

    #[test]
    fn each_new_gap_moves_the_pace_a_fifth_of_the_way() {
        let mut pace = Pace::default();
        pace.saw(&head(10, 100));
        pace.saw(&head(14, 108)); // 2 s a block
        pace.saw(&head(16, 120)); // 6 s a block: 0.8 * 2 + 0.2 * 6 = 2.8
        assert_eq!(pace.blocks_due(120, 150), 10, "30 s at 2.8 s a block");
    }

    #[test]
    fn heads_that_do_not_move_both_number_and_time_teach_nothing() {
        let mut pace = Pace::default();
        pace.saw(&head(10, 100));
        pace.saw(&head(14, 108)); // 2 s a block
        pace.saw(&head(14, 112)); // the same height, later (another fork's block)
        pace.saw(&head(16, 112)); // two blocks in no time
        assert_eq!(pace.blocks_due(112, 132), 10, "still 2 s a block");
    }
}
