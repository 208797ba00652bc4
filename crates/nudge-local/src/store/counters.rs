//! The report counters in SQLite. Every change goes to an hourly and a daily row, so a month
//! reads about thirty rows per trigger, not seven hundred; pending waits go to a gauge per
//! trigger, distinct users to a sketch per hour and per day. Changes are applied inside the
//! transaction of the states that produced them (`users.rs`), so each counts once.
//!
//! A row holds every counter of one trigger (funnel, experiment) as a vector: each counter
//! key has a slot of its (scope, name), numbered in `counter_slots` as keys first appear. A
//! report then adds a few thousand short vectors instead of grouping hundreds of thousands of
//! rows (BENCHMARKS.md, "Reports").

use std::collections::HashMap;

use nudge_core::insights::period::Span;
use nudge_core::insights::{Deltas, Key, Period, Sketch, Sums};
use nudge_service::ports::{ReportStore, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

use super::error::sqlite;
use super::SqliteStore;

/// `grain` of hourly rows.
const HOUR: i64 = 0;
/// `grain` of daily rows.
const DAY: i64 = 1;

/// A counter row's vector: little-endian `i64` per slot.
fn decode_slots(bytes: &[u8]) -> impl Iterator<Item = i64> + '_ {
    bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
}

/// The slot of a counter key in its (scope, name), numbered now if new.
fn slot_of(conn: &Connection, parts: &[String; 5]) -> rusqlite::Result<usize> {
    let [scope, name, variant, part, field] = parts;
    let found: Option<i64> = conn
        .prepare_cached(
            "SELECT slot FROM counter_slots
             WHERE scope = ?1 AND name = ?2 AND variant = ?3 AND part = ?4 AND field = ?5",
        )?
        .query_row(params![scope, name, variant, part, field], |r| r.get(0))
        .optional()?;
    let slot = match found {
        Some(slot) => slot,
        None => {
            let next: i64 = conn
                .prepare_cached(
                    "SELECT COALESCE(MAX(slot) + 1, 0) FROM counter_slots
                     WHERE scope = ?1 AND name = ?2",
                )?
                .query_row(params![scope, name], |r| r.get(0))?;
            conn.prepare_cached(
                "INSERT INTO counter_slots (scope, name, slot, variant, part, field)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![scope, name, next, variant, part, field])?;
            next
        }
    };
    Ok(usize::try_from(slot).unwrap_or(0))
}

/// Applies a batch's counter changes (on the writer thread, inside its transaction).
pub(super) fn apply(conn: &Connection, d: &Deltas) -> rusqlite::Result<()> {
    if d.is_empty() {
        return Ok(());
    }
    // Changes per row: (grain, bucket, scope, name) -> (slot, change).
    type Row = (i64, i64, String, String);
    let mut rows: HashMap<Row, Vec<(usize, i64)>> = HashMap::new();
    for ((key, hour), n) in &d.counts {
        let parts = key.parts();
        let slot = slot_of(conn, &parts)?;
        let [scope, name, ..] = parts;
        for (grain, bucket) in [(HOUR, *hour), (DAY, hour.div_euclid(24))] {
            rows.entry((grain, bucket, scope.clone(), name.clone()))
                .or_default()
                .push((slot, *n));
        }
    }
    let mut read = conn.prepare_cached(
        "SELECT slots FROM counters WHERE grain = ?1 AND bucket = ?2 AND scope = ?3 AND name = ?4",
    )?;
    let mut write = conn.prepare_cached(
        "INSERT INTO counters (grain, bucket, scope, name, slots) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (grain, bucket, scope, name) DO UPDATE SET slots = excluded.slots",
    )?;
    for ((grain, bucket, scope, name), changes) in rows {
        let stored: Option<Vec<u8>> = read
            .query_row(params![grain, bucket, scope, name], |r| r.get(0))
            .optional()?;
        let mut values: Vec<i64> = stored
            .as_deref()
            .map(|b| decode_slots(b).collect())
            .unwrap_or_default();
        for (slot, n) in changes {
            if values.len() <= slot {
                values.resize(slot + 1, 0);
            }
            values[slot] += n;
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        write.execute(params![grain, bucket, scope, name, bytes])?;
    }
    let mut wait = conn.prepare_cached(
        "INSERT INTO waiting (trigger, channel, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (trigger, channel) DO UPDATE SET value = value + excluded.value",
    )?;
    for ((trigger, channel), n) in &d.waiting {
        wait.execute(params![&**trigger, &**channel, n])?;
    }
    // One read and one write per sketch touched, however many users the batch saw.
    let mut sketches: Vec<((i64, i64), Sketch)> = Vec::new();
    for (hour, o) in &d.users {
        for at in [(HOUR, *hour), (DAY, hour.div_euclid(24))] {
            match sketches.iter_mut().find(|(k, _)| *k == at) {
                Some((_, s)) => s.apply(*o),
                None => {
                    let mut s = read_sketch(conn, at)?.unwrap_or_default();
                    s.apply(*o);
                    sketches.push((at, s));
                }
            }
        }
    }
    let mut put = conn.prepare_cached(
        "INSERT INTO user_sketches (grain, bucket, registers) VALUES (?1, ?2, ?3)
         ON CONFLICT (grain, bucket) DO UPDATE SET registers = excluded.registers",
    )?;
    for ((grain, bucket), s) in sketches {
        put.execute(params![grain, bucket, s.as_bytes()])?;
    }
    Ok(())
}

fn read_sketch(conn: &Connection, (grain, bucket): (i64, i64)) -> rusqlite::Result<Option<Sketch>> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT registers FROM user_sketches WHERE grain = ?1 AND bucket = ?2")?
        .query_row(params![grain, bucket], |r| r.get(0))
        .optional()?;
    // A damaged sketch starts over rather than failing every save.
    Ok(bytes.and_then(|b| Sketch::from_bytes(&b)))
}

/// The sums over a period: daily rows for its whole days, hourly rows for the hours around.
fn read(conn: &Connection, period: Period) -> rusqlite::Result<Sums> {
    let (days, edges) = period.split_days();
    let mut ranges: Vec<(i64, Span)> = edges.into_iter().map(|e| (HOUR, e)).collect();
    ranges.extend(days.map(|d| (DAY, d)));
    // Each (scope, name)'s vector summed over the period, by `scope NUL name`.
    let mut totals: HashMap<String, Vec<i64>> = HashMap::new();
    let mut id = String::new();
    let mut rows = conn.prepare_cached(
        "SELECT scope, name, slots FROM counters WHERE grain = ?1 AND bucket >= ?2 AND bucket < ?3",
    )?;
    let mut users = Sketch::default();
    let mut sketches = conn.prepare_cached(
        "SELECT registers FROM user_sketches WHERE grain = ?1 AND bucket >= ?2 AND bucket < ?3",
    )?;
    for (grain, (from, to)) in ranges {
        let mut found = rows.query(params![grain, from, to])?;
        while let Some(r) = found.next()? {
            let scope = r.get_ref(0)?.as_str().unwrap_or_default();
            let name = r.get_ref(1)?.as_str().unwrap_or_default();
            let bytes = r.get_ref(2)?.as_blob().unwrap_or_default();
            id.clear();
            id.push_str(scope);
            id.push('\0');
            id.push_str(name);
            if !totals.contains_key(id.as_str()) {
                totals.insert(id.clone(), Vec::new());
            }
            let Some(sum) = totals.get_mut(id.as_str()) else {
                continue;
            };
            for (i, v) in decode_slots(bytes).enumerate() {
                match sum.get_mut(i) {
                    Some(s) => *s += v,
                    None => sum.push(v),
                }
            }
        }
        let mut found = sketches.query(params![grain, from, to])?;
        while let Some(r) = found.next()? {
            if let Some(s) = Sketch::from_bytes(r.get_ref(0)?.as_blob().unwrap_or_default()) {
                users.merge(&s);
            }
        }
    }
    let mut sums = Sums::default();
    let mut slots = conn.prepare_cached(
        "SELECT slot, variant, part, field FROM counter_slots WHERE scope = ?1 AND name = ?2",
    )?;
    for (id, values) in totals {
        let (scope, name) = id.split_once('\0').unwrap_or_default();
        let mut found = slots.query(params![scope, name])?;
        while let Some(r) = found.next()? {
            let slot: i64 = r.get(0)?;
            let Some(&n) = usize::try_from(slot).ok().and_then(|s| values.get(s)) else {
                continue;
            };
            let (variant, part, field): (String, String, String) =
                (r.get(1)?, r.get(2)?, r.get(3)?);
            // A key this build does not know (written by a newer nudge) is left out.
            if let Some(key) = Key::from_parts(scope, name, &variant, &part, &field) {
                *sums.counts.entry(key).or_default() += n;
            }
        }
    }
    sums.users = users.estimate();
    let mut waiting =
        conn.prepare_cached("SELECT trigger, SUM(value) FROM waiting GROUP BY trigger")?;
    let mut found = waiting.query([])?;
    while let Some(r) = found.next()? {
        let trigger: String = r.get(0)?;
        sums.waiting.insert(trigger.into(), r.get(1)?);
    }
    Ok(sums)
}

impl ReportStore for SqliteStore {
    async fn report_sums(&self, period: Period) -> Result<Sums, StoreError> {
        const CONTEXT: &str = "read report counters";
        self.writer
            .read(CONTEXT, move |conn| {
                read(conn, period).map_err(sqlite(CONTEXT))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use nudge_core::insights::{Deltas, Field, Key, Period, Scope};
    use nudge_service::ports::{SaveRequest, UserStore, UserWrite};

    use super::*;
    use crate::store::test_support::TempDir;

    const H: i64 = 3_600_000;

    fn sent(trigger: &str, at_hour: i64, n: i64, d: &mut Deltas) {
        let key = Key::new(Scope::Trigger, trigger, "default", "email", Field::Sent);
        *d.counts.entry((key, at_hour)).or_default() += n;
    }

    fn save<'a>(user: &'a str, expected: Option<u64>, counts: &'a Deltas) -> SaveRequest<'a> {
        SaveRequest {
            user_id: user,
            expected,
            write: UserWrite {
                state: b"s",
                outbox: &[],
                message_ids: &[],
                now: 0,
                counts,
            },
        }
    }

    fn sent_in(sums: &Sums, trigger: &str) -> i64 {
        let key = Key::new(Scope::Trigger, trigger, "default", "email", Field::Sent);
        sums.counts.get(&key).copied().unwrap_or(0)
    }

    #[tokio::test]
    async fn a_schema_1_file_gains_the_counters() {
        let dir = TempDir::new("counters-v1");
        {
            let store = dir.open();
            store
                .writer
                .write("test", |conn| {
                    conn.execute_batch(
                        "DROP TABLE counters; DROP TABLE counter_slots; DROP TABLE waiting;
                         DROP TABLE user_sketches; PRAGMA user_version = 1;",
                    )
                    .map_err(sqlite("test"))
                })
                .await
                .unwrap();
        }
        let store = dir.open();
        let mut d = Deltas::default();
        sent("t", 5, 3, &mut d);
        store.save_many(&[save("a", None, &d)]).await.unwrap();
        let sums = store
            .report_sums(Period::covering(0, 24 * H))
            .await
            .unwrap();
        assert_eq!(sent_in(&sums, "t"), 3);
    }
}
