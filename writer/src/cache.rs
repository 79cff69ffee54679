//! A bounded read-through cache for immutable metadata (a post's topic and title, a topic's
//! existence), so a like on a hot post costs no read of the post item.
//!
//! Only hits are cached: an unknown post may be created a moment later. Concurrent misses on
//! one key share a single load.

use std::future::Future;
use std::hash::Hash;

use quick_cache::sync::Cache;

/// Entries kept when no size is configured.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

/// A read-through cache of values that never change once they exist.
pub(crate) struct ImmutableCache<K, V> {
    entries: Cache<K, V>,
}

impl<K, V> ImmutableCache<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity.max(1)),
        }
    }

    /// The cached value, or `load`'s answer (cached when `Some`).
    pub(crate) async fn get_or_load<E, F, Fut>(&self, key: &K, load: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let guard = match self.entries.get_value_or_guard_async(key).await {
            Ok(value) => return Ok(Some(value)),
            Err(guard) => guard,
        };
        let loaded = load().await?;
        if let Some(value) = &loaded {
            let _ = guard.insert(value.clone());
        }
        Ok(loaded)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn hits_skip_the_load_and_misses_are_not_cached() {
        let cache = ImmutableCache::<u32, &str>::new(10);
        let loads = AtomicUsize::new(0);
        let load = |value: Option<&'static str>| {
            loads.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(value) }
        };
        assert_eq!(cache.get_or_load(&1, || load(None)).await, Ok(None));
        assert_eq!(
            cache.get_or_load(&1, || load(Some("a"))).await,
            Ok(Some("a"))
        );
        assert_eq!(
            cache.get_or_load(&1, || load(Some("b"))).await,
            Ok(Some("a"))
        );
        assert_eq!(loads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn stays_within_its_capacity() {
        let cache = ImmutableCache::<u32, u32>::new(100);
        for key in 0..1_000 {
            let _ = cache
                .get_or_load(&key, || async move { Ok::<_, ()>(Some(key)) })
                .await;
        }
        assert!(cache.len() <= 100, "{} entries", cache.len());
    }
}
