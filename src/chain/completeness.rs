//! Proof that an `eth_getLogs` answer holds every log of the blocks near the head. Behind a
//! load balancer the call can reach a backend that lags the one that answered
//! `eth_blockNumber`: it answers `[]`, or stops at its own head, for the newest blocks. Each
//! block header carries a Bloom filter (`logsBloom`) of every address and topic its logs
//! touch; a block whose bloom may hold a token's address and the Transfer topic, yet for which
//! the answer has no log, is fetched again by its hash. A Bloom filter has no false negatives,
//! so a block whose bloom says "no" certainly has no Transfer of these tokens, and every block
//! that says "maybe" has either logs in the answer or an answer of its own.

use alloy::primitives::{Address, B256, Bloom, BloomInput};

/// What the watcher keeps of a block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    pub number: u64,
    pub hash: B256,
    pub parent: B256,
    pub time: i64,
    pub bloom: Bloom,
}

/// Whether the block may hold a `topic` event of one of `tokens`.
pub fn may_hold(bloom: &Bloom, tokens: &[Address], topic: &B256) -> bool {
    bloom.contains_input(BloomInput::Raw(topic.as_slice()))
        && tokens.iter().any(|t| bloom.contains_input(BloomInput::Raw(t.as_slice())))
}

/// The blocks of `heads` whose bloom says "maybe" but for which no log was answered: the
/// answer may be incomplete there.
pub fn unproven<'a>(
    heads: impl IntoIterator<Item = &'a BlockHead>,
    tokens: &[Address],
    topic: &B256,
    answered: &std::collections::HashSet<u64>,
) -> Vec<BlockHead> {
    heads.into_iter().filter(|h| !answered.contains(&h.number) && may_hold(&h.bloom, tokens, topic)).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn head(number: u64, bloom: Bloom) -> BlockHead {
        BlockHead { number, hash: B256::ZERO, parent: B256::ZERO, time: 0, bloom }
    }

    #[test]
    fn a_maybe_block_without_logs_is_unproven() {
        let token = Address::repeat_byte(7);
        let topic = B256::repeat_byte(9);
        let mut with_transfer = Bloom::default();
        with_transfer.accrue(BloomInput::Raw(token.as_slice()));
        with_transfer.accrue(BloomInput::Raw(topic.as_slice()));
        let heads = [head(1, with_transfer), head(2, Bloom::default()), head(3, with_transfer)];
        let answered: HashSet<u64> = [3].into();
        let missing: Vec<u64> = unproven(&heads, &[token], &topic, &answered).iter().map(|h| h.number).collect();
        assert_eq!(missing, [1], "block 1 may hold a transfer and had no log; 2 cannot; 3 was answered");
        let other_token = Address::repeat_byte(8);
        assert!(unproven(&heads, &[other_token], &topic, &HashSet::new()).is_empty());
    }
}
