//! The journal's record framing: `[payload length: u32 LE][xxh3 of payload, low 32 bits: u32
//! LE][payload: AcceptedEvent JSON]`, and how to find the next intact record behind damaged
//! bytes (the length and checksum must agree, so reading can resume where they do).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use nudge_service::bus::AcceptedEvent;

use super::JournalError;

/// Record header: payload length and checksum.
pub(super) const HEADER: usize = 8;
/// Largest payload a record may have (an accepted event is at most 32 KB of message plus a
/// few fields); a longer length in a header means the bytes are not a record.
pub(super) const MAX_PAYLOAD: usize = 1024 * 1024;
/// Bytes scanned at a time when looking for the next intact record.
const SCAN_CHUNK: usize = 1024 * 1024;

pub(super) enum Parsed<'a> {
    /// A whole record: its payload and the bytes it took.
    Record(&'a [u8], usize),
    /// The bytes end inside a record.
    Short,
    /// Not a record (bad length or checksum).
    Broken,
}

/// The record at the start of `bytes`.
pub(super) fn parse_record(bytes: &[u8]) -> Parsed<'_> {
    if bytes.len() < HEADER {
        return Parsed::Short;
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let sum = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Parsed::Broken;
    }
    let Some(payload) = bytes.get(HEADER..HEADER + len) else {
        return Parsed::Short;
    };
    if checksum(payload) != sum {
        return Parsed::Broken;
    }
    Parsed::Record(payload, HEADER + len)
}

/// The checksum of a record's payload (and of the checkpoint's watermark).
pub(super) fn checksum(payload: &[u8]) -> u32 {
    xxhash_rust::xxh3::xxh3_64(payload) as u32
}

/// Appends `event` as one record to `buf`.
pub(super) fn encode_record(buf: &mut Vec<u8>, event: &AcceptedEvent) -> Result<(), JournalError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut *buf, event)?;
    let payload = &buf[start + HEADER..];
    let len = payload.len() as u32;
    let sum = checksum(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&sum.to_le_bytes());
    Ok(())
}

/// The offset of the first intact record that starts after `from` and ends by `end`, in
/// `file`: where reading resumes behind damaged bytes. `None` when there is none (the rest is
/// a torn tail, or damage to the end).
pub(super) fn next_intact(file: &mut File, from: u64, end: u64) -> std::io::Result<Option<u64>> {
    let mut pos = from + 1;
    let mut buf = Vec::new();
    while pos + (HEADER as u64) < end {
        let want = (end - pos).min((SCAN_CHUNK + HEADER + MAX_PAYLOAD) as u64) as usize;
        buf.resize(want, 0);
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf)?;
        // Candidates start in the first SCAN_CHUNK bytes; the rest of the window holds the
        // payload of a candidate near its end.
        let starts = want.saturating_sub(HEADER).min(SCAN_CHUNK);
        for i in 0..starts {
            if let Parsed::Record(..) = parse_record(&buf[i..]) {
                return Ok(Some(pos + i as u64));
            }
        }
        pos += starts as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::store::test_support::TempDir;
    use nudge_core::event::Message;

    fn event(n: u64) -> AcceptedEvent {
        let message = Message::track(
            &format!("u{n}"),
            &format!("m{n}"),
            "Ping",
            Default::default(),
            0,
        );
        AcceptedEvent::new(message, 0, 0)
    }

    fn records(range: std::ops::Range<u64>) -> Vec<u8> {
        let mut buf = Vec::new();
        for n in range {
            encode_record(&mut buf, &event(n)).unwrap();
        }
        buf
    }

    #[test]
    fn a_record_reads_back_and_any_changed_byte_breaks_it() {
        let buf = records(0..1);
        let Parsed::Record(payload, used) = parse_record(&buf) else {
            panic!("not a record");
        };
        assert_eq!(used, buf.len());
        let back: AcceptedEvent = serde_json::from_slice(payload).unwrap();
        assert_eq!(back, event(0));
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(
                !matches!(parse_record(&bad), Parsed::Record(..)),
                "byte {i} flipped still reads"
            );
        }
        assert!(matches!(parse_record(&buf[..buf.len() - 1]), Parsed::Short));
    }

    #[test]
    fn the_next_intact_record_is_found_behind_damaged_bytes() {
        let dir = TempDir::new("record-resync");
        let path = dir.path().join("seg");
        let first = records(0..3);
        let second = records(3..5);
        let mut bytes = first.clone();
        // A hole of zeros and some noise, as a lost page would leave.
        bytes.extend(std::iter::repeat_n(0u8, 5_000));
        bytes.extend((0..3_000u32).map(|i| (i * 7 % 251) as u8));
        let resume = bytes.len() as u64;
        bytes.extend(&second);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&bytes)
            .unwrap();

        let mut f = File::open(&path).unwrap();
        let end = bytes.len() as u64;
        assert_eq!(
            next_intact(&mut f, first.len() as u64, end).unwrap(),
            Some(resume)
        );
        // Behind the last record there is nothing.
        let last = resume + (second.len() / 2) as u64;
        assert_eq!(next_intact(&mut f, last, end).unwrap(), None);
    }

    #[test]
    fn a_torn_record_has_nothing_intact_behind_it() {
        let dir = TempDir::new("record-torn");
        let path = dir.path().join("seg");
        let whole = records(0..2);
        let torn = records(2..3);
        let mut bytes = whole.clone();
        bytes.extend(&torn[..torn.len() - 5]);
        std::fs::write(&path, &bytes).unwrap();
        let mut f = File::open(&path).unwrap();
        assert_eq!(
            next_intact(&mut f, whole.len() as u64, bytes.len() as u64).unwrap(),
            None
        );
    }
}
