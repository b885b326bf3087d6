//! The cheaper trust rule, for an endpoint whose operator declares that every call of one
//! JSON-RPC batch reaches one node (their own node: `rpc_batches = "one_node"`). A range is
//! read in one batch: its first header, its last header and its `eth_getLogs`. The node that
//! answered the last header has every block below it, and the same node answered the logs, so
//! they are the range's logs; two headers stand for the range instead of one per block.
//!
//! What still ties the answer to the chain: the first header extends the cursor; the last is
//! the head when it is at the head's height; at both ends the logs agree with the header (they
//! carry its hash, and a block whose bloom may hold a transfer has its logs in the answer or
//! proven by its receipts asked by hash, as `completeness` does). What it cannot see, and
//! `completeness::verify` can: the blocks between the ends, were the calls of the batch
//! answered by different nodes. Behind an aggregator or a load balancer that may split a batch,
//! this rule can lose payments; that is why it is a declaration and not the default.

use alloy_primitives::{Address, B256};
use alloy_rpc_types_eth::Log;

use crate::completeness::{Believed, BlockHead, Look, TRANSFER, Verdict, bloom_holds, may_hold, receipts_logs};

/// Judges a one-batch look at `from..=to` (its two end headers and its logs) against the
/// cursor's hash (None before the first step) and the head read this step.
pub fn verify_tied(look: &Look, cursor: Option<B256>, head: &BlockHead, tokens: &[Address]) -> Verdict {
    let Some(first) = look.headers.get(&look.from).copied() else { return Verdict::NotKnown(look.from) };
    let Some(last) = look.headers.get(&look.to).copied() else { return Verdict::NotKnown(look.to) };
    if cursor.is_some_and(|c| c != first.parent) {
        return Verdict::Unlinked;
    }
    if look.to == look.from + 1 && last.parent != first.hash {
        return Verdict::Retry("headers of two forks");
    }
    if last.number == head.number && last.hash != head.hash {
        return Verdict::Retry("the chain moved while reading");
    }
    let ends: Vec<BlockHead> = if look.from == look.to { vec![first] } else { vec![first, last] };
    let EndChecked { mut logs, removed, outside_bloom } = match end_checked(look, &ends) {
        Ok(checked) => checked,
        Err(why) => return Verdict::Retry(why),
    };
    // An end block that may hold a transfer and that no log answered for: a false positive of
    // its bloom, or logs behind the headers. Only its receipts by hash can tell.
    for end in &ends {
        if may_hold(&end.bloom, tokens, &TRANSFER) && !logs.iter().any(|l| l.block_number == Some(end.number)) {
            match receipts_logs(look, end, tokens) {
                Some(from_receipts) => logs.extend(from_receipts.into_iter().cloned()),
                None => return Verdict::Unproven(*end),
            }
        }
    }
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let believed = Believed { from: look.from, logs, headers: ends, removed, outside_bloom, other_fork: 0 };
    Verdict::Trusted { believed: Box::new(believed), unproven: None }
}

/// A window: on a tied endpoint, every other head poll that finds more than one new block
/// leaves out the first new block's header (the link to the cursor) and so costs the floor's
/// two calls, the head and `eth_getLogs` from the cursor to it. Its transfers are recorded as
/// seen and nothing more: no confirmation, no cursor move, no stored row moved or removed on
/// its word. The next poll is linked and reads the same blocks again from the cursor; its
/// proven answer removes what the window recorded in blocks it lacks and moves a transfer
/// found at another height (`payments::credit::commit_step`).
///
/// Whether this poll may be a window: more than one block is due and the last poll was not.
pub fn window_due(blocks_due: u64, last_was_window: bool) -> bool {
    blocks_due >= 2 && !last_was_window
}

/// The logs of a window's look (`from..=head`, the head's header only), as far as the head's
/// header can check them: a log of the head's block must carry its hash and lie in its bloom.
pub fn window_logs(look: &Look, head: &BlockHead) -> Result<Vec<Log>, &'static str> {
    if look.to != head.number {
        return Err("the window does not end at the head");
    }
    end_checked(look, &[*head]).map(|checked| checked.logs)
}

struct EndChecked {
    logs: Vec<Log>,
    removed: usize,
    outside_bloom: usize,
}

/// The look's logs checked against the headers of its `ends`: removed logs and logs outside an
/// end's bloom dropped and counted; a log without its block, outside the range or of another
/// fork than an end refuses the answer.
fn end_checked(look: &Look, ends: &[BlockHead]) -> Result<EndChecked, &'static str> {
    let mut checked = EndChecked { logs: Vec::new(), removed: 0, outside_bloom: 0 };
    for log in &look.logs {
        if log.removed {
            checked.removed += 1;
            continue;
        }
        let Some(n) = log.block_number.filter(|_| log.block_hash.is_some()) else {
            return Err("a log without its block");
        };
        if !(look.from..=look.to).contains(&n) {
            return Err("logs outside the asked range");
        }
        if let Some(end) = ends.iter().find(|h| h.number == n) {
            if log.block_hash != Some(end.hash) {
                return Err("logs of another fork than the range's ends");
            }
            if !bloom_holds(&end.bloom, &log.address(), log.topics()) {
                checked.outside_bloom += 1;
                continue;
            }
        }
        checked.logs.push(log.clone());
    }
    checked.logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completeness::fixtures::*;
    use std::collections::BTreeMap;

    /// One batch's look at from..=to on fork 0: the two end headers and `logs`.
    fn tied(from: u64, to: u64, paying: &[u64], logs: Vec<Log>) -> Look {
        let all = chain(from, to, 0, paying);
        let headers: BTreeMap<u64, BlockHead> = [(from, all[&from]), (to, all[&to])].into();
        Look { from, to, headers, logs, ..Default::default() }
    }

    fn judge(look: &Look) -> Verdict {
        verify_tied(look, Some(hash(look.from - 1, 0)), &look.headers[&look.to], &[TOKEN])
    }

    fn believed(v: Verdict) -> Believed {
        match v {
            Verdict::Trusted { believed, unproven: None } => *believed,
            other => panic!("not believed: {other:?}"),
        }
    }

    #[test]
    fn two_headers_and_the_logs_of_one_batch_stand_for_the_range() {
        let b = believed(judge(&tied(10, 20, &[13, 20], vec![log(13, 0), log(20, 0)])));
        assert_eq!((b.first().number, b.last().number, b.logs.len()), (10, 20, 2));
        // A block between the ends is believed as the node answered it: no header to check.
        let b = believed(judge(&tied(10, 20, &[], vec![log(15, 3)])));
        assert_eq!(b.logs.len(), 1);
        // One block: one header.
        let b = believed(judge(&tied(10, 10, &[], vec![])));
        assert_eq!(b.headers.len(), 1);
    }

    #[test]
    fn the_range_must_extend_the_cursor_and_meet_the_head() {
        let l = tied(10, 20, &[], vec![]);
        let head = l.headers[&20];
        assert!(matches!(verify_tied(&l, Some(hash(9, 5)), &head, &[TOKEN]), Verdict::Unlinked));
        assert!(matches!(verify_tied(&l, None, &head, &[TOKEN]), Verdict::Trusted { .. }), "no cursor yet");
        let mut moved = head;
        moved.hash = B256::repeat_byte(0xee);
        assert!(matches!(verify_tied(&l, Some(hash(9, 0)), &moved, &[TOKEN]), Verdict::Retry(_)));
        // Two adjacent ends that do not chain.
        let mut split = tied(10, 11, &[], vec![]);
        split.headers.insert(11, chain(10, 11, 4, &[])[&11]);
        assert!(matches!(judge(&split), Verdict::Retry(_)));
        // An end the node did not have.
        let mut gap = l.clone();
        gap.headers.remove(&20);
        let at = |l: &Look| verify_tied(l, Some(hash(9, 0)), &head, &[TOKEN]);
        assert!(matches!(at(&gap), Verdict::NotKnown(20)));
        gap.headers.remove(&10);
        assert!(matches!(at(&gap), Verdict::NotKnown(10)));
    }

    #[test]
    fn at_the_ends_the_logs_must_agree_with_the_headers() {
        // A log of another fork's end block: the batch saw two chains.
        assert!(matches!(judge(&tied(10, 20, &[20], vec![log(20, 4)])), Verdict::Retry(_)));
        assert!(matches!(judge(&tied(10, 20, &[10], vec![log(10, 4)])), Verdict::Retry(_)));
        // A paying end block with no log in the answer: unproven (its receipts are asked).
        assert!(matches!(judge(&tied(10, 20, &[20], vec![])), Verdict::Unproven(h) if h.number == 20));
        assert!(matches!(judge(&tied(10, 20, &[10], vec![])), Verdict::Unproven(h) if h.number == 10));
        // A log of another block is no answer for the end block.
        assert!(matches!(judge(&tied(10, 20, &[20], vec![log(15, 0)])), Verdict::Unproven(h) if h.number == 20));
        // ... and its receipts prove it.
        let mut l = tied(10, 20, &[20], vec![]);
        l.receipts.insert(hash(20, 0), Some(vec![log(20, 0)]));
        assert_eq!(believed(judge(&l)).logs.len(), 1);
        // A log at an end block outside its bloom is dropped.
        let b = believed(judge(&tied(10, 20, &[], vec![log(20, 0)])));
        assert_eq!((b.logs.len(), b.outside_bloom), (0, 1));
    }

    #[test]
    fn removed_logs_and_logs_outside_the_range_are_refused() {
        let mut removed = log(15, 0);
        removed.removed = true;
        let b = believed(judge(&tied(10, 20, &[], vec![removed])));
        assert_eq!((b.logs.len(), b.removed), (0, 1));
        assert!(matches!(judge(&tied(10, 20, &[], vec![log(21, 0)])), Verdict::Retry(_)));
        let mut blockless = log(15, 0);
        blockless.block_hash = None;
        assert!(matches!(judge(&tied(10, 20, &[], vec![blockless])), Verdict::Retry(_)));
    }

    /// A window's look at from..=to on fork 0: the head's header and `logs`.
    fn window(from: u64, to: u64, paying: &[u64], logs: Vec<Log>) -> (Look, BlockHead) {
        let head = chain(from, to, 0, paying)[&to];
        (Look { from, to, headers: [(to, head)].into(), logs, ..Default::default() }, head)
    }

    #[test]
    fn a_window_comes_every_other_multi_block_poll() {
        assert!(window_due(2, false));
        assert!(!window_due(2, true), "after a window, a linked poll");
        assert!(!window_due(1, false), "one block links through the head's own parent");
        assert!(!window_due(0, false));
    }

    #[test]
    fn a_window_keeps_the_logs_its_head_can_check() {
        let (look, head) = window(10, 20, &[20], vec![log(20, 0), log(13, 0)]);
        let logs = window_logs(&look, &head).unwrap();
        let at: Vec<_> = logs.iter().map(|l| l.block_number.unwrap()).collect();
        assert_eq!(at, vec![13, 20], "every log, in block order");
        // The head's block on another fork than the head read: the chain moved.
        let (look, head) = window(10, 20, &[20], vec![log(20, 4)]);
        assert!(window_logs(&look, &head).is_err());
        // A log at the head outside its bloom is dropped; removed logs too.
        let mut removed = log(15, 0);
        removed.removed = true;
        let (look, head) = window(10, 20, &[], vec![log(20, 0), removed]);
        assert!(window_logs(&look, &head).unwrap().is_empty());
        // Outside the range, or a look that does not end at the head.
        let (look, head) = window(10, 20, &[], vec![log(21, 0)]);
        assert!(window_logs(&look, &head).is_err());
        let (look, _) = window(10, 20, &[], vec![]);
        assert!(window_logs(&look, &chain(10, 21, 0, &[])[&21]).is_err());
    }
}
