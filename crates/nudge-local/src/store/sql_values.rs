//! Domain values as SQLite integers and back: SQLite stores signed 64-bit integers, while
//! versions and decision ids are `u64`.

use nudge_core::engine::decision::DecisionId;
use nudge_service::ports::StoreError;

use super::error::SqliteFailure;

/// A `u64` (version, limit) as a SQLite integer.
pub(super) fn to_sql_int(context: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| SqliteFailure::OutOfRange(v).into_store_error(context))
}

/// A stored version read back as `u64`; a negative one is corrupt.
pub(super) fn version_from_sql(user_id: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v)
        .map_err(|_| StoreError::Corrupt(format!("negative version {v} of user `{user_id}`")))
}

/// A decision id as a SQLite integer: the same 64 bits (ids are only compared for equality,
/// so the sign a high bit gives does not matter).
pub(super) fn id_to_sql(id: DecisionId) -> i64 {
    id.0 as i64
}
