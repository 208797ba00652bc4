//! Tests of the journal on real files: order across segments, the watermark, restarts,
//! torn tails, damage at start-up and while running, salvage, backpressure.

use nudge_core::event::Message;
use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::store::test_support::TempDir;

fn event(n: u64) -> AcceptedEvent {
    let message = Message::track(
        &format!("u{}", n % 7),
        &format!("m{n}"),
        "Ping",
        Default::default(),
        n as i64,
    );
    AcceptedEvent::new(message, n as i64, n as i64)
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

#[tokio::test]
async fn reading_what_was_appended_never_waits() {
    let dir = TempDir::new("journal-read-appended");
    let j = open(&dir, small(1_000));
    let mut reader = j.reader();
    assert!(matches!(reader.read_appended(10), Appended::Nothing));

    j.append(&events(0..4)).await.unwrap();
    let Appended::Batch(first, 0) = reader.read_appended(3) else {
        panic!("appended records not handed out");
    };
    assert_eq!(first.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    let Appended::Batch(rest, 0) = reader.read_appended(3) else {
        panic!("the fourth record not handed out");
    };
    assert_eq!(rest.len(), 1);
    assert!(matches!(reader.read_appended(10), Appended::Nothing));

    j.complete(&[1, 2, 3, 4]);
    assert_eq!(j.backlog(), 0);
}

#[tokio::test]
async fn a_segment_reaching_past_the_next_ones_start_is_damage_and_its_salvage_loses_nothing_appended(
) {
    // Found by the journal fuzz target: segment 1 held six records but segment 6 came next,
    // so the sixth was read as number 6, an append took number 6 again, and the reader, past
    // it, never handed the appended event out.
    let dir = TempDir::new("journal-overlap");
    let journal = dir.path().join("journal");
    std::fs::create_dir_all(&journal).unwrap();
    let mut six = Vec::new();
    for e in events(0..6) {
        encode_record(&mut six, &e).unwrap();
    }
    std::fs::write(segment_path(&journal, 1), &six).unwrap();
    std::fs::write(segment_path(&journal, 6), b"").unwrap();

    let Err(JournalError::Damaged(found)) = Journal::open(&journal, small(1_000)) else {
        panic!("an overlapping segment was not refused");
    };
    assert_eq!(found[0].overlapping, 1);
    assert!(
        found[0].to_string().contains("1 records past"),
        "{}",
        found[0]
    );

    let j = Journal::open_with(&journal, small(1_000), Damage::Salvage).unwrap();
    let mut reader = j.reader();
    let read = read_now(&mut reader).await;
    assert_eq!(
        read.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    j.append(&[event(100)]).await.unwrap();
    assert_eq!(read_now(&mut reader).await, [(6, "m100".to_string())]);
    assert!(journal
        .join("damaged")
        .join("00000000000000000001.seg")
        .exists());
}
