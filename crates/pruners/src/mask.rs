//! Binarisers and the straight-through estimator, written once.

use burn::tensor::{Tensor, TensorData};
use models::PrunableModel;

/// The straight-through estimator: the value is the hard mask, the gradient flows to the
/// scores as if the mask were the scores themselves, so ∂L/∂S_ij = ∂L/∂M_ij = (∂L/∂a_i)·W_ij·x_j.
/// Written as `hard + (S − detach(S))` rather than `S + detach(hard − S)`: the value is then
/// exactly `hard`, so pruned weights contribute exactly zero.
pub fn straight_through(hard: Tensor<2>, scores: Tensor<2>) -> Tensor<2> {
    hard + (scores.clone() - scores.detach())
}

/// Host-side top-k: a 0/1 mask keeping exactly `k` of `values` (largest first; ties broken by
/// position, lowest index first).
pub fn topk_mask_values(values: &[f32], k: usize) -> Vec<f32> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut mask = vec![0.0f32; values.len()];
    for &i in &idx[..k.min(values.len())] {
        mask[i] = 1.0;
    }
    mask
}

/// A 0/1 mask (same shape, no gradient) that keeps exactly `k` entries of `scores`: the k
/// largest. The threshold is found on the host in O(n) (`select_nth_unstable`); the mask is then
/// `scores >= threshold` on the device, unless ties at the threshold would keep more than `k`,
/// in which case the mask is built on the host with ties broken by position.
pub fn topk_mask(scores: Tensor<2>, k: usize) -> Tensor<2> {
    let scores = scores.detach();
    let dims = scores.dims();
    let n = dims[0] * dims[1];
    let device = scores.device();
    if k >= n {
        return Tensor::ones(dims, &device);
    }
    let values: Vec<f32> = scores.to_data().convert::<f32>().try_to_vec().expect("f32 scores");
    if k == 0 {
        return Tensor::zeros(dims, &device);
    }
    let mut work = values.clone();
    let (_, thr, _) = work.select_nth_unstable_by(n - k, |a, b| a.total_cmp(b));
    let thr = *thr;
    let kept_by_threshold = values.iter().filter(|&&v| v >= thr).count();
    if kept_by_threshold == k && thr.is_finite() {
        scores.greater_equal_elem(thr).float()
    } else {
        Tensor::from_data(TensorData::new(topk_mask_values(&values, k), dims), &device)
    }
}

/// Masks for one global budget: keeps the `k` largest entries over all of `scores` together
/// (one threshold for every matrix), so matrices end up with different densities. Ties at the
/// threshold are broken by position (matrix order, then index), so exactly `k` are kept.
pub fn global_topk_masks(scores: &[Tensor<2>], k: usize) -> Vec<Tensor<2>> {
    let host: Vec<Vec<f32>> = scores.iter().map(|s| s.clone().detach().to_data().convert::<f32>().try_to_vec().expect("f32 scores")).collect();
    let n: usize = host.iter().map(Vec::len).sum();
    let mut all: Vec<f32> = host.iter().flatten().copied().collect();
    let keep: Vec<Vec<f32>> = if k >= n {
        host.iter().map(|v| vec![1.0; v.len()]).collect()
    } else if k == 0 {
        host.iter().map(|v| vec![0.0; v.len()]).collect()
    } else {
        let (_, thr, _) = all.select_nth_unstable_by(n - k, |a, b| a.total_cmp(b));
        let thr = *thr;
        // Everything above the threshold is kept; ties at it fill the remaining places in order.
        let above = host.iter().flatten().filter(|&&v| v.total_cmp(&thr).is_gt()).count();
        let mut ties_left = k - above;
        host.iter()
            .map(|v| {
                v.iter()
                    .map(|&x| match x.total_cmp(&thr) {
                        std::cmp::Ordering::Greater => 1.0,
                        std::cmp::Ordering::Equal if ties_left > 0 => {
                            ties_left -= 1;
                            1.0
                        }
                        _ => 0.0,
                    })
                    .collect()
            })
            .collect()
    };
    scores
        .iter()
        .zip(keep)
        .map(|(s, m)| Tensor::from_data(TensorData::new(m, s.dims()), &s.device()))
        .collect()
}

/// Adds a score tensor filled with `value`, shaped like its weight, to every prunable layer that
/// has none (the learned-score methods: movement, soft movement, L0).
pub fn init_scores(model: &mut dyn PrunableModel, value: f64) {
    for (_, layer) in model.prunable_layers_mut() {
        if layer.mask_scores.is_none() {
            let w = layer.weight.val();
            layer.mask_scores = Some(burn::module::Param::from_tensor(Tensor::full(w.dims(), value, &w.device())));
        }
    }
}

/// The current scores of every prunable layer, in `prunable_layers` order.
pub fn scores(model: &dyn PrunableModel, method: &str) -> Vec<Tensor<2>> {
    model
        .prunable_layers()
        .iter()
        .map(|(name, l)| l.mask_scores.as_ref().unwrap_or_else(|| panic!("{name}: {method} scores missing; Pruner::init not called")).val())
        .collect()
}

/// Puts `masks` on every matrix, replacing what was there (masks that change over the run:
/// progressive and soft masks).
pub fn set_masks(model: &mut dyn PrunableModel, masks: &[Tensor<2>]) {
    for ((_, layer), m) in model.prunable_layers_mut().into_iter().zip(masks) {
        layer.mask = Some(on_layer_device(m, layer));
    }
}

/// `mask` on `layer`'s device. A mask made in training (on the autodiff device) that is put on
/// an evaluation copy loses its autodiff association: `to_device` alone would keep it, and the
/// copy would then run its masked products through autodiff (slower, and in other kernels).
fn on_layer_device(mask: &Tensor<2>, layer: &models::PrunableLinear) -> Tensor<2> {
    let device = layer.weight.val().device();
    let mask = if device.is_autodiff() { mask.clone() } else { mask.clone().without_autodiff() };
    mask.to_device(&device)
}

/// Puts the fixed masks of a one-shot removal on every matrix that has none yet (masks set
/// earlier in the step, e.g. restored from a checkpoint, stay).
pub fn set_fixed_masks(model: &mut dyn PrunableModel, masks: &[Tensor<2>]) {
    for ((_, layer), m) in model.prunable_layers_mut().into_iter().zip(masks) {
        if layer.mask.is_none() {
            layer.mask = Some(on_layer_device(m, layer));
        }
    }
}

/// The masks a resumed model holds (restored from its checkpoint), one per matrix; `None` when
/// some matrix has none.
pub fn masks_in_model(model: &dyn PrunableModel) -> Option<Vec<Tensor<2>>> {
    model.prunable_layers().iter().map(|(_, l)| l.mask.as_ref().map(|m| m.clone().detach())).collect()
}

/// Folds every mask into its weight (`W ← W ⊙ M`), then drops masks and scores.
pub fn fold_masks(model: &mut dyn PrunableModel) {
    for (_, layer) in model.prunable_layers_mut() {
        if let Some(mask) = layer.mask.take() {
            let hard = mask.detach();
            layer.weight = layer.weight.clone().map(|w| w * hard);
        }
        layer.mask_scores = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[allow(deprecated)]
    fn device() -> Device {
        Device::ndarray()
    }

    #[test]
    fn topk_keeps_exactly_k_even_with_ties() {
        let d = device();
        let s = Tensor::<2>::from_data(TensorData::new(vec![0.5f32, 0.1, 0.5, 0.5, -1.0, 0.2], [2, 3]), &d);
        let m = topk_mask(s.clone(), 2).to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(m, vec![1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
        let m = topk_mask(s.clone(), 4).to_data().try_to_vec::<f32>().unwrap();
        assert_eq!(m, vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
        let zeros = Tensor::<2>::zeros([4, 5], &d);
        for k in [1, 7, 19, 20] {
            let m = topk_mask(zeros.clone(), k);
            assert_eq!(m.sum().into_scalar::<f32>(), k as f32);
        }
    }
}
