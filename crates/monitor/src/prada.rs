//! PRADA (Juuti et al., 2019): detect model extraction from the distribution of distances between a client's
//! successive queries, plus cheap coverage signals. (Stub: signatures fixed, bodies being written.)

use serde::{Deserialize, Serialize};

/// Detector settings (per model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PradaConfig {
    /// Alarm when the Shapiro–Wilk W of the distance set falls below this (the paper's δ).
    pub delta: f64,
    /// No test until the distance set holds this many distances.
    pub min_distances: usize,
    /// At most this many (most recent) distances are kept and tested (≤ 5000, Shapiro–Wilk's range).
    pub window: usize,
    /// At most this many representative queries are kept per class (bounded memory).
    pub max_representatives: usize,
    /// Per-feature divisor applied before distances (e.g. the reference standard deviations); empty = 1.
    pub scale: Vec<f64>,
    /// A query whose top-two probability margin is below this counts as near the decision boundary.
    pub low_margin: f64,
}

impl Default for PradaConfig {
    fn default() -> Self {
        PradaConfig {
            delta: 0.9,
            min_distances: 100,
            window: 1000,
            max_representatives: 1000,
            scale: Vec::new(),
            low_margin: 0.1,
        }
    }
}

/// One client's detector state for one model; serialisable so it can live in a database row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PradaState {
    /// Queries seen.
    pub queries: u64,
    /// Queries whose top-two margin was below `low_margin`.
    pub low_margin: u64,
    /// Queries outside the reference data's range.
    pub out_of_distribution: u64,
    /// Whether an alarm has been raised (stays raised).
    pub alarmed: bool,
    /// Query count at which the alarm was first raised.
    pub alarm_at: Option<u64>,
}

/// What one observation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Minimum distance of the query to its class's representatives (None for a class's first query).
    pub min_distance: Option<f64>,
    /// Shapiro–Wilk W of the distance set, when tested.
    pub w: Option<f64>,
    /// True when this observation raised the alarm or it was already raised.
    pub alarm: bool,
    /// True only on the observation that first raised it.
    pub new_alarm: bool,
}

impl PradaState {
    /// Feed one query `x` (raw features), the model's probabilities for it, and whether it lies outside the
    /// reference data.
    pub fn observe(
        &mut self,
        config: &PradaConfig,
        x: &[f64],
        probabilities: &[f32],
        out_of_distribution: bool,
    ) -> Verdict {
        let _ = (config, x, probabilities, out_of_distribution);
        self.queries += 1;
        Verdict {
            min_distance: None,
            w: None,
            alarm: self.alarmed,
            new_alarm: false,
        }
    }
}
