//! One way to run a statement inside a transaction, whoever holds it: a
//! sqlx connection (PostgreSQL, or SQLite outside the group commit) or the
//! SQLite writer thread's own `rusqlite` connection. The record's
//! multi-statement writes (a points ledger write, an order's step with its
//! coupon and points) are written once, as functions over [`Sql`], and run
//! on all three.
//!
//! Statements use `$1, $2, …` placeholders, as everywhere in the store:
//! PostgreSQL's own; SQLite reads `$1` as a parameter named `$1`, which
//! sqlx binds by that name, and [`Rusqlite`] writes `?1` (see `numbered`).

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

use super::StoreError;
use super::columns::Columns;

/// One bound value. The type of a NULL matters to PostgreSQL (a NULL bound
/// as a number is refused by a text column), so each kind has its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}

impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Self::Text(Some(v.clone()))
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}

/// The arguments of one statement, in placeholder order.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        vec![$($crate::store::sql::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// Statements inside a transaction the caller began (and ends).
pub(super) trait Sql {
    type Row: Columns;
    /// Run `sql`; how many rows it changed.
    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError>;
    /// Its first row, if any.
    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<Self::Row>, StoreError>;
    /// All its rows.
    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<Self::Row>, StoreError>;

    /// Run `sql`, a statement whose text is this call's own (a multi-row
    /// statement sized to its batch): not worth a place in the statement
    /// cache, where it would push out the statements that repeat.
    async fn execute_once(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError>;

    /// Its one row; a statement that returns none is an error.
    async fn fetch_one(&mut self, sql: &str, args: Vec<Arg>) -> Result<Self::Row, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }
}

/// `sqlx::query(sql)` with `args` bound, for connection type `$conn`.
macro_rules! sqlx_sql {
    ($conn:ty, $row:ty) => {
        impl Sql for $conn {
            type Row = $row;

            async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
                Ok(bind!(sql, args).execute(self).await?.rows_affected())
            }

            async fn execute_once(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
                Ok(bind!(sql, args)
                    .persistent(false)
                    .execute(self)
                    .await?
                    .rows_affected())
            }

            async fn fetch_optional(
                &mut self,
                sql: &str,
                args: Vec<Arg>,
            ) -> Result<Option<$row>, StoreError> {
                Ok(bind!(sql, args).fetch_optional(self).await?)
            }

            async fn fetch_all(
                &mut self,
                sql: &str,
                args: Vec<Arg>,
            ) -> Result<Vec<$row>, StoreError> {
                Ok(bind!(sql, args).fetch_all(self).await?)
            }
        }
    };
}

macro_rules! bind {
    ($sql:expr, $args:expr) => {{
        let mut q = sqlx::query($sql);
        for a in $args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
            };
        }
        q
    }};
}

sqlx_sql!(sqlx::SqliteConnection, SqliteRow);
sqlx_sql!(sqlx::PgConnection, PgRow);

/// The SQLite writer thread's connection, inside a transaction it began.
/// Nothing here waits: each future is ready when first polled, so the
/// thread runs the shared functions with [`run_now`].
pub(super) struct Rusqlite<'c>(pub &'c rusqlite::Connection);

impl Rusqlite<'_> {
    fn prepare(
        &self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<rusqlite::CachedStatement<'_>, StoreError> {
        let mut st = self.0.prepare_cached(&numbered(sql)?)?;
        bind_all(&mut st, sql, args)?;
        Ok(st)
    }

    fn rows(&self, sql: &str, args: Vec<Arg>, most: usize) -> Result<Vec<OwnedRow>, StoreError> {
        let mut st = self.prepare(sql, args)?;
        let names: std::sync::Arc<[String]> =
            st.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = st.raw_query();
        let mut out = Vec::new();
        while out.len() < most
            && let Some(row) = rows.next()?
        {
            let values = (0..names.len())
                .map(|i| row.get::<_, rusqlite::types::Value>(i))
                .collect::<Result<_, _>>()?;
            out.push(OwnedRow {
                names: names.clone(),
                values,
            });
        }
        Ok(out)
    }
}

/// `sql` with each `$N` written `?N`, which SQLite numbers N as it parses:
/// a `$N` is a parameter *named* `$N`, which the parser looks up among the
/// names before it and a binder finds by walking them, so a statement of
/// many rows cost time in the square of its placeholders (a batch of 128
/// payment events, 900 of them, spent most of its writer's time there).
/// Quoted text, quoted names and comments are left alone. Another kind of
/// placeholder (`?`, `:name`, `@name`, `$name`) is a mistake in the
/// statement: refused, never bound by position.
fn numbered(sql: &str) -> Result<String, StoreError> {
    let mistake = || {
        StoreError::Db(sqlx::Error::Protocol(format!(
            "{sql:?} has a placeholder that is not $1, $2, …"
        )))
    };
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    // `sql[copied..i]` is still to be copied as it is.
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        // Quoted text, quoted names and comments are passed over whole.
        let (open, close): (usize, &[u8]) = match (b[i], b.get(i + 1)) {
            (b'\'', _) => (1, b"'"),
            (b'"', _) => (1, b"\""),
            (b'`', _) => (1, b"`"),
            (b'[', _) => (1, b"]"),
            (b'-', Some(b'-')) => (2, b"\n"),
            (b'/', Some(b'*')) => (2, b"*/"),
            _ => (0, b""),
        };
        if open > 0 {
            // A doubled quote inside quotes closes and reopens at once,
            // which reads the same.
            i = b[i + open..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(b.len(), |at| i + open + at + close.len());
            continue;
        }
        match b[i] {
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('?');
                copied = i + 1;
            }
            b'$' | b'?' => return Err(mistake()),
            b':' | b'@'
                if b.get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphanumeric() || *n == b'_') =>
            {
                return Err(mistake());
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&sql[copied..]);
    Ok(out)
}

/// Bind `args` to the placeholders of `st`, a statement [`numbered`]: its
/// `?N` is parameter N. A number without an argument is refused, not bound
/// as NULL, and so is an argument without a number.
fn bind_all(st: &mut rusqlite::Statement<'_>, sql: &str, args: Vec<Arg>) -> Result<(), StoreError> {
    let count = st.parameter_count();
    // As PostgreSQL does: an argument too many is a mistake too.
    if count != args.len() {
        return Err(StoreError::Db(sqlx::Error::Protocol(format!(
            "{sql:?} has placeholders up to ${count} but {} arguments",
            args.len()
        ))));
    }
    for (i, arg) in args.iter().enumerate() {
        match arg {
            Arg::Int(v) => st.raw_bind_parameter(i + 1, v)?,
            Arg::Text(v) => st.raw_bind_parameter(i + 1, v)?,
        }
    }
    Ok(())
}

impl Sql for Rusqlite<'_> {
    type Row = OwnedRow;

    async fn execute(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let mut st = self.prepare(sql, args)?;
        Ok(st.raw_execute()? as u64)
    }

    async fn execute_once(&mut self, sql: &str, args: Vec<Arg>) -> Result<u64, StoreError> {
        let mut st = self.0.prepare(&numbered(sql)?)?;
        bind_all(&mut st, sql, args)?;
        Ok(st.raw_execute()? as u64)
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Arg>,
    ) -> Result<Option<OwnedRow>, StoreError> {
        Ok(self.rows(sql, args, 1)?.pop())
    }

    async fn fetch_all(&mut self, sql: &str, args: Vec<Arg>) -> Result<Vec<OwnedRow>, StoreError> {
        self.rows(sql, args, usize::MAX)
    }
}

/// A row read by [`Rusqlite`]: its values, copied out of the statement.
#[derive(Debug, Clone)]
pub(super) struct OwnedRow {
    names: std::sync::Arc<[String]>,
    values: Vec<rusqlite::types::Value>,
}

impl OwnedRow {
    fn value(&self, col: &str) -> Result<&rusqlite::types::Value, sqlx::Error> {
        self.names
            .iter()
            .position(|n| n == col)
            .map(|i| &self.values[i])
            .ok_or_else(|| sqlx::Error::ColumnNotFound(col.to_owned()))
    }
}

fn mismatch(col: &str, wanted: &str, found: &rusqlite::types::Value) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: format!("expected {wanted}, found {:?}", found.data_type()).into(),
    }
}

impl Columns for OwnedRow {
    fn text(&self, col: &str) -> Result<String, sqlx::Error> {
        self.opt_text(col)?
            .ok_or_else(|| mismatch(col, "text", &rusqlite::types::Value::Null))
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
        use rusqlite::types::Value;
        match self.value(col)? {
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            other => Err(mismatch(col, "text", other)),
        }
    }

    fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
        self.opt_int(col)?
            .ok_or_else(|| mismatch(col, "an integer", &rusqlite::types::Value::Null))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
        use rusqlite::types::Value;
        match self.value(col)? {
            Value::Integer(i) => Ok(Some(*i)),
            Value::Null => Ok(None),
            other => Err(mismatch(col, "an integer", other)),
        }
    }

    fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
        Ok(self.int(col)? != 0)
    }
}

/// Run a future made of [`Rusqlite`] statements to its end, here and now.
/// They never wait, so it is ready at its first poll; one that is not
/// (a statement of another kind slipped in) is an error, not a hang.
pub(super) fn run_now<T>(
    fut: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        // Not a constraint: the group commit must not read it as the
        // record refusing the rows (it asks which landed instead).
        std::task::Poll::Pending => Err(StoreError::Db(sqlx::Error::Protocol(
            "a writer-thread statement waited on something: it must not".into(),
        ))),
    }
}

/// Run a statement of `rows` rows (see [`values`]): a one-row statement
/// repeats (an order's outbox row), so it is cached; a batch's size
/// changes from batch to batch, so its text is run once.
pub(super) async fn execute_rows<S: Sql>(
    tx: &mut S,
    sql: &str,
    args: Vec<Arg>,
    rows: usize,
) -> Result<u64, StoreError> {
    if rows == 1 {
        tx.execute(sql, args).await
    } else {
        tx.execute_once(sql, args).await
    }
}

/// `INSERT … VALUES ($1, …), (…)` for `rows` rows of `cols` columns after
/// `head` (the INSERT up to `VALUES`), then `tail`.
pub(super) fn values(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * cols * 5 + 8);
    sql.push_str(head);
    sql.push_str("VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            sql.push('$');
            sql.push_str(&n.to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_numbers_every_placeholder_in_order() {
        assert_eq!(
            values("INSERT INTO t (a, b) ", 2, 2, " ON CONFLICT DO NOTHING"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }

    /// `$n` binds by its number on the writer's connection as it does in
    /// sqlx: a placeholder used twice, or before a lower one, gets its own
    /// value.
    #[test]
    fn placeholders_bind_by_their_number() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut sql = Rusqlite(&conn);
        run_now(sql.execute("CREATE TABLE t (a INTEGER, b TEXT, c TEXT)", args![]))
            .expect("create");
        let n = run_now(sql.execute(
            "INSERT INTO t (c, a, b) VALUES ($2, $1, $2), ($3, $1, NULL)",
            args![7, "x", None::<&str>],
        ))
        .expect("insert");
        assert_eq!(n, 2);
        let rows =
            run_now(sql.fetch_all("SELECT a, b, c FROM t ORDER BY rowid", args![])).expect("rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].int("a").expect("a"), 7);
        assert_eq!(rows[0].text("b").expect("b"), "x");
        assert_eq!(rows[0].text("c").expect("c"), "x");
        assert_eq!(rows[1].opt_text("b").expect("b"), None);
        assert_eq!(rows[1].opt_text("c").expect("c"), None);
        assert!(rows[1].text("c").is_err(), "a NULL is not text");
        assert!(rows[0].int("nope").is_err(), "no such column");
        let none =
            run_now(sql.fetch_optional("SELECT a FROM t WHERE a = $1", args![8])).expect("none");
        assert!(none.is_none());
    }

    #[test]
    fn numbered_rewrites_placeholders_outside_quotes_and_refuses_other_kinds() {
        assert_eq!(
            numbered("UPDATE t SET a = $1, b = '$2 :x ?' WHERE c = $12 AND d = \"$3\"").unwrap(),
            "UPDATE t SET a = ?1, b = '$2 :x ?' WHERE c = ?12 AND d = \"$3\""
        );
        assert_eq!(numbered("SELECT 'it''s $1'").unwrap(), "SELECT 'it''s $1'");
        assert_eq!(
            numbered("SELECT $1 -- it's $2\n, [$3], `$4` /* ? */ , $5").unwrap(),
            "SELECT ?1 -- it's $2\n, [$3], `$4` /* ? */ , ?5"
        );
        assert_eq!(numbered("SELECT 'é', $1").unwrap(), "SELECT 'é', ?1");
        for wrong in [
            "SELECT ?",
            "SELECT ?1",
            "SELECT :name",
            "SELECT @name",
            "SELECT $name",
            "SELECT $",
        ] {
            assert!(numbered(wrong).is_err(), "{wrong}");
        }
    }

    /// A statement of a big batch: every one of its 1,400 placeholders gets
    /// its own argument.
    #[test]
    fn a_statement_of_many_rows_binds_each_row_its_own() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut sql = Rusqlite(&conn);
        run_now(sql.execute("CREATE TABLE t (a INTEGER, b TEXT)", args![])).expect("create");
        let rows = 700;
        let mut all = Vec::new();
        for i in 0..rows {
            all.extend(args![i, format!("row {i}")]);
        }
        let insert = values("INSERT INTO t (a, b) ", rows as usize, 2, "");
        assert_eq!(
            run_now(sql.execute_once(&insert, all)).expect("insert"),
            700
        );
        let wrong = run_now(sql.fetch_all("SELECT a, b FROM t WHERE b <> 'row ' || a", args![]))
            .expect("read");
        assert!(
            wrong.is_empty(),
            "{} rows got another row's values",
            wrong.len()
        );
    }

    /// `$10` is not `$1` followed by a 0, and every placeholder must have
    /// its argument: a missing one, or one of another kind, is an error,
    /// never a NULL that would make a conditional write match nothing.
    #[test]
    fn ten_and_more_placeholders_and_mistakes() {
        let conn = rusqlite::Connection::open_in_memory().expect("open");
        let mut sql = Rusqlite(&conn);
        let cols: Vec<String> = (1..=12).map(|i| format!("c{i} INTEGER")).collect();
        run_now(sql.execute(&format!("CREATE TABLE t ({})", cols.join(", ")), args![]))
            .expect("create");
        let insert = values("INSERT INTO t ", 1, 12, "");
        let twelve: Vec<Arg> = (1..=12).map(|i| Arg::from(i * 10)).collect();
        assert_eq!(run_now(sql.execute(&insert, twelve)).expect("insert"), 1);
        let row = run_now(sql.fetch_one("SELECT c1, c10, c12 FROM t", args![])).expect("row");
        assert_eq!(
            (
                row.int("c1").unwrap(),
                row.int("c10").unwrap(),
                row.int("c12").unwrap()
            ),
            (10, 100, 120)
        );
        let short = run_now(sql.execute("UPDATE t SET c1 = $1 WHERE c2 = $2", args![1]));
        assert!(matches!(short, Err(StoreError::Db(_))), "{short:?}");
        let extra = run_now(sql.execute("UPDATE t SET c1 = $1", args![1, 2]));
        assert!(matches!(extra, Err(StoreError::Db(_))), "{extra:?}");
        let other = run_now(sql.execute("UPDATE t SET c1 = ?1", args![1]));
        assert!(matches!(other, Err(StoreError::Db(_))), "{other:?}");
        let row = run_now(sql.fetch_one("SELECT c1 FROM t", args![])).expect("row");
        assert_eq!(row.int("c1").unwrap(), 10, "nothing was written");
    }

    /// A savepoint rolled back on the writer's connection takes back what
    /// was written since, and the transaction goes on.
    #[test]
    fn savepoints_roll_back_on_the_writers_connection() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (a INTEGER)")
            .expect("create");
        let tx = conn.transaction().expect("tx");
        let mut sql = Rusqlite(&tx);
        let n = run_now(async {
            sql.execute("INSERT INTO t VALUES (1)", args![]).await?;
            sql.execute("SAVEPOINT s", args![]).await?;
            sql.execute("INSERT INTO t VALUES (2)", args![]).await?;
            sql.execute("ROLLBACK TO SAVEPOINT s", args![]).await?;
            sql.execute("RELEASE SAVEPOINT s", args![]).await?;
            Ok(sql.fetch_all("SELECT a FROM t", args![]).await?.len())
        })
        .expect("savepoint");
        assert_eq!(n, 1);
        tx.commit().expect("commit");
    }

    /// A future that waits is an error the group commit reads as "ask
    /// which rows landed", not as the record refusing them.
    #[test]
    fn a_future_that_waits_is_not_a_refusal() {
        let waited = run_now(async {
            std::future::pending::<()>().await;
            Ok(())
        });
        let err = waited.expect_err("pending");
        assert!(!err.is_constraint(), "{err:?}");
    }
}
