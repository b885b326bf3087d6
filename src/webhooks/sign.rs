//! Webhook signatures. By default Standard Webhooks (standardwebhooks.com, libraries in every
//! language): `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64
//! HMAC-SHA256(key, "<id>.<timestamp>.<raw body>")>`, one `v1,...` per configured secret
//! (space-separated) while a key is rotated. A `whsec_<base64>` secret's key is the decoded
//! bytes; any other secret's key is its own bytes (its receivers use `whsec_` + base64 of it).
//!
//! Deprecated, behind `[webhooks] signature_scheme = "paywatch"` for one release:
//! `Paywatch-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
//! Either way the timestamp is signed, so a receiver can refuse replays of old deliveries.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const WHSEC: &str = "whsec_";

/// The HMAC key of a configured secret, or why it is unusable.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let key = match secret.strip_prefix(WHSEC) {
        Some(encoded) => STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| "starts with whsec_ but the rest is not base64".to_string())?,
        None => secret.as_bytes().to_vec(),
    };
    if key.len() < 16 {
        return Err("is too short: at least 16 bytes of key (a whsec_ secret: 24 base64 characters)".into());
    }
    Ok(key)
}

/// The `webhook-signature` header: one `v1,<base64>` per key, space-separated.
pub fn standard_signature(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| format!("v1,{}", STANDARD.encode(standard_mac(key, id, timestamp, body).finalize().into_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

fn standard_mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// What a Standard Webhooks receiver does: the timestamp within `tolerance_secs` of `now`, and
/// one of the header's `v1` signatures matching (compared in constant time).
pub fn verify_standard(
    key: &[u8],
    id: &str,
    timestamp: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> bool {
    let Ok(timestamp) = timestamp.parse::<i64>() else { return false };
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    header
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| STANDARD.decode(s).ok())
        .any(|given| standard_mac(key, id, timestamp, body).verify_slice(&given).is_ok())
}

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
    fn standard_signatures_verify_with_each_key_and_refuse_tampering() {
        let new = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let old = standard_key("an-old-plain-secret-of-32-bytes!").unwrap();
        let header = standard_signature(&[new.clone(), old.clone()], "msg_1", 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 2, "{header}");
        for key in [&new, &old] {
            assert!(verify_standard(key, "msg_1", "1700000000", &header, b"{}", 1_700_000_010, 300));
        }
        assert!(!verify_standard(&new, "msg_1", "1700000000", &header, b"{ }", 1_700_000_010, 300), "body");
        assert!(!verify_standard(&new, "msg_2", "1700000000", &header, b"{}", 1_700_000_010, 300), "id");
        assert!(!verify_standard(&new, "msg_1", "1700000000", &header, b"{}", 1_700_009_999, 300), "too old");
    }

    #[test]
    fn secrets_are_checked() {
        assert!(standard_key("whsec_not base64!").unwrap_err().contains("not base64"));
        assert!(standard_key("whsec_c2hvcnQ=").unwrap_err().contains("too short"));
        assert!(standard_key("short").unwrap_err().contains("too short"));
    }

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
