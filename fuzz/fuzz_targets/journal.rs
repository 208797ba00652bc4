#![no_main]
//! The journal of `nudge serve` read back from damaged files: start-up's checks (torn tails
//! cut, damage refused or salvaged) and the reader over what is left. The input describes the
//! journal folder (see [`Layout`]); the target writes it to a scratch folder, opens the
//! journal, reads every record it hands out, then appends one event, which must read back:
//! whatever the files held, a journal that opened goes on working.

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use nudge_core::event::Message;
use nudge_fuzz::scratch;
use nudge_local::journal::{Appended, Damage, Journal, JournalError, Limits};
use nudge_service::bus::AcceptedEvent;

/// Most reads of one journal before the reader counts as stuck.
const MAX_READS: usize = 100_000;

/// A journal folder, read from the input:
/// - byte 0, flags: 1 salvage damaged segments (else refuse them), 2 write a checkpoint (the
///   low watermark is 1 + byte 1), 4 small segments (appends start new ones);
/// - then operations, each an opcode byte (taken modulo 4) and its operands:
///   0 `len: u16 LE, payload`: an intact record;
///   1 `len: u16 LE, bytes`: raw bytes (damage);
///   2 `len: u16 LE, cut: u16 LE, payload`: a record torn after `cut % (8 + len)` bytes;
///   3 `gap: i8`: a new segment, numbered after the records so far, shifted by `gap`.
struct Layout {
    salvage: bool,
    checkpoint: Option<u64>,
    small_segments: bool,
    /// (first sequence number, bytes) of each segment file.
    segments: Vec<(u64, Vec<u8>)>,
}

impl Layout {
    fn read(data: &[u8]) -> Option<Layout> {
        let (&flags, mut rest) = data.split_first()?;
        let checkpoint = if flags & 2 != 0 {
            let (&low, after) = rest.split_first()?;
            rest = after;
            Some(1 + u64::from(low))
        } else {
            None
        };
        let mut segments = vec![(1u64, Vec::new())];
        let mut records = 0u64;
        // An operation cut short by the end of the input ends the layout.
        while let Some((&op, after)) = rest.split_first() {
            rest = after;
            if op % 4 == 3 {
                let Some((&gap, after)) = rest.split_first() else {
                    break;
                };
                rest = after;
                let first = segments.last().map_or(1, |(first, _)| *first);
                let next = (first + records)
                    .saturating_add_signed(i64::from(gap as i8))
                    .max(first + 1);
                records = 0;
                segments.push((next, Vec::new()));
                continue;
            }
            let Some((len, after)) = take_u16(rest) else {
                break;
            };
            let (cut, after) = if op % 4 == 2 {
                match take_u16(after) {
                    Some(c) => c,
                    None => break,
                }
            } else {
                (u16::MAX, after)
            };
            let n = usize::from(len).min(after.len());
            let (payload, after) = after.split_at(n);
            rest = after;
            let Some((_, bytes)) = segments.last_mut() else {
                break;
            };
            if op % 4 == 1 {
                bytes.extend_from_slice(payload);
                continue;
            }
            let mut framed = Vec::with_capacity(8 + payload.len());
            framed.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            let sum = xxhash_rust::xxh3::xxh3_64(payload) as u32;
            framed.extend_from_slice(&sum.to_le_bytes());
            framed.extend_from_slice(payload);
            if op % 4 == 2 {
                framed.truncate(usize::from(cut) % framed.len());
            } else {
                records += 1;
            }
            bytes.extend_from_slice(&framed);
        }
        Some(Layout {
            salvage: flags & 1 != 0,
            checkpoint,
            small_segments: flags & 4 != 0,
            segments,
        })
    }
}

fn take_u16(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (n, rest) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_le_bytes(*n), rest))
}

/// What the target appends after reading: an event as ingest would.
fn event() -> &'static AcceptedEvent {
    static EVENT: OnceLock<AcceptedEvent> = OnceLock::new();
    EVENT.get_or_init(|| {
        let message = Message::from_json_text(
            r#"{"type":"track","userId":"alice","messageId":"fuzz-append","event":"Signed Up","timestamp":"2026-03-03T09:00:00Z"}"#,
        )
        .expect("a sample message");
        AcceptedEvent::new(message, 1_772_528_400_000, 1_772_528_400_000)
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(layout) = Layout::read(data) else {
        return;
    };
    let dir = scratch::dir().join("journal");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the scratch folder");
    for (first, bytes) in &layout.segments {
        std::fs::write(dir.join(format!("{first:020}.seg")), bytes).expect("a segment file");
    }
    if let Some(low) = layout.checkpoint {
        let mut bytes = low.to_le_bytes().to_vec();
        let sum = xxhash_rust::xxh3::xxh3_64(&low.to_le_bytes()) as u32;
        bytes.extend_from_slice(&sum.to_le_bytes());
        std::fs::write(dir.join("checkpoint"), bytes).expect("a checkpoint file");
    }
    let limits = Limits {
        max_backlog: 1 << 20,
        max_in_flight: 1 << 20,
        segment_bytes: if layout.small_segments { 64 } else { 1 << 20 },
        full_wait: Duration::from_secs(1),
    };
    let damage = if layout.salvage {
        Damage::Salvage
    } else {
        Damage::Refuse
    };
    let journal = match Journal::open_with(&dir, limits, damage) {
        Ok(journal) => journal,
        Err(JournalError::Damaged(found)) => {
            assert!(!layout.salvage, "salvage refused: {found:?}");
            assert!(!found.is_empty());
            return;
        }
        Err(e) => panic!("the journal did not open: {e}"),
    };
    let mut reader = journal.reader();
    let mut reads = 0;
    loop {
        reads += 1;
        assert!(
            reads < MAX_READS,
            "the reader does not get through the journal"
        );
        match reader.read_appended(1024) {
            Appended::Batch(records, _lost) => {
                let seqs: Vec<u64> = records.iter().map(|(seq, _)| *seq).collect();
                journal.complete(&seqs);
            }
            Appended::Nothing => break,
            Appended::Unreadable => panic!("records appended but unreadable"),
        }
    }
    runtime()
        .block_on(journal.append(std::slice::from_ref(event())))
        .expect("an append after opening");
    match reader.read_appended(1024) {
        Appended::Batch(records, 0) if records.len() == 1 && &records[0].1 == event() => {}
        other => panic!("the event appended after opening reads back as {other:?}"),
    }
});
