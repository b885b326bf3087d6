//! Reading ahead while catching up: the next range's answer is asked while this step judges,
//! matches and commits its own, so a catch-up waits on the node about once instead of once a
//! range. An answer read ahead is only an answer: the next step takes it for exactly the range
//! it plans from its own cursor (else drops it), and the trust rule judges it against that
//! cursor like any other. A reorg between the read and its use is the same as one after a
//! commit: the answer links to the cursor's hash or is `Unlinked`, and the walk-back follows.

use crate::chain::completeness::Look;

use super::reader::Reader;

/// The range the step after this one plans while catching up, read with this step's head: the
/// blocks after `to`, as many as the range allows (`size`, the size after this step's growth),
/// up to the head. None at the head: the next step plans from the head it reads.
pub(super) fn next_range(to: u64, head: u64, size: u64) -> Option<(u64, u64)> {
    (to < head).then(|| (to + 1, head.min(to.saturating_add(size.max(1)))))
}

/// Reads `range` ahead (None: nothing to read, or the read failed; the step that needs it asks
/// again and handles the failure as its own).
pub(super) async fn read(reader: &Reader, tied: bool, range: Option<(u64, u64)>) -> Option<Look> {
    let (from, to) = range?;
    reader
        .look(tied, from, to)
        .await
        .inspect_err(|e| tracing::debug!(from, to, error = %e, "reading ahead failed"))
        .ok()
}

/// The answer read ahead when it starts at the planned `from` and ends within the planned
/// range (the range may have grown since); else None and it is dropped.
pub(super) fn take_for(ahead: Option<Look>, from: u64, to: u64) -> Option<Look> {
    ahead.filter(|look| look.from == from && look.to <= to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_range_starts_after_this_one_and_stops_at_the_head() {
        assert_eq!(next_range(1_000, 5_100, 2_000), Some((1_001, 3_000)));
        assert_eq!(next_range(3_000, 5_100, 4_000), Some((3_001, 5_100)));
        assert_eq!(next_range(5_099, 5_100, 4_000), Some((5_100, 5_100)));
        assert_eq!(next_range(5_100, 5_100, 4_000), None, "at the head the next step reads the head first");
        assert_eq!(next_range(10, 20, 0), Some((11, 11)), "a range is at least one block");
    }

    #[test]
    fn an_answer_read_ahead_is_taken_only_for_the_range_planned() {
        let look = |from, to| Some(Look { from, to, ..Default::default() });
        assert_eq!(take_for(look(11, 20), 11, 20).map(|l| (l.from, l.to)), Some((11, 20)));
        assert_eq!(take_for(look(11, 20), 11, 40).map(|l| (l.from, l.to)), Some((11, 20)), "the range grew");
        assert!(take_for(look(11, 20), 12, 20).is_none(), "the cursor moved elsewhere (a partial step, a walk-back)");
        assert!(take_for(look(11, 20), 11, 15).is_none(), "the range shrank: the answer covers blocks not planned");
        assert!(take_for(None, 11, 20).is_none());
    }
}
