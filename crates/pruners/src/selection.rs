//! Selection: which weights a score matrix removes, apart from how the scores were made.
//! Host-side, exact counts, stable (ties go to the lowest index first, as `torch.sort(stable=True)`).

use serde::{Deserialize, Serialize};

/// Which weights compete with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Each output row removes `floor(C_in · s)` of its weights (Wanda's and STADE's default).
    #[default]
    Row,
    /// One threshold over the whole matrix: `floor(rows · cols · s)` removed in total.
    Matrix,
}

/// N:M sparsity: in every group of `m` consecutive inputs of a row, the `n` lowest-scored are
/// removed (2:4, 4:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NM {
    pub n: usize,
    pub m: usize,
}

impl NM {
    /// Parses `"2:4"`; the error names `key`.
    pub fn parse(text: &str, key: &str) -> Result<Self, String> {
        let (n, m) = text.split_once(':').ok_or_else(|| format!("{key}: expected N:M such as \"2:4\", found {text:?}"))?;
        let (n, m): (usize, usize) = match (n.trim().parse(), m.trim().parse()) {
            (Ok(n), Ok(m)) => (n, m),
            _ => return Err(format!("{key}: expected N:M such as \"2:4\", found {text:?}")),
        };
        if m == 0 || n == 0 || n >= m {
            return Err(format!("{key}: N:M needs 0 < N < M, found {text:?}"));
        }
        Ok(Self { n, m })
    }

    /// The kept fraction, `1 − n/m`.
    pub fn density(&self) -> f64 {
        1.0 - self.n as f64 / self.m as f64
    }
}

/// Indices of `idx`'s entries of `scores` ordered from the lowest score (ties: lowest index).
fn ascending(scores: &[f32], idx: impl Iterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = idx.collect();
    v.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    v
}

/// The 0/1 keep mask of a `[rows, cols]` score matrix (row-major) removing the fraction
/// `sparsity` under `comparison`, or by `nm` when given (then `sparsity` is ignored). A last
/// group shorter than `m` removes `floor(len · n / m)`.
pub fn keep_mask(scores: &[f32], [rows, cols]: [usize; 2], sparsity: f64, comparison: Comparison, nm: Option<NM>) -> Vec<f32> {
    assert_eq!(scores.len(), rows * cols, "scores must be [rows, cols]");
    let mut keep = vec![1.0f32; rows * cols];
    match (nm, comparison) {
        (Some(NM { n, m }), _) => {
            for r in 0..rows {
                for start in (0..cols).step_by(m) {
                    let end = (start + m).min(cols);
                    let remove = (end - start) * n / m;
                    for &i in ascending(scores, (start..end).map(|c| r * cols + c)).iter().take(remove) {
                        keep[i] = 0.0;
                    }
                }
            }
        }
        (None, Comparison::Row) => {
            let remove = (cols as f64 * sparsity).floor() as usize;
            for r in 0..rows {
                for &i in ascending(scores, r * cols..(r + 1) * cols).iter().take(remove) {
                    keep[i] = 0.0;
                }
            }
        }
        (None, Comparison::Matrix) => {
            let remove = ((rows * cols) as f64 * sparsity).floor() as usize;
            for &i in ascending(scores, 0..rows * cols).iter().take(remove) {
                keep[i] = 0.0;
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_matrix_and_nm_remove_exact_counts_with_stable_ties() {
        let s = [3.0, 1.0, 1.0, 2.0, 0.5, 0.5, 0.5, 9.0];
        // Per row (2 x 4) at 50%: row 0 drops the tied 1.0s (indices 1, 2); row 1 drops 4, 5.
        assert_eq!(keep_mask(&s, [2, 4], 0.5, Comparison::Row, None), vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        // Per matrix at 50%: the four lowest overall (0.5 x3 at 4, 5, 6, then 1.0 at 1).
        assert_eq!(keep_mask(&s, [2, 4], 0.5, Comparison::Matrix, None), vec![1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        // 1:2 on 1 x 8: one of each pair.
        let k = keep_mask(&s, [1, 8], 0.0, Comparison::Row, Some(NM { n: 1, m: 2 }));
        assert_eq!(k, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(NM::parse("2:4", "k").unwrap(), NM { n: 2, m: 4 });
        assert!(NM::parse("4:2", "pruning.n_m").unwrap_err().contains("pruning.n_m"));
        assert!(NM::parse("two", "pruning.n_m").is_err());
    }
}
