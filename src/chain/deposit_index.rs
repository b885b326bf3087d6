//! Deposit address → order, for the watcher's matching. No clock is involved and memory does
//! not follow history:
//! - orders are read by their database sequence (`orders.seq`), never by `created_at`, so a
//!   row written by a host whose clock is off cannot hide later ones. On PostgreSQL a lower
//!   sequence number can commit after a higher one was read: such holes are re-read each
//!   refresh until they fill (or, being rolled-back numbers, for `HOLE_PATIENCE`);
//! - open orders and those within their late window sit in a map (20-byte key, 16-byte id);
//!   every address ever issued is in a Bloom filter, and a hit outside the map is confirmed by
//!   a database lookup, so money sent to an old address is still recorded;
//! - the filter is saved in the database (`deposit_filter`) with the sequence number it covers,
//!   so a start reads it and the orders after it, not every order ever taken. Orders read from
//!   before the saved point are found through the filter and the database until they settle.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use alloy::primitives::Address;
use uuid::Uuid;

use crate::store::deposit_filter::{self, SavedFilter};
use crate::store::orders::{self, WatchedAddress};
use crate::store::{Store, StoreResult};

/// Rows read per query, so start-up pages through history instead of loading it at once.
const PAGE: i64 = 10_000;
/// How long a sequence hole is re-read before it is taken for a rolled-back insert.
const HOLE_PATIENCE: Duration = Duration::from_secs(600);
/// Holes tracked at most (a sequence jump beyond it is a cache gap, not pending inserts).
const MAX_HOLES: usize = 10_000;
/// Kept in the map this long past expiry plus the late window (chain seconds).
const MAP_MARGIN_SECS: i64 = 3_600;
/// The filter (a few MB at millions of orders) is saved this long after its first unsaved
/// address, so a busy sale writes it once a minute, and a start re-reads at most that much.
const SAVE_AFTER: Duration = Duration::from_secs(60);

pub struct DepositIndex {
    live: HashMap<Address, (Uuid, i64)>,
    filter: AddressFilter,
    /// Highest sequence number read.
    read_upto: i64,
    holes: BTreeMap<i64, Instant>,
    late_window_secs: i64,
    loaded: bool,
    /// Since when addresses were added that the saved filter lacks; rebuilt: save at once.
    unsaved_since: Option<Instant>,
    rebuilt: bool,
}

impl DepositIndex {
    pub fn new(late_window_secs: i64) -> Self {
        Self {
            live: HashMap::new(),
            filter: AddressFilter::with_capacity(0),
            read_upto: 0,
            holes: BTreeMap::new(),
            late_window_secs,
            loaded: false,
            unsaved_since: None,
            rebuilt: false,
        }
    }

    /// Reads orders committed since the last refresh. `clock` is the chain's time (0 when not
    /// known yet), used only to keep settled orders out of the map.
    pub async fn refresh(&mut self, store: &Store, clock: i64) -> StoreResult<()> {
        if !self.loaded {
            self.load(store, clock).await?;
        } else {
            self.read_holes(store, clock).await?;
            self.read_new(store, clock).await?;
            self.evict(clock);
        }
        if self.rebuilt || self.unsaved_since.is_some_and(|t| t.elapsed() >= SAVE_AFTER) {
            self.save(store).await?;
        }
        Ok(())
    }

    /// Every order past the highest sequence number read, a page at a time.
    async fn read_new(&mut self, store: &Store, clock: i64) -> StoreResult<()> {
        loop {
            let rows = orders::watched_between(store.pool(), self.read_upto, i64::MAX, PAGE).await?;
            let full = rows.len() as i64 == PAGE;
            for w in rows {
                self.note_holes(w.seq);
                self.add(w, clock);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The order paying into `address`, if any.
    pub async fn lookup(&self, store: &Store, address: &Address) -> StoreResult<Option<String>> {
        if let Some((id, _)) = self.live.get(address) {
            return Ok(Some(id.to_string()));
        }
        if !self.filter.may_contain(address) {
            return Ok(None);
        }
        orders::order_for_address(store.pool(), address).await
    }

    pub fn live_len(&self) -> usize {
        self.live.len()
    }

    /// From the saved filter when it has room for what came since, else from every order
    /// (then saved at once, so the next start is quick).
    async fn load(&mut self, store: &Store, clock: i64) -> StoreResult<()> {
        let expected = orders::max_seq(store.pool()).await?;
        self.live.clear();
        self.holes.clear();
        let saved = deposit_filter::load(store.pool()).await?;
        let resumed = saved.filter(|f| f.items + (expected - f.read_upto).max(0) < f.capacity).and_then(|f| {
            let read_upto = f.read_upto;
            AddressFilter::from_saved(f).map(|filter| (filter, read_upto))
        });
        let (filter, read_upto) = resumed.unwrap_or_else(|| {
            self.rebuilt = true;
            (AddressFilter::with_capacity((expected as usize).max(1) * 2), 0)
        });
        self.filter = filter;
        self.read_upto = read_upto;
        self.read_new(store, clock).await?;
        self.loaded = true;
        Ok(())
    }

    /// Saves the filter up to the lowest sequence number still awaited (re-reading orders
    /// already in it is harmless).
    async fn save(&mut self, store: &Store) -> StoreResult<()> {
        let covered = self.holes.keys().next().map_or(self.read_upto, |hole| hole - 1);
        deposit_filter::save(store.pool(), &self.filter.to_saved(covered)).await?;
        self.unsaved_since = None;
        self.rebuilt = false;
        Ok(())
    }

    fn add(&mut self, w: WatchedAddress, clock: i64) {
        self.read_upto = self.read_upto.max(w.seq);
        self.holes.remove(&w.seq);
        let Some(address) = w.deposit_address else { return };
        if self.filter.is_full() {
            // Grown past what it was sized for: the next refresh rebuilds it from the database.
            self.loaded = false;
        }
        self.filter.insert(&address);
        self.unsaved_since.get_or_insert_with(Instant::now);
        if (clock == 0 || w.expires_at + self.late_window_secs + MAP_MARGIN_SECS >= clock)
            && let Ok(id) = Uuid::parse_str(&w.order_id)
        {
            self.live.insert(address, (id, w.expires_at));
        }
    }

    /// Numbers skipped between what was read and `seq` may still commit.
    fn note_holes(&mut self, seq: i64) {
        let now = Instant::now();
        let mut n = self.read_upto + 1;
        while n < seq && self.holes.len() < MAX_HOLES {
            self.holes.entry(n).or_insert(now);
            n += 1;
        }
    }

    async fn read_holes(&mut self, store: &Store, clock: i64) -> StoreResult<()> {
        self.holes.retain(|_, since| since.elapsed() < HOLE_PATIENCE);
        let (Some(lo), Some(hi)) = (self.holes.keys().next().copied(), self.holes.keys().next_back().copied()) else {
            return Ok(());
        };
        let rows = orders::watched_between(store.pool(), lo - 1, hi, MAX_HOLES as i64).await?;
        for w in rows {
            if self.holes.contains_key(&w.seq) {
                self.add(w, clock);
            }
        }
        Ok(())
    }

    fn evict(&mut self, clock: i64) {
        if clock == 0 {
            return;
        }
        let keep_after = clock - self.late_window_secs - MAP_MARGIN_SECS;
        self.live.retain(|_, (_, expires_at)| *expires_at >= keep_after);
    }
}

/// A Bloom filter over addresses. An address is already a hash (keccak), so its bytes give
/// the probe positions directly (double hashing over two 64-bit words).
struct AddressFilter {
    bits: Vec<u64>,
    items: usize,
    capacity: usize,
}

const PROBES: u64 = 7;
/// About 1 % false positives at capacity.
const BITS_PER_ITEM: usize = 10;
const MIN_CAPACITY: usize = 100_000;

impl AddressFilter {
    fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(MIN_CAPACITY);
        Self { bits: vec![0; (capacity * BITS_PER_ITEM).div_ceil(64)], items: 0, capacity }
    }

    /// The saved form: bits as little-endian bytes.
    fn to_saved(&self, read_upto: i64) -> SavedFilter {
        SavedFilter {
            read_upto,
            capacity: self.capacity as i64,
            items: self.items as i64,
            bits: self.bits.iter().flat_map(|w| w.to_le_bytes()).collect(),
        }
    }

    /// None when the saved bits do not fit the saved capacity (then it is rebuilt).
    fn from_saved(f: SavedFilter) -> Option<Self> {
        let capacity = usize::try_from(f.capacity).ok()?;
        let words = (capacity.max(MIN_CAPACITY) * BITS_PER_ITEM).div_ceil(64);
        if f.bits.len() != words * 8 {
            return None;
        }
        let bits = f.bits.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        Some(Self { bits, items: usize::try_from(f.items).ok()?, capacity: capacity.max(MIN_CAPACITY) })
    }

    fn positions(&self, a: &Address) -> impl Iterator<Item = usize> + use<> {
        let bytes = a.as_slice();
        let h1 = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let h2 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) | 1;
        let m = (self.bits.len() * 64) as u64;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn insert(&mut self, a: &Address) {
        for p in self.positions(a) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
        self.items += 1;
    }

    fn may_contain(&self, a: &Address) -> bool {
        self.positions(a).all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }

    fn is_full(&self) -> bool {
        self.items >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_never_forgets_and_rarely_lies() {
        let mut f = AddressFilter::with_capacity(1000);
        let inserted: Vec<Address> =
            (0..1000u32).map(|i| Address::from_word(alloy::primitives::keccak256(i.to_be_bytes()))).collect();
        for a in &inserted {
            f.insert(a);
        }
        assert!(inserted.iter().all(|a| f.may_contain(a)), "no false negatives");
        let false_positives = (1000..101_000u32)
            .map(|i| Address::from_word(alloy::primitives::keccak256(i.to_be_bytes())))
            .filter(|a| f.may_contain(a))
            .count();
        assert!(false_positives < 2_000, "{false_positives} false positives in 100,000");
        let again = AddressFilter::from_saved(f.to_saved(7)).expect("a saved filter reads back");
        assert!(inserted.iter().all(|a| again.may_contain(a)), "the saved filter forgets nothing");
        assert_eq!((again.items, again.capacity), (f.items, f.capacity));
    }
}
