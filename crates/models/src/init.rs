//! Initial weights drawn on the host from a seed.
//!
//! burn's `Tensor::random` draws from one generator per backend, shared by the whole process:
//! whatever else draws meanwhile (another model being built on another thread, a dropout mask)
//! changes what a model gets. Models here draw their initial weights from their own seeded
//! generator instead, so the same seed gives the same model on every backend, every time.

use burn::tensor::{Device, Tensor, TensorData};

/// SplitMix64's increment.
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mix. `mix(seed + (i+1)·GOLDEN_GAMMA)` is the
/// i-th draw of a generator started at `seed`, so draws can also be made out of order.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea & Flood 2014): 64-bit state, one add and three xor-shift-multiplies
/// per draw.
#[derive(Debug, Clone)]
pub struct HostRng(u64);

impl HostRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN_GAMMA);
        mix(self.0)
    }

    /// Uniform on [0, 1), 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform on [−bound, bound).
    pub fn uniform(&mut self, bound: f64) -> f64 {
        (self.unit() * 2.0 - 1.0) * bound
    }

    /// `n` draws from N(0, std²) (Box–Muller, both outputs used).
    pub fn normals(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let u1 = 1.0 - self.unit(); // (0, 1]: ln stays finite
            let u2 = self.unit();
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32);
            out.push((r * t.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// A `[rows, cols]` tensor from N(0, std²).
    pub fn normal_matrix(&mut self, rows: usize, cols: usize, std: f64, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.normals(rows * cols, std), [rows, cols]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normals_have_the_asked_moments_and_repeat_with_the_seed() {
        let v = HostRng::new(7).normals(200_001, 0.02);
        assert_eq!(v.len(), 200_001);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // Standard errors: mean 0.02/√n ≈ 4.5e-5; variance 4e-4·√(2/n) ≈ 1.3e-6.
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var - 4e-4).abs() < 6e-6, "variance {var}");
        assert_eq!(v[..10], HostRng::new(7).normals(10, 0.02)[..]);
        assert_ne!(v[..10], HostRng::new(8).normals(10, 0.02)[..]);
    }

    #[test]
    fn splitmix_matches_the_published_sequence() {
        // SplitMix64 from seed 1234567 (the reference implementation's first outputs).
        let mut r = HostRng::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
    }
}
