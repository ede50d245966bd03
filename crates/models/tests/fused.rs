//! The fused softmax and GELU (`models::fused`): values and gradients against f64 references
//! computed here, on flex and ndarray, contiguous or not; the vectorised exp and erf against std.

use burn::tensor::{Device, Tensor, TensorData};
use models::fused::{self, simd};

#[allow(deprecated)]
fn devices() -> [(&'static str, Device); 2] {
    [("flex", Device::flex()), ("ndarray", Device::ndarray())]
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

/// Softmax rows and the gradient of `Σ w ⊙ softmax(x)` in f64.
fn softmax_reference(x: &[f32], w: &[f32], row: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut y, mut g) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for r in 0..x.len() / row {
        let s = r * row..(r + 1) * row;
        let m = x[s.clone()].iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
        let z: f64 = x[s.clone()].iter().map(|&v| (v as f64 - m).exp()).sum();
        for i in s.clone() {
            y[i] = (x[i] as f64 - m).exp() / z;
        }
        let dot: f64 = s.clone().map(|i| w[i] as f64 * y[i]).sum();
        for i in s {
            g[i] = y[i] * (w[i] as f64 - dot);
        }
    }
    (y, g)
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

fn wave(n: usize, scale: f32, phase: f32) -> Vec<f32> {
    (0..n).map(|i| scale * ((i as f32 * 0.731 + phase).sin() + 0.3 * (i as f32 * 0.137).cos())).collect()
}

#[test]
fn softmax_last_matches_the_formula_forward_and_backward() {
    let (rows, row) = (6 * 5, 37);
    let mut x = wave(rows * row, 4.0, 0.2);
    x[5] = -10_000.0; // an attention mask's large negative entry
    let w = wave(rows * row, 1.0, 1.3);
    let (y_ref, g_ref) = softmax_reference(&x, &w, row);
    for (name, device) in devices() {
        let ad = device.autodiff();
        let xt = Tensor::<3>::from_data(TensorData::new(x.clone(), [6, 5, row]), &ad).require_grad();
        let wt = Tensor::<3>::from_data(TensorData::new(w.clone(), [6, 5, row]), &ad);
        let y = fused::softmax_last(xt.clone());
        assert!(max_abs(&to_vec(y.clone()), &y_ref) < 1e-7, "{name}: value");
        let grads = (y * wt).sum().backward();
        let g = to_vec(xt.grad(&grads).unwrap());
        assert!(max_abs(&g, &g_ref) < 1e-6, "{name}: gradient off by {:.2e}", max_abs(&g, &g_ref));
        assert_eq!(g[5], 0.0, "{name}: a masked entry gets no gradient");
    }
}

#[test]
fn softmax_last_on_attention_rows_without_autodiff() {
    // Rows of 128 (the kernel's 8-lane blocks with no tail) and 131 (a tail of 3), a padded
    // position biased by -1e9 as BERT's mask does, on the inference (no-autodiff) path.
    for row in [128usize, 131] {
        let rows = 12;
        let mut x = wave(rows * row, 6.0, 0.4);
        for r in 0..rows {
            x[r * row + row - 2] -= 1.0e9;
        }
        let (y_ref, _) = softmax_reference(&x, &vec![0.0; x.len()], row);
        for (name, device) in devices() {
            let y = to_vec(fused::softmax_last(Tensor::<2>::from_data(TensorData::new(x.clone(), [rows, row]), &device)));
            assert!(max_abs(&y, &y_ref) < 2e-7, "{name}, row {row}: off by {:.2e}", max_abs(&y, &y_ref));
            for r in 0..rows {
                assert_eq!(y[r * row + row - 2], 0.0, "{name}: a masked position gets probability 0");
                let sum: f64 = y[r * row..(r + 1) * row].iter().map(|&p| p as f64).sum();
                assert!((sum - 1.0).abs() < 1e-6, "{name}: row {r} sums to {sum}");
            }
        }
    }
}

#[test]
fn softmax_last_of_a_transposed_view_is_that_of_its_contiguous_copy() {
    let x = wave(4 * 9 * 7, 3.0, 0.0);
    let w = wave(4 * 9 * 7, 1.0, 2.0);
    for (name, device) in devices() {
        let ad = device.autodiff();
        let base = Tensor::<3>::from_data(TensorData::new(x.clone(), [4, 9, 7]), &ad).require_grad();
        let view = base.clone().swap_dims(1, 2); // [4, 7, 9], not contiguous
        let wt = Tensor::<3>::from_data(TensorData::new(w.clone(), [4, 7, 9]), &ad);
        let y = fused::softmax_last(view.clone());
        let g = to_vec(base.grad(&(y.clone() * wt.clone()).sum().backward()).unwrap());
        let base2 = Tensor::<3>::from_data(TensorData::new(x.clone(), [4, 9, 7]), &ad).require_grad();
        let y2 = burn::tensor::activation::softmax(base2.clone().swap_dims(1, 2), 2);
        let g2 = to_vec(base2.grad(&(y2.clone() * wt).sum().backward()).unwrap());
        let (a, b) = (to_vec(y), to_vec(y2));
        assert!(a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-7), "{name}: value");
        assert!(g.iter().zip(&g2).all(|(p, q)| (p - q).abs() < 1e-6), "{name}: gradient");
    }
}

#[test]
fn gelu_is_exact_on_wide_inputs_and_without_autodiff() {
    let xs: Vec<f32> = (0..4001).map(|i| -10.0 + i as f32 * 0.005).collect();
    // libm-quality references in f64: x Φ(x) and Φ(x) + x φ(x), with erf from std's erfc-free
    // identity through f64 (std has no erf; use the series/continued fraction in gelu.rs's range
    // and the asymptotic tail beyond it).
    fn erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            // erfc(x) ~ e^{-x²}/(x√π)·(1 − 1/(2x²) + 3/(4x⁴)), far below f32 resolution here.
            let a = x.abs();
            let c = (-a * a).exp() / (a * std::f64::consts::PI.sqrt()) * (1.0 - 0.5 / (a * a) + 0.75 / a.powi(4));
            return (1.0 - c).copysign(x);
        }
        let (mut sum, mut term, mut n) = (x, x, 0.0);
        loop {
            n += 1.0;
            term *= -x * x / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-18 {
                return 2.0 / std::f64::consts::PI.sqrt() * sum;
            }
        }
    }
    let value: Vec<f64> = xs.iter().map(|&x| x as f64 * 0.5 * (1.0 + erf(x as f64 / 2f64.sqrt()))).collect();
    let grad: Vec<f64> = xs
        .iter()
        .map(|&x| {
            let x = x as f64;
            0.5 * (1.0 + erf(x / 2f64.sqrt())) + x * (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
        })
        .collect();
    for (name, device) in devices() {
        let plain = to_vec(fused::gelu(Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device)));
        let ad = device.autodiff();
        let x = Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &ad).require_grad();
        let y = fused::gelu(x.clone());
        let v = to_vec(y.clone());
        let g = to_vec(x.grad(&y.sum().backward()).unwrap());
        for i in 0..xs.len() {
            let tol = 4e-7 * (1.0 + xs[i].abs() as f64);
            assert!((v[i] as f64 - value[i]).abs() < tol, "{name}: gelu({}) = {} vs {}", xs[i], v[i], value[i]);
            assert!((g[i] as f64 - grad[i]).abs() < tol, "{name}: gelu'({}) = {} vs {}", xs[i], g[i], grad[i]);
            assert_eq!(plain[i], v[i], "{name}: same value with and without autodiff");
        }
    }
}

#[test]
fn vectorised_exp_and_erf_track_std() {
    let mut worst_exp: f64 = 0.0;
    for i in 0..=35_000 {
        let x = -87.0 + i as f32 * 0.005;
        let (a, b) = (simd::exp(x) as f64, (x as f64).exp());
        worst_exp = worst_exp.max((a - b).abs() / b);
    }
    assert!(worst_exp < 4e-7, "exp relative error {worst_exp:.2e}");
    assert_eq!(simd::exp(-200.0), 0.0, "0 below -87");
    assert_eq!(simd::exp(-1.0e9), 0.0, "an attention mask's bias minus a row max");
    assert!(simd::exp(200.0).is_finite(), "saturating above");
    // A&S 7.1.26 is an absolute approximation (1.4e-7 off at 0.5 in f64; f32 rounding on top):
    // erf(0) comes out 1e-7, not 0.
    assert!(simd::erf(0.0).abs() < 2e-7 && simd::erf(6.0) == 1.0 && simd::erf(-6.0) == -1.0);
    assert_eq!(simd::erf(-0.7), -simd::erf(0.7), "odd");
    assert!((simd::erf(0.5) as f64 - 0.520_499_877_813_046_5).abs() < 4e-7);
    assert!((simd::erf(-1.5) as f64 + 0.966_105_146_475_310_7).abs() < 4e-7);
}

/// LayerNorm rows `(x − μ)/√(σ² + ε)·γ + β` and the gradients of `Σ w ⊙ LN(x)` with respect to x,
/// γ and β, in f64.
#[allow(clippy::type_complexity)]
fn layer_norm_reference(x: &[f32], w: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let row = gamma.len();
    let (mut y, mut gx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut gg, mut gb) = (vec![0.0; row], vec![0.0; row]);
    for r in 0..x.len() / row {
        let s = r * row..(r + 1) * row;
        let n = row as f64;
        let mean = s.clone().map(|i| x[i] as f64).sum::<f64>() / n;
        let var = s.clone().map(|i| (x[i] as f64 - mean).powi(2)).sum::<f64>() / n;
        let rstd = 1.0 / (var + eps).sqrt();
        let xhat: Vec<f64> = s.clone().map(|i| (x[i] as f64 - mean) * rstd).collect();
        // dL/dx̂ = w ⊙ γ
        let dxhat: Vec<f64> = s.clone().enumerate().map(|(j, i)| w[i] as f64 * gamma[j] as f64).collect();
        let m1 = dxhat.iter().sum::<f64>() / n;
        let m2 = dxhat.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / n;
        for (j, i) in s.enumerate() {
            y[i] = xhat[j] * gamma[j] as f64 + beta[j] as f64;
            gx[i] = rstd * (dxhat[j] - m1 - xhat[j] * m2);
            gg[j] += w[i] as f64 * xhat[j];
            gb[j] += w[i] as f64;
        }
    }
    (y, gx, gg, gb)
}

#[test]
fn layer_norm_training_form_matches_the_formula_forward_and_backward() {
    use burn::module::Param;
    let (rows, row, eps) = (4 * 3, 29, 1e-12);
    // Rows with an offset much larger than their spread, as residual streams have.
    let x: Vec<f32> = wave(rows * row, 2.0, 0.4).iter().enumerate().map(|(i, v)| v + 30.0 * ((i / row) as f32 - 5.0)).collect();
    let w = wave(rows * row, 1.0, 2.1);
    let (gamma, beta) = (wave(row, 0.5, 0.3).iter().map(|v| 1.0 + v).collect::<Vec<f32>>(), wave(row, 0.2, 0.9));
    let (y_ref, gx_ref, gg_ref, gb_ref) = layer_norm_reference(&x, &w, &gamma, &beta, eps);
    for (name, device) in devices() {
        let ad = device.clone().autodiff();
        let mut ln = models::layers::LayerNorm::new(row, eps, &ad);
        ln.weight = Param::from_tensor(Tensor::<1>::from_data(TensorData::new(gamma.clone(), [row]), &ad));
        ln.bias = Param::from_tensor(Tensor::<1>::from_data(TensorData::new(beta.clone(), [row]), &ad));
        let xt = Tensor::<3>::from_data(TensorData::new(x.clone(), [4, 3, row]), &ad).require_grad();
        let wt = Tensor::<3>::from_data(TensorData::new(w.clone(), [4, 3, row]), &ad);
        let y = ln.forward(xt.clone());
        assert!(max_abs(&to_vec(y.clone()), &y_ref) < 5e-5, "{name}: value off by {:.2e}", max_abs(&to_vec(y.clone()), &y_ref));
        let grads = (y * wt).sum().backward();
        let gx = to_vec(xt.grad(&grads).unwrap());
        let gg = to_vec(ln.weight.grad(&grads).unwrap());
        let gb = to_vec(ln.bias.grad(&grads).unwrap());
        assert!(max_abs(&gx, &gx_ref) < 2e-5, "{name}: dx off by {:.2e}", max_abs(&gx, &gx_ref));
        assert!(max_abs(&gg, &gg_ref) < 1e-4, "{name}: dγ off by {:.2e}", max_abs(&gg, &gg_ref));
        assert!(max_abs(&gb, &gb_ref) < 1e-5, "{name}: dβ off by {:.2e}", max_abs(&gb, &gb_ref));
        // The inference form (burn's kernel) gives the same values.
        let inf = models::layers::LayerNorm { weight: Param::from_tensor(Tensor::<1>::from_data(TensorData::new(gamma.clone(), [row]), &device)), bias: Param::from_tensor(Tensor::<1>::from_data(TensorData::new(beta.clone(), [row]), &device)), eps };
        let yi = to_vec(inf.forward(Tensor::<3>::from_data(TensorData::new(x.clone(), [4, 3, row]), &device)));
        assert!(max_abs(&yi, &y_ref) < 5e-5, "{name}: inference value");
    }
    // The fused node is used on these devices, and the sum of each row of dx is 0 (the
    // normalisation is invariant to a shift of its input).
    let ad = Device::flex().autodiff();
    let xt = Tensor::<2>::from_data(TensorData::new(x[..2 * row].to_vec(), [2, row]), &ad).require_grad();
    let y = fused::layer_norm_last(xt.clone(), eps).expect("flex has the fused LayerNorm");
    let wt = Tensor::<2>::from_data(TensorData::new(w[..2 * row].to_vec(), [2, row]), &ad);
    let g = to_vec(xt.grad(&(y * wt).sum().backward()).unwrap());
    for r in g.chunks(row) {
        assert!(r.iter().map(|v| *v as f64).sum::<f64>().abs() < 1e-5);
    }
}

#[test]
fn sum_squares_is_the_squared_norm_on_every_layout() {
    let x = wave(3 * 50_007, 3.0, 0.1);
    let reference: f64 = x.iter().map(|&v| (v as f64) * (v as f64)).sum();
    for (name, device) in devices() {
        let t = Tensor::<2>::from_data(TensorData::new(x.clone(), [3, 50_007]), &device);
        let got = fused::sum_squares(t.clone()).into_scalar::<f32>() as f64;
        assert!((got - reference).abs() < 1e-5 * reference, "{name}: {got} vs {reference}");
        // A transposed view gives the same sum.
        let got_t = fused::sum_squares(t.clone().transpose()).into_scalar::<f32>() as f64;
        assert!((got_t - reference).abs() < 1e-5 * reference, "{name}: transposed {got_t}");
        // A NaN or an infinity shows.
        let mut bad = x.clone();
        bad[123] = f32::NAN;
        assert!(fused::sum_squares(Tensor::<1>::from_data(TensorData::new(bad.clone(), [bad.len()]), &device)).into_scalar::<f32>().is_nan(), "{name}: NaN");
        bad[123] = f32::INFINITY;
        assert!(fused::sum_squares(Tensor::<1>::from_data(TensorData::new(bad.clone(), [bad.len()]), &device)).into_scalar::<f32>().is_infinite(), "{name}: Inf");
    }
}

#[test]
fn adamw_step_in_place_and_on_shared_tensors_agree_and_leave_shared_ones_alone() {
    let n = 40_003; // several kernel chunks and a tail
    let (p0, g0) = (wave(n, 0.5, 0.3), wave(n, 0.02, 1.1));
    let (m0, v0) = (wave(n, 0.01, 0.7), wave(n, 0.001, 2.0).iter().map(|x| x.abs()).collect::<Vec<f32>>());
    for (name, device) in devices() {
        let t = |x: &Vec<f32>| Tensor::<1>::from_data(TensorData::new(x.clone(), [n]), &device);
        // burn's AdamW formula on the host in f32, as the kernel computes it (lr 1e-3, wd 0.01, step 3).
        let (lr, b1, b2, eps, wd, time) = (1e-3f32, 0.9f32, 0.999f32, 1e-8f32, 0.01f32, 3);
        let expect: Vec<f32> = (0..n)
            .map(|i| {
                let m = m0[i] * b1 + g0[i] * (1.0 - b1);
                let v = v0[i] * b2 + g0[i] * g0[i] * (1.0 - b2);
                let delta = (m / (1.0 - b1.powi(time))) / ((v / (1.0 - b2.powi(time))).sqrt() + eps);
                p0[i] * (1.0 - lr * wd) - delta * lr
            })
            .collect();
        let Some((p1, _, _)) = fused::adamw_step(t(&p0), t(&g0), t(&m0), t(&v0), lr as f64, b1 as f64, b2 as f64, eps as f64, wd as f64, time as usize) else {
            continue; // no kernel on this device
        };
        // The same step while another handle to the parameter and the moments is alive.
        let (ps, ms, vs) = (t(&p0), t(&m0), t(&v0));
        let (p2, m2, _) = fused::adamw_step(ps.clone(), t(&g0), ms.clone(), vs.clone(), lr as f64, b1 as f64, b2 as f64, eps as f64, wd as f64, time as usize).unwrap();
        let (a, b) = (to_vec(p1), to_vec(p2));
        let worst = a.iter().zip(&expect).map(|(x, y)| ((x - y) as f64).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-6, "{name}: in place off the formula by {worst:.2e}");
        assert_eq!(a, b, "{name}: in place and copied give the same parameter");
        assert_eq!(to_vec(ps), p0, "{name}: a shared parameter is not written");
        assert_eq!(to_vec(ms), m0, "{name}: a shared moment is not written");
        assert!(to_vec(m2).iter().zip(&m0).any(|(x, y)| x != y), "{name}: the new moment differs");
    }
}
