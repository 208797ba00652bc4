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
//! Files: `record.rs` the framing, `reader.rs` the reader, `recovery.rs` the start-up checks,
//! `tests.rs` the tests of the whole.

mod reader;
mod record;
mod recovery;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::crash_point::{self, Point};
use nudge_service::bus::AcceptedEvent;
use tokio::sync::{watch, Notify};
use tracing::{error, warn};

pub use reader::{Appended, JournalReader};
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
        if crash_point::fires(Point::JournalAppend) {
            let _ = file.write_all(&buf[..buf.len() / 2]);
            crash_point::crash();
        }
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
mod tests;
