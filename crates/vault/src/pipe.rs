//! File IO on a second core while this one does the cryptography: a read-ahead thread fills blocks from the
//! input and a write-behind thread drains blocks to the output, each through a bounded channel
//! ([`DEPTH`] blocks of [`BUFFER_BYTES`]), so memory stays constant and the cipher never waits for a syscall.
//!
//! Why: the reads and writes of a file cost about 0.3 s per GiB on this machine, as much as a third of the
//! cipher's time; done one after the other with the cryptography they are what separates us from the `age` CLI
//! (Go, assembly), done side by side they are hidden (`bench/vault.sh`).
//! Blocks go back to the thread that fills them once used, so a run allocates a handful of blocks and no more
//! (allocating, zeroing and zeroizing a fresh block per MiB cost a fifth of the CPU time of encryption); blocks
//! that may hold plaintext are zeroized, whole capacity, when dropped at the end.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread;

use zeroize::Zeroizing;

/// Size of the buffers around files and of each read/write, in bytes.
pub const BUFFER_BYTES: usize = 1 << 20;

/// Blocks in flight per direction.
pub const DEPTH: usize = 4;

type Block = Zeroizing<Vec<u8>>;

/// A used block, returned to the thread that fills blocks (dropped if that thread has enough).
fn give_back(back: &SyncSender<Block>, block: Block) {
    if block.capacity() > 0 {
        let _ = back.try_send(block);
    }
}

/// Reads blocks produced by the read-ahead thread.
pub(crate) struct ChannelReader {
    rx: Receiver<io::Result<Block>>,
    back: SyncSender<Block>,
    block: Block,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    give_back(&self.back, std::mem::replace(&mut self.block, block));
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.block.len() - self.pos);
        out[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Collects bytes into blocks for the write-behind thread.
pub(crate) struct ChannelWriter {
    tx: Option<SyncSender<Block>>,
    free: Receiver<Block>,
    block: Block,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let empty = match self.free.try_recv() {
            Ok(mut block) => {
                block.clear();
                block
            }
            Err(_) => Zeroizing::new(Vec::with_capacity(BUFFER_BYTES)),
        };
        let full = std::mem::replace(&mut self.block, empty);
        match &self.tx {
            Some(tx) => tx
                .send(full)
                .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the writer stopped")),
            None => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "already finished",
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BUFFER_BYTES - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BUFFER_BYTES {
            self.send()?;
        }
        Ok(n)
    }

    /// Hands the partial block over; the write-behind thread flushes the output when it ends.
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Run `body` with `input` read ahead and `output` written behind on two helper threads. Returns `body`'s
/// result, or the first IO error of the output (the input's errors reach `body` through its reads).
pub(crate) fn pipelined<R, W, T, E>(
    input: R,
    output: W,
    body: impl FnOnce(&mut ChannelReader, &mut ChannelWriter) -> Result<T, E>,
    write_error: impl FnOnce(io::Error) -> E,
) -> Result<T, E>
where
    R: Read + Send,
    W: Write + Send,
{
    thread::scope(|scope| {
        let (rtx, rrx) = sync_channel::<io::Result<Block>>(DEPTH);
        let (wtx, wrx) = sync_channel::<Block>(DEPTH);
        let (read_back, read_free) = sync_channel::<Block>(DEPTH);
        let (write_back, write_free) = sync_channel::<Block>(DEPTH);
        scope.spawn(move || read_ahead(input, rtx, read_free));
        let writer = scope.spawn(move || write_behind(output, wrx, write_back));
        let mut reader = ChannelReader {
            rx: rrx,
            back: read_back,
            block: Zeroizing::new(Vec::new()),
            pos: 0,
            done: false,
        };
        let mut sink = ChannelWriter {
            tx: Some(wtx),
            free: write_free,
            block: Zeroizing::new(Vec::with_capacity(BUFFER_BYTES)),
        };
        let result = body(&mut reader, &mut sink);
        let flushed = sink.send();
        // Closing both channels ends both threads, also when `body` stopped early.
        drop(sink.tx.take());
        drop(reader);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the write-behind thread panicked")));
        // A failed output explains a failed body (its writes then fail too): report the cause.
        if let Err(e) = written {
            return Err(write_error(e));
        }
        let value = result?;
        flushed.map_err(write_error)?;
        Ok(value)
    })
}

fn read_ahead<R: Read>(mut input: R, tx: SyncSender<io::Result<Block>>, free: Receiver<Block>) {
    loop {
        let mut block = free
            .try_recv()
            .unwrap_or_else(|_| Zeroizing::new(Vec::with_capacity(BUFFER_BYTES)));
        // A returned block keeps its length (only the last one is short): no new zeroing.
        block.resize(BUFFER_BYTES, 0);
        let mut filled = 0;
        while filled < BUFFER_BYTES {
            match input.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
        if filled == 0 {
            return;
        }
        block.truncate(filled);
        let last = filled < BUFFER_BYTES;
        if tx.send(Ok(block)).is_err() || last {
            return;
        }
    }
}

fn write_behind<W: Write>(
    mut output: W,
    rx: Receiver<Block>,
    back: SyncSender<Block>,
) -> io::Result<()> {
    for block in rx {
        output.write_all(&block)?;
        give_back(&back, block);
    }
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_pass_through_unchanged_in_order() {
        let data: Vec<u8> = (0..(3 * BUFFER_BYTES + 12345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Vec::new();
        let n: Result<u64, io::Error> = pipelined(
            data.as_slice(),
            &mut out,
            |r, w| {
                let n = io::copy(r, w)?;
                w.flush()?;
                Ok(n)
            },
            |e| e,
        );
        assert_eq!(n.unwrap(), data.len() as u64);
        assert_eq!(out, data);
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::other("disk full"))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn errors_on_either_side_are_reported_and_nothing_hangs() {
        let r: Result<u64, io::Error> = pipelined(Failing, Vec::new(), io::copy, |e| e);
        assert!(r.unwrap_err().to_string().contains("disk on fire"));
        let data = vec![1u8; 5 * BUFFER_BYTES];
        let r: Result<u64, io::Error> = pipelined(data.as_slice(), Failing, io::copy, |e| e);
        assert!(r.unwrap_err().to_string().contains("disk full"));
        // The body stops early: the threads still end.
        let r: Result<u64, io::Error> = pipelined(
            data.as_slice(),
            Vec::new(),
            |_, _| Err(io::Error::other("stop")),
            |e| e,
        );
        assert!(r.is_err());
    }
}
