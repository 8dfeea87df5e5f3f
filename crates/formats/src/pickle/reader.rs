//! A small buffered reader for the emulator: tracks the stream offset, reads opcode arguments, keeps a
//! bounded prefix of long constants while skipping the rest through one reused buffer, and scans forward for
//! a `PROTO` opcode when resynchronising. It never holds more than its buffer plus what a caller asks to keep,
//! so a multi-GiB stream is read in flat memory.

use std::io::{self, ErrorKind, Read};

/// Size of the read buffer.
const BUF_LEN: usize = 64 * 1024;

/// Why emulation of the current pickle stopped early.
#[derive(Debug)]
pub(super) enum Halt {
    /// The stream ended inside an opcode.
    Eof,
    /// The pickle cannot be continued (already recorded as an anomaly): resynchronise.
    Fatal,
    /// A real read error.
    Io(io::Error),
}

/// Result of a step that may halt.
pub(super) type Step<T> = Result<T, Halt>;

/// Buffered input with offsets.
pub(super) struct Input<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Stream offset of `buf[0]`.
    start: u64,
    eof: bool,
}

impl<R> std::fmt::Debug for Input<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("offset", &(self.start + self.pos as u64))
            .finish()
    }
}

impl<R: Read> Input<R> {
    /// Wrap `inner`.
    pub(super) fn new(inner: R) -> Self {
        Input {
            inner,
            buf: vec![0; BUF_LEN],
            pos: 0,
            end: 0,
            start: 0,
            eof: false,
        }
    }

    /// Offset of the next byte in the stream.
    pub(super) fn offset(&self) -> u64 {
        self.start + self.pos as u64
    }

    /// Bytes available in the buffer.
    fn available(&self) -> &[u8] {
        self.buf.get(self.pos..self.end).unwrap_or(&[])
    }

    /// Move unread bytes to the front and read more after them. Returns whether anything new arrived.
    fn fill(&mut self) -> Step<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.start += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let Some(space) = self.buf.get_mut(self.end..) else {
            return Ok(false);
        };
        if space.is_empty() {
            return Ok(true);
        }
        loop {
            match self.inner.read(space) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n.min(space.len());
                    return Ok(true);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.eof = true;
                    return Ok(false);
                }
                Err(e) => return Err(Halt::Io(e)),
            }
        }
    }

    /// Up to two next bytes without consuming them.
    pub(super) fn peek2(&mut self) -> Step<(Option<u8>, Option<u8>)> {
        while self.end - self.pos < 2 {
            if !self.fill()? {
                break;
            }
        }
        let a = self.available();
        Ok((a.first().copied(), a.get(1).copied()))
    }

    /// One byte.
    #[inline]
    pub(super) fn byte(&mut self) -> Step<u8> {
        if self.pos == self.end && !self.fill()? {
            return Err(Halt::Eof);
        }
        let b = self.buf.get(self.pos).copied().ok_or(Halt::Eof)?;
        self.pos += 1;
        Ok(b)
    }

    /// `N` bytes.
    #[inline]
    pub(super) fn array<const N: usize>(&mut self) -> Step<[u8; N]> {
        let mut out = [0u8; N];
        if let Some(src) = self
            .buf
            .get(self.pos..self.pos + N)
            .filter(|_| self.pos + N <= self.end)
        {
            out.copy_from_slice(src);
            self.pos += N;
            return Ok(out);
        }
        for slot in &mut out {
            *slot = self.byte()?;
        }
        Ok(out)
    }

    /// A `\n`-terminated line (without the newline). The first `keep` bytes go to `out`; the line's full
    /// length is returned. End of stream before the newline is [`Halt::Eof`].
    pub(super) fn line(&mut self, keep: usize, out: &mut Vec<u8>) -> Step<u64> {
        out.clear();
        let mut total = 0u64;
        loop {
            if self.pos == self.end && !self.fill()? {
                return Err(Halt::Eof);
            }
            let avail = self.available();
            let (chunk, found) = match avail.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let room = keep.saturating_sub(out.len()).min(chunk);
            out.extend_from_slice(avail.get(..room).unwrap_or(&[]));
            total = total.saturating_add(chunk as u64);
            self.pos += chunk + usize::from(found);
            if found {
                return Ok(total);
            }
        }
    }

    /// Read `n` bytes, keeping the first `keep` in `out` (cleared first) and skipping the rest. End of stream
    /// first is [`Halt::Eof`] (what was read stays in `out`).
    pub(super) fn take(&mut self, n: u64, keep: usize, out: &mut Vec<u8>) -> Step<()> {
        out.clear();
        let keep = usize::try_from(n).map_or(keep, |n| n.min(keep));
        while out.len() < keep {
            if self.pos == self.end && !self.fill()? {
                return Err(Halt::Eof);
            }
            let avail = self.available();
            let room = (keep - out.len()).min(avail.len());
            out.extend_from_slice(avail.get(..room).unwrap_or(&[]));
            self.pos += room;
        }
        self.skip(n - keep as u64)
    }

    /// Skip `n` bytes. End of stream first is [`Halt::Eof`].
    pub(super) fn skip(&mut self, mut n: u64) -> Step<()> {
        while n > 0 {
            if self.pos == self.end && !self.fill()? {
                return Err(Halt::Eof);
            }
            let step = (self.end - self.pos).min(usize::try_from(n).unwrap_or(usize::MAX));
            self.pos += step;
            n -= step as u64;
        }
        Ok(())
    }

    /// Advance to the next `PROTO` opcode announcing protocol 2–5 (`0x80` then `2..=5`). Returns `false` when
    /// the stream ends first (everything is then consumed).
    pub(super) fn find_proto(&mut self) -> Step<bool> {
        loop {
            if self.pos == self.end && !self.fill()? {
                return Ok(false);
            }
            match self.available().iter().position(|b| *b == 0x80) {
                None => self.pos = self.end,
                Some(i) => {
                    self.pos += i;
                    match self.peek2()? {
                        (Some(0x80), Some(2..=5)) => return Ok(true),
                        (Some(0x80), Some(_)) => self.pos += 1,
                        _ => {
                            self.pos = self.end;
                            return Ok(false);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, to exercise every buffer boundary.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn reads_across_boundaries() {
        let data = b"ab\x01\x02\x03\x04line one\nrest\x80\x01x\x80\x02.";
        let mut input = Input::new(Trickle(data));
        assert_eq!(input.byte().unwrap(), b'a');
        assert_eq!(input.peek2().unwrap(), (Some(b'b'), Some(1)));
        assert_eq!(input.byte().unwrap(), b'b');
        assert_eq!(input.array::<4>().unwrap(), [1, 2, 3, 4]);
        let mut out = Vec::new();
        assert_eq!(input.line(4, &mut out).unwrap(), 8);
        assert_eq!(out, b"line");
        input.take(4, 2, &mut out).unwrap();
        assert_eq!(out, b"re");
        assert!(input.find_proto().unwrap());
        assert_eq!(input.offset(), 22);
        input.skip(2).unwrap();
        assert_eq!(input.byte().unwrap(), b'.');
        assert!(matches!(input.byte(), Err(Halt::Eof)));
        assert!(!input.find_proto().unwrap());
    }

    #[test]
    fn end_of_stream_is_eof() {
        let mut input = Input::new(&b"abc"[..]);
        let mut out = Vec::new();
        assert!(matches!(input.take(10, 100, &mut out), Err(Halt::Eof)));
        assert_eq!(out, b"abc");
        let mut input = Input::new(&b"no newline"[..]);
        assert!(matches!(input.line(100, &mut out), Err(Halt::Eof)));
        let mut input = Input::new(&b"xx"[..]);
        assert!(matches!(input.skip(u64::MAX), Err(Halt::Eof)));
        assert_eq!(input.offset(), 2);
    }
}
