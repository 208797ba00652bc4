//! What the journal finds on disk at start-up, and what it does about it.
//!
//! Every segment not wholly handled is read through once and its records' checksums checked:
//! - A **torn tail** (bytes after the last intact record, with no intact record behind them)
//!   is what a crash inside `write` leaves: that write was never acknowledged, so the bytes
//!   are cut off with a warning.
//! - **Damage** (unreadable bytes with intact records behind them, or a segment holding fewer
//!   or more records than its place in the sequence says) is not what a crash leaves: the start stops
//!   with an error naming the file, and nothing is changed. Started again with salvage
//!   (`nudge serve --salvage-journal`), every intact record is kept: the segment is rewritten
//!   without the damaged bytes (the original is moved to `journal/damaged/`), and reading
//!   starts again at the segment's first record (evaluate skips what it had applied by
//!   messageId). Only records whose own bytes are damaged are lost, and they are counted;
//!   records a segment holds past the next segment's first sequence number would share their
//!   numbers with that segment's, so the salvaged copy ends where the next segment starts
//!   (the original, with them, stays in `journal/damaged/`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use super::record::{next_intact, parse_record, Parsed, HEADER, MAX_PAYLOAD};
use super::{io, segment_path, JournalError, Segment};

/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 4 * 1024 * 1024;

/// What to do with damaged segments at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Damage {
    /// Stop with [`JournalError::Damaged`], changing nothing.
    #[default]
    Refuse,
    /// Keep every intact record, drop the damaged bytes, and read the segment again.
    Salvage,
}

/// How a segment reads, start to end.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Scan {
    /// Intact records in the file, also those behind damage.
    pub records: u64,
    /// Bytes of intact records.
    pub intact_bytes: u64,
    /// Where the first intact record ends that is followed by damage, if any: the segment
    /// reads cleanly up to here.
    pub first_damage: Option<u64>,
    /// Unreadable bytes that have intact records behind them.
    pub damaged_bytes: u64,
    /// Intact records behind the first damage.
    pub records_behind: u64,
    /// Bytes after the last intact record that hold none (a torn tail).
    pub torn_tail: u64,
    /// Offset where the torn tail starts (the file's length when there is none).
    pub end_of_records: u64,
}

/// Reads `path` through, checking every record; with `keep`, writes the first `keep_at_most`
/// intact records to it in order (a salvaged copy). Memory stays at one read chunk whatever
/// the file's size.
pub(super) fn scan_segment(
    path: &Path,
    mut keep: Option<&mut dyn Write>,
    keep_at_most: u64,
) -> Result<Scan, JournalError> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut scan = Scan::default();
    let mut at = 0u64;
    let mut buf = Vec::new();
    'file: while at < len {
        let want = (len - at).min((READ_CHUNK + HEADER + MAX_PAYLOAD) as u64) as usize;
        buf.resize(want, 0);
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(io(path))?;
        let mut i = 0;
        loop {
            match parse_record(&buf[i..]) {
                Parsed::Record(_, used) => {
                    if let Some(w) = keep.as_deref_mut().filter(|_| scan.records < keep_at_most) {
                        w.write_all(&buf[i..i + used]).map_err(io(path))?;
                    }
                    scan.records += 1;
                    scan.intact_bytes += used as u64;
                    if scan.first_damage.is_some() {
                        scan.records_behind += 1;
                    }
                    i += used;
                    if i >= READ_CHUNK {
                        // Read on from here (the window may end inside the next record).
                        at += i as u64;
                        continue 'file;
                    }
                }
                // The window ends inside a record that the file goes on with.
                Parsed::Short if at + (want as u64) < len => {
                    at += i as u64;
                    continue 'file;
                }
                Parsed::Short | Parsed::Broken => {
                    let bad = at + i as u64;
                    if bad >= len {
                        break 'file;
                    }
                    match next_intact(&mut file, bad, len).map_err(io(path))? {
                        Some(resume) => {
                            scan.first_damage.get_or_insert(bad);
                            scan.damaged_bytes += resume - bad;
                            at = resume;
                            continue 'file;
                        }
                        None => {
                            scan.torn_tail = len - bad;
                            scan.end_of_records = bad;
                            return Ok(scan);
                        }
                    }
                }
            }
            if i >= buf.len() {
                at += i as u64;
                continue 'file;
            }
        }
    }
    scan.end_of_records = len;
    Ok(scan)
}

/// A problem found in one segment at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDamage {
    pub path: PathBuf,
    /// Where the segment stops reading cleanly.
    pub offset: u64,
    /// Unreadable bytes with intact records behind them.
    pub damaged_bytes: u64,
    /// Intact records behind the damage (kept by a salvage).
    pub records_behind: u64,
    /// Records the segment should hold by its place in the sequence but does not.
    pub missing: u64,
    /// Records the segment holds past the next segment's first sequence number.
    pub overlapping: u64,
}

impl std::fmt::Display for SegmentDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if self.damaged_bytes > 0 {
            write!(
                f,
                "{} unreadable bytes at offset {} with {} intact records behind them",
                self.damaged_bytes, self.offset, self.records_behind
            )?;
            if self.missing > 0 {
                write!(f, "; ")?;
            }
        }
        if self.missing > 0 {
            write!(f, "{} records missing", self.missing)?;
        }
        if self.overlapping > 0 {
            if self.damaged_bytes > 0 {
                write!(f, "; ")?;
            }
            write!(
                f,
                "{} records past the next segment's first sequence number",
                self.overlapping
            )?;
        }
        Ok(())
    }
}

/// Checks the segment starting at `first_seq`; `expected` is how many records it must hold
/// (known for all but the last). Cuts a torn tail; returns the segment as it now is, or the
/// damage found (nothing changed then).
pub(super) fn check_segment(
    dir: &Path,
    first_seq: u64,
    expected: Option<u64>,
) -> Result<Result<Segment, SegmentDamage>, JournalError> {
    let path = segment_path(dir, first_seq);
    let scan = scan_segment(&path, None, 0)?;
    let missing = expected.map_or(0, |n| n.saturating_sub(scan.records));
    // More records than the place allows: read on, they would take the next segment's
    // numbers, and appends the journal's, so an event would be handed out under a number
    // already passed (found by the journal fuzz target).
    let overlapping = expected.map_or(0, |n| scan.records.saturating_sub(n));
    if scan.first_damage.is_some() || missing > 0 || overlapping > 0 {
        return Ok(Err(SegmentDamage {
            path,
            offset: scan.first_damage.unwrap_or(scan.end_of_records),
            damaged_bytes: scan.damaged_bytes,
            records_behind: scan.records_behind,
            missing,
            overlapping,
        }));
    }
    if scan.torn_tail > 0 {
        warn!(
            path = %path.display(),
            bytes = scan.torn_tail,
            "cutting an incomplete record off the end of a journal segment (a write torn by a crash, never acknowledged)"
        );
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(scan.end_of_records))
            .map_err(io(&path))?;
    }
    Ok(Ok(Segment {
        first_seq,
        len: scan.end_of_records,
        records: expected.unwrap_or(scan.records),
    }))
}

/// Rewrites a damaged segment with its intact records only; the original goes to
/// `journal/damaged/`. Returns the segment as it now is (`expected` as for
/// [`check_segment`]: the records lost count as read when the reader passes them).
pub(super) fn salvage_segment(
    dir: &Path,
    damage: &SegmentDamage,
    first_seq: u64,
    expected: Option<u64>,
) -> Result<Segment, JournalError> {
    let path = &damage.path;
    let tmp = path.with_extension("salvage");
    let scan = {
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut out = BufWriter::new(file);
        let scan = scan_segment(path, Some(&mut out), expected.unwrap_or(u64::MAX))?;
        let file = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io(&tmp))?;
        scan
    };
    let keep = dir.join("damaged");
    std::fs::create_dir_all(&keep).map_err(io(&keep))?;
    let kept = keep.join(path.file_name().unwrap_or_default());
    std::fs::rename(path, &kept).map_err(io(&kept))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    // How many records the damaged bytes held is known only where the next segment's first
    // sequence number says how many the segment had.
    let lost = expected.map(|n| n.saturating_sub(scan.records));
    let records = expected.map_or(scan.records, |n| n.min(scan.records));
    let len = std::fs::metadata(path).map_err(io(path))?.len();
    error!(
        path = %path.display(),
        original = %kept.display(),
        kept = records,
        lost = ?lost,
        left_in_original = damage.overlapping,
        damaged_bytes = scan.damaged_bytes,
        "salvaged a damaged journal segment: its intact records are read again"
    );
    Ok(Segment {
        first_seq,
        len,
        records: expected.unwrap_or(scan.records),
    })
}

#[cfg(test)]
mod tests {
    use nudge_service::bus::AcceptedEvent;

    use super::super::record::encode_record;
    use super::*;
    use crate::store::test_support::TempDir;
    use nudge_core::event::Message;

    fn records(range: std::ops::Range<u64>) -> Vec<u8> {
        let mut buf = Vec::new();
        for n in range {
            let mut pad = serde_json::Map::new();
            pad.insert("pad".into(), "x".repeat(200).into());
            let message = Message::track(&format!("u{n}"), &format!("m{n}"), "Ping", pad, 0);
            let e = AcceptedEvent::new(message, 0, 0);
            encode_record(&mut buf, &e).unwrap();
        }
        buf
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let dir = TempDir::new("scan-clean");
        let path = dir.path().join("a.seg");
        let bytes = records(0..50);
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment(&path, None, 0).unwrap();
        assert_eq!(scan.records, 50);
        assert_eq!(scan.intact_bytes, bytes.len() as u64);
        assert_eq!(scan.end_of_records, bytes.len() as u64);
        assert_eq!((scan.first_damage, scan.torn_tail), (None, 0));
    }

    #[test]
    fn a_flipped_byte_is_damage_with_the_records_behind_it_counted() {
        let dir = TempDir::new("scan-flip");
        let path = dir.path().join("a.seg");
        let mut bytes = records(0..50);
        let before = records(0..20).len();
        let one = records(20..21).len();
        // Inside the 21st record's payload.
        bytes[before + HEADER + 10] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment(&path, None, 0).unwrap();
        assert_eq!(scan.first_damage, Some(before as u64));
        assert_eq!(scan.records, 49);
        assert_eq!(scan.records_behind, 29);
        assert_eq!(scan.damaged_bytes, one as u64);
        assert_eq!(scan.torn_tail, 0);

        let mut kept = Vec::new();
        scan_segment(&path, Some(&mut kept), u64::MAX).unwrap();
        let mut expected = records(0..20);
        expected.extend(records(21..50));
        assert_eq!(kept, expected, "the salvaged copy is every intact record");
    }

    #[test]
    fn a_half_written_last_record_is_a_torn_tail() {
        let dir = TempDir::new("scan-torn");
        let path = dir.path().join("a.seg");
        let whole = records(0..10);
        let mut bytes = whole.clone();
        let next = records(10..11);
        bytes.extend(&next[..next.len() / 3]);
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment(&path, None, 0).unwrap();
        assert_eq!(scan.records, 10);
        assert_eq!(scan.first_damage, None);
        assert_eq!(scan.torn_tail, (next.len() / 3) as u64);
        assert_eq!(scan.end_of_records, whole.len() as u64);
    }

    #[test]
    fn segments_larger_than_a_read_chunk_scan_across_chunk_boundaries() {
        let dir = TempDir::new("scan-big");
        let path = dir.path().join("a.seg");
        let mut bytes = records(0..20_000);
        let total = bytes.len();
        assert!(total > READ_CHUNK, "{total}");
        let flip = READ_CHUNK + 123;
        bytes[flip] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_segment(&path, None, 0).unwrap();
        assert_eq!(scan.records, 19_999);
        assert!(scan.first_damage.unwrap() <= flip as u64);
        assert_eq!(scan.intact_bytes + scan.damaged_bytes, total as u64);
    }
}
