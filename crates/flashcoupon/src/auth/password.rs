//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on threads of
//! its own within a budget: a few at once, a bounded queue behind them, and
//! `Busy` (503) beyond, so a flood of logins can neither spawn hundreds of
//! 19 MiB hashing threads nor queue without end. Those threads run at a
//! lower CPU priority (`--hash-nice`; by default Linux's `SCHED_IDLE`):
//! during a drop, a log-in flood gets what the claims leave rather than an
//! equal share (a profile of the abuse benchmark found Argon2 in 54% of the
//! server's samples, at the same priority as the claims).

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, mpsc};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

/// Hash a password (blocking; call from the blocking pool or a CLI).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?
        .to_string())
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// How the hashing threads give way to the rest of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashPriority {
    /// A nice value, 0 (the server's own priority) to 19.
    Nice(i32),
    /// Linux's `SCHED_IDLE`: they run on CPU nothing else wants, and any
    /// other thread that wakes takes the core from them at once (a nice
    /// value only weighs the shares: a claim's thread that wakes may wait
    /// out a hash's time slice). Measured: `bench/abuse.sh`.
    Idle,
}

impl FromStr for HashPriority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("idle") {
            return Ok(Self::Idle);
        }
        match s.parse::<i32>() {
            Ok(n) if (0..=19).contains(&n) => Ok(Self::Nice(n)),
            _ => Err(format!(
                "{s:?} is neither a nice value from 0 to 19 nor \"idle\""
            )),
        }
    }
}

impl fmt::Display for HashPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Nice(n) => write!(f, "{n}"),
            Self::Idle => f.write_str("idle"),
        }
    }
}

/// Why a hash or a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken or queued for: answer 503, retry later.
    #[error("too many sign-ins at once; retry shortly")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

#[derive(Debug, Clone)]
pub struct PasswordHasher {
    /// The hashing threads (each hash ~19 MiB and a core for a while).
    pool: HashPool,
    /// Hashes running or waiting: the global budget. Beyond it, `Busy`.
    admitted: Arc<Semaphore>,
    /// Verified against when the e-mail is unknown, so "no such user" takes
    /// as long as "wrong password" and does not reveal which e-mails exist.
    decoy: Arc<str>,
    /// Hashes not run because their caller had gone before a thread took
    /// them up (a log-in flood whose clients hang up at once).
    abandoned: prometheus::IntCounter,
}

/// Hashes that may wait for a thread before callers are told `Busy`.
const QUEUE: usize = 64;

impl PasswordHasher {
    /// Two hashing threads per core, at `priority`; hashes skipped because
    /// their caller hung up are counted in `abandoned`.
    pub fn new(priority: HashPriority, abandoned: prometheus::IntCounter) -> anyhow::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::with_budget(workers * 2, QUEUE, priority, abandoned)
    }

    /// `running` threads at `priority`, and at most `queued` more hashes waiting.
    pub fn with_budget(
        running: usize,
        queued: usize,
        priority: HashPriority,
        abandoned: prometheus::IntCounter,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            pool: HashPool::start(running, priority)?,
            admitted: Arc::new(Semaphore::new(running + queued)),
            decoy: hash_password("decoy password, never matches")?.into(),
            abandoned,
        })
    }

    /// Hashes skipped because their caller had gone before they started.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.get()
    }

    /// Run `job` within the budget. The permit goes with the job to its
    /// thread, not with the caller's future: a client that hangs up
    /// mid-hash (its request future dropped) cannot free its slot while the
    /// hash still burns a core, so the budget counts every hash really
    /// running or waiting. A job whose caller is gone before a thread takes
    /// it up is not run at all.
    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?;
        let (done, answer) = tokio::sync::oneshot::channel();
        let abandoned = self.abandoned.clone();
        self.pool.submit(Box::new(move || {
            // The caller hung up while this waited: nobody will read the
            // answer, so no core burns for it. It held its place in the
            // budget until now, so a flood still met `Busy` while it queued.
            if done.is_closed() {
                abandoned.inc();
                return;
            }
            let out = job();
            drop(admitted);
            let _ = done.send(out);
        }))?;
        Ok(answer
            .await
            .map_err(|_| anyhow::anyhow!("a hashing thread stopped"))?)
    }

    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self.run(move || hash_password(&password)).await??)
    }

    /// `hash: None` verifies against the decoy and returns false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy.to_string());
        let ok = self.run(move || verify(&password, &hash)).await?;
        Ok(ok && known)
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads: started once, each lowered to its priority, taking
/// jobs from one queue (the budget bounds it) until the pool is dropped.
#[derive(Debug, Clone)]
struct HashPool {
    jobs: mpsc::Sender<Job>,
}

impl HashPool {
    fn start(threads: usize, priority: HashPriority) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    lower_priority(priority);
                    loop {
                        // The lock is held only to take the next job.
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return, // every sender is gone
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the hashing threads stopped").into())
    }
}

/// Lower this thread's CPU priority (Linux: a thread has its own nice value
/// and policy; lowering needs no privilege). Elsewhere, or on failure, the
/// thread keeps the server's priority and says so.
fn lower_priority(priority: HashPriority) {
    if priority == HashPriority::Nice(0) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let lowered = match priority {
            HashPriority::Nice(nice) => {
                rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
                    .map_err(|e| e.to_string())
            }
            HashPriority::Idle => {
                use thread_priority::{
                    NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
                };
                thread_priority::set_thread_priority_and_policy(
                    thread_priority::thread_native_id(),
                    ThreadPriority::Min,
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
                )
                .map_err(|e| e.to_string())
            }
        };
        if let Err(error) = lowered {
            tracing::warn!(error, %priority, "could not lower the hashing thread's priority");
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::info!(
        %priority,
        "hashing threads keep the server's priority on this system"
    );
}

/// The nice value of the calling thread (Linux), for the test below.
#[cfg(all(test, target_os = "linux"))]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter of abandoned hashes of a test's own.
    fn counter() -> prometheus::IntCounter {
        prometheus::IntCounter::new("abandoned", "abandoned").unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashes_run_on_threads_of_lower_priority() {
        let hasher = PasswordHasher::with_budget(1, 1, HashPriority::Nice(10), counter()).unwrap();
        let nice = hasher.run(current_nice).await.unwrap();
        assert_eq!(nice, 10);
        assert_eq!(
            hasher.run(current_nice).await.unwrap(),
            10,
            "every job, not just the first"
        );
        // The server's own threads are untouched.
        assert_eq!(current_nice(), 0);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn idle_hashes_run_under_sched_idle() {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let hasher = PasswordHasher::with_budget(1, 1, HashPriority::Idle, counter()).unwrap();
        let policy = || thread_priority::thread_schedule_policy().unwrap();
        assert_eq!(hasher.run(policy).await.unwrap(), idle);
        assert_eq!(hasher.run(policy).await.unwrap(), idle, "every job");
        assert_ne!(policy(), idle, "the server's own threads are untouched");
        let h = hasher.hash("idle".into()).await.unwrap();
        assert!(hasher.verify("idle".into(), Some(h)).await.unwrap());
    }

    #[test]
    fn a_priority_is_a_nice_value_or_idle() {
        assert_eq!("idle".parse(), Ok(HashPriority::Idle));
        assert_eq!("IDLE".parse(), Ok(HashPriority::Idle));
        assert_eq!("0".parse(), Ok(HashPriority::Nice(0)));
        assert_eq!("19".parse(), Ok(HashPriority::Nice(19)));
        for bad in ["20", "-1", "", "nice", "1.5"] {
            assert!(bad.parse::<HashPriority>().is_err(), "{bad:?}");
        }
        assert_eq!(HashPriority::Idle.to_string(), "idle");
        assert_eq!(HashPriority::Nice(7).to_string(), "7");
    }

    #[tokio::test]
    async fn beyond_the_budget_callers_are_told_busy_and_abandoned_hashes_still_count() {
        let hasher = PasswordHasher::with_budget(1, 1, HashPriority::Nice(0), counter()).unwrap();
        // Two jobs in the budget, one running (held until released), one
        // queued, both then abandoned by their callers, as clients hanging
        // up would.
        let (started, running) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let h = hasher.clone();
            async move {
                h.run(move || {
                    let _ = started.send(());
                    let _ = held.recv();
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || running.recv())
            .await
            .unwrap()
            .unwrap();
        let second = tokio::spawn({
            let h = hasher.clone();
            async move { h.hash("two".into()).await }
        });
        while hasher.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        second.abort();
        assert!(first.await.is_err_and(|e| e.is_cancelled()));
        assert!(second.await.is_err_and(|e| e.is_cancelled()));
        assert!(
            matches!(hasher.hash("three".into()).await, Err(HashError::Busy)),
            "the abandoned hashes still hold the budget"
        );
        // The running one finishes; the queued one, whose caller is gone,
        // is not hashed at all; then the budget is back.
        release.send(()).unwrap();
        while hasher.admitted.available_permits() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(hasher.abandoned(), 1, "the queued hash was skipped");
        let h = hasher.hash("four".into()).await.unwrap();
        assert!(hasher.verify("four".into(), Some(h)).await.unwrap());
        assert_eq!(hasher.abandoned(), 1, "answered hashes run");
    }

    #[test]
    fn a_hash_verifies_only_its_password() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong horse", &h));
        assert!(!verify("correct horse", "not a hash"));
    }
}
