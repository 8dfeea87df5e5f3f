//! TODO(helper): the emulator.

use std::io::Read;

use super::Trace;
use crate::{Limits, Result};

/// The pickle VM emulator.
#[derive(Debug)]
pub struct Emulator<'l> {
    limits: &'l Limits,
}

impl<'l> Emulator<'l> {
    /// An emulator bounded by `limits`.
    pub fn new(limits: &'l Limits) -> Self {
        Emulator { limits }
    }

    /// Emulate every pickle in `reader` until end of stream.
    pub fn run<R: Read>(self, reader: R) -> Result<Trace> {
        let _ = (self.limits, reader);
        Ok(Trace::default())
    }
}

/// Emulate every pickle in `reader` with `limits`.
pub fn emulate<R: Read>(reader: R, limits: &Limits) -> Result<Trace> {
    Emulator::new(limits).run(reader)
}
