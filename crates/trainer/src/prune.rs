//! `trainer prune`: one-shot pruning of a fine-tuned model, no retraining — the way Wanda, STADE,
//! Taylor and MI are used. The data and model settings come from the fine-tuned run's own
//! resolved `config.toml` (or from an experiment file); the pruned model, `summary.json` (with
//! the accuracy before pruning in `before_pruning`) and the masks go to `--output`.

use crate::experiment::{self, Experiment};
use crate::train_loop;
use pruners::{Granularity, Method, PruningConfig};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// A fine-tuned run's output directory (its config.toml names the data), or an experiment
    /// file whose `model.source` is the fine-tuned model.
    pub source: PathBuf,
    /// A one-shot method: wanda, stade, taylor, oneshot_magnitude or mi_layerwise.
    #[arg(long)]
    pub method: String,
    /// Fraction of the prunable weights (or units) to keep.
    #[arg(long)]
    pub density: f64,
    /// N:M sparsity instead, e.g. 2:4 (the density is then 1 − N/M).
    #[arg(long, value_name = "N:M")]
    pub n_m: Option<String>,
    /// Remove whole heads and neurons (the model is then compacted).
    #[arg(long)]
    pub structured: bool,
    /// Training examples whose statistics (and gradients, for taylor) score the weights.
    #[arg(long, default_value_t = 256)]
    pub calibration_samples: usize,
    /// Where the pruned model and its summary go (default: next to the source,
    /// `<source>-<method>-<density>`).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Override any other key of the experiment: --set section.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// The experiment `trainer prune` runs: the source's data and model settings, the model read
/// from the source, the one-shot method at step 0, no training.
pub fn experiment(args: &PruneArgs) -> Result<Experiment, String> {
    let method = Method::named(&args.method).map_err(|e| format!("--method: {e}"))?;
    let (mut exp, model_dir) = if args.source.is_dir() {
        let cfg = args.source.join("config.toml");
        let text = std::fs::read_to_string(&cfg).map_err(|e| {
            format!("{}: {e} (a fine-tuned run's output directory holds the config.toml its run resolved; or give an experiment file)", cfg.display())
        })?;
        let exp = experiment::parse(&text, &[]).map_err(|e| format!("{}: {e}", cfg.display()))?;
        (exp, Some(args.source.clone()))
    } else {
        (experiment::load(&args.source, &[])?, None)
    };
    if let Some(dir) = &model_dir {
        exp.model.source = dir.display().to_string();
        exp.model.random_init = false;
    }
    let tag = match &args.n_m {
        Some(nm) => nm.replace(':', "-"),
        None => format!("{}", args.density),
    };
    exp.name = format!("{}-{}-{tag}{}", exp.name, method.name(), if args.structured { "-units" } else { "" });
    exp.output_dir = match &args.output {
        Some(o) => o.clone(),
        None => {
            let base = model_dir.clone().unwrap_or_else(|| PathBuf::from(&exp.model.source));
            let name = base.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
            base.with_file_name(format!("{name}-{}-{tag}{}", method.name(), if args.structured { "-units" } else { "" }))
        }
    };
    let density = match &args.n_m {
        Some(t) => pruners::selection::NM::parse(t, "--n-m")?.density(),
        None => args.density,
    };
    exp.pruning = PruningConfig {
        method,
        final_density: density,
        calibration_samples: args.calibration_samples,
        n_m: args.n_m.clone(),
        granularity: if args.structured { Granularity::Unit } else { Granularity::Weight },
        seed: exp.pruning.seed,
        ..PruningConfig::default()
    };
    exp.train.epochs = 0.0;
    exp.distillation = None;
    exp.loss = Default::default();
    // Overrides last, through the same checks as an experiment file's.
    let text = toml::to_string(&exp).map_err(|e| e.to_string())?;
    let exp = experiment::parse(&text, &args.overrides)?;
    // What build() would refuse, refused before anything is loaded.
    exp.pruning.build(1).map(|_| ())?;
    Ok(exp)
}

pub fn main(args: PruneArgs) -> Result<(), String> {
    let exp = experiment(&args)?;
    let s = train_loop::run_with(&exp, Path::new("trainer prune"), train_loop::RunOptions::default())?;
    let before = s.before_pruning.as_ref().map(|b| format!("{:.4}", b.validation.accuracy)).unwrap_or_else(|| "-".into());
    println!(
        "{}: validation accuracy {before} before, {:.4} after; {:.2}% of the prunable weights removed ({} of {} remain); wrote {}",
        s.name,
        s.validation.accuracy,
        100.0 * s.prunable_sparsity,
        s.prunable_nonzero,
        s.prunable_params,
        exp.output_dir.display()
    );
    Ok(())
}
