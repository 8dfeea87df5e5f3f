//! Small synthetic datasets for tests, examples and benchmarks: reproducible from a seed, in `[0, 1]`.

use crate::rng::Rng;

/// `n` rows of two classes (alternating, starting with class 0): feature `j` of a row of class 1 is drawn
/// from N(0.5 + shift[j], noise[j]²), of class 0 from N(0.5 − shift[j], noise[j]²), clamped to `[0, 1]`.
/// Returns row-major features and the labels.
pub fn two_gaussians(n: usize, shift: &[f32], noise: &[f32], seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut rng = Rng::new(seed);
    let mut x = Vec::with_capacity(n * shift.len());
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 2) as u32;
        let sign = if c == 1 { 1.0 } else { -1.0 };
        for (s, sd) in shift.iter().zip(noise) {
            x.push((0.5 + sign * s + sd * rng.normal()).clamp(0.0, 1.0));
        }
        y.push(c);
    }
    (x, y)
}

/// [`two_gaussians`] with the same shift and noise in every one of `d` features.
pub fn blobs(n: usize, d: usize, shift: f32, noise: f32, seed: u64) -> (Vec<f32>, Vec<u32>) {
    two_gaussians(n, &vec![shift; d], &vec![noise; d], seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_alternate_and_separate_by_the_shift() {
        let (x, y) = blobs(200, 3, 0.2, 0.05, 1);
        assert_eq!((x.len(), &y[..4]), (600, &[0, 1, 0, 1][..]));
        let mean = |c: u32| {
            let rows: Vec<f32> = x
                .chunks(3)
                .zip(&y)
                .filter(|(_, &l)| l == c)
                .map(|(r, _)| r[0])
                .collect();
            rows.iter().sum::<f32>() / rows.len() as f32
        };
        assert!((mean(0) - 0.3).abs() < 0.02 && (mean(1) - 0.7).abs() < 0.02);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(blobs(10, 2, 0.1, 0.1, 5), blobs(10, 2, 0.1, 0.1, 5));
    }
}
