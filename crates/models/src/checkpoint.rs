//! Reading and writing weights as safetensors with Hugging Face parameter names.
//!
//! Loading walks the module tree, forms each parameter's Hugging Face name from its field path
//! (`self_` → `self`), and replaces the value by name. Keys that the file has and the model
//! lacks, and the reverse, are reported by name; a shape mismatch is an error.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not a valid safetensors file (corrupt or truncated?): {msg}")]
    Corrupt { path: String, msg: String },
    #[error("{path}: tensor `{key}` has dtype {dtype}, expected F32, F16 or BF16")]
    Dtype { path: String, key: String, dtype: String },
    #[error("{path}: shape mismatch for {}", .mismatches.join("; "))]
    Shape { path: String, mismatches: Vec<String> },
    #[error("{path}: tensor `{key}` holds NaN or Inf values")]
    NonFinite { path: String, key: String },
}

/// What a load matched.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Parameters set from the file.
    pub loaded: Vec<String>,
    /// Parameters of the model that the file lacks (they keep their fresh initialisation).
    pub missing: Vec<String>,
    /// Tensors in the file that the model has no parameter for.
    pub unexpected: Vec<String>,
}

/// Module field path → Hugging Face name.
fn hf_name(path: &[String]) -> String {
    path.iter().map(|p| if p == "self_" { "self" } else { p.as_str() }).collect::<Vec<_>>().join(".")
}

/// File key → the name our `BertForSequenceClassification` gives it: bare `BertModel`
/// checkpoints get the `bert.` prefix; legacy LayerNorm `gamma`/`beta` become `weight`/`bias`.
fn normalise_key(key: &str, bare_encoder: bool) -> String {
    let mut k = key.to_string();
    if bare_encoder && !k.starts_with("classifier.") {
        k = format!("bert.{k}");
    }
    // Only LayerNorm's: BatchNorm's parameters are called gamma and beta in burn (CNN files).
    if !k.contains("LayerNorm.") {
        return k;
    }
    if let Some(stem) = k.strip_suffix(".gamma") {
        k = format!("{stem}.weight");
    } else if let Some(stem) = k.strip_suffix(".beta") {
        k = format!("{stem}.bias");
    }
    k
}

/// Buffers that `transformers` stores beside the weights; they are not parameters.
fn is_buffer(key: &str) -> bool {
    key.ends_with("position_ids") || key.ends_with("token_type_ids")
}

struct Loader {
    tensors: BTreeMap<String, TensorData>,
    path: Vec<String>,
    seen: BTreeSet<String>,
    report: LoadReport,
    mismatches: Vec<String>,
}

impl ModuleMapper for Loader {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let name = hf_name(&self.path);
        self.seen.insert(name.clone());
        let Some(data) = self.tensors.remove(&name) else {
            self.report.missing.push(name);
            return param;
        };
        let want = param.lazy_shape().to_vec();
        if data.shape().as_slice() != want.as_slice() {
            self.mismatches.push(format!("`{name}`: file {:?}, model {:?}", data.shape().as_slice(), want));
            return param;
        }
        self.report.loaded.push(name);
        param.map(|old| {
            let require_grad = old.is_require_grad();
            let device = old.device();
            Tensor::from_data(data, &device).set_require_grad(require_grad)
        })
    }
}

fn to_f32(path: &str, key: &str, view: &safetensors::tensor::TensorView) -> Result<Vec<f32>, CheckpointError> {
    let b = view.data();
    let v: Vec<f32> = match view.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        other => {
            return Err(CheckpointError::Dtype { path: path.into(), key: key.into(), dtype: format!("{other:?}") })
        }
    };
    if v.iter().any(|x| !x.is_finite()) {
        return Err(CheckpointError::NonFinite { path: path.into(), key: key.into() });
    }
    Ok(v)
}

/// Reads every float tensor of a safetensors file, keyed by its normalised name.
pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, TensorData>, CheckpointError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: p.clone(), source })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Corrupt { path: p.clone(), msg: e.to_string() })?;
    let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    // A bare `BertModel` checkpoint (embeddings.*, encoder.*, no `bert.` prefix); other models'
    // files (e.g. an MLP's layers.*) keep their names.
    let bare_encoder = !names.iter().any(|n| n.starts_with("bert.")) && names.iter().any(|n| n.starts_with("embeddings.") || n.starts_with("encoder."));
    let mut out = BTreeMap::new();
    for name in names {
        if is_buffer(&name) {
            continue;
        }
        let view = st.tensor(&name).map_err(|e| CheckpointError::Corrupt { path: p.clone(), msg: e.to_string() })?;
        let values = to_f32(&p, &name, &view)?;
        out.insert(normalise_key(&name, bare_encoder), TensorData::new(values, view.shape().to_vec()));
    }
    Ok(out)
}

/// Loads a Hugging Face safetensors checkpoint into `module` by parameter name.
pub fn load_safetensors<M: Module>(module: M, path: &Path) -> Result<(M, LoadReport), CheckpointError> {
    let tensors = read_safetensors(path)?;
    let mut loader = Loader {
        tensors,
        path: Vec::new(),
        seen: BTreeSet::new(),
        report: LoadReport::default(),
        mismatches: Vec::new(),
    };
    let module = module.map(&mut loader);
    if !loader.mismatches.is_empty() {
        return Err(CheckpointError::Shape { path: path.display().to_string(), mismatches: loader.mismatches });
    }
    loader.report.unexpected = loader.tensors.into_keys().collect();
    Ok((module, loader.report))
}

struct Collector {
    path: Vec<String>,
    tensors: Vec<(String, TensorData)>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tensors.push((hf_name(&self.path), param.val().to_data()));
    }
}

/// Every float parameter of `module` with its Hugging Face name, as f32 host data.
pub fn named_tensors<M: Module>(module: &M) -> Vec<(String, TensorData)> {
    let mut c = Collector { path: Vec::new(), tensors: Vec::new() };
    module.visit(&mut c);
    c.tensors
}

/// Writes named f32 tensors as safetensors, atomically (temp file + rename).
pub fn write_safetensors(
    tensors: &[(String, TensorData)],
    metadata: Option<std::collections::HashMap<String, String>>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, data)| {
            let v = data.try_to_vec::<f32>().expect("parameters are f32");
            let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.clone(), raw, data.shape().as_slice().to_vec())
        })
        .collect();
    write_raw(&bytes, Dtype::F32, metadata, path)
}

/// Writes `(name, little-endian bytes, shape)` tensors of one dtype atomically (temp + rename).
fn write_raw(
    tensors: &[(String, Vec<u8>, Vec<usize>)],
    dtype: Dtype,
    metadata: Option<std::collections::HashMap<String, String>>,
    path: &Path,
) -> Result<(), CheckpointError> {
    let p = path.display().to_string();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, raw, shape)| (n.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), raw).expect("consistent view")))
        .collect();
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(views, metadata, &tmp).map_err(|e| CheckpointError::Corrupt { path: p.clone(), msg: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io { path: p, source })?;
    Ok(())
}

/// Saves every parameter of `module` under its Hugging Face name.
pub fn save_safetensors<M: Module>(module: &M, path: &Path) -> Result<(), CheckpointError> {
    write_safetensors(&named_tensors(module), None, path)
}


/// Writes the keep-pattern of every prunable matrix that has a mask, as `U8` 0/1 tensors named
/// `<HF layer name>.weight_mask` (the name `torch.nn.utils.prune` uses), atomically. Returns how
/// many masks were written. Load in PyTorch with `safetensors.torch.load_file`.
pub fn save_masks(model: &dyn crate::PrunableModel, path: &Path) -> Result<usize, CheckpointError> {
    let masks: Vec<(String, Vec<u8>, Vec<usize>)> = model
        .prunable_layers()
        .into_iter()
        .filter_map(|(name, layer)| {
            let mask = layer.mask.as_ref()?.clone().detach();
            let shape = mask.dims().to_vec();
            let keep: Vec<u8> = mask.not_equal_elem(0.0).int().to_data().convert::<i64>().try_to_vec::<i64>().ok()?.into_iter().map(|v| v as u8).collect();
            Some((format!("{name}.weight_mask"), keep, shape))
        })
        .collect();
    write_raw(&masks, Dtype::U8, None, path)?;
    Ok(masks.len())
}

/// Reads a masks file written by [`save_masks`]: name → (0/1 values, shape).
pub fn read_masks(path: &Path) -> Result<BTreeMap<String, (Vec<u8>, Vec<usize>)>, CheckpointError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: p.clone(), source })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Corrupt { path: p.clone(), msg: e.to_string() })?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::U8 {
            return Err(CheckpointError::Corrupt { path: p.clone(), msg: format!("{name}: expected U8 mask, found {:?}", view.dtype()) });
        }
        out.insert(name, (view.data().to_vec(), view.shape().to_vec()));
    }
    Ok(out)
}
