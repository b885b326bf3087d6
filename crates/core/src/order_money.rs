//! One model of an order's money. Given the order, its transfers on every chain (each with its
//! block's time), the stray funds applied to it and the rules, `judge` decides its status,
//! lateness, what is credited and what of the money at its address is unattributed, per
//! (chain, token). It is pure: `credit::settle` reads the inputs under the order's row lock
//! and writes the whole decision, so two settles of one order run one after the other and
//! each sees what the other wrote.
//!
//! The clock is the chain's: a payment's time is the block time of the transfer that brought
//! the confirmed sum to the threshold (transfers are taken in block-time order across
//! chains), funds applied by the operator complete an order at the chain time of the apply.

use std::collections::BTreeMap;

use alloy_primitives::{Address, B256, U256};

use crate::order_state::{OrderStatus, Progress, Terms, after_confirmation, paid_threshold};
use crate::units::convert_units;

/// A (chain id, token contract) pair: where money sits, in that token's base units.
pub type Bucket = (u64, Address);

/// One transfer into the order's deposit address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub bucket: Bucket,
    /// In the token's own base units.
    pub amount: U256,
    /// What it counts for the order, in the order's base units: None for another asset.
    pub counted: Option<U256>,
    pub confirmed: bool,
    /// Its block's timestamp (None only for rows recorded before block times were kept).
    pub block_time: Option<i64>,
    pub tx_hash: B256,
}

/// Everything the decision depends on.
#[derive(Debug, Clone)]
pub struct OrderMoney<'a> {
    /// The order's status, lateness and payment time as stored.
    pub status: OrderStatus,
    pub late: bool,
    pub paid_at: Option<i64>,
    pub terms: Terms,
    /// The order's own token: an overpayment is stray there first.
    pub own: Bucket,
    /// In the order they happened (block time, then chain, block and log).
    pub received: &'a [Received],
    /// Stray funds the operator applied to this order (its base units).
    pub applied: U256,
    /// Per bucket, what of this order's stray money is already settled (applied elsewhere or
    /// refunded), in the bucket's units.
    pub settled: &'a BTreeMap<Bucket, U256>,
    pub decimals: &'a BTreeMap<Bucket, u8>,
    /// The chain's clock now.
    pub at: i64,
}

/// What is stray in one bucket, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stray {
    pub bucket: Bucket,
    /// wrong_token, overpaid, partial_on_expired_order or after_late_window.
    pub reason: &'static str,
    /// Not yet settled, in the bucket's units (zero: no unattributed row).
    pub open: U256,
    /// Settled (applied elsewhere or refunded) beyond what is stray now: money a reorg took
    /// off the chain after it was applied. Those applies are taken back.
    pub overdrawn: U256,
}

/// The decision for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub progress: Progress,
    pub seen: U256,
    pub confirmed: U256,
    /// When it was paid by the chain's clock (the completing transfer's block, or `at`).
    pub paid_at_chain: i64,
    /// The transfer that completed it (None when applied funds did, or it is not paid).
    pub completing_tx: Option<B256>,
    pub late: bool,
    pub paid_at: Option<i64>,
    pub stray: Vec<Stray>,
    /// The order closed for good unpaid: the funds applied to it go back to being
    /// unattributed where they came from, never kept by an order that buys nothing.
    pub release_applied: bool,
}

/// Decides the order's money; see the module's comment.
pub fn judge(m: &OrderMoney<'_>) -> Decision {
    let closed_for_good = m.status == OrderStatus::Expired && m.at > m.terms.expires_at + m.terms.late_window_secs;
    let with_applied = decide_sums(m, m.applied);
    // Funds applied to an order that can no longer be paid go back (kept only if it pays now).
    let (sums, release_applied) =
        if closed_for_good && !m.applied.is_zero() && with_applied.1.status != OrderStatus::Paid {
            (decide_sums(m, U256::ZERO), true)
        } else {
            (with_applied, false)
        };
    let ((seen, confirmed, completing), progress) = sums;
    let still_paid = progress.status == OrderStatus::Paid;
    let paid_at_chain = completing.map_or(m.at, |(time, _)| time);
    Decision {
        progress,
        seen,
        confirmed,
        paid_at_chain,
        completing_tx: completing.and_then(|(_, h)| h),
        // A transfer that completed it says when by its block time, even when an earlier
        // transfer on another chain was confirmed after a later one had paid it late; only an
        // apply (no block time of its own) keeps the lateness it was paid with.
        late: still_paid
            && match completing {
                Some((time, Some(_))) => time > m.terms.expires_at,
                _ => progress.late || m.late,
            },
        paid_at: if still_paid { m.paid_at.or(Some(paid_at_chain)) } else { None },
        stray: stray(m, &progress),
        release_applied,
    }
}

type Sums = (U256, U256, Option<(i64, Option<B256>)>);

/// Seen and confirmed sums (checked: saturating, a wrapped sum would un-pay a paid order), the
/// transfer that completed the confirmed sum, and the status that follows.
fn decide_sums(m: &OrderMoney<'_>, applied: U256) -> (Sums, Progress) {
    let threshold = paid_threshold(m.terms.expected, m.terms.tolerance);
    let (mut seen, mut confirmed, mut completing) = (U256::ZERO, U256::ZERO, None);
    for r in m.received {
        // Another asset sent to this address is recorded and shown, never counted.
        let Some(units) = r.counted else { continue };
        seen = seen.saturating_add(units);
        if r.confirmed {
            confirmed = confirmed.saturating_add(units);
            if completing.is_none() && confirmed >= threshold {
                completing = Some((r.block_time.unwrap_or(m.at), Some(r.tx_hash)));
            }
        }
    }
    if !applied.is_zero() {
        seen = seen.saturating_add(applied);
        confirmed = confirmed.saturating_add(applied);
        if completing.is_none() && confirmed >= threshold {
            completing = Some((m.at, None));
        }
    }
    let progress = after_confirmation(m.status, &m.terms, confirmed, completing.map_or(m.at, |(t, _)| t));
    ((seen, confirmed, completing), progress)
}

/// What of the confirmed money at the address credits nothing, per bucket: another asset
/// (wrong_token); beyond the amount of a paid order (overpaid: in the order's own token first,
/// then the others, converted by decimals); all of it once the late window has closed on an
/// unpaid order (after_late_window when it was enough, partial_on_expired_order when not).
/// Less what is already settled.
fn stray(m: &OrderMoney<'_>, progress: &Progress) -> Vec<Stray> {
    let mut received: BTreeMap<Bucket, (U256, Option<U256>)> = BTreeMap::new();
    for r in m.received.iter().filter(|r| r.confirmed) {
        let entry = received.entry(r.bucket).or_default();
        entry.0 = entry.0.saturating_add(r.amount);
        entry.1 = r.counted.map(|c| entry.1.unwrap_or_default().saturating_add(c));
    }
    let closed_for_good =
        progress.status == OrderStatus::Expired && m.at > m.terms.expires_at + m.terms.late_window_secs;
    let threshold = paid_threshold(m.terms.expected, m.terms.tolerance);
    let counted_total = received.values().filter_map(|(_, c)| *c).fold(U256::ZERO, U256::saturating_add);
    // Every bucket with money, or with stray money settled before (a reorg may have taken it).
    let mut buckets: Vec<Bucket> = received.keys().chain(m.settled.keys()).copied().collect();
    buckets.sort_by_key(|b| (*b != m.own, *b));
    buckets.dedup();
    let mut overpaid_left = progress.overpaid;
    let decimals = |b: &Bucket| m.decimals.get(b).copied().unwrap_or(0);
    buckets
        .into_iter()
        .map(|bucket| {
            let (amount, counted) = received.get(&bucket).copied().unwrap_or((U256::ZERO, Some(U256::ZERO)));
            let (stray, reason) = match counted {
                None => (amount, "wrong_token"),
                Some(units) if progress.status == OrderStatus::Paid => {
                    let taken = units.min(overpaid_left);
                    overpaid_left -= taken;
                    (convert_units(taken, decimals(&m.own), decimals(&bucket)).min(amount), "overpaid")
                }
                Some(_) if closed_for_good && counted_total >= threshold => (amount, "after_late_window"),
                Some(_) if closed_for_good => (amount, "partial_on_expired_order"),
                Some(_) => (U256::ZERO, ""),
            };
            let settled = m.settled.get(&bucket).copied().unwrap_or_default();
            Stray { bucket, reason, open: stray.saturating_sub(settled), overdrawn: settled.saturating_sub(stray) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    const EXP: i64 = 10_000;
    const WINDOW: i64 = 3_600;
    const OWN: Bucket = (1, Address::repeat_byte(0xaa));
    const L2: Bucket = (10, Address::repeat_byte(0xbb));
    const OTHER_ASSET: Bucket = (1, Address::repeat_byte(0xcc));

    fn u(n: u64) -> U256 {
        U256::from(n)
    }

    /// 100 units of a 6-decimal token; the L2 token has 18 decimals (1e12 of its units per
    /// order unit).
    fn terms(tolerance: &str) -> Terms {
        Terms {
            expected: u(100_000_000),
            tolerance: Decimal::from_str(tolerance).unwrap(),
            expires_at: EXP,
            late_window_secs: WINDOW,
        }
    }

    fn paid(bucket: Bucket, amount: U256, time: i64, tx: u8) -> Received {
        let counted = match bucket {
            OWN => Some(amount),
            L2 => Some(amount / U256::from(10u64).pow(u(12))),
            _ => None,
        };
        Received { bucket, amount, counted, confirmed: true, block_time: Some(time), tx_hash: B256::repeat_byte(tx) }
    }

    struct Case {
        status: OrderStatus,
        late: bool,
        tolerance: &'static str,
        received: Vec<Received>,
        applied: U256,
        settled: BTreeMap<Bucket, U256>,
        at: i64,
    }

    impl Case {
        fn new(received: Vec<Received>) -> Self {
            Case {
                status: OrderStatus::AwaitingPayment,
                late: false,
                tolerance: "0",
                received,
                applied: U256::ZERO,
                settled: BTreeMap::new(),
                at: 5_000,
            }
        }
        fn judge(&self) -> Decision {
            let decimals: BTreeMap<Bucket, u8> = [(OWN, 6), (L2, 18), (OTHER_ASSET, 18)].into();
            judge(&OrderMoney {
                status: self.status,
                late: self.late,
                paid_at: None,
                terms: terms(self.tolerance),
                own: OWN,
                received: &self.received,
                applied: self.applied,
                settled: &self.settled,
                decimals: &decimals,
                at: self.at,
            })
        }
    }

    fn open_of(d: &Decision, bucket: Bucket) -> (U256, &'static str) {
        d.stray.iter().find(|s| s.bucket == bucket).map_or((U256::ZERO, ""), |s| (s.open, s.reason))
    }

    #[test]
    fn the_exact_amount_pays_on_time_at_its_blocks_time() {
        let d = Case::new(vec![paid(OWN, u(100_000_000), 4_000, 1)]).judge();
        assert_eq!((d.progress.status, d.progress.newly_paid, d.late), (OrderStatus::Paid, true, false));
        assert_eq!((d.paid_at, d.completing_tx), (Some(4_000), Some(B256::repeat_byte(1))));
        assert_eq!(open_of(&d, OWN).0, U256::ZERO);
    }

    #[test]
    fn a_payment_in_the_very_second_of_expiry_is_on_time() {
        let d = Case::new(vec![paid(OWN, u(100_000_000), EXP, 1)]).judge();
        assert_eq!((d.progress.status, d.late), (OrderStatus::Paid, false));
        let d = Case::new(vec![paid(OWN, u(100_000_000), EXP + 1, 1)]).judge();
        assert_eq!((d.progress.status, d.late), (OrderStatus::Paid, true), "a second later it is late");
    }

    #[test]
    fn funds_applied_beside_a_transfer_that_paid_keep_the_transfer_as_what_completed_it() {
        let mut case = Case::new(vec![paid(OWN, u(100_000_000), 4_000, 7)]);
        case.applied = u(5_000_000);
        let d = case.judge();
        assert_eq!(
            (d.progress.status, d.completing_tx, d.paid_at),
            (OrderStatus::Paid, Some(B256::repeat_byte(7)), Some(4_000))
        );
    }

    #[test]
    fn applied_funds_stay_until_the_last_second_of_the_late_window() {
        let mut case = Case::new(vec![paid(OWN, u(40_000_000), 4_000, 1)]);
        case.status = OrderStatus::Expired;
        case.applied = u(10_000_000);
        case.at = EXP + WINDOW;
        assert!(!case.judge().release_applied, "the window's last second: they may still help pay it");
        case.at = EXP + WINDOW + 1;
        assert!(case.judge().release_applied, "closed for good: they go back");
    }

    #[test]
    fn a_partial_payment_is_partially_paid_and_nothing_is_stray() {
        let d = Case::new(vec![paid(OWN, u(40_000_000), 4_000, 1)]).judge();
        assert_eq!((d.progress.status, d.confirmed), (OrderStatus::PartiallyPaid, u(40_000_000)));
        assert_eq!(open_of(&d, OWN).0, U256::ZERO);
    }

    #[test]
    fn an_unconfirmed_transfer_is_seen_and_counts_for_nothing_yet() {
        let mut r = paid(OWN, u(100_000_000), 4_000, 1);
        r.confirmed = false;
        let d = Case::new(vec![r]).judge();
        assert_eq!(
            (d.progress.status, d.seen, d.confirmed),
            (OrderStatus::AwaitingPayment, u(100_000_000), U256::ZERO)
        );
    }

    #[test]
    fn an_overpayment_is_stray_in_the_orders_own_token_first() {
        let d = Case::new(vec![
            paid(L2, u(60) * U256::from(10u64).pow(u(18)), 3_000, 1),
            paid(OWN, u(70_000_000), 4_000, 2),
        ])
        .judge();
        assert_eq!((d.progress.status, d.progress.overpaid), (OrderStatus::Paid, u(30_000_000)));
        assert_eq!(open_of(&d, OWN), (u(30_000_000), "overpaid"));
        assert_eq!(open_of(&d, L2), (U256::ZERO, "overpaid"));
        // The completing transfer is the later one by block time, whatever its chain.
        assert_eq!(d.completing_tx, Some(B256::repeat_byte(2)));
    }

    #[test]
    fn an_overpayment_beyond_the_own_token_is_converted_by_decimals() {
        // 20 over: the 10 of the own token, then 10 of the L2 token in its 18 decimals.
        let d = Case::new(vec![
            paid(OWN, u(10_000_000), 3_000, 1),
            paid(L2, u(110) * U256::from(10u64).pow(u(18)), 4_000, 2),
        ])
        .judge();
        assert_eq!(d.progress.overpaid, u(20_000_000));
        assert_eq!(open_of(&d, OWN), (u(10_000_000), "overpaid"));
        assert_eq!(open_of(&d, L2), (u(10) * U256::from(10u64).pow(u(18)), "overpaid"));
    }

    #[test]
    fn the_tolerance_forgives_a_fraction_and_no_more() {
        let mut case = Case::new(vec![paid(OWN, u(99_000_000), 4_000, 1)]);
        case.tolerance = "0.01";
        assert_eq!(case.judge().progress.status, OrderStatus::Paid);
        case.received = vec![paid(OWN, u(98_999_999), 4_000, 1)];
        assert_eq!(case.judge().progress.status, OrderStatus::PartiallyPaid);
    }

    #[test]
    fn a_payment_in_the_late_window_pays_late_and_after_it_pays_nothing() {
        let mut case = Case::new(vec![paid(OWN, u(100_000_000), EXP + 60, 1)]);
        case.status = OrderStatus::Expired;
        case.at = EXP + 120;
        let d = case.judge();
        assert_eq!((d.progress.status, d.late), (OrderStatus::Paid, true));
        case.received = vec![paid(OWN, u(100_000_000), EXP + WINDOW + 1, 1)];
        case.at = EXP + WINDOW + 10;
        let d = case.judge();
        assert_eq!(d.progress.status, OrderStatus::Expired);
        assert_eq!(open_of(&d, OWN), (u(100_000_000), "after_late_window"));
    }

    #[test]
    fn lateness_is_judged_by_block_time_across_chains() {
        // The L2 transfer came last by time: it completed the order, late.
        let mut case = Case::new(vec![
            paid(OWN, u(50_000_000), EXP - 100, 1),
            paid(L2, u(50) * U256::from(10u64).pow(u(18)), EXP + 100, 2),
        ]);
        case.status = OrderStatus::Expired;
        case.at = EXP + 200;
        let d = case.judge();
        assert_eq!((d.progress.status, d.late, d.completing_tx), (OrderStatus::Paid, true, Some(B256::repeat_byte(2))));
    }

    #[test]
    fn an_earlier_transfer_confirmed_later_on_another_chain_makes_a_late_order_on_time() {
        // Paid late by the first chain's transfer, while the L2's earlier one was not yet
        // confirmed; once it is, the sum crossed before expiry (the soak found this, seed 3).
        let mut case = Case::new(vec![
            paid(L2, u(100) * U256::from(10u64).pow(u(18)), EXP - 100, 2),
            paid(OWN, u(60_000_000), EXP + 100, 1),
        ]);
        (case.status, case.late, case.at) = (OrderStatus::Paid, true, EXP + 200);
        let d = case.judge();
        assert_eq!(
            (d.progress.status, d.late, d.completing_tx),
            (OrderStatus::Paid, false, Some(B256::repeat_byte(2)))
        );
        // Completed by an apply: the lateness it was paid with stays.
        let mut applied = Case::new(vec![paid(OWN, u(40_000_000), EXP - 100, 1)]);
        (applied.status, applied.late, applied.applied, applied.at) =
            (OrderStatus::Paid, true, u(60_000_000), EXP + 200);
        assert!(applied.judge().late);
    }

    #[test]
    fn stray_money_applied_then_taken_by_a_reorg_is_overdrawn() {
        // 30 over, all 30 applied elsewhere; then the overpaying transfer left the chain.
        let mut case = Case::new(vec![paid(OWN, u(130_000_000), EXP - 100, 1)]);
        case.settled = [(OWN, u(30_000_000))].into();
        let d = case.judge();
        assert_eq!(d.stray.iter().map(|s| (s.open, s.overdrawn)).collect::<Vec<_>>(), vec![(U256::ZERO, U256::ZERO)]);
        case.received = vec![paid(OWN, u(100_000_000), EXP - 100, 2)];
        let d = case.judge();
        assert_eq!(
            d.stray.iter().map(|s| (s.open, s.overdrawn)).collect::<Vec<_>>(),
            vec![(U256::ZERO, u(30_000_000))]
        );
        // No money left in the bucket at all: the bucket is still judged (its rows go).
        case.received = vec![];
        case.status = OrderStatus::Paid;
        let d = case.judge();
        assert_eq!(d.stray.iter().map(|s| (s.bucket, s.overdrawn)).collect::<Vec<_>>(), vec![(OWN, u(30_000_000))]);
    }

    #[test]
    fn a_partial_on_an_order_closed_for_good_is_stray() {
        let mut case = Case::new(vec![paid(OWN, u(40_000_000), EXP - 100, 1)]);
        case.status = OrderStatus::Expired;
        case.at = EXP + WINDOW;
        assert_eq!(open_of(&case.judge(), OWN).0, U256::ZERO, "the window is still open");
        case.at = EXP + WINDOW + 1;
        assert_eq!(open_of(&case.judge(), OWN), (u(40_000_000), "partial_on_expired_order"));
    }

    #[test]
    fn another_asset_is_stray_and_never_counted() {
        let d = Case::new(vec![paid(OTHER_ASSET, u(5), 4_000, 1), paid(OWN, u(30_000_000), 4_100, 2)]).judge();
        assert_eq!((d.progress.status, d.confirmed), (OrderStatus::PartiallyPaid, u(30_000_000)));
        assert_eq!(open_of(&d, OTHER_ASSET), (u(5), "wrong_token"));
    }

    #[test]
    fn settled_stray_money_is_not_stray_again() {
        let mut case = Case::new(vec![paid(OWN, u(150_000_000), 4_000, 1)]);
        case.settled.insert(OWN, u(20_000_000));
        assert_eq!(open_of(&case.judge(), OWN), (u(30_000_000), "overpaid"));
    }

    #[test]
    fn applied_funds_count_and_complete_at_the_chain_time_of_the_apply() {
        let mut case = Case::new(vec![paid(OWN, u(60_000_000), 4_000, 1)]);
        case.applied = u(40_000_000);
        let d = case.judge();
        assert_eq!((d.progress.status, d.paid_at, d.completing_tx), (OrderStatus::Paid, Some(5_000), None));
        assert!(!d.release_applied);
    }

    #[test]
    fn funds_applied_to_an_order_that_closes_unpaid_are_released() {
        let mut case = Case::new(vec![paid(OWN, u(10_000_000), EXP - 10, 1)]);
        case.applied = u(40_000_000);
        case.status = OrderStatus::Expired;
        case.at = EXP + WINDOW - 1;
        let d = case.judge();
        assert!(!d.release_applied, "within the window they may still help pay it");
        assert_eq!(d.confirmed, u(50_000_000));
        case.at = EXP + WINDOW + 1;
        let d = case.judge();
        assert!(d.release_applied);
        assert_eq!((d.progress.status, d.confirmed), (OrderStatus::Expired, u(10_000_000)));
        assert_eq!(open_of(&d, OWN), (u(10_000_000), "partial_on_expired_order"));
    }

    #[test]
    fn a_reorg_that_takes_the_paying_transfer_back_reverses_the_order() {
        let mut case = Case::new(vec![paid(OWN, u(30_000_000), 4_000, 1)]);
        case.status = OrderStatus::Paid;
        let d = case.judge();
        assert_eq!((d.progress.status, d.progress.reversed, d.paid_at), (OrderStatus::PartiallyPaid, true, None));
    }

    #[test]
    fn sums_saturate_instead_of_wrapping() {
        let d = Case::new(vec![paid(OWN, U256::MAX, 4_000, 1), paid(OWN, U256::MAX, 4_001, 2)]).judge();
        assert_eq!((d.progress.status, d.confirmed), (OrderStatus::Paid, U256::MAX));
    }
}
