//! Reading one typed column of a row, the same way on both backends: the
//! only per-backend piece of the shared queries.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;

/// One typed column of a row, by name.
pub(super) trait Columns {
    fn text(&self, col: &str) -> Result<String, sqlx::Error>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error>;
    fn int(&self, col: &str) -> Result<i64, sqlx::Error>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error>;
    fn flag(&self, col: &str) -> Result<bool, sqlx::Error>;
}

macro_rules! columns_for {
    ($row:ty) => {
        impl Columns for $row {
            fn text(&self, col: &str) -> Result<String, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, sqlx::Error> {
                self.try_get(col)
            }
            fn int(&self, col: &str) -> Result<i64, sqlx::Error> {
                self.try_get(col)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, sqlx::Error> {
                self.try_get(col)
            }
            fn flag(&self, col: &str) -> Result<bool, sqlx::Error> {
                self.try_get(col)
            }
        }
    };
}
columns_for!(SqliteRow);
columns_for!(PgRow);

/// Column helpers: ids are stored as text, and the schema's CHECKs keep them parseable.
pub(super) fn parse_id<T: std::str::FromStr>(raw: &str) -> Result<T, sqlx::Error> {
    raw.parse()
        .map_err(|_| sqlx::Error::Decode(format!("malformed id in the record: {raw:?}").into()))
}
