//! The database's page size: 1 KiB for a new database, and `repage` to
//! rewrite an existing one with it (the server stopped).
//!
//! Why small pages: a claim inserts one entry at a random place in the
//! per-user index (promise 7), and SQLite writes the whole page it lands
//! on to the log and, later, to the database file. With 4 KiB pages the
//! server wrote ~9.5 KiB per coupon in a claim storm; with 1 KiB pages
//! 6.3–6.7 KiB, at the same claim rate (docs/benchmarks.md, issue 17).
//!
//! SQLite fixes the page size when it creates the file; in WAL mode only
//! a `VACUUM` outside WAL mode changes it, so an existing data dir keeps
//! its pages until an operator runs `flashcoupon admin repage`.

use std::path::Path;

use rusqlite::Connection;

/// The page size of a new database.
pub const PAGE_SIZE: u32 = 1024;

/// What `repage` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaged {
    pub before: u32,
    pub after: u32,
}

/// Rewrite the database at `path` with pages of `size` bytes, in one
/// `VACUUM` (all or nothing: a crash midway leaves the old file). Refused
/// while any other connection has it open: the server must be stopped.
/// `rewriting` hears the old size just before the rewrite starts.
pub fn repage(path: &Path, size: u32, rewriting: impl FnOnce(u32)) -> anyhow::Result<Repaged> {
    anyhow::ensure!(
        size.is_power_of_two() && (512..=65_536).contains(&size),
        "a page size is a power of two from 512 to 65536, not {size}"
    );
    anyhow::ensure!(path.exists(), "no database at {}", path.display());
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let before: u32 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    if before == size {
        return Ok(Repaged {
            before,
            after: size,
        });
    }
    // Leaving WAL mode checkpoints the log and needs the file to itself:
    // with the server still running it answers "database is locked".
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))
        .map_err(|e| {
            anyhow::anyhow!("{e}: is the server still running on this data dir? Stop it first")
        })?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("delete"),
        "the database stayed in {mode} mode: is the server still running on this data dir? Stop it first"
    );
    conn.pragma_update(None, "page_size", size)?;
    rewriting(before);
    conn.execute_batch("VACUUM")?;
    let _: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    let after: u32 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(Repaged { before, after })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{store_with_users, until_free};
    use super::*;
    use crate::settings::Durability;
    use crate::store::{SqliteStore, Store};

    async fn page_size(store: &SqliteStore) -> u32 {
        let (size,): (u32,) = sqlx::query_as("PRAGMA page_size")
            .fetch_one(&store.pool)
            .await
            .expect("page size");
        size
    }

    /// `repage` once the store's connections are gone (a process that
    /// exited has none).
    async fn repage_closed(path: &Path, size: u32) -> Repaged {
        until_free(path).await;
        repage(path, size, |_| ()).unwrap_or_else(|e| panic!("repage to {size}: {e}"))
    }

    fn users_and_integrity(path: &Path) -> (i64, String) {
        let conn = Connection::open(path).expect("open");
        let users = conn
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
            .expect("count");
        let check = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        (users, check)
    }

    #[tokio::test]
    async fn a_new_database_has_small_pages_in_wal_mode() {
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(dir.path(), Durability::Full)
            .await
            .expect("open");
        assert_eq!(page_size(&store).await, PAGE_SIZE);
        let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("mode");
        assert_eq!(mode, "wal");
        store.close().await;
    }

    /// An older database (4 KiB pages) is rewritten with 1 KiB pages and
    /// back, every row kept, WAL mode restored; the store opens it again.
    #[tokio::test]
    async fn repage_rewrites_the_pages_and_keeps_every_row() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _) = store_with_users(dir.path(), 500).await;
        let path = store.path().to_owned();
        store.close().await;

        let to_old = repage_closed(&path, 4096).await;
        assert_eq!(
            to_old,
            Repaged {
                before: PAGE_SIZE,
                after: 4096
            }
        );
        assert_eq!(users_and_integrity(&path), (500, "ok".into()));

        let back = repage_closed(&path, PAGE_SIZE).await;
        assert_eq!(
            back,
            Repaged {
                before: 4096,
                after: PAGE_SIZE
            }
        );
        assert_eq!(users_and_integrity(&path), (500, "ok".into()));
        let again = repage(&path, PAGE_SIZE, |_| ()).expect("again");
        assert_eq!(
            again,
            Repaged {
                before: PAGE_SIZE,
                after: PAGE_SIZE
            }
        );
        let conn = Connection::open(&path).expect("open");
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        drop(conn);

        // Last: a store's close leaves sqlx's threads closing their
        // connections for a while under load, and repage wants the file
        // to itself.
        repage_closed(&path, 4096).await;
        let store = SqliteStore::open(dir.path(), Durability::Full)
            .await
            .expect("reopen an older database");
        assert_eq!(
            page_size(&store).await,
            4096,
            "an open keeps the pages it finds"
        );
        store.close().await;
    }

    /// With the server's store open on it, repage refuses and changes
    /// nothing; a page size SQLite cannot have is refused before anything.
    #[tokio::test]
    async fn repage_refuses_a_database_in_use_or_a_bad_size() {
        let dir = tempfile::tempdir().expect("dir");
        let (store, _) = store_with_users(dir.path(), 10).await;
        let path = store.path().to_owned();
        let refused = repage(&path, 4096, |_| ()).expect_err("in use");
        assert!(refused.to_string().contains("Stop it first"), "{refused}");
        assert_eq!(page_size(&store).await, PAGE_SIZE);
        store.close().await;
        assert_eq!(users_and_integrity(&path), (10, "ok".into()));
        for size in [0, 1000, 256, 131_072] {
            let refused = repage(&path, size, |_| ()).expect_err("bad size");
            assert!(refused.to_string().contains("power of two"), "{refused}");
        }
        let missing = repage(&dir.path().join("none.db"), 4096, |_| ()).expect_err("no file");
        assert!(missing.to_string().contains("no database"), "{missing}");
    }
}
