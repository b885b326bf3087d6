//! API keys verified recently, so a busy client's every request is not a database lookup.
//! A key is remembered for under a second: a revocation made by any process sharing the
//! database takes effect within `TTL` everywhere, and at once in the process that made it
//! (it forgets everything it remembered). Only keys that verified are kept, so a key issued a
//! moment ago works at once; keys are kept by their SHA-256, never in clear.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::{Store, StoreResult, teams};

/// How long a verified key is believed without asking the database again.
pub const TTL: Duration = Duration::from_millis(900);
/// Keys remembered at most: past it, expired ones are dropped, and new ones go unremembered.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Default)]
pub struct KeyCache {
    /// SHA-256 of the key → (its team, when it was verified).
    verified: Mutex<HashMap<String, (String, Instant)>>,
}

impl KeyCache {
    /// The team owning the live key `api_key`, if any.
    pub async fn owner(&self, store: &Store, api_key: &str) -> StoreResult<Option<String>> {
        let hash = teams::hash_key(api_key);
        if let Some((team_id, at)) = self.lock().get(&hash)
            && at.elapsed() < TTL
        {
            return Ok(Some(team_id.clone()));
        }
        let Some(owner) = teams::find_key_owner(store.pool(), api_key).await? else {
            self.lock().remove(&hash);
            return Ok(None);
        };
        let mut verified = self.lock();
        if verified.len() >= MAX_KEYS {
            verified.retain(|_, (_, at)| at.elapsed() < TTL);
        }
        if verified.len() < MAX_KEYS {
            verified.insert(hash, (owner.team_id.clone(), Instant::now()));
        }
        Ok(Some(owner.team_id))
    }

    /// A key was revoked here: nothing remembered is believed any more.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}
