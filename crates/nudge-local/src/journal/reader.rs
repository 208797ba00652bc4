//! The journal's one reader (evaluate's dispatcher): records in order, at most `max_in_flight`
//! handed out and not completed, reading on behind damaged bytes.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use nudge_service::bus::AcceptedEvent;
use tracing::error;

use super::record::{next_intact, parse_record, Parsed, HEADER};
use super::{segment_path, Journal, Segment};

/// Most bytes one read takes from a segment.
const READ_CHUNK: u64 = 4 * 1024 * 1024;

/// Reads records in order; the one reader of a journal (the dispatcher).
pub struct JournalReader {
    pub(super) journal: Journal,
    /// Sequence number of the next record to read.
    pub(super) next_seq: u64,
    /// The segment being read, its open file and the offset of `next_seq` in it.
    pub(super) position: Option<(u64, File, u64)>,
}

/// What [`JournalReader::read_appended`] found.
#[derive(Debug)]
pub enum Appended {
    /// Records handed out, each to be passed to [`Journal::complete`] once handled, and how
    /// many unreadable ones were logged and completed here.
    Batch(Vec<(u64, AcceptedEvent)>, u64),
    /// Records were appended but none could be read (a segment file gone; logged).
    Unreadable,
    /// Nothing was appended that is not read yet.
    Nothing,
}

/// How reading one chunk of a segment ended.
enum Chunk {
    /// Read up to `max`, or to the chunk's end: go on at this offset.
    Continue(u64),
    /// Damaged bytes; an intact record starts at this offset.
    Resume(u64),
    /// Damaged bytes from this offset, and nothing intact behind them in the chunk.
    Damaged(u64),
}

impl JournalReader {
    /// Sequence number of the next record to read.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Waits until there is something to read and room to hand it out, then reads up to
    /// `max` records (fewer if fewer are appended) and hands them out: each must be passed
    /// to [`Journal::complete`] once handled. A record that cannot be read is logged,
    /// counted in the second value and completed here.
    pub async fn next_batch(&mut self, max: usize) -> (Vec<(u64, AcceptedEvent)>, u64) {
        loop {
            self.journal.room_in_flight(self.next_seq).await;
            match self.read_appended(max) {
                Appended::Batch(records, lost) => return (records, lost),
                // The error is logged; try again later rather than spin.
                Appended::Unreadable => tokio::time::sleep(Duration::from_millis(100)).await,
                Appended::Nothing => self.journal.appended().await,
            }
        }
    }

    /// [`JournalReader::next_batch`] without waiting: reads what was appended and not yet
    /// read, up to `max` records and fewer when the records in flight leave less room (at
    /// least one), and hands them out.
    pub fn read_appended(&mut self, max: usize) -> Appended {
        if self.journal.next_seq() <= self.next_seq {
            return Appended::Nothing;
        }
        let low = *self.journal.shared.low.borrow();
        let room = (self.journal.shared.limits.max_in_flight)
            .saturating_sub(self.next_seq.saturating_sub(low))
            .max(1);
        let first = self.next_seq;
        let (records, lost) = self.read(max.min(room as usize));
        let handed = self.next_seq - first;
        if handed == 0 {
            // Appended but unreadable (a segment file gone).
            return Appended::Unreadable;
        }
        self.journal.hand_out(first, handed);
        self.journal.complete(&lost);
        Appended::Batch(records, lost.len() as u64)
    }

    /// Reads up to `max` whole records from the reader's position; returns them and the
    /// sequence numbers of records that were there but unreadable.
    fn read(&mut self, max: usize) -> (Vec<(u64, AcceptedEvent)>, Vec<u64>) {
        let mut out = Vec::new();
        let mut lost = Vec::new();
        while out.len() + lost.len() < max {
            let position = match self.position.take() {
                Some(p) => Some(p),
                None => self.open(&mut lost),
            };
            let Some((first, mut file, offset)) = position else {
                return (out, lost);
            };
            let Some(seg) = self.journal.segment(first) else {
                // Deleted under us: can only be a segment wholly handled.
                continue;
            };
            if offset >= seg.len {
                // Every byte of the segment is read: records it holds that were not met lay
                // in damaged bytes.
                self.mark_lost(
                    seg.first_seq + seg.records,
                    &mut lost,
                    "had damaged records",
                );
                match self.journal.segment_after(Some(first), self.next_seq) {
                    Some(next) => {
                        self.skip_to(next.first_seq, &mut lost, "ends early");
                        continue;
                    }
                    None => {
                        self.position = Some((first, file, offset));
                        return (out, lost);
                    }
                }
            }
            let want = (seg.len - offset).min(READ_CHUNK) as usize;
            let mut chunk = vec![0; want];
            let read = file
                .seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut chunk));
            if let Err(e) = read {
                error!(segment = first, error = %e, "journal segment unreadable; skipping it");
                self.skip_segment(first, seg, &mut lost);
                continue;
            }
            // Whether the chunk stops before the segment's last record.
            let cut = (want as u64) < seg.len - offset;
            let room = max - out.len() - lost.len();
            match self.read_chunk(&chunk, offset, cut, room, &mut out, &mut lost) {
                Chunk::Continue(at) => self.position = Some((first, file, at)),
                Chunk::Resume(at) => self.position = Some((first, file, at)),
                Chunk::Damaged(bad) => {
                    // The damage may run past this chunk: look for an intact record behind it.
                    match next_intact(&mut file, bad, seg.len) {
                        Ok(Some(at)) => self.position = Some((first, file, at)),
                        Ok(None) => {
                            error!(
                                segment = first,
                                "journal segment damaged to its end; skipping the rest of it"
                            );
                            self.skip_segment(first, seg, &mut lost);
                        }
                        Err(e) => {
                            error!(segment = first, error = %e, "journal segment unreadable; skipping it");
                            self.skip_segment(first, seg, &mut lost);
                        }
                    }
                }
            }
        }
        (out, lost)
    }

    /// Reads records of one chunk that starts at `offset` in its segment.
    fn read_chunk(
        &mut self,
        chunk: &[u8],
        offset: u64,
        cut: bool,
        room: usize,
        out: &mut Vec<(u64, AcceptedEvent)>,
        lost: &mut Vec<u64>,
    ) -> Chunk {
        let mut at = 0;
        let mut taken = 0;
        while taken < room && at < chunk.len() {
            match parse_record(&chunk[at..]) {
                Parsed::Record(payload, used) => {
                    match serde_json::from_slice::<AcceptedEvent>(payload) {
                        Ok(e) => out.push((self.next_seq, e)),
                        Err(err) => {
                            error!(seq = self.next_seq, error = %err, "journal record is not an accepted event");
                            lost.push(self.next_seq);
                        }
                    }
                    self.next_seq += 1;
                    taken += 1;
                    at += used;
                }
                // The next read starts at this record.
                Parsed::Short if cut && at > 0 => break,
                Parsed::Short | Parsed::Broken => {
                    // Behind damaged bytes inside this chunk?
                    let resume = (at + 1..chunk.len().saturating_sub(HEADER))
                        .find(|&i| matches!(parse_record(&chunk[i..]), Parsed::Record(..)));
                    let bad = offset + at as u64;
                    return match resume {
                        Some(i) => {
                            error!(
                                offset = bad,
                                bytes = i - at,
                                "journal segment damaged; reading on behind the damaged bytes"
                            );
                            Chunk::Resume(offset + i as u64)
                        }
                        None if cut => {
                            error!(offset = bad, "journal segment damaged; looking for intact records behind the damage");
                            Chunk::Damaged(bad)
                        }
                        None => {
                            error!(offset = bad, "journal segment damaged to its end");
                            Chunk::Resume(offset + chunk.len() as u64)
                        }
                    };
                }
            }
        }
        Chunk::Continue(offset + at as u64)
    }

    /// Opens the segment holding `next_seq`.
    fn open(&mut self, lost: &mut Vec<u64>) -> Option<(u64, File, u64)> {
        let seg = self.journal.segment_after(None, self.next_seq)?;
        // Records below the first live segment are gone (cannot happen: segments are deleted
        // only below the watermark, which the reader is never behind).
        self.skip_to(seg.first_seq, lost, "is missing");
        let path = segment_path(&self.journal.shared.dir, seg.first_seq);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                error!(path = %path.display(), error = %e, "cannot open journal segment");
                return None;
            }
        };
        // Records before `next_seq` in this segment were handled: walk over them.
        let mut offset = 0u64;
        let mut skip = self.next_seq - seg.first_seq;
        let mut header = [0u8; HEADER];
        while skip > 0 {
            if file.seek(SeekFrom::Start(offset)).is_err() || file.read_exact(&mut header).is_err()
            {
                break;
            }
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
            offset += HEADER as u64 + len;
            skip -= 1;
        }
        Some((seg.first_seq, file, offset))
    }

    /// Gives up on the rest of segment `first`: its remaining records count as lost.
    fn skip_segment(&mut self, first: u64, seg: Segment, lost: &mut Vec<u64>) {
        let end = match self.journal.segment_after(Some(first), self.next_seq) {
            Some(next) => next.first_seq,
            None => seg.first_seq + seg.records,
        };
        self.skip_to(end, lost, "is damaged");
    }

    /// Counts the records up to `seq` as lost, staying where the reader is.
    fn mark_lost(&mut self, seq: u64, lost: &mut Vec<u64>, why: &str) {
        if seq > self.next_seq {
            error!(
                from = self.next_seq,
                to = seq,
                "journal segment {why}: {} records lost",
                seq - self.next_seq
            );
            lost.extend(self.next_seq..seq);
            self.next_seq = seq;
        }
    }

    fn skip_to(&mut self, seq: u64, lost: &mut Vec<u64>, why: &str) {
        self.mark_lost(seq, lost, why);
        self.position = None;
    }
}
