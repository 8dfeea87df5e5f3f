//! TODO(helper): safetensors rules.

use aegis_core::RuleDoc;

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[];

pub(crate) fn scan(_ctx: &mut crate::Ctx<'_>, _blob: &mut dyn aegis_formats::Blob, _len: u64) {}
