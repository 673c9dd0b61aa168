//! A bounded cache of recent decisions, so that a client opening many
//! streams does not cost two API server calls each. An entry lives `ttl`;
//! when the cache is full, expired entries go first, then the oldest. Only
//! answers are kept: a failure to ask is never cached.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Each key's value, with when it was stored and its store number.
type Entries<K, V> = HashMap<K, (Instant, u64, V)>;

/// Decisions by key, each for `ttl`, at most `capacity` of them.
#[derive(Debug)]
pub struct Cache<K, V> {
    /// Each value with when it was stored and a store number (which orders
    /// stores made within one clock tick).
    entries: Mutex<(Entries<K, V>, u64)>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// An empty cache; a zero `ttl` or `capacity` keeps nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: Mutex::new((HashMap::new(), 0)),
            ttl,
            capacity,
        }
    }

    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, _, value) = entries.0.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Stores `value` for `key`. When the cache is full (and `key` is not in
    /// it), expired entries go first, then the oldest one: a scan, which a
    /// full cache of live decisions makes only on a miss.
    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, stores) = &mut *guard;
        let now = Instant::now();
        if !entries.contains_key(&key) && entries.len() >= self.capacity {
            entries.retain(|_, (at, _, _)| now.duration_since(*at) < self.ttl);
            if entries.len() >= self.capacity {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, number, _))| *number)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        *stores += 1;
        entries.insert(key, (now, *stores, value));
    }

    /// How many entries are held (expired ones included until they go).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_expire() {
        let cache = Cache::new(Duration::from_millis(0), 10);
        cache.put(1, "a");
        assert_eq!(cache.get(&1), None);
        let cache = Cache::new(Duration::from_secs(60), 10);
        cache.put(1, "a");
        assert_eq!(cache.get(&1), Some("a"));
    }

    proptest! {
        /// Whatever is stored, the cache holds at most `capacity` entries,
        /// and the last value stored for a key is the one read while fresh,
        /// unless enough newer keys pushed it out.
        #[test]
        fn bounded_and_newest_wins(
            capacity in 1usize..8,
            puts in proptest::collection::vec((0u8..12, any::<u16>()), 0..64),
        ) {
            let cache = Cache::new(Duration::from_secs(3600), capacity);
            for (key, value) in &puts {
                cache.put(*key, *value);
                prop_assert!(cache.len() <= capacity);
                prop_assert_eq!(cache.get(key), Some(*value));
            }
            // The last `capacity` distinct keys stored are all there.
            let mut recent = Vec::new();
            for (key, value) in puts.iter().rev() {
                if !recent.iter().any(|(k, _)| k == key) {
                    recent.push((*key, *value));
                }
            }
            // Only the oldest entries are evicted: the last `capacity`
            // distinct keys stored are all there, with their last values.
            for (key, value) in recent.iter().take(capacity) {
                prop_assert_eq!(cache.get(key), Some(*value));
            }
        }
    }
}
