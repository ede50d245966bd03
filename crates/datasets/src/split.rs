//! Deterministic shuffling and stratified splitting, independent of any RNG crate's version.

/// SplitMix64: a tiny, well-known generator whose output never changes between versions.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// Splits indices `0..labels.len()` into train/validation/test, stratified by label: each class
/// is shuffled with `seed` and cut by the fractions, so every split keeps the class ratio.
pub fn stratified_split(labels: &[usize], fractions: (f64, f64), seed: u64) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let n_classes = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut rng = SplitMix64(seed);
    let (mut train, mut val, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for class in 0..n_classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        rng.shuffle(&mut idx);
        let n = idx.len();
        let n_train = (n as f64 * fractions.0).round() as usize;
        let n_val = (n as f64 * fractions.1).round() as usize;
        train.extend_from_slice(&idx[..n_train]);
        val.extend_from_slice(&idx[n_train..(n_train + n_val).min(n)]);
        test.extend_from_slice(&idx[(n_train + n_val).min(n)..]);
    }
    for v in [&mut train, &mut val, &mut test] {
        rng.shuffle(v);
    }
    (train, val, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_stratified_disjoint_and_deterministic() {
        let labels: Vec<usize> = (0..1000).map(|i| usize::from(i % 4 == 0)).collect();
        let (tr, va, te) = stratified_split(&labels, (0.8, 0.1), 7);
        assert_eq!(tr.len() + va.len() + te.len(), 1000);
        let mut all: Vec<usize> = tr.iter().chain(&va).chain(&te).copied().collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        // 250 positives: 200 / 25 / 25.
        let pos = |s: &[usize]| s.iter().filter(|&&i| labels[i] == 1).count();
        assert_eq!((pos(&tr), pos(&va), pos(&te)), (200, 25, 25));
        assert_eq!(stratified_split(&labels, (0.8, 0.1), 7), (tr.clone(), va, te));
        assert_ne!(stratified_split(&labels, (0.8, 0.1), 8).0, tr);
    }
}
