//! TODO(helper): pickle rules.

use aegis_core::RuleDoc;

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[];

pub(crate) fn scan(_ctx: &mut crate::Ctx<'_>, _blob: &mut dyn aegis_formats::Blob, _len: u64) {}

/// Scan a pickle stream that starts at `offset` inside the current blob and runs to `end` (npy object
/// arrays, joblib members). Findings are located at offsets relative to the start of the blob.
pub(crate) fn scan_at(_ctx: &mut crate::Ctx<'_>, _blob: &mut dyn aegis_formats::Blob, _offset: u64, _end: u64) {}
