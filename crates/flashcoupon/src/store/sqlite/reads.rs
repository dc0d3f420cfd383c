//! Point reads on the request's own thread: a few `rusqlite` connections
//! the store lends out, used to the end without an await.
//!
//! Through sqlx's pool a one-row read costs more than the read: sqlx runs
//! each SQLite connection on a thread of its own, so a statement is a pool
//! acquire and several thread hand-offs. On an order with a coupon and
//! points (one such read before its unit is taken) that was a quarter of
//! the server's CPU, mostly the kernel switching threads
//! (docs/benchmarks.md, session 18). Read here, a lookup by key takes the
//! few microseconds SQLite needs for it.
//!
//! In WAL mode a reader does not wait for the writer, and these
//! connections' busy timeout is zero: a busy answer (a log being recovered,
//! the short lock windows of a checkpoint that restarts the log) is read
//! again on tokio's blocking pool with the store's usual timeout, and so is
//! a read that finds no idle connection (opening one parses the schema).
//! SQLite's own retries when a read starts can still sleep briefly on the
//! request's thread; they are rare, and bounded by SQLite.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::super::StoreError;
use super::super::sql::{Arg, OwnedRow, Rusqlite, Sql, run_now};

#[derive(Debug)]
pub struct Readers {
    path: PathBuf,
    /// Connections to lend; `None` once the store closed (reads then fail
    /// as a closed pool does).
    idle: Mutex<Option<Vec<Connection>>>,
    /// How many idle connections are kept; a burst beyond them opens more
    /// and closes the surplus afterwards.
    kept: usize,
}

impl Readers {
    pub fn new(path: &Path) -> Arc<Self> {
        // More than the threads that read at once.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Self {
            path: path.to_owned(),
            idle: Mutex::new(Some(Vec::new())),
            kept: (2 * threads).max(16),
        })
    }

    /// `sql`'s first row, parsed by `parse`: on this thread with an idle
    /// connection, else (or if SQLite answered busy here) on the blocking
    /// pool.
    pub async fn row<T: Send + 'static>(
        self: &Arc<Self>,
        sql: &'static str,
        args: Vec<Arg>,
        parse: impl Fn(&OwnedRow) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Option<T>, StoreError> {
        if let Some(conn) = self.take()? {
            match self.read_on(conn, sql, args.clone(), &parse, Duration::ZERO) {
                Err(e) if is_busy(&e) => {}
                out => return out,
            }
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match this.take()? {
                Some(conn) => conn,
                None => this.open()?,
            };
            this.read_on(conn, sql, args, &parse, super::log::BUSY_TIMEOUT)
        })
        .await
        .map_err(|e| StoreError::Db(sqlx::Error::Io(std::io::Error::other(e))))?
    }

    /// An idle connection, if there is one; an error once the store closed.
    fn take(&self) -> Result<Option<Connection>, StoreError> {
        match self.idle().as_mut() {
            Some(idle) => Ok(idle.pop()),
            None => Err(StoreError::Db(sqlx::Error::PoolClosed)),
        }
    }

    /// Read with `conn`, waiting at most `busy` for a lock, and keep it for
    /// the next read.
    fn read_on<T>(
        &self,
        conn: Connection,
        sql: &str,
        args: Vec<Arg>,
        parse: &impl Fn(&OwnedRow) -> Result<T, StoreError>,
        busy: Duration,
    ) -> Result<Option<T>, StoreError> {
        conn.busy_timeout(busy)?;
        // The statement is reset as its rows drop (even after one row), so
        // the read transaction ends with the read: an idle connection holds
        // no snapshot that would keep a checkpoint from finishing.
        let row = run_now(Rusqlite(&conn).fetch_optional(sql, args));
        if let Some(idle) = self.idle().as_mut()
            && idle.len() < self.kept
        {
            idle.push(conn);
        }
        row?.as_ref().map(parse).transpose()
    }

    /// Close the idle connections and lend none from now on: the store is
    /// closing, and its file may be rewritten next (`repage`).
    pub fn close(&self) {
        self.idle().take();
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Option<Vec<Connection>>> {
        // A panic while it was held left a list of connections, still fine.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn open(&self) -> Result<Connection, StoreError> {
        // Read-write, but `query_only`: a read-only connection to a WAL
        // database cannot open it while the -shm file is missing.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }
}

/// SQLite answered busy or locked (another connection held what the read
/// needed for longer than this attempt would wait), or gave up its own
/// retries to start a read: worth reading again, with time to wait.
fn is_busy(e: &StoreError) -> bool {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, FileLockingProtocolFailed};
    matches!(e, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if matches!(f.code, DatabaseBusy | DatabaseLocked | FileLockingProtocolFailed))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{store_with_users, until_free};
    use crate::store::columns::Columns as _;
    use crate::store::sql::args;
    use crate::store::{Store as _, StoreError};

    const EMAIL: &str = "SELECT email FROM users WHERE id = $1";

    /// A read sees what was committed before it, a missing row is `None`,
    /// and the connection goes back to be lent again, holding no read
    /// transaction; once the store closed, reads fail as a closed pool's do
    /// and no connection is left on the file.
    #[tokio::test]
    async fn a_read_sees_the_record_and_its_connection_is_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, users) = store_with_users(dir.path(), 2).await;
        let email = |row: &super::OwnedRow| Ok(row.text("email")?);
        for _ in 0..2 {
            let got = store
                .read_one(EMAIL, args![users[1].to_string()], email)
                .await
                .expect("read");
            assert_eq!(got.as_deref(), Some("kim1@example.com"));
        }
        let missing = store
            .read_one(
                EMAIL,
                args![crate::domain::ids::UserId::generate().to_string()],
                email,
            )
            .await
            .expect("read");
        assert_eq!(missing, None);
        {
            let idle = store.readers.idle();
            let idle = idle.as_ref().expect("open");
            assert_eq!(idle.len(), 1, "one connection, lent again and again");
            // The statement was reset after its one row: no snapshot is
            // held that would keep a checkpoint from finishing.
            assert!(idle[0].is_autocommit() && !idle[0].is_busy());
        }
        // A statement that is not a read is refused: the connections only read.
        let err = store
            .read_one("DELETE FROM users RETURNING email", args![], email)
            .await
            .expect_err("a write through a reader");
        assert!(err.to_string().contains("readonly"), "{err}");
        store.close().await;
        let closed = store
            .read_one(EMAIL, args![users[1].to_string()], email)
            .await;
        assert!(
            matches!(closed, Err(StoreError::Db(sqlx::Error::PoolClosed))),
            "{closed:?}"
        );
        // No connection is left open on the file.
        until_free(store.path()).await;
    }

    /// While another connection holds the database file to itself (no
    /// store is open on it: its connections would keep that from happening),
    /// a read here answers busy at once; it is read again on another thread,
    /// waiting as long as the store's other connections would, and succeeds
    /// once the file is free.
    #[tokio::test]
    async fn a_busy_read_waits_off_the_requests_thread() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("busy.db");
        let hog = rusqlite::Connection::open(&path).expect("open");
        hog.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT);
             INSERT INTO users VALUES ('u1', 'kim@example.com');",
        )
        .expect("schema");
        let mode: String = hog
            .query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))
            .expect("exclusive");
        assert_eq!(mode, "exclusive");
        // The first write takes the exclusive lock and keeps it.
        hog.execute("UPDATE users SET email = 'held@example.com'", [])
            .expect("write");
        let readers = super::Readers::new(&path);
        let email = |r: &super::OwnedRow| Ok(r.text("email")?);
        let direct = readers.read_on(
            readers.open().expect("open"),
            EMAIL,
            args!["u1"],
            &email,
            Duration::ZERO,
        );
        assert!(
            direct.as_ref().is_err_and(super::is_busy),
            "a read beside an exclusive lock: {direct:?}"
        );
        // That connection is idle now: the next read tries it here first.
        assert_eq!(readers.idle().as_ref().map(Vec::len), Some(1));
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // Back to normal locking: the lock goes with the next access.
            hog.query_row("PRAGMA locking_mode = NORMAL", [], |r| {
                r.get::<_, String>(0)
            })
            .expect("normal");
            hog.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))
                .expect("read");
            drop(hog);
        });
        let here = std::thread::current().id();
        let got = readers
            .row(EMAIL, args!["u1"], move |r| {
                Ok((r.text("email")?, std::thread::current().id()))
            })
            .await
            .expect("read once the file is free")
            .expect("the row");
        assert_eq!(got.0, "held@example.com");
        assert_ne!(got.1, here, "the wait ran on the request's thread");
        release.join().expect("release");
    }
}
