//! Small building blocks with Hugging Face parameter names (`weight`, `bias`).

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor};

/// Layer normalisation over the last dimension, parameters named as in PyTorch.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale, `[d]`.
    pub weight: Param<Tensor<1>>,
    /// Shift, `[d]`.
    pub bias: Param<Tensor<1>>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    pub fn new(d: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([d], device)),
            bias: Param::from_tensor(Tensor::zeros([d], device)),
            eps,
        }
    }

    /// # Shapes
    /// - input and output: `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if !x.device().is_autodiff() {
            // Inference: the backend's fused kernel (same formula).
            return burn::tensor::module::layer_norm(x, self.weight.val(), Some(self.bias.val()), self.eps);
        }
        // Training: the normalisation as one autodiff node where there is a kernel for it
        // (flex, ndarray: crate::fused), burn's composite ops elsewhere.
        let x = match crate::fused::layer_norm_last(x.clone(), self.eps) {
            Some(xhat) => xhat,
            None => {
                let (var, mean) = x.clone().var_mean_bias(D - 1);
                (x - mean) / (var + self.eps).sqrt()
            }
        };
        x * self.weight.val().unsqueeze() + self.bias.val().unsqueeze()
    }
}

/// A lookup table, `weight: [n, d]`.
#[derive(Module, Debug)]
pub struct Embedding {
    pub weight: Param<Tensor<2>>,
}

impl Embedding {
    /// `weight ~ N(0, std²)`, drawn from `rng`.
    pub fn new(n: usize, d: usize, std: f64, rng: &mut crate::init::HostRng, device: &Device) -> Self {
        Self { weight: Param::from_tensor(rng.normal_matrix(n, d, std, device)) }
    }

    /// # Shapes
    /// - ids: `[batch, seq]`
    /// - output: `[batch, seq, d]`
    pub fn forward(&self, ids: Tensor<2, Int>) -> Tensor<3> {
        let [batch, seq] = ids.dims();
        let [_, d] = self.weight.val().dims();
        let flat = ids.reshape([batch * seq]);
        self.weight.val().select(0, flat).reshape([batch, seq, d])
    }
}

/// Dropout while training (on an autodiff device), the identity otherwise: each element is kept
/// with probability `1 − prob` and scaled by `1/(1 − prob)`.
///
/// On the CPU backends the mask is drawn on the host with a counter-based generator (SplitMix64
/// of a seed and the element's index, two elements per draw) seeded by one draw from the
/// device's generator, and applied as one multiplication by `{0, 1/(1 − prob)}`; so
/// `device.seed(s)` still fixes every mask. burn's `Dropout` draws a ChaCha Bernoulli per element
/// and multiplies twice, which took ~4x as long (`bench/profile_cpu_*.json`). Elsewhere (GPUs)
/// the mask is drawn on the device as burn does.
#[derive(Module, Debug)]
pub struct Dropout {
    pub prob: f64,
}

impl Dropout {
    pub fn new(prob: f64) -> Self {
        Self { prob }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let device = x.device();
        if self.prob == 0.0 || !device.is_autodiff() {
            return x;
        }
        let keep = 1.0 - self.prob;
        if !is_host(&device) {
            let mask = x.random_like(burn::tensor::Distribution::Bernoulli(keep));
            return x * mask / keep;
        }
        // One 32-bit seed half from each of two device draws (uniform in [0, 2^24): exact in f32).
        let s: Vec<f32> = Tensor::<1>::random([3], burn::tensor::Distribution::Uniform(0.0, 16_777_216.0), &device)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .expect("f32 seed draws");
        let seed = (s[0] as u64) | ((s[1] as u64) << 24) | ((s[2] as u64) << 48);
        let shape = x.shape();
        let n = shape.num_elements();
        let threshold = (keep * 4_294_967_296.0) as u64; // keep when a 32-bit draw is below
        let scale = (1.0 / keep) as f32;
        let mut mask = vec![0.0f32; n];
        for (i, pair) in mask.chunks_mut(2).enumerate() {
            let z = crate::init::mix(seed.wrapping_add((i as u64 + 1).wrapping_mul(crate::init::GOLDEN_GAMMA)));
            for (k, m) in pair.iter_mut().enumerate() {
                let draw = (z >> (32 * k)) & 0xFFFF_FFFF;
                *m = if draw < threshold { scale } else { 0.0 };
            }
        }
        x * Tensor::from_data(burn::tensor::TensorData::new(mask, shape), &device)
    }
}

/// Whether tensors on `device` live in host memory (flex, ndarray), where a mask built on the
/// host costs no transfer.
fn is_host(device: &Device) -> bool {
    #[allow(deprecated)]
    let ndarray = Device::ndarray();
    *device == Device::flex() || *device == ndarray
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    /// The host mask: kept fraction 1 − p (within 5 standard errors over 200k elements), values
    /// exactly 0 or 1/(1 − p), the same mask for the same device seed and another for another,
    /// the gradient the mask itself, and the identity off autodiff.
    #[test]
    fn dropout_keeps_its_share_scales_and_follows_the_device_seed() {
        for device in [Device::flex(), {
            #[allow(deprecated)]
            let d = Device::ndarray();
            d
        }] {
            let ad = device.clone().autodiff();
            let d = Dropout::new(0.1);
            let n = 200_000;
            let x = Tensor::<1>::ones([n], &ad).require_grad();
            ad.seed(3);
            let y = d.forward(x.clone());
            let v = host(y.clone());
            let kept = v.iter().filter(|&&e| e != 0.0).count() as f64 / n as f64;
            let se = (0.9f64 * 0.1 / n as f64).sqrt();
            assert!((kept - 0.9).abs() < 5.0 * se, "kept {kept}");
            assert!(v.iter().all(|&e| e == 0.0 || (e - 1.0 / 0.9).abs() < 1e-6));
            let grads = y.sum().backward();
            let g = host(x.grad(&grads).expect("a gradient"));
            assert_eq!(g, v, "d(x·m)/dx = m");
            ad.seed(3);
            assert_eq!(host(d.forward(x.clone())), v, "same seed, same mask");
            ad.seed(4);
            assert_ne!(host(d.forward(x.clone())), v, "another seed, another mask");
            let plain = Tensor::<1>::ones([8], &device);
            assert_eq!(host(d.forward(plain)), vec![1.0; 8], "evaluation: the identity");
        }
    }
}
