//! How an order's status follows from what has been confirmed: one pure function, so every
//! rule (partial, paid, tolerance, overpaid, late, too late) is tested without a chain.

use alloy_primitives::U256;
use rust_decimal::Decimal;

/// Where an order stands; stored as its `as_str` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    AwaitingPayment,
    PartiallyPaid,
    Paid,
    Expired,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] =
        [OrderStatus::AwaitingPayment, OrderStatus::PartiallyPaid, OrderStatus::Paid, OrderStatus::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::AwaitingPayment => "awaiting_payment",
            OrderStatus::PartiallyPaid => "partially_paid",
            OrderStatus::Paid => "paid",
            OrderStatus::Expired => "expired",
        }
    }

    /// Still waiting for (more) money.
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::AwaitingPayment | OrderStatus::PartiallyPaid)
    }

    /// The status a stored text names; None for any other text.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What the order asks for, fixed at creation.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    pub expected: U256,
    /// Fraction of the value forgiven (exchange fees).
    pub tolerance: Decimal,
    pub expires_at: i64,
    pub late_window_secs: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub status: OrderStatus,
    pub late: bool,
    pub overpaid: U256,
    /// This step made the order paid (activation or extension follows).
    pub newly_paid: bool,
    /// The order was paid and no longer is (a reorg took confirmed transfers back).
    pub reversed: bool,
}

/// The least confirmed amount that pays the order: expected less the forgiven fraction.
pub fn paid_threshold(expected: U256, tolerance: Decimal) -> U256 {
    if tolerance <= Decimal::ZERO {
        return expected;
    }
    let mantissa = U256::from(tolerance.mantissa().unsigned_abs());
    let scale = U256::from(10u8).pow(U256::from(tolerance.scale()));
    expected - expected * mantissa / scale
}

/// The order's state once `confirmed` base units (all of them, of the right token) are
/// confirmed, `at` being the block time of the transfer that completed the sum (the chain's
/// clock, never the time it was processed).
pub fn after_confirmation(current: OrderStatus, terms: &Terms, confirmed: U256, at: i64) -> Progress {
    let overpaid = confirmed.saturating_sub(terms.expected);
    let enough = confirmed >= paid_threshold(terms.expected, terms.tolerance) && !confirmed.is_zero();
    let progress = |status, late, newly_paid, reversed| Progress { status, late, overpaid, newly_paid, reversed };
    if current == OrderStatus::Paid {
        return if enough {
            progress(OrderStatus::Paid, false, false, false)
        } else {
            // What paid it left the chain: it waits for payment again (expiry follows the chain).
            let status = if confirmed.is_zero() { OrderStatus::AwaitingPayment } else { OrderStatus::PartiallyPaid };
            progress(status, false, false, true)
        };
    }
    if enough {
        if at <= terms.expires_at {
            return progress(OrderStatus::Paid, false, true, false);
        }
        if at <= terms.expires_at + terms.late_window_secs {
            return progress(OrderStatus::Paid, true, true, false);
        }
        // Past the late window the money is recorded but buys nothing.
        return progress(OrderStatus::Expired, false, false, false);
    }
    let status = match current {
        OrderStatus::Expired => OrderStatus::Expired,
        _ if confirmed.is_zero() => OrderStatus::AwaitingPayment,
        _ => OrderStatus::PartiallyPaid,
    };
    progress(status, false, false, false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_status_is_stored_as_its_own_text_and_read_back() {
        let texts: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(texts, ["awaiting_payment", "partially_paid", "paid", "expired"]);
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(OrderStatus::parse("refunded"), None);
        let open: Vec<bool> = OrderStatus::ALL.iter().map(|s| s.is_open()).collect();
        assert_eq!(open, [true, true, false, false], "only orders waiting for money are open");
    }

    use super::*;
    use std::str::FromStr;

    const EXP: i64 = 1_000;
    fn terms(tolerance: &str) -> Terms {
        Terms {
            expected: U256::from(1_000_000u64),
            tolerance: Decimal::from_str(tolerance).unwrap(),
            expires_at: EXP,
            late_window_secs: 100,
        }
    }
    fn u(n: u64) -> U256 {
        U256::from(n)
    }

    #[test]
    fn partial_then_top_up_pays() {
        let t = terms("0");
        let p = after_confirmation(OrderStatus::AwaitingPayment, &t, u(400_000), 10);
        assert_eq!((p.status, p.newly_paid), (OrderStatus::PartiallyPaid, false));
        let p = after_confirmation(p.status, &t, u(1_000_000), 20);
        assert_eq!((p.status, p.newly_paid, p.late, p.overpaid), (OrderStatus::Paid, true, false, U256::ZERO));
    }

    #[test]
    fn overpayment_is_recorded_and_pays_once() {
        let t = terms("0");
        let p = after_confirmation(OrderStatus::AwaitingPayment, &t, u(1_500_000), 10);
        assert_eq!((p.status, p.newly_paid, p.overpaid), (OrderStatus::Paid, true, u(500_000)));
        let again = after_confirmation(OrderStatus::Paid, &t, u(1_700_000), 11);
        assert_eq!((again.newly_paid, again.overpaid), (false, u(700_000)));
    }

    #[test]
    fn the_tolerance_forgives_a_fraction() {
        assert_eq!(paid_threshold(u(1_000_000), Decimal::from_str("0.01").unwrap()), u(990_000));
        assert_eq!(paid_threshold(u(1_000_000), Decimal::from_str("0.025").unwrap()), u(975_000));
        let t = terms("0.01");
        assert_eq!(after_confirmation(OrderStatus::AwaitingPayment, &t, u(990_000), 1).status, OrderStatus::Paid);
        assert_eq!(
            after_confirmation(OrderStatus::AwaitingPayment, &t, u(989_999), 1).status,
            OrderStatus::PartiallyPaid
        );
    }

    #[test]
    fn a_paid_order_that_loses_its_transfers_is_reversed() {
        let t = terms("0");
        let gone = after_confirmation(OrderStatus::Paid, &t, u(0), 10);
        assert_eq!((gone.status, gone.reversed, gone.newly_paid), (OrderStatus::AwaitingPayment, true, false));
        let part = after_confirmation(OrderStatus::Paid, &t, u(400_000), 10);
        assert_eq!((part.status, part.reversed), (OrderStatus::PartiallyPaid, true));
        let kept = after_confirmation(OrderStatus::Paid, &t, u(1_000_000), EXP + 500);
        assert_eq!((kept.status, kept.reversed), (OrderStatus::Paid, false));
    }

    #[test]
    fn late_payments_credit_within_the_window_only() {
        let t = terms("0");
        let late = after_confirmation(OrderStatus::Expired, &t, u(1_000_000), EXP + 50);
        assert_eq!((late.status, late.late, late.newly_paid), (OrderStatus::Paid, true, true));
        let too_late = after_confirmation(OrderStatus::Expired, &t, u(1_000_000), EXP + 101);
        assert_eq!((too_late.status, too_late.newly_paid), (OrderStatus::Expired, false));
        let partial_expired = after_confirmation(OrderStatus::Expired, &t, u(1), EXP + 1);
        assert_eq!(partial_expired.status, OrderStatus::Expired);
    }
}
