//! When a getLogs answer is believed. Behind a load balancer a call can reach a backend that
//! lags the one that answered the head: it answers every log query as of its own head, `[]`
//! for blocks it does not have yet, by range and by block hash alike. So no answer is taken
//! alone: the watcher sends `eth_getLogs(from, to)` and the headers of `from` and `to` in one
//! JSON-RPC batch (one HTTP request, so one node), and believes the logs only when that same
//! node served block `to` (a node that has a block has every block below it, and their logs),
//! the headers link to the cursor and to the head it read, and every log agrees with its
//! block. `verify` is that rule, a pure function of what was answered.

use alloy::primitives::{Address, B256, Bloom, BloomInput};
use alloy::rpc::types::Log;

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

/// Whether a log's address and every topic are in its block's bloom. A Bloom filter has no
/// false negatives: a log outside it is not in that block, whatever the node says.
pub fn bloom_holds(bloom: &Bloom, address: &Address, topics: &[B256]) -> bool {
    bloom.contains_input(BloomInput::Raw(address.as_slice()))
        && topics.iter().all(|t| bloom.contains_input(BloomInput::Raw(t.as_slice())))
}

/// One batch's answer: the logs of `from..=to` and the headers of both ends (None where the
/// node that answered does not have the block). A `window` was asked without its first header
/// on purpose: it is believed as a window above the cursor, which it cannot be linked to.
#[derive(Debug, Clone)]
pub struct TiedLook {
    pub from: u64,
    pub to: u64,
    pub logs: Vec<Log>,
    pub first: Option<BlockHead>,
    pub last: Option<BlockHead>,
    pub window: bool,
}

/// A believed answer: the logs of the range (those that cannot be in their block dropped and
/// counted) and the headers of its ends (no first one for a window).
#[derive(Debug, Clone)]
pub struct Believed {
    pub logs: Vec<Log>,
    pub first: Option<BlockHead>,
    pub last: BlockHead,
    pub removed: usize,
    pub outside_bloom: usize,
}

/// What a tied look is worth.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every log of the range, from a node that has its last block.
    Trusted(Box<Believed>),
    /// The node that answered does not have the range's last block: its logs say nothing.
    NotKnown(u64),
    /// The range's first block does not extend the cursor: a reorg, or a node on another fork.
    Unlinked,
    /// The answers disagree among themselves; ask again.
    Retry(&'static str),
}

/// The Transfer event's topic.
const TRANSFER: B256 = alloy::primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// Judges a tied look against the cursor's hash (None before the first step) and the head
/// read this step (its hash must be the range's last block's when the range ends there). A
/// window is judged by every rule but the link to the cursor.
/// `tokens` are the contracts asked for: a last block whose bloom may hold one of their
/// Transfers, with no log of it in the answer, is a node still indexing its newest block.
pub fn verify(look: TiedLook, cursor: Option<B256>, head: &BlockHead, tokens: &[Address]) -> Verdict {
    let Some(last) = look.last else { return Verdict::NotKnown(look.to) };
    if look.first.is_none() && !look.window {
        return Verdict::NotKnown(look.to);
    }
    if last.number == head.number && last.hash != head.hash {
        return Verdict::Retry("the chain moved while reading");
    }
    if let (Some(c), Some(first)) = (cursor, look.first)
        && c != first.parent
    {
        return Verdict::Unlinked;
    }
    let first = look.first;
    let (mut removed, mut outside_bloom) = (0, 0);
    let mut logs = Vec::with_capacity(look.logs.len());
    for log in look.logs {
        // A log taken out by a reorg; no provider means it as a live one.
        if log.removed {
            removed += 1;
            continue;
        }
        let (Some(n), Some(hash)) = (log.block_number, log.block_hash) else {
            return Verdict::Retry("a log without its block");
        };
        if n < look.from || n > look.to {
            return Verdict::Retry("logs outside the asked range");
        }
        let end = [first, Some(last)].into_iter().flatten().find(|h| h.number == n);
        if let Some(end) = end {
            if end.hash != hash {
                return Verdict::Retry("logs from another fork than the headers");
            }
            if !bloom_holds(&end.bloom, &log.address(), log.topics()) {
                outside_bloom += 1;
                continue;
            }
        }
        logs.push(log);
    }
    if may_hold(&last.bloom, tokens, &TRANSFER) && !logs.iter().any(|l| l.block_number == Some(last.number)) {
        return Verdict::Retry("the last block's bloom holds a transfer the answer lacks");
    }
    Verdict::Trusted(Box::new(Believed { logs, first, last, removed, outside_bloom }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::LogData;

    const TOPIC: B256 = TRANSFER;

    fn head(number: u64, bloom: Bloom) -> BlockHead {
        BlockHead {
            number,
            hash: B256::repeat_byte(number as u8),
            parent: B256::repeat_byte(number as u8 - 1),
            time: 0,
            bloom,
        }
    }

    fn bloom_of(token: Address) -> Bloom {
        let mut b = Bloom::default();
        b.accrue(BloomInput::Raw(token.as_slice()));
        b.accrue(BloomInput::Raw(TOPIC.as_slice()));
        b
    }

    fn log(token: Address, number: u64) -> Log {
        Log {
            inner: alloy::primitives::Log {
                address: token,
                data: LogData::new_unchecked(vec![TOPIC], Default::default()),
            },
            block_hash: Some(B256::repeat_byte(number as u8)),
            block_number: Some(number),
            ..Default::default()
        }
    }

    fn look(from: u64, to: u64, logs: Vec<Log>, bloom: Bloom) -> TiedLook {
        TiedLook { from, to, logs, first: Some(head(from, bloom)), last: Some(head(to, bloom)), window: false }
    }

    #[test]
    fn a_maybe_block_needs_the_bloom_and_the_topic() {
        let token = Address::repeat_byte(7);
        assert!(may_hold(&bloom_of(token), &[token], &TOPIC));
        assert!(!may_hold(&Bloom::default(), &[token], &TOPIC));
        assert!(!may_hold(&bloom_of(token), &[Address::repeat_byte(8)], &TOPIC));
    }

    #[test]
    fn logs_are_believed_only_from_a_node_that_has_the_last_block() {
        let token = Address::repeat_byte(7);
        let tip = head(12, bloom_of(token));
        let mut unknown = look(10, 12, vec![], bloom_of(token));
        unknown.last = None;
        assert!(matches!(verify(unknown, Some(B256::repeat_byte(9)), &tip, &[token]), Verdict::NotKnown(12)));
        // The same empty answer from a node that has block 12 is "no logs" where the bloom agrees;
        // where block 12's bloom holds a transfer, it is a node still indexing that block.
        let known = look(10, 12, vec![], Bloom::default());
        let tip = head(12, Bloom::default());
        assert!(
            matches!(verify(known, Some(B256::repeat_byte(9)), &tip, &[token]), Verdict::Trusted(ref b) if b.logs.is_empty())
        );
        let indexing = look(10, 12, vec![], bloom_of(token));
        let tip = head(12, bloom_of(token));
        assert!(matches!(verify(indexing, Some(B256::repeat_byte(9)), &tip, &[token]), Verdict::Retry(_)));
    }

    #[test]
    fn the_range_must_extend_the_cursor_and_end_at_the_head_read() {
        let token = Address::repeat_byte(7);
        let answer = || look(10, 12, vec![log(token, 11), log(token, 12)], bloom_of(token));
        let tip = head(12, bloom_of(token));
        assert!(matches!(verify(answer(), Some(B256::repeat_byte(1)), &tip, &[token]), Verdict::Unlinked));
        let mut moved = tip;
        moved.hash = B256::repeat_byte(0xee);
        assert!(matches!(verify(answer(), Some(B256::repeat_byte(9)), &moved, &[token]), Verdict::Retry(_)));
        assert!(matches!(verify(answer(), Some(B256::repeat_byte(9)), &tip, &[token]), Verdict::Trusted(_)));
        assert!(matches!(verify(answer(), None, &tip, &[token]), Verdict::Trusted(_)), "the first step has no cursor");
    }

    #[test]
    fn a_window_is_judged_by_every_rule_but_the_link() {
        let token = Address::repeat_byte(7);
        let tip = head(12, bloom_of(token));
        let window = |logs| TiedLook { first: None, window: true, ..look(10, 12, logs, bloom_of(token)) };
        // Not linked to the cursor (any cursor), yet believed: a node that has the head served it.
        let Verdict::Trusted(b) =
            verify(window(vec![log(token, 11), log(token, 12)]), Some(B256::ZERO), &tip, &[token])
        else {
            panic!("a window from a node that has its last block is believed")
        };
        assert_eq!((b.first, b.logs.len()), (None, 2));
        // Its other rules hold: the last block's bloom, the last block being the head read.
        assert!(matches!(verify(window(vec![log(token, 11)]), None, &tip, &[token]), Verdict::Retry(_)));
        let mut moved = tip;
        moved.hash = B256::repeat_byte(0xee);
        assert!(matches!(verify(window(vec![log(token, 12)]), None, &moved, &[token]), Verdict::Retry(_)));
        // A look that lacks its first header without being a window says nothing.
        let headless = TiedLook { first: None, ..look(10, 12, vec![log(token, 12)], bloom_of(token)) };
        assert!(matches!(verify(headless, None, &tip, &[token]), Verdict::NotKnown(12)));
    }

    #[test]
    fn removed_logs_and_logs_outside_their_blocks_bloom_are_dropped() {
        let token = Address::repeat_byte(7);
        let tip = head(12, bloom_of(token));
        let mut removed = log(token, 11);
        removed.removed = true;
        let stranger = log(Address::repeat_byte(3), 12);
        let answer = look(10, 12, vec![removed, stranger, log(token, 12)], bloom_of(token));
        let Verdict::Trusted(b) = verify(answer, None, &tip, &[token]) else { panic!("a trusted answer") };
        assert_eq!((b.logs.len(), b.removed, b.outside_bloom), (1, 1, 1));
    }

    #[test]
    fn logs_of_another_fork_or_outside_the_range_are_not_believed() {
        let token = Address::repeat_byte(7);
        let tip = head(12, bloom_of(token));
        let mut forked = log(token, 12);
        forked.block_hash = Some(B256::repeat_byte(0xaa));
        assert!(matches!(verify(look(10, 12, vec![forked], bloom_of(token)), None, &tip, &[token]), Verdict::Retry(_)));
        assert!(matches!(
            verify(look(10, 12, vec![log(token, 13)], bloom_of(token)), None, &tip, &[token]),
            Verdict::Retry(_)
        ));
    }
}
