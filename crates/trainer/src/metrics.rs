//! Classification metrics from host-side predictions.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    pub accuracy: f64,
    /// Binary tasks: F1 of class 1. More classes: macro-F1.
    pub f1: f64,
    pub n: usize,
    pub loss: f64,
}

pub fn classification(preds: &[usize], labels: &[usize], num_classes: usize, loss: f64) -> ClassMetrics {
    let n = preds.len();
    let correct = preds.iter().zip(labels).filter(|(p, l)| p == l).count();
    let f1_of = |c: usize| {
        let tp = preds.iter().zip(labels).filter(|(&p, &l)| p == c && l == c).count() as f64;
        let fp = preds.iter().zip(labels).filter(|(&p, &l)| p == c && l != c).count() as f64;
        let fn_ = preds.iter().zip(labels).filter(|(&p, &l)| p != c && l == c).count() as f64;
        if tp == 0.0 { 0.0 } else { 2.0 * tp / (2.0 * tp + fp + fn_) }
    };
    let f1 = if num_classes == 2 { f1_of(1) } else { (0..num_classes).map(f1_of).sum::<f64>() / num_classes.max(1) as f64 };
    ClassMetrics { accuracy: correct as f64 / n.max(1) as f64, f1, n, loss }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_and_f1_by_hand() {
        // tp=2 fp=1 fn=1 -> F1 = 4/6
        let m = classification(&[1, 1, 1, 0, 0], &[1, 1, 0, 1, 0], 2, 0.0);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        assert!((m.f1 - 4.0 / 6.0).abs() < 1e-12);
    }
}
