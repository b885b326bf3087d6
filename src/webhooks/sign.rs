//! `Paywatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//! The timestamp inside the signed text lets a receiver refuse replays of old deliveries.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a receiver does: recompute and compare in constant time, within a tolerance.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_tampered_body_does_not() {
        let header = signature(b"whsec", 1_700_000_000, br#"{"id":"e1"}"#);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(b"whsec", &header, br#"{"id":"e1"}"#, 1_700_000_010, 300));
        assert!(!verify(b"whsec", &header, br#"{"id":"e2"}"#, 1_700_000_010, 300));
        assert!(!verify(b"other", &header, br#"{"id":"e1"}"#, 1_700_000_010, 300));
        assert!(!verify(b"whsec", &header, br#"{"id":"e1"}"#, 1_700_009_999, 300), "too old");
    }
}
