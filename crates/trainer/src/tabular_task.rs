//! An MLP on a tabular dataset (UCI Adult, COMPAS): features encoded once, rows batched as a
//! `[batch, features]` tensor, subgroup attributes carried beside them.

use crate::experiment::{DataSection, Experiment};
use crate::report::write_json;
use crate::task::{Compacted, Split, Task};
use burn::tensor::{Device, Int, Tensor, TensorData};
use datasets::tabular::{CsvSpec, TabularDataset, TabularName, TabularOptions, TabularSplit};
use models::checkpoint::{load_safetensors, save_safetensors};
use models::mlp::{compact, labels_tensor};
use models::{Mlp, MlpConfig, UnitActivations};
use std::path::Path;

pub struct TabularTask {
    pub ds: TabularDataset,
    pub config: MlpConfig,
    pub min_group_size: usize,
}

/// The encoded dataset an experiment names (fetched, encoded and cached on first use).
pub fn load_data(section: &DataSection) -> Result<TabularDataset, String> {
    let (name, t) = match section {
        DataSection::Adult(t) => (TabularName::Adult, t),
        DataSection::Compas(t) => (TabularName::Compas, t),
        DataSection::Csv(c) => {
            let spec = CsvSpec {
                label: c.label.clone(),
                numeric: c.numeric.clone(),
                categorical: c.categorical.clone(),
                group_by: c.group_by.clone(),
                split_seed: c.split_seed,
                validation_fraction: c.validation_fraction,
            };
            let ds = datasets::tabular::encode_csv(&c.train, c.validation.as_deref(), c.test.as_deref(), &spec)?;
            if ds.train.is_empty() {
                return Err(format!("data.train {}: the training split is empty", c.train.display()));
            }
            return Ok(ds);
        }
        _ => return Err("data: not a tabular dataset".into()),
    };
    let opts = TabularOptions {
        name,
        split_seed: t.split_seed,
        validation_fraction: t.validation_fraction,
        group_by: t.group_by.clone().unwrap_or_else(|| name.default_groups()),
        drop_features: t.drop_features.clone(),
    };
    let mut ds = datasets::tabular::load(&opts)?;
    if let Some(n) = t.max_train_samples {
        let d = ds.num_features();
        let s = &mut ds.train;
        let n = n.min(s.len());
        s.x.truncate(n * d);
        s.y.truncate(n);
        for g in &mut s.groups {
            g.truncate(n);
        }
    }
    if ds.train.is_empty() {
        return Err("data: the training split is empty".into());
    }
    Ok(ds)
}

/// Loads an MLP saved by [`TabularTask::save`] and checks it fits `ds`; errors name the file.
pub fn load_mlp(dir: &Path, ds: &TabularDataset, dropout: f64, device: &Device) -> Result<(Mlp, MlpConfig), String> {
    let mut config = MlpConfig::from_file(&dir.join("config.json"))?;
    let features: serde_json::Value = std::fs::read(dir.join("features.json"))
        .map_err(|e| format!("{}: {e}", dir.join("features.json").display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", dir.join("features.json").display())))?;
    let names: Vec<String> = serde_json::from_value(features["feature_names"].clone()).map_err(|e| format!("{}: feature_names: {e}", dir.join("features.json").display()))?;
    if names != ds.feature_names {
        return Err(format!(
            "{}: feature_names: the checkpoint was trained on {} features, this dataset encodes {} (different data options?)",
            dir.join("features.json").display(),
            names.len(),
            ds.num_features()
        ));
    }
    if config.num_labels != ds.label_names.len() {
        return Err(format!("{}: num_labels is {}, the dataset has {}", dir.join("config.json").display(), config.num_labels, ds.label_names.len()));
    }
    config.dropout = dropout;
    let (model, report) = load_safetensors(Mlp::new(&config, 0, device), &dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    if !report.missing.is_empty() {
        return Err(format!("{}: tensors missing: {}", dir.join("model.safetensors").display(), report.missing.join(", ")));
    }
    tracing::info!("loaded MLP {:?} from {}", config.hidden, dir.display());
    Ok((model, config))
}

impl TabularTask {
    pub fn load(exp: &Experiment, device: &Device) -> Result<(Self, Mlp), String> {
        let ds = load_data(&exp.data)?;
        tracing::info!("data: {} ({} train / {} validation / {} test, {} features)", ds.source, ds.train.len(), ds.validation.len(), ds.test.len(), ds.num_features());
        for (a, sizes) in datasets::tabular::group_sizes(&ds.test, &ds.group_by) {
            tracing::info!("test groups by {a}: {sizes:?}");
        }
        let (model, config) = if exp.model.source.trim().is_empty() {
            let c = MlpConfig::new(ds.num_features(), exp.model.hidden.clone(), ds.label_names.len(), exp.model.dropout);
            tracing::info!("MLP {} → {:?} → {}, randomly initialised", c.input_dim, c.hidden, c.num_labels);
            (Mlp::new(&c, exp.seed, device), c)
        } else {
            load_mlp(Path::new(&exp.model.source), &ds, exp.model.dropout, device).map_err(|e| format!("model.source: {e}"))?
        };
        let min_group_size = match &exp.data {
            DataSection::Adult(t) | DataSection::Compas(t) => t.min_group_size,
            DataSection::Csv(c) => c.min_group_size,
            _ => 1,
        };
        Ok((Self { ds, config, min_group_size }, model))
    }

    fn split(&self, split: Split) -> &TabularSplit {
        match split {
            Split::Train => &self.ds.train,
            Split::Validation => &self.ds.validation,
            Split::Test => &self.ds.test,
        }
    }

    fn rows(&self, split: Split, idx: &[usize], device: &Device) -> Tensor<2> {
        let (s, d) = (self.split(split), self.ds.num_features());
        let x: Vec<f32> = idx.iter().flat_map(|&i| s.x[i * d..(i + 1) * d].iter().copied()).collect();
        Tensor::from_data(TensorData::new(x, [idx.len(), d]), device)
    }
}

impl Task for TabularTask {
    type Model = Mlp;

    fn data_source(&self) -> String {
        self.ds.source.clone()
    }
    fn label_names(&self) -> &[String] {
        &self.ds.label_names
    }
    fn len(&self, split: Split) -> usize {
        self.split(split).len()
    }
    fn label(&self, split: Split, i: usize) -> Option<usize> {
        Some(self.split(split).y[i])
    }
    fn forward(&self, model: &Mlp, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        let y: Vec<usize> = idx.iter().map(|&i| self.split(split).y[i]).collect();
        (model.forward(self.rows(split, idx, device)), labels_tensor(&y, device))
    }
    fn forward_features(&self, model: &Mlp, split: Split, idx: &[usize], device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<1, Int>) {
        let y: Vec<usize> = idx.iter().map(|&i| self.split(split).y[i]).collect();
        let (f, l) = model.forward_features(self.rows(split, idx, device));
        (f, l, labels_tensor(&y, device))
    }
    fn unit_activations(&self, model: &Mlp, idx: &[usize], device: &Device) -> UnitActivations {
        model.unit_activations(self.rows(Split::Train, idx, device))
    }
    fn groups(&self, split: Split) -> Vec<(String, &[String])> {
        self.ds.group_by.iter().cloned().zip(self.split(split).groups.iter().map(Vec::as_slice)).collect()
    }
    fn min_group_size(&self) -> usize {
        self.min_group_size
    }
    fn load_other(&self, source: &str, key: &str, device: &Device) -> Result<Mlp, String> {
        load_mlp(Path::new(source), &self.ds, 0.0, device).map(|(m, _)| m).map_err(|e| format!("{key}: {e}"))
    }
    fn compact(&self, model: &Mlp) -> Compacted<Mlp> {
        let before = burn::module::Module::num_params(model);
        let (small, widths) = compact(model);
        let after = burn::module::Module::num_params(&small);
        tracing::info!("compacted: hidden widths {:?} → {widths:?}, {before} → {after} parameters", self.config.hidden);
        let config = small.config(self.config.dropout);
        Compacted {
            model: small,
            report: serde_json::json!({"hidden_before": self.config.hidden, "hidden_after": widths, "params_before": before, "params_after": after}),
            config: serde_json::to_value(&config).unwrap_or_default(),
        }
    }
    fn save(&self, model: &Mlp, compacted: Option<&serde_json::Value>, out: &Path) -> Result<(), String> {
        save_safetensors(model, &out.join("model.safetensors")).map_err(|e| e.to_string())?;
        let config = match compacted {
            Some(c) => c.clone(),
            None => serde_json::to_value(&self.config).map_err(|e| e.to_string())?,
        };
        write_json(&out.join("config.json"), &config)?;
        write_json(
            &out.join("features.json"),
            &serde_json::json!({"feature_names": self.ds.feature_names, "label_names": self.ds.label_names, "data": self.ds.source}),
        )
    }
}
