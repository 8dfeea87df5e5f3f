//! The rules `aegis assess` reports, documented in code (`aegis rules AEG-ROB-001`).

use aegis_core::{RuleDoc, Severity};

/// Robust accuracy falls under attack.
pub const ROBUSTNESS_DROP: RuleDoc = RuleDoc {
    id: "AEG-ROB-001",
    name: "robust-accuracy-drop",
    severity: Severity::Medium,
    summary: "Small, valid changes to inputs change the model's answers: robust accuracy is well below clean accuracy.",
    why: "An attacker who controls a few input fields (an amount, a count, a pixel) can steer the decision: approve a \
          fraudulent payment, lower a price, evade a filter. Severity grows with the accuracy lost at the given eps.",
    fix: "Harden the model (`aegis harden` trains it on adversarial examples), restrict which fields a client may \
          set, mark fields the attacker cannot change as immutable in the schema, and check the most vulnerable \
          features listed in the report for shortcut learning.",
    atlas: &["AML.T0015", "AML.T0043"],
    cwe: &[1039],
};

/// Black-box attacks succeed where white-box attacks failed.
pub const GRADIENT_MASKING: RuleDoc = RuleDoc {
    id: "AEG-ROB-002",
    name: "gradient-masking-suspected",
    severity: Severity::Medium,
    summary: "A black-box attack broke rows the gradient attacks could not: the gradients mislead, so white-box figures overstate robustness.",
    why: "Gradient masking (saturated softmax, non-differentiable preprocessing, randomness) defeats gradient \
          attacks without making the model robust; an attacker with a query budget still succeeds, and a report \
          that trusts the white-box numbers gives a false sense of security.",
    fix: "Trust the lower (black-box) robust accuracy; remove gradient-obfuscating defences and harden with \
          adversarial training instead.",
    atlas: &["AML.T0043"],
    cwe: &[1039],
};

/// The model answers the same input differently.
pub const NON_DETERMINISTIC: RuleDoc = RuleDoc {
    id: "AEG-ROB-003",
    name: "non-deterministic-outputs",
    severity: Severity::Medium,
    summary: "The model returned different outputs for the same input; robustness figures over it are unreliable.",
    why: "Randomised outputs can hide vulnerabilities from attacks (a form of gradient masking) and make audits \
          irreproducible; an attacker simply queries again.",
    fix: "Evaluate with randomness disabled (dropout off, fixed seeds), or evaluate the expectation over the \
          randomness (EOT) before trusting the scores.",
    atlas: &["AML.T0043"],
    cwe: &[1039],
};

/// Input gradients vanish.
pub const VANISHING_GRADIENTS: RuleDoc = RuleDoc {
    id: "AEG-ROB-004",
    name: "vanishing-gradients",
    severity: Severity::Low,
    summary: "Input gradients are zero for many correctly classified rows: gradient attacks cannot make progress there.",
    why: "Zero gradients usually mean saturated outputs or quantisation, not robustness; gradient-free attacks \
          and attackers still succeed.",
    fix: "Read the black-box results; check for saturated softmax or hard thresholds in the model.",
    atlas: &["AML.T0043"],
    cwe: &[1039],
};

/// All rules of this crate.
pub fn all() -> Vec<&'static RuleDoc> {
    let mut all = vec![
        &ROBUSTNESS_DROP,
        &GRADIENT_MASKING,
        &NON_DETERMINISTIC,
        &VANISHING_GRADIENTS,
    ];
    all.extend(crate::privacy::rules());
    all.extend(crate::extraction::rules());
    all.extend(crate::llm::rules());
    all
}
