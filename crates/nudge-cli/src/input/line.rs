//! One line of the input: its number and its text, or the bytes that are not text. A line
//! that is not UTF-8 is rejected like any other bad line, not the end of the whole input.

use std::io::{self, BufRead};
use std::string::FromUtf8Error;

/// One line of the input (without its line ending) and its 1-based number in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub number: usize,
    pub text: Result<String, FromUtf8Error>,
}

impl Line {
    pub fn new(number: usize, bytes: Vec<u8>) -> Line {
        Line {
            number,
            text: String::from_utf8(bytes),
        }
    }

    /// The line as it was read, text or not.
    pub fn bytes(&self) -> &[u8] {
        match &self.text {
            Ok(text) => text.as_bytes(),
            Err(e) => e.as_bytes(),
        }
    }
}

/// Reads the next line into `buf` (cleared first), without its `\n` or `\r\n`; `false` at the
/// end of the input.
pub fn read_line_bytes(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    if input.read_until(b'\n', buf)? == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(true)
}

/// A line with nothing but spaces, which the input skips.
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Why a line that is not UTF-8 is rejected, naming where its text stops.
pub fn not_text(e: &FromUtf8Error) -> String {
    format!(
        "not UTF-8 text (invalid bytes at column {})",
        e.utf8_error().valid_up_to() + 1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_without_their_endings_and_bad_bytes_stay_as_they_were() {
        let mut input: &[u8] = b"a\r\nb\xff\nc";
        let mut buf = Vec::new();
        let mut lines = Vec::new();
        while read_line_bytes(&mut input, &mut buf).unwrap() {
            lines.push(Line::new(lines.len() + 1, buf.clone()));
        }
        assert_eq!(lines[0].text.as_deref().ok(), Some("a"));
        let bad = lines[1].text.as_ref().unwrap_err();
        assert_eq!(not_text(bad), "not UTF-8 text (invalid bytes at column 2)");
        assert_eq!(lines[1].bytes(), b"b\xff");
        assert_eq!(lines[2].text.as_deref().ok(), Some("c"));
        assert!(is_blank(b" \t\r") && !is_blank(b" x"));
    }
}
