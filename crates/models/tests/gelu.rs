//! GELU's gradient is the exact (erf) derivative on every backend, as in PyTorch: burn 0.22's
//! default `gelu_backward` (ndarray, wgpu) is the tanh approximation's derivative.

use burn::tensor::{Device, Tensor, TensorData};
use models::bert::gelu_exact;

/// erf by its Taylor series, in f64 (|x| ≤ 3: converges, cancellation stays far below 1e-9).
fn erf(x: f64) -> f64 {
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

fn value_and_grad(device: &Device, xs: &[f32], f: fn(Tensor<1>) -> Tensor<1>) -> (Vec<f32>, Vec<f32>) {
    let ad = device.clone().autodiff();
    let x = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &ad).require_grad();
    let y = f(x.clone());
    let v = y.clone().into_data().convert::<f32>().try_to_vec().unwrap();
    let g = y.sum().backward();
    (v, x.grad(&g).unwrap().into_data().convert::<f32>().try_to_vec().unwrap())
}

fn max_err(a: &[f32], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max)
}

#[test]
fn gelu_value_and_gradient_are_exact_on_flex_and_ndarray() {
    let xs: Vec<f32> = (0..1201).map(|i| -3.0 + i as f32 * 0.005).collect();
    let value: Vec<f64> = xs.iter().map(|&x| x as f64 * 0.5 * (1.0 + erf(x as f64 / 2f64.sqrt()))).collect();
    let grad: Vec<f64> = xs
        .iter()
        .map(|&x| {
            let x = x as f64;
            0.5 * (1.0 + erf(x / 2f64.sqrt())) + x * (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt()
        })
        .collect();
    #[allow(deprecated)]
    for (name, device) in [("flex", Device::flex()), ("ndarray", Device::ndarray())] {
        let (v, g) = value_and_grad(&device, &xs, gelu_exact);
        assert!(max_err(&v, &value) < 2e-6, "{name}: GELU value off by {:.2e}", max_err(&v, &value));
        assert!(max_err(&g, &grad) < 2e-6, "{name}: GELU gradient off by {:.2e}", max_err(&g, &grad));
    }
    // What this guards against: burn's own gelu on ndarray differentiates the tanh approximation.
    #[allow(deprecated)]
    let (_, g) = value_and_grad(&Device::ndarray(), &xs, burn::tensor::activation::gelu);
    assert!(max_err(&g, &grad) > 1e-4, "burn's ndarray gelu backward is now exact ({:.2e}): gelu_exact can go", max_err(&g, &grad));
}
