//! `models::linear::linear_rows` (the leading dims folded into rows before the product) computes
//! what burn's `linear` computes, values and gradients, on a rank-3 and a rank-4 input.

use burn::tensor::{Device, Distribution, Tensor};

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[allow(deprecated)]
#[test]
fn linear_rows_matches_burns_linear_forward_and_backward() {
    for device in [Device::flex(), Device::ndarray()] {
        let ad = device.clone().autodiff();
        ad.seed(3);
        let x = Tensor::<3>::random([4, 6, 5], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let w = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &ad).require_grad(); // [d_out, d_in]
        let b = Tensor::<1>::random([7], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let g = Tensor::<3>::random([4, 6, 7], Distribution::Normal(0.0, 1.0), &ad);
        let ours = models::linear::linear_rows(x.clone(), w.clone().transpose(), Some(b.clone()));
        let burns = burn::tensor::module::linear(x.clone(), w.clone().transpose(), Some(b.clone()));
        assert_eq!(ours.dims(), [4, 6, 7]);
        assert!(max_diff(&to_vec(ours.clone()), &to_vec(burns.clone())) < 1e-5);
        let go = (ours * g.clone()).sum().backward();
        let gb = (burns * g).sum().backward();
        assert!(max_diff(&to_vec(x.grad(&go).unwrap()), &to_vec(x.grad(&gb).unwrap())) < 1e-5, "dx");
        assert!(max_diff(&to_vec(w.grad(&go).unwrap()), &to_vec(w.grad(&gb).unwrap())) < 1e-4, "dW");
        assert!(max_diff(&to_vec(b.grad(&go).unwrap()), &to_vec(b.grad(&gb).unwrap())) < 1e-4, "db");
        // Rank 4, no bias.
        let x4 = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let w2 = Tensor::<2>::random([5, 3], Distribution::Normal(0.0, 1.0), &device);
        let a = models::linear::linear_rows(x4.clone(), w2.clone(), None);
        assert_eq!(a.dims(), [2, 3, 4, 3]);
        assert!(max_diff(&to_vec(a), &to_vec(burn::tensor::module::linear(x4, w2, None))) < 1e-5);
    }
}

/// `models::linear::linear_out_in` (the weight in `[d_out, d_in]`, one fused node on flex/ndarray)
/// against burn's `linear`: values and the gradients of x, W and b; W's gradient comes back in
/// W's own shape, and the rank-4 path without bias and without autodiff.
#[allow(deprecated)]
#[test]
fn linear_out_in_matches_burns_linear_forward_and_backward() {
    for device in [Device::flex(), Device::ndarray()] {
        let ad = device.clone().autodiff();
        ad.seed(5);
        let x = Tensor::<3>::random([4, 6, 5], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let w = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &ad).require_grad(); // [d_out, d_in]
        let b = Tensor::<1>::random([7], Distribution::Normal(0.0, 1.0), &ad).require_grad();
        let g = Tensor::<3>::random([4, 6, 7], Distribution::Normal(0.0, 1.0), &ad);
        // A mask on the weight, as pruning applies it: the gradient flows through W ⊙ M.
        let m = Tensor::<2>::random([7, 5], Distribution::Bernoulli(0.7), &ad);
        let ours = models::linear::linear_out_in(x.clone(), w.clone() * m.clone(), Some(b.clone()));
        let burns = burn::tensor::module::linear(x.clone(), (w.clone() * m.clone()).transpose(), Some(b.clone()));
        assert_eq!(ours.dims(), [4, 6, 7]);
        assert!(max_diff(&to_vec(ours.clone()), &to_vec(burns.clone())) < 1e-5);
        let go = (ours * g.clone()).sum().backward();
        let gb = (burns * g).sum().backward();
        assert!(max_diff(&to_vec(x.grad(&go).unwrap()), &to_vec(x.grad(&gb).unwrap())) < 1e-5, "dx");
        let (dw, dw_ref) = (w.grad(&go).unwrap(), w.grad(&gb).unwrap());
        assert_eq!(dw.dims(), [7, 5]);
        assert!(max_diff(&to_vec(dw), &to_vec(dw_ref)) < 1e-4, "dW");
        assert!(max_diff(&to_vec(b.grad(&go).unwrap()), &to_vec(b.grad(&gb).unwrap())) < 1e-4, "db");
        let x4 = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let w2 = Tensor::<2>::random([3, 5], Distribution::Normal(0.0, 1.0), &device);
        let a = models::linear::linear_out_in(x4.clone(), w2.clone(), None);
        assert_eq!(a.dims(), [2, 3, 4, 3]);
        assert!(max_diff(&to_vec(a), &to_vec(burn::tensor::module::linear(x4, w2.transpose(), None))) < 1e-5);
    }
}
