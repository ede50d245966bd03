//! Softmax (last dim), exact GELU and LayerNorm's normalisation as single operations with their
//! own backward, on the CPU.
//!
//! Why: the profile of a MiniLM training step on flex (`bench/profile_cpu_minilm_*.json`, issue
//! 22) put softmax's backward at 10x PyTorch's time and GELU's at 12x. burn 0.22's autodiff has
//! no softmax node: it records the composite `exp(x − max) / Σ` and differentiates each piece
//! (a broadcast division's backward, a reduction, …), and flex's GELU calls libm's scalar `erff`
//! one element at a time on one thread.
//!
//! How, with burn's public API only: a backend extension (`#[backend_extension]`, burn's
//! `extension` feature) with an implementation for flex (row-parallel kernels over the tensor's
//! storage), for ndarray (the trait's default bodies, composed of backend ops), and for
//! `Autodiff<B>` (one graph node whose backward is the closed form: `y ⊙ (g − ⟨g, y⟩)` for
//! softmax, `g · (Φ(x) + x φ(x))` for GELU). Other devices (wgpu, CUDA, LibTorch) keep burn's own
//! operations: [`softmax_last`] and [`gelu`] choose at run time.
//!
//! Also here, for the same profile: linear layers as one `x · Wᵀ` node whose weight gradient
//! comes out in the weight's layout, AdamW in one pass (in place when it may), a gradient's
//! squared norm in one pass.
//!
//! Precision: softmax is a row kernel on the vectorised exp below, forward (relative error
//! ~2e-7) and the exact formula backward. GELU uses
//! erf from Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7) and an exp written so the compiler can
//! vectorise it (Cody–Waite reduction, degree-6 polynomial, relative error ~2e-7): the values
//! and derivatives stay within 4e-7·(1 + |x|) of the exact ones (test `tests/fused.rs`).
#![allow(deprecated)] // burn's NdArray: still the backend of the tests

use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{binary, unary, Backward, Ops, OpsKind};
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Autodiff, Backend, Dispatch, Flex, NdArray, TensorMetadata};
use burn::tensor::{Device, Tensor};
use burn_flex::{FlexTensor, Layout};

const SQRT_1_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[backend_extension(Flex, NdArray, Autodiff)]
pub trait FusedOps: Backend {
    /// `x · wᵀ` for `x: [rows, d_in]` and a weight in PyTorch layout `w: [d_out, d_in]`. As an
    /// autodiff node its backward writes the weight's gradient as `gᵀ · x`, already `[d_out, d_in]`
    /// and contiguous; burn's matmul of a transposed weight returns the transpose of a
    /// `[d_in, d_out]` gradient, a strided view that every later pass over it (the gradient
    /// norm, the clip, AdamW, the movement scores' `∂L/∂W ⊙ W`) had to copy first.
    fn matmul_wt(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(x, Self::float_transpose(w))
    }
    /// Softmax over the last dimension.
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = x.shape().num_dims() - 1;
        Self::softmax(x, last)
    }
    /// `y ⊙ (g − Σ_last(g ⊙ y))`, the gradient of softmax given its output `y`.
    fn softmax_last_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        softmax_backward_composite::<Self>(y, grad)
    }
    /// `x Φ(x)` with Φ the standard normal CDF (exact GELU, `torch.nn.functional.gelu`).
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_mul(x.clone(), normal_cdf::<Self>(x))
    }
    /// `g · (Φ(x) + x φ(x))`.
    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let cdf = normal_cdf::<Self>(x.clone());
        let x2 = Self::float_mul(x.clone(), x.clone());
        let pdf = Self::float_mul_scalar(Self::float_exp(Self::float_mul_scalar(x2, (-0.5).into())), INV_SQRT_2PI.into());
        Self::float_mul(grad, Self::float_add(cdf, Self::float_mul(x, pdf)))
    }
    /// One AdamW step exactly as burn's `AdamW` computes it, for a parameter `p` with gradient `g`
    /// and moments `m`, `v` after `time − 1` steps: `m' = β₁m + (1−β₁)g`, `v' = β₂v + (1−β₂)g²`,
    /// `p' = p(1 − lr·wd) − lr · (m'/(1−β₁ᵗ)) / (√(v'/(1−β₂ᵗ)) + ε)`. Returns `(p', m', v')`.
    #[allow(clippy::too_many_arguments)]
    fn adamw_step(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lr: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        weight_decay: f64,
        time: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        adamw_composite::<Self>(p, g, m, v, AdamWScalars::new(lr, beta_1, beta_2, epsilon, weight_decay, time))
    }
    /// `Σ x²` over every element, shape `[1]` (a gradient's squared norm).
    fn sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        sum_squares_composite::<Self>(x)
    }
    /// LayerNorm without its affine part, over the last dimension: `x̂ = (x − μ) / √(σ² + ε)`
    /// with the biased variance σ² (as `torch.nn.LayerNorm`).
    fn layer_norm_last(x: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let (xhat, _) = normalize_composite::<Self>(x, eps);
        xhat
    }
    /// `(g − mean(g) − x̂ · mean(g ⊙ x̂)) / √(σ² + ε)`, the gradient of [`Self::layer_norm_last`]
    /// given its input `x` (x̂ and σ are recomputed from it).
    fn layer_norm_last_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        layer_norm_backward_composite::<Self>(x, grad, eps)
    }
}

impl FusedOps for NdArray {}

impl FusedOps for Flex {
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let last = x.shape().num_dims() - 1;
        let Some((xs, shape)) = f32_view(&x) else { return burn_flex::ops::activation::softmax(x, last) };
        let row = shape[last];
        if row == 0 {
            return burn_flex::ops::activation::softmax(x, last);
        }
        let mut out = vec![0f32; xs.len()];
        par_rows(&mut out, row, |start, o| simd::softmax_rows(&xs[start..start + o.len()], o, row));
        from_vec(out, shape)
    }
    fn softmax_last_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some((y, g, shape)) = f32_pair(&y, &grad) else {
            return softmax_backward_composite::<Flex>(y, grad);
        };
        let row = *shape.last().unwrap_or(&1);
        let mut out = vec![0f32; y.len()];
        par_rows(&mut out, row, |start, o| {
            let n = o.len();
            simd::softmax_backward_rows(&y[start..start + n], &g[start..start + n], o, row)
        });
        from_vec(out, shape)
    }
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some((xs, shape)) = f32_view(&x) else { return <Flex as ActivationOps<Flex>>::gelu(x) };
        let mut out = vec![0f32; xs.len()];
        par_rows(&mut out, 1, |start, o| simd::gelu(&xs[start..start + o.len()], o));
        from_vec(out, shape)
    }
    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let Some((xs, gs, shape)) = f32_pair(&x, &grad) else {
            return <Flex as ActivationOps<Flex>>::gelu_backward(x, grad);
        };
        let mut out = vec![0f32; xs.len()];
        par_rows(&mut out, 1, |start, o| {
            let n = o.len();
            simd::gelu_backward(&xs[start..start + n], &gs[start..start + n], o)
        });
        from_vec(out, shape)
    }
    fn adamw_step(
        p: FloatTensor<Self>,
        g: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        lr: f64,
        beta_1: f64,
        beta_2: f64,
        epsilon: f64,
        weight_decay: f64,
        time: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        use rayon::prelude::*;
        let k = AdamWScalars::new(lr, beta_1, beta_2, epsilon, weight_decay, time);
        let Some((gs, shape)) = f32_view(&g) else {
            return adamw_composite::<Flex>(p, g, m, v, k);
        };
        let f32_of_shape = |t: &FlexTensor| t.dtype() == burn::tensor::DType::F32 && t.layout().shape() == &shape;
        if !(f32_of_shape(&p) && f32_of_shape(&m) && f32_of_shape(&v)) {
            return adamw_composite::<Flex>(p, g, m, v, k);
        }
        // One pass over the four tensors (burn's composite makes ~10, each allocating).
        const CHUNK: usize = 16_384;
        let step = |pw: &mut [f32], mw: &mut [f32], vw: &mut [f32]| {
            pw.par_chunks_mut(CHUNK).zip(mw.par_chunks_mut(CHUNK)).zip(vw.par_chunks_mut(CHUNK)).zip(gs.par_chunks(CHUNK)).for_each(
                |(((pc, mc), vc), gc)| simd::adamw_in_place(pc, mc, vc, gc, &k),
            )
        };
        // In place when the parameter and both moments are uniquely owned, contiguous and exactly
        // their storage (the usual case: the previous step's outputs); otherwise on copies.
        let n = gs.len();
        let owned = |t: &FlexTensor| t.is_unique() && t.is_contiguous() && t.bytes().len() == n * std::mem::size_of::<f32>();
        let (mut p, mut m, mut v) = (p, m, v);
        if owned(&p) && owned(&m) && owned(&v) {
            if let (Some(pw), Some(mw), Some(vw)) = (p.try_storage_mut::<f32>(), m.try_storage_mut::<f32>(), v.try_storage_mut::<f32>()) {
                step(pw, mw, vw);
                return (p, m, v);
            }
        }
        let copy = |t: &FlexTensor| f32_view(t).expect("f32, checked above").0.into_owned();
        let (mut po, mut mo, mut vo) = (copy(&p), copy(&m), copy(&v));
        step(&mut po, &mut mo, &mut vo);
        (from_vec(po, shape.clone()), from_vec(mo, shape.clone()), from_vec(vo, shape))
    }
    fn sum_squares(x: FloatTensor<Self>) -> FloatTensor<Self> {
        use rayon::prelude::*;
        let Some((xs, _)) = f32_view(&x) else {
            return sum_squares_composite::<Flex>(x);
        };
        // One pass, no temporary; f64 partial sums per chunk, in eight vector lanes.
        let total: f64 = xs
            .par_chunks(16_384)
            .map(|c| {
                let mut t = 0.0;
                simd::sum_squares_f64(c, &mut t);
                t
            })
            .sum();
        from_vec(vec![total as f32], burn::tensor::Shape::new([1]))
    }
    fn layer_norm_last(x: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let Some((xs, shape)) = f32_view(&x) else {
            return normalize_composite::<Flex>(x, eps).0;
        };
        let row = *shape.last().unwrap_or(&1);
        let mut out = vec![0f32; xs.len()];
        par_rows(&mut out, row, |start, o| simd::layer_norm_rows(&xs[start..start + o.len()], o, row, eps as f32));
        from_vec(out, shape)
    }
    fn layer_norm_last_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        let Some((xs, gs, shape)) = f32_pair(&x, &grad) else {
            return layer_norm_backward_composite::<Flex>(x, grad, eps);
        };
        let row = *shape.last().unwrap_or(&1);
        let mut out = vec![0f32; xs.len()];
        par_rows(&mut out, row, |start, o| {
            let n = o.len();
            simd::layer_norm_backward_rows(&xs[start..start + n], &gs[start..start + n], o, row, eps as f32)
        });
        from_vec(out, shape)
    }
}

/// The scalars of one AdamW step, in f32 as burn's `AdamW` uses them.
#[derive(Clone, Copy)]
pub struct AdamWScalars {
    lr: f32,
    beta_1: f32,
    beta_2: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    /// Weight decay applies (`lr · wd ≠ 0`) and each weight keeps `1 − lr · wd` of itself.
    decay: bool,
    keep: f32,
}

impl AdamWScalars {
    fn new(lr: f64, beta_1: f64, beta_2: f64, epsilon: f64, weight_decay: f64, time: usize) -> Self {
        let (b1, b2) = (beta_1 as f32, beta_2 as f32);
        let decay_rate = lr * weight_decay;
        Self {
            lr: lr as f32,
            beta_1: b1,
            beta_2: b2,
            one_minus_beta_1: 1.0 - b1,
            one_minus_beta_2: 1.0 - b2,
            correction_1: 1.0 - b1.powi(time as i32),
            correction_2: 1.0 - b2.powi(time as i32),
            epsilon: epsilon as f32,
            decay: decay_rate != 0.0,
            keep: (1.0 - decay_rate) as f32,
        }
    }
}

/// burn's `AdamW` step composed of backend ops, in its order of operations.
fn adamw_composite<B: Backend>(
    p: FloatTensor<B>,
    g: FloatTensor<B>,
    m: FloatTensor<B>,
    v: FloatTensor<B>,
    k: AdamWScalars,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let m = B::float_add(B::float_mul_scalar(m, k.beta_1.into()), B::float_mul_scalar(g.clone(), k.one_minus_beta_1.into()));
    let v = B::float_add(B::float_mul_scalar(v, k.beta_2.into()), B::float_mul_scalar(B::float_mul(g.clone(), g), k.one_minus_beta_2.into()));
    let m_hat = B::float_div_scalar(m.clone(), k.correction_1.into());
    let v_hat = B::float_div_scalar(v.clone(), k.correction_2.into());
    let delta = B::float_div(m_hat, B::float_add_scalar(B::float_sqrt(v_hat), k.epsilon.into()));
    let decayed = if k.decay { B::float_mul_scalar(p, k.keep.into()) } else { p };
    (B::float_sub(decayed, B::float_mul_scalar(delta, k.lr.into())), m, v)
}

fn sum_squares_composite<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_sum(B::float_mul(x.clone(), x))
}

/// Mean and `1/√(σ² + ε)` of one row (two passes: the biased variance about the mean).

/// `(x̂, 1/√(σ² + ε))` over the last dimension, composed of backend ops.
fn normalize_composite<B: Backend>(x: FloatTensor<B>, eps: f64) -> (FloatTensor<B>, FloatTensor<B>) {
    let last = x.shape().num_dims() - 1;
    let mean = B::float_mean_dim(x.clone(), last);
    let centred = B::float_sub(x, mean);
    let var = B::float_mean_dim(B::float_mul(centred.clone(), centred.clone()), last);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, eps.into())));
    (B::float_mul(centred, rstd.clone()), rstd)
}

/// The gradient of the normalisation, `(g − mean(g) − x̂ · mean(g ⊙ x̂)) / √(σ² + ε)`, composed of
/// backend ops.
fn layer_norm_backward_composite<B: Backend>(x: FloatTensor<B>, grad: FloatTensor<B>, eps: f64) -> FloatTensor<B> {
    let last = x.shape().num_dims() - 1;
    let (xhat, rstd) = normalize_composite::<B>(x, eps);
    let m1 = B::float_mean_dim(grad.clone(), last);
    let m2 = B::float_mean_dim(B::float_mul(grad.clone(), xhat.clone()), last);
    B::float_mul(B::float_sub(B::float_sub(grad, m1), B::float_mul(xhat, m2)), rstd)
}

/// `Φ(x) = ½(1 + erf(x/√2))`, composed of backend ops.
fn normal_cdf<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    B::float_mul_scalar(B::float_add_scalar(B::float_erf(B::float_mul_scalar(x, SQRT_1_2.into())), 1.0.into()), 0.5.into())
}

fn softmax_backward_composite<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let last = y.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(grad.clone(), y.clone()), last);
    B::float_mul(y, B::float_sub(grad, dot))
}

/// The f32 contents of a flex tensor in logical (row-major) order; `None` for other dtypes.
fn f32_view(t: &FlexTensor) -> Option<(std::borrow::Cow<'_, [f32]>, burn::tensor::Shape)> {
    if t.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let shape = t.layout().shape().clone();
    let n = shape.num_elements();
    let data = match t.as_slice::<f32>() {
        Some(s) if t.is_contiguous() && s.len() >= n => std::borrow::Cow::Borrowed(&s[..n]),
        _ => std::borrow::Cow::Owned(t.to_contiguous().storage::<f32>()[..n].to_vec()),
    };
    Some((data, shape))
}

#[allow(clippy::type_complexity)]
fn f32_pair<'a>(
    a: &'a FlexTensor,
    b: &'a FlexTensor,
) -> Option<(std::borrow::Cow<'a, [f32]>, std::borrow::Cow<'a, [f32]>, burn::tensor::Shape)> {
    let (x, shape) = f32_view(a)?;
    let (y, shape_b) = f32_view(b)?;
    (shape == shape_b).then_some((x, y, shape))
}

fn from_vec(v: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::new(burn::tensor::Bytes::from_elems(v), Layout::contiguous(shape), burn::tensor::DType::F32)
}

/// Runs `f(start, chunk)` over chunks of `out` (whole rows of `row` elements) on rayon's pool.
fn par_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    use rayon::prelude::*;
    let row = row.max(1);
    let chunk = row * (16_384 / row).max(1);
    out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| f(i * chunk, o));
}

impl<B: Backend + FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn matmul_wt(x: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MatmulWt;
        impl<B: Backend + FusedOps> Backward<B, 2> for MatmulWt {
            type State = (FloatTensor<B>, FloatTensor<B>);
            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (x, w) = ops.state;
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |g| B::float_matmul(g, w),                       // [rows, d_out] · [d_out, d_in]
                    |g| B::float_matmul(B::float_transpose(g), x), // [d_out, rows] · [rows, d_in]
                );
            }
        }
        match MatmulWt.prepare::<C>([x.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (xp, wp) = (x.primitive().clone(), w.primitive().clone());
                let y = B::matmul_wt(xp.clone(), wp.clone());
                prep.finish((xp, wp), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matmul_wt(x.primitive().clone(), w.primitive().clone())),
        }
    }
    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SoftmaxLast;
        impl<B: Backend + FusedOps> Backward<B, 1> for SoftmaxLast {
            type State = FloatTensor<B>;
            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let y = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| B::softmax_last_backward(y, g));
            }
        }
        match SoftmaxLast.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::softmax_last(x.primitive().clone());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x.primitive().clone())),
        }
    }
    fn gelu_exact(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GeluExact;
        impl<B: Backend + FusedOps> Backward<B, 1> for GeluExact {
            type State = FloatTensor<B>;
            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let x = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |g| B::gelu_exact_backward(x, g));
            }
        }
        match GeluExact.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = x.primitive().clone();
                prep.finish(input.clone(), B::gelu_exact(input))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_exact(x.primitive().clone())),
        }
    }
    fn layer_norm_last(x: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormLast {
            eps: f64,
        }
        impl<B: Backend + FusedOps> Backward<B, 1> for LayerNormLast {
            type State = FloatTensor<B>;
            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let (x, eps) = (ops.state, self.eps);
                unary::<B, _>(ops.parents, ops.node, grads, |g| B::layer_norm_last_backward(x, g, eps));
            }
        }
        match (LayerNormLast { eps }).prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let input = x.primitive().clone();
                prep.finish(input.clone(), B::layer_norm_last(input, eps))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(x.primitive().clone(), eps)),
        }
    }
    fn softmax_last_backward(y: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        softmax_backward_composite::<Self>(y, grad)
    }
    fn gelu_exact_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        <Self as ActivationOps<Self>>::gelu_backward(x, grad)
    }
    fn layer_norm_last_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, eps: f64) -> FloatTensor<Self> {
        layer_norm_backward_composite::<Self>(x, grad, eps)
    }
}

/// Whether `device` runs on a backend this module has kernels for (flex, ndarray; with or
/// without autodiff).
pub fn has_fused_kernels(device: &Device) -> bool {
    let name = format!("{device:?}");
    name.contains("Flex") || name.contains("NdArray")
}

/// `x · wᵀ` for `w: [d_out, d_in]` (see [`FusedOps::matmul_wt`]): one autodiff node whose weight
/// gradient comes out contiguous in `w`'s layout on flex/ndarray; `None` elsewhere (the caller
/// uses burn's ops).
pub fn matmul_wt(x: Tensor<2>, w: Tensor<2>) -> Option<Tensor<2>> {
    has_fused_kernels(&x.device()).then(|| Tensor::from_dispatch(<Dispatch as FusedOps>::matmul_wt(x.into_dispatch(), w.into_dispatch())))
}

/// Whether [`softmax_last`] runs this module's one-pass kernel on `device` (flex, ndarray).
pub fn has_softmax_kernel(device: &Device) -> bool {
    has_fused_kernels(device)
}

/// Softmax over the last dimension: one autodiff node on flex/ndarray, burn's `softmax` elsewhere.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if has_fused_kernels(&x.device()) {
        Tensor::from_dispatch(<Dispatch as FusedOps>::softmax_last(x.into_dispatch()))
    } else {
        burn::tensor::activation::softmax(x, D - 1)
    }
}

/// Whether [`adamw_step`] has a kernel for tensors on `device` (flex, ndarray; not autodiff).
pub fn has_adamw_kernel(device: &Device) -> bool {
    has_fused_kernels(device) && !device.is_autodiff()
}

/// One AdamW step (see [`FusedOps::adamw_step`]): one pass over the parameter, its gradient and
/// both moments on flex, composed backend operations on ndarray. Only for devices where
/// [`has_adamw_kernel`] holds (`None` elsewhere: use burn's `AdamW` there). Returns `(p', m', v')`.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step<const D: usize>(
    p: Tensor<D>,
    g: Tensor<D>,
    m: Tensor<D>,
    v: Tensor<D>,
    lr: f64,
    beta_1: f64,
    beta_2: f64,
    epsilon: f64,
    weight_decay: f64,
    time: usize,
) -> Option<(Tensor<D>, Tensor<D>, Tensor<D>)> {
    if !has_adamw_kernel(&p.device()) {
        return None;
    }
    let (p, m, v) = <Dispatch as FusedOps>::adamw_step(p.into_dispatch(), g.into_dispatch(), m.into_dispatch(), v.into_dispatch(), lr, beta_1, beta_2, epsilon, weight_decay, time);
    Some((Tensor::from_dispatch(p), Tensor::from_dispatch(m), Tensor::from_dispatch(v)))
}

/// `Σ x²` over all elements as a `[1]` tensor: one pass without a temporary on flex (f64 partial
/// sums), `x.square().sum()` elsewhere. For gradient norms (`trainer::optim`).
pub fn sum_squares<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    if has_fused_kernels(&x.device()) && !x.device().is_autodiff() {
        Tensor::from_dispatch(<Dispatch as FusedOps>::sum_squares(x.into_dispatch()))
    } else {
        x.square().sum()
    }
}

/// LayerNorm's normalisation over the last dimension, `(x − μ) / √(σ² + ε)` (biased σ², no
/// affine part): one autodiff node on flex/ndarray (backward `(g − ḡ − x̂·mean(g ⊙ x̂)) / σ`), `None`
/// elsewhere (the caller composes it from burn's ops). The composite form took 12.0 ms forward +
/// backward per 32 × 128 × 384 call on flex against PyTorch's 2.0 (`bench/profile_cpu_minilm_fused.json`).
pub fn layer_norm_last<const D: usize>(x: Tensor<D>, eps: f64) -> Option<Tensor<D>> {
    has_fused_kernels(&x.device()).then(|| Tensor::from_dispatch(<Dispatch as FusedOps>::layer_norm_last(x.into_dispatch(), eps)))
}

/// Exact GELU, `x Φ(x)`, with its exact derivative on every backend: one autodiff node on
/// flex/ndarray; on LibTorch its own GELU (exact both ways); elsewhere `x·½(1 + erf(x/√2))`,
/// because burn's default GELU backward, which cubecl (wgpu, CUDA) uses, is the derivative of the
/// tanh approximation (up to 8.7e-4 off the true derivative on [-5, 5]).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let d = x.device();
    if has_fused_kernels(&d) {
        Tensor::from_dispatch(<Dispatch as FusedOps>::gelu_exact(x.into_dispatch()))
    } else if format!("{d:?}").contains("LibTorch") {
        burn::tensor::activation::gelu(x)
    } else {
        x.clone() * ((x / std::f64::consts::SQRT_2).erf() + 1.0) * 0.5
    }
}

/// Branch-free f32 kernels the compiler vectorises; compiled three times (AVX-512, AVX2+FMA,
/// baseline) and chosen at run time.
pub mod simd {
    use super::{AdamWScalars, INV_SQRT_2PI, SQRT_1_2};

    /// `e^x`, relative error ~2e-7 on [-87, 88]; 0 below, saturating above.
    #[inline(always)]
    pub fn exp(x0: f32) -> f32 {
        let x = x0.clamp(-87.0, 88.0);
        // n = round(x / ln 2) by the 1.5·2^23 trick (exact for |n| < 2^22).
        let t = x * std::f32::consts::LOG2_E + 12_582_912.0;
        let n = t - 12_582_912.0;
        let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6; // Cody–Waite: ln 2 = hi + lo
        let p = 1.0
            + r * (1.0
                + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_888_9)))));
        // 2^n from t's own bits (t = 1.5·2^23 + n, so its low bits hold n): no float→int
        // conversion, which Rust's saturating `as` would turn into scalar code in the loop.
        let bits = t.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23;
        let y = p * f32::from_bits(bits);
        if x0 < -87.0 { 0.0 } else { y }
    }

    /// erf by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7).
    #[inline(always)]
    pub fn erf(x: f32) -> f32 {
        let a = x.abs();
        let t = 1.0 / (1.0 + 0.327_591_1 * a);
        let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
        let y = 1.0 - poly * exp(-a * a);
        y.copysign(x)
    }

    #[inline(always)]
    fn gelu_one(x: f32) -> f32 {
        0.5 * x * (1.0 + erf(x * SQRT_1_2))
    }

    #[inline(always)]
    fn gelu_grad_one(x: f32, g: f32) -> f32 {
        let cdf = 0.5 * (1.0 + erf(x * SQRT_1_2));
        g * (cdf + x * INV_SQRT_2PI * exp(-0.5 * x * x))
    }

    macro_rules! dispatch {
        ($name:ident, $avx512:ident, $avx:ident, $body:ident, ($($a:ident: $t:ty),*)) => {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn $avx512($($a: $t),*) { $body($($a),*) }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn $avx($($a: $t),*) { $body($($a),*) }
            pub fn $name($($a: $t),*) {
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports the features the function was compiled for.
                    return unsafe { $avx512($($a),*) };
                }
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { $avx($($a),*) };
                }
                $body($($a),*)
            }
        };
    }

    #[inline(always)]
    fn gelu_body(x: &[f32], out: &mut [f32]) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = gelu_one(x);
        }
    }
    #[inline(always)]
    fn gelu_backward_body(x: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(g) {
            *o = gelu_grad_one(x, g);
        }
    }
    /// `Σ v` in eight lanes (so the compiler vectorises the reduction).
    #[inline(always)]
    fn lane_sum(v: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let chunks = v.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().sum();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        acc.iter().sum::<f32>() + tail
    }
    /// `max v` in eight lanes (−∞ for an empty slice).
    #[inline(always)]
    fn lane_max(v: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 8];
        let chunks = v.chunks_exact(8);
        let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
        for c in chunks {
            for (a, &x) in acc.iter_mut().zip(c) {
                *a = if x > *a { x } else { *a };
            }
        }
        acc.iter().fold(tail, |m, &x| if x > m { x } else { m })
    }
    /// Softmax of each row of `row` elements: `e^(x − max) / Σ e^(x − max)`.
    #[inline(always)]
    fn softmax_body(x: &[f32], out: &mut [f32], row: usize) {
        for (xr, or) in x.chunks(row).zip(out.chunks_mut(row)) {
            let m = lane_max(xr);
            for (o, &x) in or.iter_mut().zip(xr) {
                *o = exp(x - m);
            }
            let inv = 1.0 / lane_sum(or);
            for o in or.iter_mut() {
                *o *= inv;
            }
        }
    }
    /// `Σ x²` accumulated in f64, in eight lanes (a scalar f64 chain ran at ~0.65 G elements/s).
    #[inline(always)]
    fn sum_squares_body(x: &[f32], out: &mut f64) {
        let mut acc = [0f64; 8];
        let chunks = x.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|&v| v as f64 * v as f64).sum();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += v as f64 * v as f64;
            }
        }
        *out = acc.iter().sum::<f64>() + tail;
    }
    /// `Σ (x − c)²` in eight lanes.
    #[inline(always)]
    fn lane_sum_sq_centred(x: &[f32], c: f32) -> f32 {
        let mut acc = [0f32; 8];
        let chunks = x.chunks_exact(8);
        let tail: f32 = chunks.remainder().iter().map(|&v| (v - c) * (v - c)).sum();
        for ch in chunks {
            for (a, &v) in acc.iter_mut().zip(ch) {
                *a += (v - c) * (v - c);
            }
        }
        acc.iter().sum::<f32>() + tail
    }
    /// `(Σ g, Σ g·(x − c))` in eight lanes.
    #[inline(always)]
    fn lane_sums_g(x: &[f32], g: &[f32], c: f32) -> (f32, f32) {
        let (mut a1, mut a2) = ([0f32; 8], [0f32; 8]);
        let (xc, gc) = (x.chunks_exact(8), g.chunks_exact(8));
        let (mut t1, mut t2) = (0f32, 0f32);
        for (&v, &w) in xc.remainder().iter().zip(gc.remainder()) {
            t1 += w;
            t2 += w * (v - c);
        }
        for (xs, gs) in xc.zip(gc) {
            for i in 0..8 {
                a1[i] += gs[i];
                a2[i] += gs[i] * (xs[i] - c);
            }
        }
        (a1.iter().sum::<f32>() + t1, a2.iter().sum::<f32>() + t2)
    }
    /// A row's mean and `1/√(σ² + ε)` (biased σ²).
    #[inline(always)]
    fn moments(x: &[f32], eps: f32) -> (f32, f32) {
        let n = x.len().max(1) as f32;
        let mean = lane_sum(x) / n;
        let var = lane_sum_sq_centred(x, mean) / n;
        (mean, 1.0 / (var + eps).sqrt())
    }
    /// LayerNorm's normalisation of each row: `(x − μ)/√(σ² + ε)`.
    #[inline(always)]
    fn layer_norm_body(x: &[f32], out: &mut [f32], row: usize, eps: f32) {
        for (o, x) in out.chunks_mut(row).zip(x.chunks(row)) {
            let (mean, rstd) = moments(x, eps);
            for (o, x) in o.iter_mut().zip(x) {
                *o = (x - mean) * rstd;
            }
        }
    }
    /// Its gradient: `(g − mean(g) − x̂·mean(g ⊙ x̂))/√(σ² + ε)`.
    #[inline(always)]
    fn layer_norm_backward_body(x: &[f32], g: &[f32], out: &mut [f32], row: usize, eps: f32) {
        for ((o, x), g) in out.chunks_mut(row).zip(x.chunks(row)).zip(g.chunks(row)) {
            let (mean, rstd) = moments(x, eps);
            let (s1, s2) = lane_sums_g(x, g, mean);
            let (m1, m2) = (s1 / row as f32, s2 * rstd / row as f32);
            for ((o, x), g) in o.iter_mut().zip(x).zip(g) {
                *o = rstd * (g - m1 - (x - mean) * rstd * m2);
            }
        }
    }
    /// Softmax's gradient on each row: `y ⊙ (g − ⟨g, y⟩)`.
    #[inline(always)]
    fn softmax_backward_body(y: &[f32], g: &[f32], out: &mut [f32], row: usize) {
        for ((o, y), g) in out.chunks_mut(row).zip(y.chunks(row)).zip(g.chunks(row)) {
            let (_, dot) = lane_sums_g(g, y, 0.0); // Σ y·(g − 0)
            for ((o, y), g) in o.iter_mut().zip(y).zip(g) {
                *o = y * (g - dot);
            }
        }
    }
    /// One AdamW step of each element, in place: burn's formula and order of operations.
    #[inline(always)]
    fn adamw_body(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &AdamWScalars) {
        for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            let mk = *m * k.beta_1 + g * k.one_minus_beta_1;
            let vk = *v * k.beta_2 + g * g * k.one_minus_beta_2;
            let delta = (mk / k.correction_1) / ((vk / k.correction_2).sqrt() + k.epsilon);
            let decayed = if k.decay { *p * k.keep } else { *p };
            *p = decayed - delta * k.lr;
            *m = mk;
            *v = vk;
        }
    }
    dispatch!(adamw_in_place, adamw_in_place_avx512, adamw_in_place_avx2, adamw_body, (p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &AdamWScalars));
    dispatch!(softmax_backward_rows, softmax_backward_rows_avx512, softmax_backward_rows_avx2, softmax_backward_body, (y: &[f32], g: &[f32], out: &mut [f32], row: usize));
    dispatch!(layer_norm_rows, layer_norm_rows_avx512, layer_norm_rows_avx2, layer_norm_body, (x: &[f32], out: &mut [f32], row: usize, eps: f32));
    dispatch!(layer_norm_backward_rows, layer_norm_backward_rows_avx512, layer_norm_backward_rows_avx2, layer_norm_backward_body, (x: &[f32], g: &[f32], out: &mut [f32], row: usize, eps: f32));
    dispatch!(sum_squares_f64, sum_squares_f64_avx512, sum_squares_f64_avx2, sum_squares_body, (x: &[f32], out: &mut f64));
    dispatch!(softmax_rows, softmax_rows_avx512, softmax_rows_avx2, softmax_body, (x: &[f32], out: &mut [f32], row: usize));
    dispatch!(gelu, gelu_avx512, gelu_avx2, gelu_body, (x: &[f32], out: &mut [f32]));
    dispatch!(gelu_backward, gelu_backward_avx512, gelu_backward_avx2, gelu_backward_body, (x: &[f32], g: &[f32], out: &mut [f32]));
}
