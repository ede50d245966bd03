//! Task losses.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor};

/// Mean cross-entropy of `logits` `[batch, classes]` against class indices `[batch]`.
pub fn cross_entropy(logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([batch, 1])); // [batch, 1]
    picked.mean().neg()
}

/// Distillation term `T²·KL(p_teacher^T ‖ p_student^T)`, averaged over the batch, where
/// `p^T = softmax(logits / T)`. The teacher's logits carry no gradient.
pub fn distillation_kl(student: Tensor<2>, teacher: Tensor<2>, temperature: f64) -> Tensor<1> {
    let [batch, _] = student.dims();
    let log_s = log_softmax(student / temperature, 1);
    let log_t = log_softmax(teacher.detach() / temperature, 1);
    let kl = (log_t.clone().exp() * (log_t - log_s)).sum(); // Σ over batch and classes
    kl * (temperature * temperature / batch as f64)
}

/// The performance-weighted loss's per-sample weights and targets (Meyer & Wong), on the host,
/// from the unpruned model's class probabilities `probs` (`[n × classes]`, row-major):
/// `w_i = β + (1 − β)(1 − p̂_{y_i})^γ`, and the target is the unpruned model's probabilities where
/// its prediction (argmax, first index on ties) is the label, else the one-hot label.
pub fn performance_weights(probs: &[f32], labels: &[usize], classes: usize, beta: f64, gamma: f64) -> (Vec<f32>, Vec<f32>) {
    let mut weights = Vec::with_capacity(labels.len());
    let mut targets = Vec::with_capacity(probs.len());
    for (i, &y) in labels.iter().enumerate() {
        let p = &probs[i * classes..(i + 1) * classes];
        weights.push((beta + (1.0 - beta) * (1.0 - p[y] as f64).max(0.0).powf(gamma)) as f32);
        let argmax = (0..classes).fold(0, |best, c| if p[c] > p[best] { c } else { best });
        if argmax == y {
            targets.extend_from_slice(p);
        } else {
            targets.extend((0..classes).map(|c| if c == y { 1.0 } else { 0.0 }));
        }
    }
    (weights, targets)
}

/// `mean_i w_i · CE(logits_i, t_i)` with soft targets: `CE = −Σ_c t_ic log softmax(logits_i)_c`.
/// Weights `[batch]` and targets `[batch, classes]` carry no gradient.
pub fn weighted_soft_cross_entropy(logits: Tensor<2>, weights: Tensor<1>, targets: Tensor<2>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let ce = (log_softmax(logits, 1) * targets.detach()).sum_dim(1).reshape([batch]).neg(); // [batch]
    (ce * weights.detach()).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    #[allow(deprecated)]
    fn matches_hand_computed_value() {
        let d = Device::ndarray();
        let logits = Tensor::<2>::from_data(TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0], [2, 2]), &d);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0], [2]), &d);
        let l = cross_entropy(logits, labels).into_scalar::<f32>();
        // (log(1+e^-2) + log(1+e^1)) / 2
        let want = ((1.0f32 + (-2.0f32).exp()).ln() + (1.0f32 + 1.0f32.exp()).ln()) / 2.0;
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
    }

    #[test]
    #[allow(deprecated)]
    fn kl_is_zero_for_equal_logits_and_matches_the_formula() {
        let d = Device::ndarray();
        let s = vec![2.0f32, -1.0, 0.5, 0.3, 0.0, 1.5];
        let t = vec![1.0f32, 0.0, -0.5, 2.0, 1.0, -1.0];
        let st = Tensor::<2>::from_data(TensorData::new(s.clone(), [2, 3]), &d);
        let tt = Tensor::<2>::from_data(TensorData::new(t.clone(), [2, 3]), &d);
        assert!(distillation_kl(st.clone(), st.clone(), 2.0).into_scalar::<f32>().abs() < 1e-7);
        let temp = 2.0f32;
        let softmax = |v: &[f32]| {
            let e: Vec<f32> = v.iter().map(|x| (x / temp).exp()).collect();
            let z: f32 = e.iter().sum();
            e.into_iter().map(|x| x / z).collect::<Vec<f32>>()
        };
        let mut want = 0.0;
        for b in 0..2 {
            let (ps, pt) = (softmax(&s[b * 3..b * 3 + 3]), softmax(&t[b * 3..b * 3 + 3]));
            want += (0..3).map(|i| pt[i] * (pt[i].ln() - ps[i].ln())).sum::<f32>();
        }
        want *= temp * temp / 2.0;
        let got = distillation_kl(st, tt, 2.0).into_scalar::<f32>();
        assert!(want > 0.1 && (got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn performance_weights_match_hand_computed_cases() {
        // Three samples, two classes, β = 0.75, γ = 5 (the defaults) and β = 0.3, γ = 1.
        let probs = [0.9f32, 0.1, 0.2, 0.8, 0.6, 0.4];
        let labels = [0usize, 0, 1];
        let (w, t) = performance_weights(&probs, &labels, 2, 0.75, 5.0);
        // right and confident: 0.75 + 0.25·0.1^5; wrong: 0.75 + 0.25·0.8^5; wrong: 0.75 + 0.25·0.6^5
        let want = [0.75 + 0.25 * 0.1f64.powi(5), 0.75 + 0.25 * 0.8f64.powi(5), 0.75 + 0.25 * 0.6f64.powi(5)];
        for (g, w) in w.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        // Targets: the soft output where the model is right (sample 0), the label where it is wrong.
        assert_eq!(t, vec![0.9, 0.1, 1.0, 0.0, 0.0, 1.0]);
        let (w, _) = performance_weights(&probs, &labels, 2, 0.3, 1.0);
        assert!((w[0] - (0.3 + 0.7 * 0.1)).abs() < 1e-6 && (w[1] - (0.3 + 0.7 * 0.8)).abs() < 1e-6, "{w:?}");
        // β = 1: every weight is 1.
        let (w, _) = performance_weights(&probs, &labels, 2, 1.0, 5.0);
        assert!(w.iter().all(|&x| x == 1.0));
    }

    #[test]
    #[allow(deprecated)]
    fn weighted_soft_ce_reduces_to_cross_entropy_and_weights_scale_it() {
        let d = Device::ndarray();
        let logits = vec![2.0f32, 0.0, 0.5, 1.0, -1.0, 0.3];
        let lt = || Tensor::<2>::from_data(TensorData::new(logits.clone(), [3, 2]), &d);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 1], [3]), &d);
        let one_hot = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 1.0, 0.0, 1.0], [3, 2]), &d);
        let ones = Tensor::<1>::ones([3], &d);
        let a = weighted_soft_cross_entropy(lt(), ones, one_hot.clone()).into_scalar::<f32>();
        let b = cross_entropy(lt(), labels).into_scalar::<f32>();
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        // By hand with weights (1, 2, 0.5) and a soft target on sample 0.
        let w = Tensor::<1>::from_data(TensorData::new(vec![1.0f32, 2.0, 0.5], [3]), &d);
        let t = Tensor::<2>::from_data(TensorData::new(vec![0.7f32, 0.3, 0.0, 1.0, 0.0, 1.0], [3, 2]), &d);
        let got = weighted_soft_cross_entropy(lt(), w, t).into_scalar::<f32>();
        let ls = |a: f32, b: f32| {
            let m = a.max(b);
            let z = ((a - m).exp() + (b - m).exp()).ln() + m;
            (a - z, b - z)
        };
        let (l00, l01) = ls(2.0, 0.0);
        let (_, l11) = ls(0.5, 1.0);
        let (_, l21) = ls(-1.0, 0.3);
        let want = (-(0.7 * l00 + 0.3 * l01) * 1.0 - l11 * 2.0 - l21 * 0.5) / 3.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}
