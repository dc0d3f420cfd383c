//! A value computed from the record, kept for a short while: every reader
//! within `fresh` gets the same one; after that, one reader recomputes it
//! (single flight) while the others keep the previous value for at most
//! `stale` more, then wait for the new one. So a summary polled by many
//! dashboards during a drop costs the record one read per key per `fresh`.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many keys are kept before the cache starts over (ranges asked for
/// by hand make new keys; a summary is cheap to compute once more).
const MAX_KEYS: usize = 1_024;

#[derive(Debug)]
struct Slot<V> {
    value: Mutex<Option<(Instant, V)>>,
    /// Held by the one reader recomputing the value.
    loading: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub struct Recent<K, V> {
    fresh: Duration,
    stale: Duration,
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    pub fn new(fresh: Duration, stale: Duration) -> Self {
        Self {
            fresh,
            stale,
            slots: Mutex::default(),
        }
    }

    /// The value of `key`, computed by `load` if there is none recent enough.
    pub async fn get<E, F>(&self, key: K, load: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let slot = self.slot(key);
        let within = |limit: Duration| {
            slot.value
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .filter(|(at, _)| at.elapsed() < limit)
                .map(|(_, v)| v.clone())
        };
        if let Some(v) = within(self.fresh) {
            return Ok(v);
        }
        let _loading = match slot.loading.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Another reader is recomputing it: the previous value will
                // do if it is not too old; else wait for the new one.
                if let Some(v) = within(self.fresh + self.stale) {
                    return Ok(v);
                }
                let guard = slot.loading.lock().await;
                if let Some(v) = within(self.fresh) {
                    return Ok(v);
                }
                guard
            }
        };
        let v = load().await?;
        *slot.value.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), v.clone()));
        Ok(v)
    }

    fn slot(&self, key: K) -> Arc<Slot<V>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            slots.clear();
        }
        slots
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Slot {
                    value: Mutex::new(None),
                    loading: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_fresh_value_is_shared_and_concurrent_misses_load_once() {
        let recent = Arc::new(Recent::<u8, u32>::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let loads = Arc::new(AtomicU32::new(0));
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (recent, loads) = (recent.clone(), loads.clone());
                tokio::spawn(async move {
                    recent
                        .get(1, || async {
                            let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok::<_, ()>(n)
                        })
                        .await
                })
            })
            .collect();
        for r in readers {
            assert_eq!(r.await.unwrap(), Ok(1));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1, "one load for 8 readers");
        // Another key is its own.
        assert_eq!(recent.get(2, || async { Ok::<_, ()>(7) }).await, Ok(7));
    }

    #[tokio::test]
    async fn an_old_value_is_recomputed_and_an_error_is_not_kept() {
        let recent = Recent::<u8, u32>::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(recent.get(1, || async { Ok::<_, ()>(1) }).await, Ok(1));
        assert_eq!(recent.get(1, || async { Err::<u32, _>(()) }).await, Err(()));
        assert_eq!(recent.get(1, || async { Ok::<_, ()>(3) }).await, Ok(3));
    }
}
