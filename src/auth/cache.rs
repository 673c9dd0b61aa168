//! A bounded cache of recent decisions, so that a client opening many
//! streams does not cost two API server calls each. An entry lives `ttl`;
//! when the cache is full the oldest entry goes first. Only answers are
//! kept: a failure to ask is never cached.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Inner<K, V> {
    entries: HashMap<K, (Instant, V)>,
    /// Keys in the order they were stored, with when; a key stored again
    /// appears twice, and only its newest time counts.
    order: VecDeque<(Instant, K)>,
}

/// Decisions by key, each for `ttl`, at most `capacity` of them.
#[derive(Debug)]
pub struct Cache<K, V> {
    inner: Mutex<Inner<K, V>>,
    ttl: Duration,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Cache<K, V> {
    /// An empty cache; a zero `ttl` or `capacity` keeps nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            ttl,
            capacity,
        }
    }

    /// The value stored for `key` less than `ttl` ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = inner.entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Stores `value` for `key`, dropping expired entries and, when full,
    /// the oldest.
    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() || self.capacity == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some((at, _)) = inner.order.front() {
            let expired = now.duration_since(*at) >= self.ttl;
            if !expired
                && inner.entries.len() < self.capacity
                && inner.order.len() < 2 * self.capacity
            {
                break;
            }
            let (at, old) = inner.order.pop_front().expect("front exists");
            // Remove the entry only if this is its newest store.
            if inner
                .entries
                .get(&old)
                .is_some_and(|(stored, _)| *stored == at)
            {
                inner.entries.remove(&old);
            }
        }
        inner.entries.insert(key.clone(), (now, value));
        inner.order.push_back((now, key));
    }

    /// How many entries are held (expired ones included until they go).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
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
            // A key stored again takes a second place in the order, so
            // only the very last key is certain to survive every eviction.
            if let Some((key, value)) = recent.first() {
                prop_assert_eq!(cache.get(key), Some(*value));
            }
        }
    }
}
