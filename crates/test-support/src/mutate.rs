//! Deterministic mutations of a seed file for "never panics" tests: overwrite a few bytes with boundary
//! values, sometimes truncate. Seeded xorshift, so a failure reproduces.

/// `n` mutants of `seed`.
pub fn mutants(seed: &[u8], n: usize) -> Vec<Vec<u8>> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let mut m = seed.to_vec();
            for _ in 0..1 + next() % 4 {
                let at = (next() % m.len().max(1) as u64) as usize;
                let v = [0x00, 0xff, 0x7f, 0x80, 0x01, next() as u8][(next() % 6) as usize];
                if let Some(b) = m.get_mut(at) {
                    *b = v;
                }
            }
            if next() % 8 == 0 {
                m.truncate((next() % (m.len() as u64 + 1)) as usize);
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn mutants_are_deterministic_and_differ_from_the_seed() {
        let seed = vec![0x42u8; 64];
        let a = super::mutants(&seed, 20);
        assert_eq!(a, super::mutants(&seed, 20));
        assert!(a.iter().all(|m| m != &seed));
    }
}
