//! Classification metrics from host-side predictions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

/// Area under the ROC curve of `scores` for the positives `positive` (Mann–Whitney U, ties
/// counted half); `None` when one class is absent.
pub fn auroc(scores: &[f32], positive: &[bool]) -> Option<f64> {
    let n_pos = positive.iter().filter(|p| **p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over ties.
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg * idx[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// One subgroup's metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupStat {
    pub group: String,
    pub n: usize,
    pub accuracy: f64,
    /// Binary tasks with both classes present in the group.
    pub auroc: Option<f64>,
    /// Fraction of the group's examples whose label is class 1 (binary tasks).
    pub positive_rate: Option<f64>,
    /// Whether the group is large enough (`min_group_size`) to count in the gaps.
    pub in_gap: bool,
}

/// The subgroups of one attribute (e.g. sex) and the spread between them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroupMetrics {
    pub attribute: String,
    pub groups: Vec<GroupStat>,
    /// Best minus worst group accuracy, over the groups with at least `min_group_size` examples.
    pub accuracy_gap: f64,
    /// Best minus worst group AUROC (groups where it is defined).
    pub auroc_gap: Option<f64>,
    pub worst_group: String,
}

/// Per-group accuracy and AUROC. `probs` is `[n × classes]`; `values[i]` is example `i`'s group.
/// Groups smaller than `min_group_size` are reported but left out of the gaps (a handful of
/// examples would make the gap noise).
pub fn group_metrics(attribute: &str, values: &[String], probs: &[f32], preds: &[usize], labels: &[usize], classes: usize, min_group_size: usize) -> GroupMetrics {
    let mut names: Vec<&String> = values.iter().collect();
    names.sort();
    names.dedup();
    let groups: Vec<GroupStat> = names
        .into_iter()
        .map(|g| {
            let idx: Vec<usize> = (0..values.len()).filter(|&i| &values[i] == g).collect();
            let correct = idx.iter().filter(|&&i| preds[i] == labels[i]).count();
            let (auroc, positive_rate) = if classes == 2 {
                let scores: Vec<f32> = idx.iter().map(|&i| probs[i * 2 + 1]).collect();
                let pos: Vec<bool> = idx.iter().map(|&i| labels[i] == 1).collect();
                (auroc(&scores, &pos), Some(pos.iter().filter(|p| **p).count() as f64 / idx.len() as f64))
            } else {
                (None, None)
            };
            GroupStat { group: g.clone(), n: idx.len(), accuracy: correct as f64 / idx.len() as f64, auroc, positive_rate, in_gap: idx.len() >= min_group_size }
        })
        .collect();
    let counted: Vec<&GroupStat> = groups.iter().filter(|s| s.in_gap).collect();
    let acc = |s: &&GroupStat| s.accuracy;
    let max = counted.iter().map(acc).fold(f64::MIN, f64::max);
    let min = counted.iter().map(acc).fold(f64::MAX, f64::min);
    let worst = counted.iter().find(|s| s.accuracy == min).map(|s| s.group.clone()).unwrap_or_default();
    let aurocs: Vec<f64> = counted.iter().filter_map(|s| s.auroc).collect();
    let auroc_gap = (!aurocs.is_empty()).then(|| aurocs.iter().cloned().fold(f64::MIN, f64::max) - aurocs.iter().cloned().fold(f64::MAX, f64::min));
    GroupMetrics { attribute: attribute.into(), groups, accuracy_gap: if max >= min { max - min } else { 0.0 }, auroc_gap, worst_group: worst }
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

    #[test]
    fn auroc_by_hand_with_ties() {
        // positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4, 0.8>0.1, 0.4=0.4 half, 0.4>0.1) = 3.5/4
        let a = auroc(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]).unwrap();
        assert!((a - 0.875).abs() < 1e-12, "{a}");
        assert_eq!(auroc(&[0.1, 0.2], &[true, true]), None);
        assert_eq!(auroc(&[0.9, 0.1], &[true, false]), Some(1.0));
    }

    #[test]
    fn group_metrics_on_a_small_fixture() {
        // Six examples, groups a (3) and b (3).
        let values: Vec<String> = ["a", "b", "a", "b", "a", "b"].iter().map(|s| s.to_string()).collect();
        let probs = [0.9f32, 0.1, 0.3, 0.7, 0.2, 0.8, 0.6, 0.4, 0.4, 0.6, 0.1, 0.9];
        let preds = [0usize, 1, 1, 0, 1, 1];
        let labels = [0usize, 1, 1, 1, 0, 0];
        let m = group_metrics("g", &values, &probs, &preds, &labels, 2, 1);
        assert_eq!(m.groups.len(), 2);
        let (a, b) = (&m.groups[0], &m.groups[1]);
        assert_eq!((a.group.as_str(), a.n, b.group.as_str(), b.n), ("a", 3, "b", 3));
        // a: examples 0, 2, 4: preds 0,1,1 vs labels 0,1,0 -> 2/3; b: 1, 3, 5: 1,0,1 vs 1,1,0 -> 1/3
        assert!((a.accuracy - 2.0 / 3.0).abs() < 1e-12 && (b.accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.accuracy_gap - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(m.worst_group, "b");
        // a: positive 0.8 (ex 2) vs negatives 0.1, 0.6 -> 1.0; b: positives 0.7, 0.4 vs negative 0.9 -> 0.0
        assert_eq!(a.auroc, Some(1.0));
        assert_eq!(b.auroc, Some(0.0));
        assert_eq!(m.auroc_gap, Some(1.0));
        assert!((a.positive_rate.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // With a minimum size of 4 neither group counts: no gap; with a third, large group the
        // small ones are listed but left out.
        let m = group_metrics("g", &values, &probs, &preds, &labels, 2, 4);
        assert_eq!((m.accuracy_gap, m.auroc_gap, m.groups.len()), (0.0, None, 2));
        assert!(m.groups.iter().all(|g| !g.in_gap));
    }
}
