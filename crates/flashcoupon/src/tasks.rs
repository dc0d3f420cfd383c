//! Every background loop under one roof (mini-redis's shutdown pattern): each
//! is spawned here with a name, hears one [`Shutdown`] signal, and is awaited
//! at exit, so a loop can finish what it is doing (a webhook send, and next a
//! broker acknowledgement) instead of being aborted half-way. Only a task
//! still running after the grace period is aborted, and named in the log.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

/// Resolves once shutdown has begun. Cheap to clone; every task holds one.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Wait until shutdown begins (at once if it already has, or if the
    /// [`Tasks`] that made this signal is gone). Cancel-safe: use it in
    /// `tokio::select!`.
    pub async fn begun(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub fn is_begun(&self) -> bool {
        *self.0.borrow()
    }
}

/// The running background tasks of one instance.
#[derive(Debug)]
pub struct Tasks {
    signal: watch::Sender<bool>,
    running: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            signal: watch::channel(false).0,
            running: JoinSet::new(),
            names: HashMap::new(),
        }
    }
}

impl Tasks {
    /// The signal to hand to a task that finishes its work on shutdown.
    pub fn shutdown(&self) -> Shutdown {
        Shutdown(self.signal.subscribe())
    }

    /// Run a task that watches its own [`Shutdown`] and returns by itself.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.running.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Run a loop that has nothing to finish: it is stopped at its next
    /// `.await` once shutdown begins (and awaited like the others).
    pub fn spawn_loop(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let mut shutdown = self.shutdown();
        self.spawn(name, async move {
            tokio::select! {
                () = task => {}
                () = shutdown.begun() => {}
            }
        });
    }

    /// Signal every task, wait up to `grace` for them to end, then abort
    /// (and name) the ones still running.
    pub async fn drain(mut self, grace: Duration) {
        self.signal.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            match tokio::time::timeout_at(deadline, self.running.join_next_with_id()).await {
                Ok(None) => return,
                Ok(Some(Ok((id, ())))) => {
                    self.names.remove(&id);
                }
                Ok(Some(Err(e))) => {
                    let name = self.names.remove(&e.id()).unwrap_or("?");
                    if e.is_panic() {
                        tracing::error!(task = name, "a background task panicked");
                    }
                }
                Err(_) => {
                    let left: Vec<&str> = self.names.values().copied().collect();
                    tracing::warn!(tasks = ?left, "background tasks did not stop in time; aborting them");
                    self.running.shutdown().await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_task_finishes_its_work_and_a_stuck_one_is_aborted_after_the_grace() {
        let mut tasks = Tasks::default();
        let finished = Arc::new(AtomicBool::new(false));
        let mut shutdown = tasks.shutdown();
        let done = finished.clone();
        tasks.spawn("polite", async move {
            shutdown.begun().await;
            // Finishing an acknowledgement, say.
            tokio::time::sleep(Duration::from_secs(1)).await;
            done.store(true, Ordering::SeqCst);
        });
        tasks.spawn_loop("ticker", async {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let stuck_dropped = Arc::new(AtomicBool::new(false));
        struct OnDrop(Arc<AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let guard = OnDrop(stuck_dropped.clone());
        tasks.spawn("stuck", async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        let started = tokio::time::Instant::now();
        tasks.drain(Duration::from_secs(5)).await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the polite task finished its work"
        );
        assert!(
            stuck_dropped.load(Ordering::SeqCst),
            "the stuck task was aborted"
        );
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(5),
            "after exactly the grace"
        );
    }
}
