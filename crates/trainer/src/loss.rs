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
}
