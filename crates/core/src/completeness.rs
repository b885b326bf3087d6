//! When a range's logs are believed: the whole trust rule, a pure function of what was
//! answered. Behind an aggregator or a load balancer every call, even each call of one
//! batch, may reach its own backend, some of them behind the others, on another fork, or
//! answering `[]` for blocks they do not have yet (by range and by block hash alike). So no
//! evidence here depends on which node answered which call:
//!
//! - **Headers, every block of the range**, hash-chained from the cursor (the first one's
//!   parent is the cursor's hash, each next one's parent the one before). A header answered
//!   by any node is authentic once it is in that chain.
//! - **Each block's `logsBloom`** says whether the block may hold a Transfer of the tokens.
//!   A Bloom filter has no false negatives: a block whose bloom says no needs no log answer.
//! - **A bloom-positive block needs evidence from its own logs**: a log in the answer that
//!   carries the block's hash (the node that served that call had the block, so all its logs),
//!   or the block's receipts asked by hash, each carrying the block's hash, whose logs' blooms
//!   add up to the header's bloom exactly (a short list cannot). A node that lacks the block
//!   answers `[]` or null: no evidence, and the block is not believed.
//!
//! `verify` believes the longest prefix of the range in which every block has that evidence;
//! the cursor moves only to its end. Blocks after it are asked again (their receipts first).

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy_primitives::{Address, B256, Bloom, BloomInput, keccak256};
use alloy_rpc_types_eth::Log;

/// What the watcher keeps of a block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHead {
    pub number: u64,
    pub hash: B256,
    pub parent: B256,
    pub time: i64,
    pub bloom: Bloom,
}

/// The Transfer event's topic.
pub const TRANSFER: B256 = alloy_primitives::b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

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

/// `bloom_holds` with each distinct address and topic hashed once: a catch-up checks tens of
/// thousands of logs, most of them sharing the token's address and the Transfer topic, and the
/// hashing (four a log) was most of `verify`'s time.
#[derive(Default)]
pub struct BloomHashes {
    addresses: HashMap<Address, B256>,
    topics: HashMap<B256, B256>,
}

impl BloomHashes {
    pub fn holds(&mut self, bloom: &Bloom, address: &Address, topics: &[B256]) -> bool {
        let address = *self.addresses.entry(*address).or_insert_with(|| keccak256(address));
        bloom.contains_input(BloomInput::Hash(address))
            && topics.iter().all(|t| {
                let topic = *self.topics.entry(*t).or_insert_with(|| keccak256(t));
                bloom.contains_input(BloomInput::Hash(topic))
            })
    }
}

/// Everything answered about `from..=to`, whichever nodes answered it.
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub from: u64,
    pub to: u64,
    /// Headers by number (missing where the node asked did not have the block).
    pub headers: BTreeMap<u64, BlockHead>,
    /// The range's Transfer logs of the tokens, as one `eth_getLogs` answered them.
    pub logs: Vec<Log>,
    /// Blocks' receipts asked by hash: every log of the block (None: the node had no block).
    pub receipts: HashMap<B256, Option<Vec<Log>>>,
}

/// A believed prefix of a range: its blocks' headers and the tokens' Transfer logs in them.
#[derive(Debug, Clone)]
pub struct Believed {
    pub from: u64,
    pub logs: Vec<Log>,
    /// Every header of the prefix, in order (never empty).
    pub headers: Vec<BlockHead>,
    /// Logs dropped: marked removed, outside their block's bloom, or of another fork.
    pub removed: usize,
    pub outside_bloom: usize,
    pub other_fork: usize,
}

impl Believed {
    pub fn first(&self) -> BlockHead {
        self.headers[0]
    }
    pub fn last(&self) -> BlockHead {
        *self.headers.last().expect("a believed prefix has a block")
    }
}

/// What a look is worth.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Every block of `from..=last` proven; `unproven` holds the first bloom-positive block
    /// after it whose logs no answer proved (its receipts are the next thing to ask).
    Trusted { believed: Box<Believed>, unproven: Option<BlockHead> },
    /// No block proven: the first bloom-positive block lacks evidence (ask its receipts).
    Unproven(BlockHead),
    /// No node answered the range's first header yet.
    NotKnown(u64),
    /// The range's first block does not extend the cursor: a reorg, or a node on another fork.
    Unlinked,
    /// The answers disagree among themselves (headers of two forks, the head moved); ask again.
    Retry(&'static str),
}

/// Judges a look against the cursor's hash (None before the first step) and the head read
/// this step (a header at the head's height must be the head).
pub fn verify(look: &Look, cursor: Option<B256>, head: &BlockHead, tokens: &[Address]) -> Verdict {
    let mut chained: Vec<BlockHead> = Vec::new();
    for n in look.from..=look.to {
        let Some(h) = look.headers.get(&n) else { break };
        let parent = chained.last().map(|p| p.hash).or(cursor);
        match parent {
            Some(p) if p != h.parent && chained.is_empty() => return Verdict::Unlinked,
            Some(p) if p != h.parent => return Verdict::Retry("headers of two forks"),
            _ => {}
        }
        if h.number == head.number && h.hash != head.hash {
            return Verdict::Retry("the chain moved while reading");
        }
        chained.push(*h);
    }
    if chained.is_empty() {
        return Verdict::NotKnown(look.from);
    }
    let mut by_block: BTreeMap<u64, Vec<&Log>> = BTreeMap::new();
    let (mut removed, mut outside_bloom, mut other_fork) = (0, 0, 0);
    for log in &look.logs {
        if log.removed {
            // A log taken out by a reorg; no provider means it as a live one.
            removed += 1;
            continue;
        }
        match log.block_number {
            Some(n) if (look.from..=look.to).contains(&n) => by_block.entry(n).or_default().push(log),
            Some(_) => return Verdict::Retry("logs outside the asked range"),
            None => return Verdict::Retry("a log without its block"),
        }
    }
    let mut logs = Vec::new();
    let mut proven = 0;
    let mut unproven = None;
    let mut hashes = BloomHashes::default();
    for h in &chained {
        let answered = by_block.remove(&h.number).unwrap_or_default();
        let (ours, theirs): (Vec<&Log>, Vec<&Log>) = answered.into_iter().partition(|l| l.block_hash == Some(h.hash));
        other_fork += theirs.len();
        let block_logs: Vec<&Log> = if !ours.is_empty() || !may_hold(&h.bloom, tokens, &TRANSFER) {
            ours
        } else {
            match receipts_logs(look, h, tokens) {
                Some(from_receipts) => from_receipts,
                None => {
                    unproven = Some(*h);
                    break;
                }
            }
        };
        for log in block_logs {
            if hashes.holds(&h.bloom, &log.address(), log.topics()) {
                logs.push(log.clone());
            } else {
                outside_bloom += 1;
            }
        }
        proven += 1;
    }
    if proven == 0 {
        return Verdict::Unproven(unproven.expect("a chained block either proven or not"));
    }
    chained.truncate(proven);
    let believed = Believed { from: look.from, logs, headers: chained, removed, outside_bloom, other_fork };
    Verdict::Trusted { believed: Box::new(believed), unproven }
}

/// The tokens' Transfer logs of block `h` from its receipts, when they prove themselves: every
/// log carries the block's hash and their blooms add up to the header's bloom.
pub(crate) fn receipts_logs<'a>(look: &'a Look, h: &BlockHead, tokens: &[Address]) -> Option<Vec<&'a Log>> {
    let all = look.receipts.get(&h.hash)?.as_ref()?;
    let mut bloom = Bloom::default();
    for log in all {
        if log.block_hash != Some(h.hash) {
            return None;
        }
        bloom.accrue_log(&log.inner);
    }
    (bloom == h.bloom).then(|| {
        all.iter()
            .filter(|l| tokens.contains(&l.address()) && l.topics().first() == Some(&TRANSFER) && !l.removed)
            .collect()
    })
}

/// The hashes of the bloom-positive blocks whose logs `look` left unproven, in order, at most
/// `limit`: from the block where the verdict stopped, each block with no log of its own (a log
/// of another fork's block is no answer) and no receipts asked yet. Their receipts by hash are
/// what the watcher asks next; nothing when the verdict stopped nowhere.
pub fn receipts_wanted(look: &Look, verdict: &Verdict, tokens: &[Address], limit: usize) -> Vec<B256> {
    let stop = match verdict {
        Verdict::Trusted { unproven: Some(h), .. } | Verdict::Unproven(h) => h.number,
        _ => return Vec::new(),
    };
    let answered: HashSet<u64> = look
        .logs
        .iter()
        .filter(|l| l.block_number.and_then(|n| look.headers.get(&n)).is_some_and(|h| l.block_hash == Some(h.hash)))
        .filter_map(|l| l.block_number)
        .collect();
    look.headers
        .range(stop..)
        .map(|(_, h)| h)
        .filter(|h| may_hold(&h.bloom, tokens, &TRANSFER))
        .filter(|h| !answered.contains(&h.number) && !look.receipts.contains_key(&h.hash))
        .take(limit)
        .map(|h| h.hash)
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Headers and logs of made-up chains, for the trust rules' unit tests.
    use super::*;
    use alloy_primitives::LogData;

    pub const TOKEN: Address = Address::repeat_byte(7);

    pub fn hash(n: u64, fork: u8) -> B256 {
        let mut b = [fork; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        B256::from(b)
    }

    /// A chain of headers from..=to on `fork`, the first one's parent being hash(from-1, 0).
    pub fn chain(from: u64, to: u64, fork: u8, paying: &[u64]) -> BTreeMap<u64, BlockHead> {
        (from..=to)
            .map(|n| {
                let parent = if n == from { hash(n - 1, 0) } else { hash(n - 1, fork) };
                let bloom = if paying.contains(&n) { bloom_of(&[log(n, fork)]) } else { Bloom::default() };
                (n, BlockHead { number: n, hash: hash(n, fork), parent, time: n as i64, bloom })
            })
            .collect()
    }

    pub fn bloom_of(logs: &[Log]) -> Bloom {
        let mut b = Bloom::default();
        logs.iter().for_each(|l| b.accrue_log(&l.inner));
        b
    }

    pub fn log(n: u64, fork: u8) -> Log {
        Log {
            inner: alloy_primitives::Log {
                address: TOKEN,
                data: LogData::new_unchecked(vec![TRANSFER], Default::default()),
            },
            block_hash: Some(hash(n, fork)),
            block_number: Some(n),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use alloy_primitives::LogData;

    fn look(from: u64, to: u64, paying: &[u64], logs: Vec<Log>) -> Look {
        Look { from, to, headers: chain(from, to, 0, paying), logs, receipts: HashMap::new() }
    }

    fn judge(look: &Look) -> Verdict {
        let head = look.headers[&look.to];
        verify(look, Some(hash(look.from - 1, 0)), &head, &[TOKEN])
    }

    fn proven_to(v: &Verdict) -> Option<u64> {
        match v {
            Verdict::Trusted { believed, .. } => Some(believed.last().number),
            _ => None,
        }
    }

    #[test]
    fn a_maybe_block_needs_the_bloom_and_the_topic() {
        let bloom = bloom_of(&[log(1, 0)]);
        assert!(may_hold(&bloom, &[TOKEN], &TRANSFER));
        assert!(!may_hold(&Bloom::default(), &[TOKEN], &TRANSFER));
        assert!(!may_hold(&bloom, &[Address::repeat_byte(8)], &TRANSFER));
    }

    #[test]
    fn the_bloom_check_hashing_each_input_once_answers_as_hashing_every_time() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let (t, u, v) = (TRANSFER, B256::repeat_byte(3), B256::repeat_byte(4));
        let mut of_a = Bloom::default();
        of_a.accrue_raw_log(a, &[t, u]);
        let mut of_b = Bloom::default();
        of_b.accrue_raw_log(b, &[t, v]);
        let blooms = [of_a, of_b, Bloom::default()];
        let inputs: [(Address, Vec<B256>); 6] =
            [(a, vec![t, u]), (a, vec![t, v]), (b, vec![t, v]), (b, vec![t, u]), (a, vec![]), (b, vec![v, t])];
        // The same inputs against each bloom in turn: the hashes are kept, never the answers.
        let mut hashes = BloomHashes::default();
        let mut held = Vec::new();
        for bloom in &blooms {
            for (address, topics) in &inputs {
                let once = hashes.holds(bloom, address, topics);
                assert_eq!(once, bloom_holds(bloom, address, topics), "{address} {topics:?}");
                held.push(once);
            }
        }
        let expected = [
            [true, false, false, false, true, false],
            [false, false, true, false, false, true],
            [false, false, false, false, false, false],
        ];
        assert_eq!(held, expected.concat());
    }

    #[test]
    fn blocks_whose_bloom_says_no_need_no_log_answer() {
        let v = judge(&look(10, 14, &[], vec![]));
        assert_eq!(proven_to(&v), Some(14));
    }

    #[test]
    fn a_bloom_positive_block_without_its_logs_ends_the_believed_prefix() {
        // A log node that lacks block 13 answers [] for it: blocks 10-12 are believed, 13 is not.
        let v = judge(&look(10, 14, &[11, 13], vec![log(11, 0)]));
        assert_eq!(proven_to(&v), Some(12));
        let Verdict::Trusted { believed, unproven } = v else { unreachable!() };
        assert_eq!(unproven.map(|h| h.number), Some(13));
        assert_eq!(believed.logs.len(), 1);
        // The first block itself unproven: nothing believed, its receipts asked.
        assert!(matches!(judge(&look(10, 14, &[10], vec![])), Verdict::Unproven(h) if h.number == 10));
    }

    #[test]
    fn receipts_prove_a_block_only_when_they_carry_its_hash_and_add_up_to_its_bloom() {
        let mut l = look(10, 12, &[11], vec![]);
        let h11 = l.headers[&11];
        // Receipts that hold the transfer: proven, and the transfer taken from them.
        l.receipts.insert(h11.hash, Some(vec![log(11, 0)]));
        let v = judge(&l);
        assert_eq!(proven_to(&v), Some(12));
        let Verdict::Trusted { believed, .. } = v else { unreachable!() };
        assert_eq!(believed.logs.len(), 1, "the receipts' transfer is believed");
        // A node without the block (null), or a short list (its blooms do not add up), or
        // logs of another fork's block: not proof.
        for receipts in [None, Some(vec![]), Some(vec![log(11, 9)])] {
            l.receipts.insert(h11.hash, receipts.clone());
            assert_eq!(proven_to(&judge(&l)), Some(10), "{receipts:?}");
        }
    }

    #[test]
    fn receipts_with_no_transfer_prove_a_false_positive_bloom() {
        // Another contract's log makes the bloom positive for the token's Transfer topic.
        let other = Log {
            inner: alloy_primitives::Log {
                address: TOKEN,
                data: LogData::new_unchecked(vec![B256::repeat_byte(1), TRANSFER], Default::default()),
            },
            block_hash: Some(hash(11, 0)),
            block_number: Some(11),
            ..Default::default()
        };
        let mut l = look(10, 12, &[], vec![]);
        let h11 = l.headers.get_mut(&11).unwrap();
        h11.bloom = bloom_of(std::slice::from_ref(&other));
        let h11 = *h11;
        assert!(may_hold(&h11.bloom, &[TOKEN], &TRANSFER));
        assert_eq!(proven_to(&judge(&l)), Some(10));
        l.receipts.insert(h11.hash, Some(vec![other]));
        let v = judge(&l);
        assert_eq!(proven_to(&v), Some(12));
        let Verdict::Trusted { believed, .. } = v else { unreachable!() };
        assert!(believed.logs.is_empty(), "an Approval-like log is not a transfer");
    }

    #[test]
    fn the_range_must_extend_the_cursor_in_one_chain_and_meet_the_head() {
        let l = look(10, 12, &[], vec![]);
        let head = l.headers[&12];
        assert!(matches!(verify(&l, Some(hash(9, 5)), &head, &[TOKEN]), Verdict::Unlinked));
        assert!(proven_to(&verify(&l, None, &head, &[TOKEN])).is_some(), "the first step has no cursor");
        let mut moved = head;
        moved.hash = B256::repeat_byte(0xee);
        assert!(matches!(verify(&l, Some(hash(9, 0)), &moved, &[TOKEN]), Verdict::Retry(_)));
        // Block 12's header from a node on another fork: not one chain.
        let mut split = l.clone();
        split.headers.insert(12, chain(11, 12, 3, &[])[&12]);
        assert!(matches!(judge(&split), Verdict::Retry(_)));
        // A missing header ends the prefix; a missing first header says nothing.
        let mut gap = l.clone();
        gap.headers.remove(&11);
        assert_eq!(proven_to(&verify(&gap, Some(hash(9, 0)), &head, &[TOKEN])), Some(10));
        gap.headers.remove(&10);
        assert!(matches!(verify(&gap, Some(hash(9, 0)), &head, &[TOKEN]), Verdict::NotKnown(10)));
    }

    #[test]
    fn removed_logs_other_forks_logs_and_logs_outside_the_bloom_are_dropped() {
        let mut removed = log(11, 0);
        removed.removed = true;
        let mut stranger = log(11, 0);
        stranger.inner.address = Address::repeat_byte(3);
        let forked = log(11, 4);
        let v = judge(&look(10, 12, &[11], vec![removed, stranger, forked, log(11, 0)]));
        let Verdict::Trusted { believed, .. } = v else { panic!("believed") };
        let b = *believed;
        assert_eq!((b.logs.len(), b.removed, b.outside_bloom, b.other_fork), (1, 1, 1, 1));
        // Only another fork's log for a paying block is no evidence for it.
        let v = judge(&look(10, 12, &[11], vec![log(11, 4)]));
        assert_eq!(proven_to(&v), Some(10));
        assert!(matches!(judge(&look(10, 12, &[], vec![log(13, 0)])), Verdict::Retry(_)));
    }

    #[test]
    fn the_receipts_wanted_are_the_unproven_bloom_positive_blocks_from_where_the_verdict_stopped() {
        // Blocks 11-17 may pay; 11 answered, 13 answered only by another fork's log, 15's
        // receipts already asked.
        let mut l = look(10, 18, &[11, 13, 15, 16, 17], vec![log(11, 0), log(13, 4)]);
        l.receipts.insert(hash(15, 0), None);
        let v = judge(&l);
        assert_eq!(proven_to(&v), Some(12));
        let wanted = receipts_wanted(&l, &v, &[TOKEN], 8);
        assert_eq!(wanted, vec![hash(13, 0), hash(16, 0), hash(17, 0)]);
        assert_eq!(receipts_wanted(&l, &v, &[TOKEN], 2), vec![hash(13, 0), hash(16, 0)]);
        // Stopped at the first block: from there.
        let first = look(10, 12, &[10, 12], vec![]);
        assert_eq!(receipts_wanted(&first, &judge(&first), &[TOKEN], 8), vec![hash(10, 0), hash(12, 0)]);
        // Every block proven, or the look not judged on its logs: nothing to ask.
        let all = look(10, 12, &[11], vec![log(11, 0)]);
        assert!(receipts_wanted(&all, &judge(&all), &[TOKEN], 8).is_empty());
        assert!(receipts_wanted(&l, &Verdict::Unlinked, &[TOKEN], 8).is_empty());
    }
}
