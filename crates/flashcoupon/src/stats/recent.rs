//! A value computed from the record, kept for a short while: every reader
//! within `fresh` gets the same one; after that, the first reader starts
//! one recomputation in the background (single flight) and every reader,
//! that one included, keeps getting the previous value for at most `stale`
//! more. Only a reader finding no value, or one too old, waits for a load.
//! So a summary polled by many dashboards during a drop costs the record one
//! read per key per `fresh`, and no poll waits for that read.

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
    /// Held by the one load in progress.
    loading: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug)]
pub struct Recent<K, V> {
    fresh: Duration,
    stale: Duration,
    slots: Mutex<HashMap<K, Arc<Slot<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone + Send + 'static> Recent<K, V> {
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
        F: Future<Output = Result<V, E>> + Send + 'static,
        V: Send + Sync + 'static,
        E: Send + 'static,
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
        if let Some(v) = within(self.fresh + self.stale) {
            // Recompute in the background (unless a load is on already)
            // and answer with what there is. A failed load keeps the old
            // value: the next reader tries again.
            if let Ok(guard) = slot.loading.clone().try_lock_owned() {
                // Stamped when the read starts: its age is the data's.
                let (slot, started, load) = (slot.clone(), Instant::now(), load());
                tokio::spawn(async move {
                    if let Ok(fresh) = load.await {
                        *slot.value.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some((started, fresh));
                    }
                    drop(guard);
                });
            }
            return Ok(v);
        }
        // Nothing recent enough to answer with: wait for one load.
        let _loading = slot.loading.lock().await;
        if let Some(v) = within(self.fresh) {
            return Ok(v);
        }
        let started = Instant::now();
        let v = load().await?;
        *slot.value.lock().unwrap_or_else(|p| p.into_inner()) = Some((started, v.clone()));
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
                    loading: Arc::new(tokio::sync::Mutex::new(())),
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
                        .get(1, || async move {
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
    async fn a_stale_value_is_served_while_one_load_refreshes_it_behind() {
        let recent = Recent::<u8, u32>::new(Duration::from_millis(30), Duration::from_secs(60));
        assert_eq!(recent.get(1, || async { Ok::<_, ()>(1) }).await, Ok(1));
        tokio::time::sleep(Duration::from_millis(40)).await;
        // Stale: answered at once with the old value, the load runs behind.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let slow = || async move {
            rx.await.ok();
            Ok::<_, ()>(2)
        };
        assert_eq!(recent.get(1, slow).await, Ok(1));
        // A second stale reader starts no second load.
        assert_eq!(
            recent.get(1, || async { panic!("a second load") }).await,
            Ok::<_, ()>(1)
        );
        tx.send(()).unwrap();
        for _ in 0..100 {
            if recent.get(1, || async { Ok::<_, ()>(9) }).await == Ok(2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the background load never landed");
    }

    #[tokio::test]
    async fn an_old_value_is_recomputed_and_an_error_is_not_kept() {
        let recent = Recent::<u8, u32>::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(recent.get(1, || async { Ok::<_, ()>(1) }).await, Ok(1));
        assert_eq!(recent.get(1, || async { Err::<u32, _>(()) }).await, Err(()));
        assert_eq!(recent.get(1, || async { Ok::<_, ()>(3) }).await, Ok(3));
    }
}
