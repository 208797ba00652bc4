//! Sorting a file that is not in time order, stably and in bounded memory: lines are read
//! into runs of at most [`RUN_BYTES`], each run sorted by (instant, line number) and written
//! to a temporary file, then the runs are merged. Lines without a valid timestamp (which
//! replay rejects) sort first, in file order, so they are reported early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

use nudge_core::time::Millis;

use super::line::{is_blank, read_line_bytes, Line};
use super::stamp::stamp;

/// The most line bytes held in memory while sorting.
pub const RUN_BYTES: usize = 64 << 20;

/// One sorted run on disk: records of instant, line number, length and text.
struct Run {
    reader: BufReader<File>,
}

impl Run {
    fn write(lines: &mut [(Millis, Line)]) -> io::Result<Run> {
        lines.sort_by_key(|(at, l)| (*at, l.number));
        let mut file = tempfile::tempfile()?;
        {
            let mut w = BufWriter::new(&mut file);
            for (at, l) in lines.iter() {
                w.write_all(&at.to_le_bytes())?;
                w.write_all(&(l.number as u64).to_le_bytes())?;
                w.write_all(&(l.bytes().len() as u64).to_le_bytes())?;
                w.write_all(l.bytes())?;
            }
            w.flush()?;
        }
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(0))?;
        Ok(Run {
            reader: BufReader::with_capacity(1 << 16, file),
        })
    }

    fn next(&mut self) -> io::Result<Option<(Millis, Line)>> {
        let mut head = [0u8; 24];
        match self.reader.read_exact(&mut head[..8]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        self.reader.read_exact(&mut head[8..])?;
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            b
        };
        let at = Millis::from_le_bytes(word(0));
        let number = u64::from_le_bytes(word(8)) as usize;
        let len = u64::from_le_bytes(word(16)) as usize;
        let mut bytes = vec![0u8; len];
        self.reader.read_exact(&mut bytes)?;
        Ok(Some((at, Line::new(number, bytes))))
    }
}

/// The lines of `input` in time order (stable), read and sorted through temporary files.
pub struct Sorted {
    runs: Vec<Run>,
    heads: BinaryHeap<Reverse<(Millis, usize, usize)>>,
    pending: Vec<Option<Line>>,
}

impl Sorted {
    pub fn new(input: impl BufRead) -> io::Result<Sorted> {
        Sorted::with_runs_of(input, RUN_BYTES)
    }

    /// Sorts with runs of at most `run_bytes` of lines in memory.
    fn with_runs_of(input: impl BufRead, run_bytes: usize) -> io::Result<Sorted> {
        let mut runs = Vec::new();
        let mut batch: Vec<(Millis, Line)> = Vec::new();
        let mut bytes = 0;
        let (mut input, mut buf, mut number) = (input, Vec::new(), 0);
        while read_line_bytes(&mut input, &mut buf)? {
            number += 1;
            if is_blank(&buf) {
                continue;
            }
            let line = Line::new(number, buf.as_slice().to_owned());
            // Lines without a timestamp, text or not, are rejected first.
            let at = line.text.as_deref().ok().and_then(stamp);
            bytes += buf.len() + 64;
            batch.push((at.unwrap_or(Millis::MIN), line));
            if bytes >= run_bytes {
                runs.push(Run::write(&mut batch)?);
                batch.clear();
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            runs.push(Run::write(&mut batch)?);
        }
        let mut sorted = Sorted {
            pending: (0..runs.len()).map(|_| None).collect(),
            runs,
            heads: BinaryHeap::new(),
        };
        for r in 0..sorted.runs.len() {
            sorted.refill(r)?;
        }
        Ok(sorted)
    }

    fn refill(&mut self, r: usize) -> io::Result<()> {
        if let Some((at, line)) = self.runs[r].next()? {
            self.heads.push(Reverse((at, line.number, r)));
            self.pending[r] = Some(line);
        }
        Ok(())
    }

    /// The next line in time order.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let Some(Reverse((_, _, r))) = self.heads.pop() else {
            return Ok(None);
        };
        let line = self.pending[r].take();
        self.refill(r)?;
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize, minute: u32) -> String {
        format!(
            r#"{{"type":"track","userId":"u","event":"E","messageId":"m{n}","timestamp":"2026-03-02T09:{minute:02}:00Z"}}"#
        )
    }

    #[test]
    fn runs_on_disk_merge_into_a_stable_time_order() {
        // 400 lines at 7 distinct minutes, out of order; a bad line; runs of about 10 lines.
        let mut text = String::new();
        let mut expected: Vec<(u32, usize)> = Vec::new();
        for n in 1..=400 {
            let minute = ((n * 37) % 7) as u32;
            text.push_str(&line(n, minute));
            text.push('\n');
            expected.push((minute, n));
        }
        text.push_str("not json\n\n");
        expected.sort();
        let mut sorted = Sorted::with_runs_of(text.as_bytes(), 2_000).unwrap();
        assert!(sorted.runs.len() > 10, "{} runs", sorted.runs.len());
        let mut got = Vec::new();
        while let Some(l) = sorted.next_line().unwrap() {
            got.push(l.number);
        }
        // The line replay rejects comes first; the blank line is skipped.
        assert_eq!(got[0], 401);
        let want: Vec<usize> = expected.iter().map(|(_, n)| *n).collect();
        assert_eq!(got[1..], want[..]);
    }
}
