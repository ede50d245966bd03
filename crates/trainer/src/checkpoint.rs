//! Training checkpoints: everything a run needs to continue exactly where it stopped.
//!
//! A checkpoint is a directory `output_dir/checkpoints/step-00000400/` holding
//! - `model.bpk`: every parameter of the training model, pruner scores included (burnpack,
//!   which keeps the parameter ids the optimizer state is keyed by);
//! - `optim.bpk`: the AdamW moments and step counts of every parameter group;
//! - `masks.safetensors`: the hard masks in force at that step (U8), for pruners that keep masks
//!   between steps (magnitude between schedule changes, MI after its one-shot removal);
//! - `state.json`: the step, the data-order RNG state, the running totals of the report, the
//!   pruner's own bookkeeping, the resolved experiment, and the SHA-256 of the three files above.
//!
//! It is written into a temporary directory that is renamed into place once every file is
//! synced, so a crash (even `kill -9`) leaves either the whole checkpoint or none. On resume the
//! newest checkpoint whose files match their checksums is used; a corrupt or partial one is
//! reported by name and the one before it is tried.

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use burn_store::{BurnpackStore, ModuleSnapshot};
use models::PrunableModel;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

const FILES: [&str; 3] = ["model.bpk", "optim.bpk", "masks.safetensors"];

/// The bookkeeping of a run at the end of a step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainState {
    /// Steps completed; the run continues with step index `step`.
    pub step: usize,
    pub total_steps: usize,
    /// State of the data-order RNG after the shuffles done so far.
    pub rng_state: u64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub samples: usize,
    pub loss_sum: f64,
    pub loss_count: usize,
    /// Largest gradient norm (before clipping) since the last metrics line.
    #[serde(default)]
    pub grad_norm_max: f64,
    /// The pruner's own bookkeeping (`Pruner::state`).
    pub pruner: serde_json::Value,
    /// The resolved experiment (TOML) the run was started with; a resume must use the same.
    pub experiment: String,
    /// What the loop computed once and must not recompute (the metrics before pruning, the
    /// performance-weighted loss's cached weights and targets).
    #[serde(default)]
    pub extra: serde_json::Value,
    /// SHA-256 of each file of the checkpoint, by file name.
    pub sha256: std::collections::BTreeMap<String, String>,
}

pub fn checkpoints_dir(output_dir: &Path) -> PathBuf {
    output_dir.join("checkpoints")
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

fn sync_file(path: &Path) -> Result<(), String> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes a checkpoint for the end of step `state.step - 1` and keeps the newest `keep`.
/// `reference`: a frozen model the run also needs (the performance-weighted loss's unpruned
/// model, computed on the fly), saved as `reference.bpk`.
pub fn save<M: Module + PrunableModel>(
    output_dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    reference: Option<&M>,
    mut state: TrainState,
    keep: usize,
) -> Result<PathBuf, String> {
    let root = checkpoints_dir(output_dir);
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let name = format!("step-{:08}", state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    let fin = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;

    let non_finite = non_finite_params(model);
    if !non_finite.is_empty() {
        return Err(format!("step {}: parameters are NaN/Inf ({}); no checkpoint written", state.step, non_finite.join(", ")));
    }
    let mut store = BurnpackStore::from_file(tmp.join("model.bpk")).auto_extension(false).overwrite(true);
    model.save_into(&mut store).map_err(|e| format!("{}: {e}", tmp.join("model.bpk").display()))?;
    optim.save(tmp.join("optim.bpk")).map_err(|e| format!("{}: {e}", tmp.join("optim.bpk").display()))?;
    models::checkpoint::save_masks(model, &tmp.join("masks.safetensors")).map_err(|e| e.to_string())?;
    let mut files = FILES.to_vec();
    if let Some(r) = reference {
        let mut store = BurnpackStore::from_file(tmp.join("reference.bpk")).auto_extension(false).overwrite(true);
        r.save_into(&mut store).map_err(|e| format!("{}: {e}", tmp.join("reference.bpk").display()))?;
        files.push("reference.bpk");
    }
    for f in files {
        sync_file(&tmp.join(f))?;
        state.sha256.insert(f.to_string(), sha256_file(&tmp.join(f))?);
    }
    let text = serde_json::to_string_pretty(&state).map_err(|e| e.to_string())?;
    let mut f = std::fs::File::create(tmp.join("state.json")).map_err(|e| format!("{}: {e}", tmp.join("state.json").display()))?;
    f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", tmp.join("state.json").display()))?;
    drop(f);
    if fin.exists() {
        std::fs::remove_dir_all(&fin).map_err(|e| format!("{}: {e}", fin.display()))?;
    }
    std::fs::rename(&tmp, &fin).map_err(|e| format!("{} → {}: {e}", tmp.display(), fin.display()))?;
    let _ = std::fs::File::open(&root).and_then(|d| d.sync_all());
    // Older checkpoints beyond `keep` go, oldest first (only once the new one is in place).
    let mut all = list(&root);
    while all.len() > keep.max(1) {
        let (_, old) = all.remove(0);
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(fin)
}

/// Names of parameters holding a NaN or an infinity.
pub fn non_finite_params<M: Module>(model: &M) -> Vec<String> {
    models::checkpoint::named_tensors(model)
        .into_iter()
        .filter(|(_, d)| d.as_slice::<f32>().map(|v| v.iter().any(|x| !x.is_finite())).unwrap_or(false))
        .map(|(n, _)| n)
        .collect()
}

/// Checkpoint directories under `root`, oldest first, by step.
fn list(root: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            Some((step, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Reads and verifies one checkpoint's `state.json` and file checksums.
pub fn verify(dir: &Path) -> Result<TrainState, String> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let state: TrainState = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for f in FILES {
        if !state.sha256.contains_key(f) {
            return Err(format!("{}: no checksum for {f}", path.display()));
        }
    }
    for (f, want) in &state.sha256 {
        let got = sha256_file(&dir.join(f))?;
        if &got != want {
            return Err(format!("{}: checksum mismatch (file is corrupt or was changed)", dir.join(f).display()));
        }
    }
    Ok(state)
}

/// The newest checkpoint under `output_dir` that verifies, with a warning for each newer one
/// that does not. `None` when there is no checkpoint at all; an error when every one is bad.
pub fn latest(output_dir: &Path) -> Result<Option<(PathBuf, TrainState)>, String> {
    let all = list(&checkpoints_dir(output_dir));
    if all.is_empty() {
        return Ok(None);
    }
    let mut problems = Vec::new();
    for (_, dir) in all.into_iter().rev() {
        match verify(&dir) {
            Ok(state) => {
                for p in &problems {
                    tracing::warn!("skipping a bad checkpoint: {p}");
                }
                return Ok(Some((dir, state)));
            }
            Err(e) => problems.push(e),
        }
    }
    Err(format!("no usable checkpoint in {}: {}", checkpoints_dir(output_dir).display(), problems.join("; ")))
}

/// Loads a verified checkpoint into a freshly built training model (same structure, pruner
/// scores already added by `Pruner::init`) and optimizer. The hard masks of the checkpointed
/// step are put back on the layers.
pub fn restore<M: Module + PrunableModel>(dir: &Path, mut model: M, optim: ModuleOptimizer, device: &Device) -> Result<(M, ModuleOptimizer), String> {
    load_params(&dir.join("model.bpk"), &mut model)?;
    let optim = optim.load(dir.join("optim.bpk")).map_err(|e| format!("{}: {e}", dir.join("optim.bpk").display()))?;
    let masks = models::checkpoint::read_masks(&dir.join("masks.safetensors")).map_err(|e| e.to_string())?;
    for (name, layer) in model.prunable_layers_mut() {
        if let Some((values, shape)) = masks.get(&format!("{name}.weight_mask")) {
            let data = TensorData::new(values.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [shape[0], shape[1]]);
            layer.mask = Some(Tensor::from_data(data, device));
        }
    }
    Ok((model.train(), optim))
}

/// Loads the parameters of a `.bpk` file of this checkpoint into `model` (same structure).
pub fn load_params<M: Module>(path: &Path, model: &mut M) -> Result<(), String> {
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let result = model.load_from(&mut store).map_err(|e| format!("{}: {e}", path.display()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(format!(
            "{}: does not match the model of this experiment (missing: {:?}; errors: {:?})",
            path.display(),
            result.missing.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
            result.errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_orders_by_step_and_ignores_temporaries() {
        let dir = std::env::temp_dir().join(format!("prunekit-ckpt-list-{}", std::process::id()));
        let root = checkpoints_dir(&dir);
        for n in ["step-00000020", "step-00000003", ".tmp-step-00000040", "notes"] {
            std::fs::create_dir_all(root.join(n)).unwrap();
        }
        let steps: Vec<usize> = list(&root).into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![3, 20]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
