//! Checking that new blocks extend what was processed. The answer to "does this block's
//! parent match what we stored?" is one of three; only `Mismatch` means a reorg.

use alloy::primitives::B256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentCheck {
    Valid,
    Mismatch {
        expected: B256,
        got: B256,
    },
    /// Nothing stored to compare with (first run).
    Unknown,
}

pub fn check_parent(stored: Option<B256>, parent_of_next: B256) -> ParentCheck {
    match stored {
        None => ParentCheck::Unknown,
        Some(expected) if expected == parent_of_next => ParentCheck::Valid,
        Some(expected) => ParentCheck::Mismatch { expected, got: parent_of_next },
    }
}

/// Checks that `headers` (number, hash, parent) form one chain on top of `stored`.
pub fn check_chain(stored: Option<B256>, headers: &[(u64, B256, B256)]) -> ParentCheck {
    let mut expected = stored;
    for (_, hash, parent) in headers {
        match check_parent(expected, *parent) {
            ParentCheck::Mismatch { expected, got } => return ParentCheck::Mismatch { expected, got },
            _ => expected = Some(*hash),
        }
    }
    if stored.is_none() { ParentCheck::Unknown } else { ParentCheck::Valid }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> B256 {
        B256::with_last_byte(n)
    }

    #[test]
    fn a_chain_on_top_of_the_stored_hash_is_valid() {
        assert_eq!(check_chain(Some(h(1)), &[(2, h(2), h(1)), (3, h(3), h(2))]), ParentCheck::Valid);
        assert_eq!(check_chain(None, &[(2, h(2), h(1))]), ParentCheck::Unknown);
    }

    #[test]
    fn a_broken_link_is_a_mismatch() {
        assert_eq!(check_chain(Some(h(1)), &[(2, h(2), h(9))]), ParentCheck::Mismatch { expected: h(1), got: h(9) });
        assert_eq!(
            check_chain(Some(h(1)), &[(2, h(2), h(1)), (3, h(3), h(7))]),
            ParentCheck::Mismatch { expected: h(2), got: h(7) }
        );
    }
}
