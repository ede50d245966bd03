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
        let (var, mean) = x.clone().var_mean_bias(D - 1);
        let x = (x - mean) / (var + self.eps).sqrt();
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
