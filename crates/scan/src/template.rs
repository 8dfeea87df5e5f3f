//! TODO(helper): chat-template (Jinja) rules.

use aegis_core::RuleDoc;

/// Rules of this module.
pub(crate) const RULES: &[&RuleDoc] = &[];

/// Check a Jinja chat template found in the current blob. `offset` locates it when known; `source` says
/// where it came from (e.g. `GGUF key tokenizer.chat_template`, `tokenizer_config.json chat_template`).
pub(crate) fn check(_ctx: &mut crate::Ctx<'_>, _template: &str, _offset: Option<u64>, _source: &str) {}
