//! The demo fraud model's data-generating rule: `examples/make_demo_model.rs` trains the bundled model on it,
//! and the tests draw natural traffic and reference rows from it.

use aegis_ml::rng::Rng;

/// One synthetic transaction and its fraud label, drawn from the seeded rule.
pub fn transaction(rng: &mut Rng) -> ([f32; 6], u32) {
    let amount = ((3.8 + 1.1 * rng.normal()).exp()).clamp(0.5, 20_000.0);
    let amount = (amount * 100.0).round() / 100.0;
    let hour = rng.below(24) as f32;
    let u = rng.uniform();
    let merchant_risk = ((u * u) * 1000.0).round() / 1000.0;
    let card_age_days = (5.5 + 1.3 * rng.normal()).exp().floor().min(3_650.0);
    let foreign = if rng.uniform() < 0.08 { 1.0 } else { 0.0 };
    let n_tx_24h = (0.8 + 0.7 * rng.normal()).exp().floor().min(100.0);
    let night = if hour <= 5.0 { 1.0 } else { 0.0 };
    let logit = -5.0 + 0.9 * ((1.0 + amount).ln() - 3.8) + 1.2 * night + 3.5 * merchant_risk
        - 0.9 * ((1.0 + card_age_days).ln() - 5.5)
        + 1.4 * foreign
        + 0.15 * n_tx_24h
        + 0.5 * rng.normal();
    let p = 1.0 / (1.0 + (-logit).exp());
    let label = u32::from(rng.uniform() < p);
    (
        [
            amount,
            hour,
            merchant_risk,
            card_age_days,
            foreign,
            n_tx_24h,
        ],
        label,
    )
}
