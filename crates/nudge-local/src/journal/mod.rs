//! The ingest journal of `nudge serve`: accepted events are appended to segment files before
//! ingest answers, and evaluate reads them back from there, at its own pace.
//!
//! Why a journal and not the SQLite queue: accepting an event must be cheap and must never
//! wait on evaluation. An append is one `write` of the request's records to the end of a file
//! (no B-tree, no second thread, no delete later); SQLite's writer thread is left to evaluate.
//! A burst faster than evaluation queues on disk (bounded by `max_backlog` events), not in
//! memory: the reader keeps at most `max_in_flight` events handed out at once.
//!
//! Durability is SQLite's `synchronous=NORMAL` in WAL mode: a record whose `write` returned is
//! in the OS's page cache and survives the process being killed (`kill -9`, OOM, panic); a
//! background sync every [`SYNC_EVERY`] bounds what a power loss can take.
//!
//! Layout: `<data>/journal/<first seq, 20 digits>.seg` files of records
//! `[payload length: u32 LE][xxh3 of payload, low 32 bits: u32 LE][payload: AcceptedEvent JSON]`
//! (a record's sequence number is its segment's first one plus its position), and
//! `<data>/journal/checkpoint` with the low watermark: every record below it is handled.
//! Records complete out of order (many evaluate workers); the watermark moves over the
//! completed prefix, segments wholly below it are deleted, and at start-up reading resumes at
//! the watermark (records after it handled already come again and evaluate skips them by
//! messageId). What start-up finds damaged, and what it does, is [`recovery`]'s.
//!
//! Files: `record.rs` the framing, `reader.rs` the reader, `recovery.rs` the start-up checks.

mod reader;
mod record;
mod recovery;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nudge_service::bus::AcceptedEvent;
use tokio::sync::{watch, Notify};
use tracing::{error, warn};

pub use reader::JournalReader;
pub use recovery::{Damage, SegmentDamage};

use record::{checksum, encode_record};

/// How big the journal may grow, in records and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Records appended and not yet completed, at most: beyond it appends wait.
    pub max_backlog: u64,
    /// Records handed to evaluate and not yet completed, at most (bounds memory).
    pub max_in_flight: u64,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// How long an append waits for room in a full backlog before it is refused (the client
    /// is told to come back later: HTTP 429 with `Retry-After`).
    pub full_wait: Duration,
}

impl Limits {
    /// The defaults of `nudge serve` with the given backlog bound.
    pub fn with_backlog(max_backlog: u64) -> Limits {
        Limits {
            max_backlog,
            max_in_flight: 20_000,
            segment_bytes: 64 * 1024 * 1024,
            full_wait: Duration::from_secs(2),
        }
    }
}
/// How often the watermark is saved, finished segments deleted and the tail synced to disk.
pub const SYNC_EVERY: Duration = Duration::from_millis(500);

/// A journal failure.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encode an accepted event: {0}")]
    Encode(#[from] serde_json::Error),
    /// Segments are damaged (not a torn tail: intact records lie behind the damage, or
    /// records are missing); nothing was changed.
    #[error("the journal is damaged: {}. Nothing was changed. Start with --salvage-journal to keep every intact record (the damaged ones are lost; originals are kept in journal/damaged/), or restore the files", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Damaged(Vec<SegmentDamage>),
    /// The backlog stayed full for the whole wait; nothing was appended.
    #[error("the backlog is full ({backlog} events wait for evaluation); retry in {}s", retry_after.as_secs())]
    Full { backlog: u64, retry_after: Duration },
}

/// When a refused append may find room: the records over the bound divided by the pace at
/// which evaluation completed them during the wait; 1 s at least, 60 s at most (also when
/// evaluation made no progress at all).
fn retry_after(excess: u64, completed: u64, waited: Duration) -> Duration {
    let secs = if completed == 0 {
        60.0
    } else {
        excess as f64 * waited.as_secs_f64() / completed as f64
    };
    Duration::from_secs(secs.ceil().clamp(1.0, 60.0) as u64)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

struct Shared {
    dir: PathBuf,
    tail: Mutex<Tail>,
    progress: Mutex<Progress>,
    /// The low watermark, for those waiting on it (ingest when the backlog is full, the
    /// reader when too many records are in flight).
    low: watch::Sender<u64>,
    /// Wakes the reader after an append.
    appended: Notify,
    limits: Limits,
}

/// The appending end and the list of live segments.
struct Tail {
    segments: VecDeque<Segment>,
    /// The last segment's file, opened for appending; `None` after a failed write that could
    /// not be undone (the next append starts a new segment).
    file: Option<File>,
    /// Sequence number of the next record appended.
    next_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    first_seq: u64,
    /// Bytes of whole records.
    len: u64,
    records: u64,
}

/// Which records are completed.
struct Progress {
    /// Every record below is completed.
    low: u64,
    /// Completion of the records handed out, from `low` on.
    window: VecDeque<bool>,
    /// The watermark last written to the checkpoint file.
    saved: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`: drops segments below the saved watermark,
    /// checks the others (cutting a torn tail), and refuses damaged ones
    /// ([`JournalError::Damaged`]).
    pub fn open(dir: &Path, limits: Limits) -> Result<Journal, JournalError> {
        Journal::open_with(dir, limits, Damage::Refuse)
    }

    /// [`Journal::open`], saying what to do with damaged segments.
    pub fn open_with(dir: &Path, limits: Limits, damage: Damage) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut saved = read_checkpoint(&dir.join("checkpoint"));
        let mut firsts = list_segments(dir)?;
        firsts.sort_unstable();
        let mut segments = VecDeque::new();
        let mut damaged = Vec::new();
        for (i, first) in firsts.iter().enumerate() {
            let next = firsts.get(i + 1);
            // Wholly below the watermark: handled; a crash came before its deletion.
            if next.is_some_and(|next| saved.is_some_and(|low| *next <= low)) {
                let path = segment_path(dir, *first);
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            let expected = next.map(|next| next - first);
            match recovery::check_segment(dir, *first, expected)? {
                Ok(seg) => segments.push_back(seg),
                Err(d) => damaged.push((*first, expected, d)),
            }
        }
        if !damaged.is_empty() {
            if damage == Damage::Refuse {
                return Err(JournalError::Damaged(
                    damaged.into_iter().map(|(_, _, d)| d).collect(),
                ));
            }
            for (first, expected, d) in &damaged {
                let seg = recovery::salvage_segment(dir, d, *first, *expected)?;
                let at = segments.partition_point(|s| s.first_seq < *first);
                segments.insert(at, seg);
            }
            // Read the salvaged segments again from their start: their records may sit at
            // other positions now (evaluate skips those it applied, by messageId).
            let from = damaged.iter().map(|(first, ..)| *first).min();
            if let (Some(from), Some(low)) = (from, saved) {
                if from < low {
                    write_checkpoint(dir, from)?;
                    saved = Some(from);
                }
            }
        }
        let next_seq = segments
            .back()
            .map_or(saved.unwrap_or(1), |s| s.first_seq + s.records)
            .max(1);
        let first = segments.front().map_or(next_seq, |s| s.first_seq);
        // Without a (readable) checkpoint everything still on disk is read again.
        let low = saved.unwrap_or(first).clamp(first, next_seq);
        let file = match segments.back() {
            Some(last) if last.len < limits.segment_bytes => {
                let path = segment_path(dir, last.first_seq);
                Some(
                    OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(io(&path))?,
                )
            }
            _ => None,
        };
        let (low_tx, _) = watch::channel(low);
        Ok(Journal {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                tail: Mutex::new(Tail {
                    segments,
                    file,
                    next_seq,
                }),
                progress: Mutex::new(Progress {
                    low,
                    window: VecDeque::new(),
                    saved: saved.unwrap_or(0),
                }),
                low: low_tx,
                appended: Notify::new(),
                limits: Limits {
                    max_backlog: limits.max_backlog.max(1),
                    max_in_flight: limits.max_in_flight.max(1),
                    segment_bytes: limits.segment_bytes.max(1),
                    full_wait: limits.full_wait,
                },
            }),
        })
    }

    /// Appends `events` as one write; once it returns `Ok` they survive a crash of the
    /// process. Waits first while the backlog is full, at most [`Limits::full_wait`]; then
    /// refuses with [`JournalError::Full`] and an estimate of when there will be room.
    pub async fn append(&self, events: &[AcceptedEvent]) -> Result<(), JournalError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(events.len() * 512);
        for e in events {
            encode_record(&mut buf, e)?;
        }
        let n = events.len() as u64;
        let mut low = self.shared.low.subscribe();
        let max = self.shared.limits.max_backlog;
        // A request larger than the whole bound goes in once the backlog is empty.
        let room = |low: u64| {
            let backlog = lock(&self.shared.tail).next_seq.saturating_sub(low);
            backlog == 0 || backlog + n <= max
        };
        let low_before = *low.borrow_and_update();
        if !room(low_before) {
            let wait = self.shared.limits.full_wait;
            let started = std::time::Instant::now();
            // The sender lives as long as `self`, so `wait_for` ends only on room or timeout.
            let waited = tokio::time::timeout(wait, low.wait_for(|l| room(*l))).await;
            if waited.is_err() {
                let low_now = *self.shared.low.borrow();
                let backlog = self.next_seq().saturating_sub(low_now);
                return Err(JournalError::Full {
                    backlog,
                    retry_after: retry_after(
                        (backlog + n).saturating_sub(max),
                        low_now - low_before,
                        started.elapsed(),
                    ),
                });
            }
        }
        self.write(&buf, n)?;
        self.shared.appended.notify_one();
        Ok(())
    }

    fn write(&self, buf: &[u8], records: u64) -> Result<(), JournalError> {
        let dir = &self.shared.dir;
        let mut tail = lock(&self.shared.tail);
        let tail = &mut *tail;
        let full = tail
            .segments
            .back()
            .is_none_or(|s| s.len >= self.shared.limits.segment_bytes);
        if tail.file.is_none() || full {
            let first_seq = tail.next_seq;
            let path = segment_path(dir, first_seq);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            if let Some(last) = tail.segments.back() {
                // A segment ends where the next begins: make the old one's end match.
                let _ = truncate(&segment_path(dir, last.first_seq), last.len);
            }
            tail.segments.push_back(Segment {
                first_seq,
                len: 0,
                records: 0,
            });
            tail.file = Some(file);
        }
        let (Some(file), Some(seg)) = (tail.file.as_mut(), tail.segments.back_mut()) else {
            unreachable!("a tail segment was just ensured");
        };
        if let Err(e) = file.write_all(buf) {
            // Undo a partial write so the segment still ends on a record; failing that, the
            // next append starts a new segment and readers stop at this one's last record.
            let path = segment_path(dir, seg.first_seq);
            if file.set_len(seg.len).is_err() {
                tail.file = None;
            }
            return Err(io(&path)(e));
        }
        seg.len += buf.len() as u64;
        seg.records += records;
        tail.next_seq += records;
        Ok(())
    }

    /// Sequence number of the next record appended.
    pub fn next_seq(&self) -> u64 {
        lock(&self.shared.tail).next_seq
    }

    /// Records appended and not yet completed.
    pub fn backlog(&self) -> u64 {
        let next = self.next_seq();
        next.saturating_sub(*self.shared.low.borrow())
    }

    /// A reader from the low watermark on (at start-up: what was not handled before).
    pub fn reader(&self) -> JournalReader {
        let low = lock(&self.shared.progress).low;
        JournalReader {
            journal: self.clone(),
            next_seq: low,
            position: None,
        }
    }

    /// Marks records handled; the watermark moves over the completed prefix.
    pub fn complete(&self, seqs: &[u64]) {
        let mut p = lock(&self.shared.progress);
        let low = p.low;
        for &seq in seqs {
            match seq
                .checked_sub(low)
                .and_then(|i| p.window.get_mut(i as usize))
            {
                Some(done) => *done = true,
                None => warn!(seq, low, "completion of a record not handed out"),
            }
        }
        let mut moved = 0;
        while p.window.front() == Some(&true) {
            p.window.pop_front();
            moved += 1;
        }
        if moved > 0 {
            p.low += moved;
            let low = p.low;
            drop(p);
            self.shared.low.send_replace(low);
        }
    }

    /// Registers `n` records from `first` as handed out (in order, by the one reader).
    fn hand_out(&self, first: u64, n: u64) {
        let mut p = lock(&self.shared.progress);
        let expected = p.low + p.window.len() as u64;
        if first != expected {
            // Cannot happen with one reader reading in order; keeping the watermark honest
            // matters more than this batch, so fill the gap as not handled.
            error!(first, expected, "journal records handed out out of order");
        }
        let end = first + n;
        while p.low + (p.window.len() as u64) < end {
            p.window.push_back(false);
        }
    }

    /// Waits until fewer than `max_in_flight` records are handed out and not completed
    /// before `next`.
    async fn room_in_flight(&self, next: u64) {
        let max = self.shared.limits.max_in_flight;
        let mut low = self.shared.low.subscribe();
        let _ = low.wait_for(|low| next.saturating_sub(*low) < max).await;
    }

    /// Saves the watermark, deletes segments wholly below it, and syncs the tail to disk.
    /// Called every [`SYNC_EVERY`]; blocking file work.
    pub fn maintain(&self) -> Result<(), JournalError> {
        let dir = &self.shared.dir;
        let (low, saved) = {
            let p = lock(&self.shared.progress);
            (p.low, p.saved)
        };
        let (tail_file, doomed) = {
            let mut tail = lock(&self.shared.tail);
            let mut doomed = Vec::new();
            while tail.segments.len() > 1 && tail.segments[1].first_seq <= low {
                if let Some(s) = tail.segments.pop_front() {
                    doomed.push(s.first_seq);
                }
            }
            let file = tail.file.as_ref().map(File::try_clone);
            (file, doomed)
        };
        if let Some(file) = tail_file {
            let file = file.map_err(io(dir))?;
            file.sync_data().map_err(io(dir))?;
        }
        if low != saved {
            write_checkpoint(dir, low)?;
            lock(&self.shared.progress).saved = low;
        }
        // After the checkpoint: a crash in between must not find the watermark below a
        // deleted segment (start-up would miss nothing, but read from a missing file).
        for first in doomed {
            let path = segment_path(dir, first);
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
        Ok(())
    }

    /// Waits for the next append (or returns at once if one came since the last call).
    async fn appended(&self) {
        self.shared.appended.notified().await;
    }

    fn segment_after(&self, first_seq: Option<u64>, seq: u64) -> Option<Segment> {
        let tail = lock(&self.shared.tail);
        match first_seq {
            Some(first) => tail
                .segments
                .iter()
                .position(|s| s.first_seq == first)
                .and_then(|i| tail.segments.get(i + 1))
                .copied(),
            None => tail
                .segments
                .iter()
                .rev()
                .find(|s| s.first_seq <= seq)
                .or(tail.segments.front())
                .copied(),
        }
    }

    fn segment(&self, first_seq: u64) -> Option<Segment> {
        lock(&self.shared.tail)
            .segments
            .iter()
            .find(|s| s.first_seq == first_seq)
            .copied()
    }
}

fn truncate(path: &Path, len: u64) -> std::io::Result<()> {
    OpenOptions::new().write(true).open(path)?.set_len(len)
}

fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.seg"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        out.push(first);
    }
    Ok(out)
}

/// The saved watermark, if the file is there and intact.
fn read_checkpoint(path: &Path) -> Option<u64> {
    let bytes = std::fs::read(path).ok()?;
    let low = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let sum = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?);
    (checksum(&low.to_le_bytes()) == sum).then_some(low)
}

/// Writes the watermark to a new file and renames it over the old one.
fn write_checkpoint(dir: &Path, low: u64) -> Result<(), JournalError> {
    let tmp = dir.join("checkpoint.tmp");
    let mut bytes = low.to_le_bytes().to_vec();
    bytes.extend_from_slice(&checksum(&low.to_le_bytes()).to_le_bytes());
    std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
    let path = dir.join("checkpoint");
    std::fs::rename(&tmp, &path).map_err(io(&path))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::store::test_support::TempDir;

    fn event(n: u64) -> AcceptedEvent {
        AcceptedEvent {
            user_id: format!("u{}", n % 7),
            message_id: format!("m{n}"),
            at: n as i64,
            received_at: n as i64,
            message: json!({"type": "track", "event": "Ping", "messageId": format!("m{n}")}),
        }
    }

    fn events(range: std::ops::Range<u64>) -> Vec<AcceptedEvent> {
        range.map(event).collect()
    }

    /// Appends one request per event (a segment is only closed between appends).
    async fn append_each(j: &Journal, range: std::ops::Range<u64>) {
        for n in range {
            j.append(&[event(n)]).await.unwrap();
        }
    }

    fn small(max_backlog: u64) -> Limits {
        Limits {
            max_backlog,
            max_in_flight: 1_000,
            // A few records a segment, so tests cross segment boundaries.
            segment_bytes: 600,
            full_wait: Duration::from_secs(30),
        }
    }

    fn open(dir: &TempDir, limits: Limits) -> Journal {
        Journal::open(&dir.path().join("journal"), limits).unwrap()
    }

    /// Reads what is there now (without waiting for more): message ids with their seqs.
    async fn read_now(reader: &mut JournalReader) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while reader.journal.next_seq() > reader.next_seq() {
            let (batch, lost) = reader.next_batch(3).await;
            assert_eq!(lost, 0);
            out.extend(batch.into_iter().map(|(seq, e)| (seq, e.message_id)));
        }
        out
    }

    fn segment_files(dir: &TempDir) -> usize {
        list_segments(&dir.path().join("journal")).unwrap().len()
    }

    #[tokio::test]
    async fn appended_events_are_read_back_in_order_across_segments() {
        let dir = TempDir::new("journal-order");
        let j = open(&dir, small(1_000));
        j.append(&events(0..5)).await.unwrap();
        append_each(&j, 5..15).await;
        j.append(&events(15..20)).await.unwrap();

        let got = read_now(&mut j.reader()).await;

        let ids: Vec<String> = got.iter().map(|(_, id)| id.clone()).collect();
        let want: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
        assert_eq!(ids, want);
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        assert!(segment_files(&dir) > 2, "{}", segment_files(&dir));
        assert_eq!(j.backlog(), 20);
    }

    #[tokio::test]
    async fn the_watermark_moves_over_the_completed_prefix_only() {
        let dir = TempDir::new("journal-watermark");
        let j = open(&dir, small(1_000));
        j.append(&events(0..4)).await.unwrap();
        let mut r = j.reader();
        read_now(&mut r).await;

        j.complete(&[2, 4]);
        assert_eq!(j.backlog(), 4);
        j.complete(&[1]);
        assert_eq!(j.backlog(), 2);
        j.complete(&[3]);
        assert_eq!(j.backlog(), 0);
    }

    #[tokio::test]
    async fn a_restart_reads_again_what_was_not_completed_and_nothing_else() {
        let dir = TempDir::new("journal-restart");
        {
            let j = open(&dir, small(1_000));
            append_each(&j, 0..12).await;
            let mut r = j.reader();
            read_now(&mut r).await;
            j.complete(&(1..=7).collect::<Vec<_>>());
            j.complete(&[9, 10]);
            j.maintain().unwrap();
            // Completed after the last save: read again after the restart (evaluate skips
            // them by messageId).
            j.complete(&[8]);
        }

        let j = open(&dir, small(1_000));
        let again = read_now(&mut j.reader()).await;

        let ids: Vec<&str> = again.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["m7", "m8", "m9", "m10", "m11"]);
        assert_eq!(again[0].0, 8);
        // New appends continue the numbering.
        j.append(&events(12..13)).await.unwrap();
        assert_eq!(j.next_seq(), 14);
    }

    #[tokio::test]
    async fn handled_segments_are_deleted_and_a_restart_then_reads_nothing() {
        let dir = TempDir::new("journal-delete");
        let j = open(&dir, small(1_000));
        append_each(&j, 0..30).await;
        let before = segment_files(&dir);
        let mut r = j.reader();
        read_now(&mut r).await;
        j.complete(&(1..=30).collect::<Vec<_>>());
        j.maintain().unwrap();

        assert!(before > 3);
        assert_eq!(segment_files(&dir), 1, "the tail segment stays");
        drop((r, j));
        let j = open(&dir, small(1_000));
        assert!(read_now(&mut j.reader()).await.is_empty());
        assert_eq!(j.next_seq(), 31);
    }

    #[tokio::test]
    async fn a_torn_record_at_the_end_is_cut_off_at_start_up() {
        let dir = TempDir::new("journal-torn");
        {
            let j = open(&dir, Limits::with_backlog(1_000));
            j.append(&events(0..3)).await.unwrap();
        }
        // A crash inside `write`: half of a fourth record.
        let seg = segment_path(&dir.path().join("journal"), 1);
        let mut record = Vec::new();
        encode_record(&mut record, &event(3)).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&record[..record.len() / 2]).unwrap();
        drop(f);

        let j = open(&dir, Limits::with_backlog(1_000));
        j.append(&events(4..5)).await.unwrap();
        let got = read_now(&mut j.reader()).await;

        let ids: Vec<&str> = got.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m4"]);
    }

    /// Reads everything appended, counting what is lost.
    async fn read_all(j: &Journal, r: &mut JournalReader) -> (BTreeSet<String>, u64) {
        let mut ids = BTreeSet::new();
        let mut lost = 0;
        while r.next_seq() < j.next_seq() {
            let (batch, l) = r.next_batch(100).await;
            lost += l;
            ids.extend(batch.into_iter().map(|(_, e)| e.message_id));
        }
        (ids, lost)
    }

    fn ids(range: std::ops::Range<u64>) -> BTreeSet<String> {
        range.map(|n| format!("m{n}")).collect()
    }

    /// Flips a byte inside the payload of the `nth` record (0-based) of segment `first`.
    fn flip(dir: &TempDir, first: u64, nth: usize) {
        let path = segment_path(&dir.path().join("journal"), first);
        let mut bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        for _ in 0..nth {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            at += record::HEADER + len;
        }
        bytes[at + record::HEADER + 3] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
    }

    fn sorted_segments(dir: &TempDir) -> Vec<u64> {
        let mut firsts = list_segments(&dir.path().join("journal")).unwrap();
        firsts.sort_unstable();
        firsts
    }

    #[tokio::test]
    async fn damage_found_while_running_loses_only_the_damaged_record() {
        let dir = TempDir::new("journal-damaged");
        let j = open(&dir, small(1_000));
        append_each(&j, 0..30).await;
        let firsts = sorted_segments(&dir);
        // The second segment's first record.
        flip(&dir, firsts[1], 0);

        let mut r = j.reader();
        let (got, lost) = read_all(&j, &mut r).await;

        assert_eq!(lost, 1);
        let damaged = format!("m{}", firsts[1] - 1);
        let mut want = ids(0..30);
        want.remove(&damaged);
        assert_eq!(got, want);
        // The lost record counts as handled: the watermark is not held back by it.
        let handed: Vec<u64> = (1..=30).collect();
        j.complete(&handed);
        assert_eq!(j.backlog(), 0);
    }

    #[tokio::test]
    async fn damage_in_the_last_segment_stops_the_start_naming_the_file_and_changes_nothing() {
        let dir = TempDir::new("journal-damaged-start");
        {
            let j = open(&dir, Limits::with_backlog(1_000));
            j.append(&events(0..40)).await.unwrap();
        }
        flip(&dir, 1, 10);
        let seg = segment_path(&dir.path().join("journal"), 1);
        let before = std::fs::read(&seg).unwrap();

        let err = match Journal::open(&dir.path().join("journal"), Limits::with_backlog(1_000)) {
            Err(e) => e,
            Ok(_) => panic!("a damaged journal opened"),
        };
        let JournalError::Damaged(found) = &err else {
            panic!("{err}");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, seg);
        assert_eq!(found[0].records_behind, 29);
        let text = err.to_string();
        assert!(
            text.contains(&seg.display().to_string()) && text.contains("--salvage-journal"),
            "{text}"
        );
        assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing changed");
    }

    #[tokio::test]
    async fn a_salvage_keeps_every_intact_record_and_the_original_bytes() {
        let dir = TempDir::new("journal-salvage");
        {
            let j = open(&dir, small(1_000));
            append_each(&j, 0..30).await;
            // The first ten are handled and the watermark saved.
            let mut r = j.reader();
            read_now(&mut r).await;
            j.complete(&(1..=10).collect::<Vec<_>>());
            j.maintain().unwrap();
        }
        let firsts = sorted_segments(&dir);
        // Damage in a middle segment and in the last one.
        let middle = firsts[firsts.len() / 2];
        let last = *firsts.last().unwrap();
        flip(&dir, middle, 0);
        flip(&dir, last, 0);
        let journal = dir.path().join("journal");
        let Err(JournalError::Damaged(found)) = Journal::open(&journal, small(1_000)) else {
            panic!("damage not found");
        };
        assert_eq!(found.len(), 2);

        let j = Journal::open_with(&journal, small(1_000), Damage::Salvage).unwrap();
        let mut r = j.reader();
        let (got, lost) = read_all(&j, &mut r).await;
        let damaged: BTreeSet<String> = [middle, last]
            .iter()
            .map(|f| format!("m{}", f - 1))
            .collect();
        // Both salvaged segments lie above the saved watermark: reading resumes there, and
        // everything but the two damaged records comes. The middle segment's is counted lost
        // (its place in the sequence says how many records it held); the last segment ends
        // where its intact records do.
        let want: BTreeSet<String> = ids(10..30).difference(&damaged).cloned().collect();
        assert_eq!(got, want);
        assert_eq!(lost, 1);
        for f in [middle, last] {
            let kept = journal.join("damaged").join(format!("{f:020}.seg"));
            assert!(kept.exists(), "{} kept", kept.display());
        }
        // New appends carry on after what was there.
        j.append(&events(30..31)).await.unwrap();
        let (more, _) = r.next_batch(10).await;
        assert_eq!(more[0].1.message_id, "m30");
    }

    #[tokio::test]
    async fn a_salvaged_segment_below_the_watermark_is_read_again_from_its_start() {
        let dir = TempDir::new("journal-salvage-handled");
        let firsts = {
            let j = open(&dir, small(1_000));
            append_each(&j, 0..30).await;
            let mut r = j.reader();
            read_now(&mut r).await;
            // The watermark lies inside the damaged segment: its position there is unsure
            // once the segment is rewritten.
            let firsts = sorted_segments(&dir);
            j.complete(&(1..firsts[2] + 1).collect::<Vec<_>>());
            j.maintain().unwrap();
            firsts
        };
        flip(&dir, firsts[2], 1);
        let journal = dir.path().join("journal");
        let j = Journal::open_with(&journal, small(1_000), Damage::Salvage).unwrap();
        let (got, lost) = read_all(&j, &mut j.reader()).await;
        assert_eq!(lost, 1);
        let damaged = format!("m{}", firsts[2]);
        let want: BTreeSet<String> = ids(firsts[2] - 1..30)
            .into_iter()
            .filter(|m| *m != damaged)
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_middle_segment_cut_short_is_damage_with_its_missing_records_named() {
        let dir = TempDir::new("journal-short");
        {
            let j = open(&dir, small(1_000));
            append_each(&j, 0..30).await;
        }
        let firsts = sorted_segments(&dir);
        let path = segment_path(&dir.path().join("journal"), firsts[1]);
        let len = std::fs::metadata(&path).unwrap().len();
        let one = {
            let mut b = Vec::new();
            encode_record(&mut b, &event(0)).unwrap();
            b.len() as u64
        };
        // Lose its last record whole (a lost page at the end of a file).
        truncate(&path, len - one).unwrap();
        let Err(JournalError::Damaged(found)) =
            Journal::open(&dir.path().join("journal"), small(1_000))
        else {
            panic!("damage not found");
        };
        assert_eq!(found[0].missing, 1);
        assert!(
            found[0].to_string().contains("1 records missing"),
            "{}",
            found[0]
        );
    }

    #[tokio::test]
    async fn appends_wait_while_the_backlog_is_full() {
        let dir = TempDir::new("journal-backpressure");
        let j = open(&dir, small(5));
        j.append(&events(0..4)).await.unwrap();
        let mut r = j.reader();
        read_now(&mut r).await;

        let two = events(4..6);
        let blocked = tokio::time::timeout(Duration::from_millis(100), j.append(&two));
        assert!(blocked.await.is_err(), "the append should wait");
        j.complete(&[1]);
        tokio::time::timeout(Duration::from_secs(5), j.append(&two))
            .await
            .expect("room after a completion")
            .unwrap();
        assert_eq!(j.backlog(), 5);
    }

    #[tokio::test]
    async fn an_append_that_finds_no_room_in_time_is_refused_with_nothing_written() {
        let dir = TempDir::new("journal-full");
        let limits = Limits {
            full_wait: Duration::from_millis(50),
            ..small(5)
        };
        let j = open(&dir, limits);
        j.append(&events(0..5)).await.unwrap();
        let refused = j.append(&events(5..7)).await;
        match refused {
            Err(JournalError::Full {
                backlog,
                retry_after,
            }) => {
                assert_eq!(backlog, 5);
                // Evaluation made no progress during the wait: the longest advice.
                assert_eq!(retry_after, Duration::from_secs(60));
            }
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(j.next_seq(), 6, "nothing of the refused append was written");
        let mut r = j.reader();
        let ids: Vec<String> = read_now(&mut r).await.into_iter().map(|(_, m)| m).collect();
        assert_eq!(ids.len(), 5);
    }

    #[test]
    fn retry_advice_follows_the_pace_of_evaluation() {
        // 1,000 over the bound, 500 completed in 1 s: 2 s.
        assert_eq!(
            retry_after(1_000, 500, Duration::from_secs(1)),
            Duration::from_secs(2)
        );
        // Fast evaluation: at least a second.
        assert_eq!(
            retry_after(10, 1_000_000, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        // Crawling or stalled: at most a minute.
        assert_eq!(
            retry_after(1_000_000, 1, Duration::from_secs(1)),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_after(5, 0, Duration::from_secs(2)),
            Duration::from_secs(60)
        );
    }

    #[tokio::test]
    async fn the_reader_hands_out_at_most_max_in_flight() {
        let dir = TempDir::new("journal-in-flight");
        let limits = Limits {
            max_in_flight: 4,
            ..small(1_000)
        };
        let j = open(&dir, limits);
        j.append(&events(0..10)).await.unwrap();
        let mut r = j.reader();

        let (first, _) = r.next_batch(100).await;
        assert_eq!(first.len(), 4);
        let waiting = tokio::time::timeout(Duration::from_millis(100), r.next_batch(100));
        assert!(waiting.await.is_err(), "no room until something completes");
        j.complete(&[1, 2]);
        let (next, _) = r.next_batch(100).await;
        assert_eq!(next.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [5, 6]);
    }

    #[tokio::test]
    async fn the_reader_waits_for_appends() {
        let dir = TempDir::new("journal-wait");
        let j = open(&dir, small(1_000));
        let mut r = j.reader();
        let later = {
            let j = j.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                j.append(&events(0..2)).await.unwrap();
            }
        };
        let (read, _) = tokio::join!(r.next_batch(10), later);
        assert_eq!(read.0.len(), 2);
    }

    /// Random appends, completions in random order, and restarts with and without a saved
    /// watermark: every record is read at least once, and after its completion is saved,
    /// never again.
    #[tokio::test]
    async fn random_runs_with_restarts_lose_nothing() {
        let dir = TempDir::new("journal-random");
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut appended = 0u64;
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut saved_done: BTreeSet<String> = BTreeSet::new();
        for _round in 0..8 {
            let j = open(&dir, small(10_000));
            let mut r = j.reader();
            let mut done_now: Vec<(u64, String)> = Vec::new();
            let mut pending: Vec<(u64, String)> = Vec::new();
            for _ in 0..10 {
                let n = 1 + next(6);
                j.append(&events(appended..appended + n)).await.unwrap();
                appended += n;
                for (seq, id) in read_now(&mut r).await {
                    assert!(
                        !saved_done.contains(&id),
                        "{id} was completed and saved, yet read again"
                    );
                    seen.insert(id.clone());
                    pending.push((seq, id));
                }
                // Complete a random part of what is pending, in random order.
                let k = next(pending.len() as u64 + 1) as usize;
                for _ in 0..k {
                    let i = next(pending.len() as u64) as usize;
                    let (seq, id) = pending.swap_remove(i);
                    j.complete(&[seq]);
                    done_now.push((seq, id));
                }
            }
            if next(2) == 0 {
                j.maintain().unwrap();
                // What lies below the saved watermark will not come back.
                let low = *j.shared.low.borrow();
                saved_done.extend(
                    done_now
                        .iter()
                        .filter(|(seq, _)| *seq < low)
                        .map(|(_, id)| id.clone()),
                );
            }
        }
        let all: BTreeSet<String> = (0..appended).map(|n| format!("m{n}")).collect();
        assert_eq!(seen, all);
    }
}
