//! Every pruning method, one line each: its name in `[pruning] method = "…"`, what it is, which
//! optional keys of `[pruning]` it reads, and how it is built. Adding a method is its file under
//! [`crate::methods`] plus one line in [`METHODS`]; the config, its error messages, the reports
//! and the trainer read everything else from here.

use crate::methods;
use crate::oneshot::{Criterion, OneShot};
use crate::schedule::CubicSchedule;
use crate::selection::NM;
use crate::{Pruner, PruningConfig};

/// How a method's sparsity comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No pruning.
    Dense,
    /// It aims at `final_density` (reported as the run's target).
    Density,
    /// The sparsity is an outcome of the method (soft movement, L0): no target to report.
    Outcome,
}

/// A pruning method as the registry knows it.
pub struct MethodSpec {
    /// The value of `[pruning] method`.
    pub name: &'static str,
    /// One line for error messages and listings.
    pub about: &'static str,
    pub target: Target,
    /// It prunes in one step from calibration data (at `warmup_steps`), so it also runs with
    /// no training at all (`train.epochs = 0`, `trainer prune`).
    pub one_shot: bool,
    /// It removes whole units and the run ends in a compacted model (always, or with
    /// `granularity = "unit"`: see [`PruningConfig::is_structured`]).
    pub structured: bool,
    /// The method-specific keys of `[pruning]` it reads; setting any other one is an error
    /// that names the methods that do read it.
    pub keys: &'static [&'static str],
    pub build: fn(&PruningConfig, &BuildContext) -> Result<Box<dyn Pruner>, String>,
}

/// What every builder gets besides the config: the run's length, the cubic schedule from the
/// config, and the parsed N:M pattern.
pub struct BuildContext {
    pub total_steps: usize,
    pub schedule: CubicSchedule,
    pub nm: Option<NM>,
}

/// Keys of `[pruning]` that only some methods read (the others apply to all).
pub const METHOD_KEYS: &[&str] =
    &["scores_lr", "final_threshold", "lambda", "scope", "granularity", "calibration_samples", "multipliers_lr", "freeze_scores_at", "compensate_bias", "fade_steps", "comparison", "n_m", "stade_layers", "adaptive_target", "accuracy_loss", "round_steps", "decay_steps", "host", "rounds"];

const TOPK: &[&str] = &["scope", "granularity"];
const LEARNED: &[&str] = &["scores_lr", "multipliers_lr"];
const ONE_SHOT: &[&str] = &["calibration_samples", "comparison", "n_m", "granularity"];

#[rustfmt::skip]
pub const METHODS: &[MethodSpec] = &[
    MethodSpec { name: "none", about: "no pruning (the dense reference)", target: Target::Dense, one_shot: false, structured: false, keys: &[], build: |_, _| Ok(Box::new(methods::dense::Dense)) },
    MethodSpec { name: "magnitude", about: "|W| top-k on the cubic schedule", target: Target::Density, one_shot: false, structured: false, keys: TOPK, build: methods::magnitude::build },
    MethodSpec { name: "movement", about: "learned movement scores, top-k on the cubic schedule (Sanh et al. 2020)", target: Target::Density, one_shot: false, structured: false, keys: &["scope", "granularity", "scores_lr", "freeze_scores_at", "compensate_bias", "fade_steps", "calibration_samples"], build: methods::movement::build },
    MethodSpec { name: "soft_movement", about: "movement scores thresholded, L1 on σ(S)", target: Target::Outcome, one_shot: false, structured: false, keys: &["scores_lr", "final_threshold", "lambda"], build: methods::soft_movement::build },
    MethodSpec { name: "l0", about: "hard-concrete masks on weights with an L0 penalty (Louizos et al. 2018)", target: Target::Outcome, one_shot: false, structured: false, keys: &["scores_lr", "lambda"], build: methods::l0::build },
    MethodSpec { name: "random", about: "random scores on the cubic schedule (control)", target: Target::Density, one_shot: false, structured: false, keys: &[], build: methods::random::build },
    MethodSpec { name: "mi_layerwise", about: "heads and neurons by mutual information, layer by layer from the top", target: Target::Density, one_shot: true, structured: true, keys: &["calibration_samples", "granularity"], build: methods::mi_layerwise::build },
    MethodSpec { name: "mask_learning", about: "hard-concrete gates on heads, neurons and blocks to a target (CoFiPruning)", target: Target::Density, one_shot: false, structured: true, keys: LEARNED, build: methods::mask_learning::build },
    MethodSpec { name: "minimax_uniform", about: "hard-concrete gates, the same shape in every layer, minimax (MaskPrune)", target: Target::Density, one_shot: false, structured: true, keys: LEARNED, build: methods::minimax_uniform::build },
    MethodSpec { name: "wanda", about: "one-shot |W|·‖X‖ from calibration inputs (Wanda)", target: Target::Density, one_shot: true, structured: false, keys: ONE_SHOT, build: |c, b| one_shot(c, b, methods::wanda::Wanda) },
    MethodSpec { name: "stade", about: "one-shot W²·Var(X), the mean folded into the bias (STADE)", target: Target::Density, one_shot: true, structured: false, keys: &["calibration_samples", "comparison", "n_m", "granularity", "stade_layers"], build: methods::stade::build },
    MethodSpec { name: "oneshot_magnitude", about: "one-shot |W| with the one-shot selections", target: Target::Density, one_shot: true, structured: false, keys: ONE_SHOT, build: |c, b| one_shot(c, b, methods::oneshot_magnitude::OneShotMagnitude) },
    MethodSpec { name: "oneshot_random", about: "one-shot random scores with the one-shot selections (control)", target: Target::Density, one_shot: true, structured: false, keys: ONE_SHOT, build: |c, b| one_shot(c, b, methods::oneshot_random::OneShotRandom { seed: c.seed }) },
    MethodSpec { name: "sbpf", about: "units by L1 within each layer, per-layer ratios from injected-damage sensitivity (SBPF)", target: Target::Density, one_shot: true, structured: true, keys: &["calibration_samples"], build: methods::sbpf::build },
    MethodSpec { name: "activation", about: "units by mean activation, threshold rounds with an adaptive policy and rollback (AAP)", target: Target::Density, one_shot: false, structured: true, keys: &["calibration_samples", "adaptive_target", "accuracy_loss", "round_steps"], build: methods::activation::build },
    MethodSpec { name: "c_swap", about: "one-shot causal test: units whose removal does not lower the true class's probability go (C-SWAP)", target: Target::Density, one_shot: true, structured: true, keys: &["calibration_samples", "rounds"], build: methods::c_swap::build },
    MethodSpec { name: "gradient_flow", about: "units by −θ⊙Hg (removal raises the gradient norm), progressive soft masks (gradient flow / GraSP)", target: Target::Density, one_shot: false, structured: true, keys: &["calibration_samples", "round_steps", "decay_steps"], build: methods::gradient_flow::build },
    MethodSpec { name: "decay", about: "host-selected units decay to zero norm while training, resisting ones released (DPM)", target: Target::Density, one_shot: false, structured: true, keys: &["calibration_samples", "round_steps", "decay_steps", "host"], build: methods::decay::build },
    MethodSpec { name: "ld_pruner", about: "one-shot: units whose removal moves the output representation's mean and spread least go (LD-Pruner)", target: Target::Density, one_shot: true, structured: true, keys: &["calibration_samples"], build: methods::ld_pruner::build },
    MethodSpec { name: "taylor", about: "one-shot |W·∂L/∂W| from gradients over calibration batches (Molchanov et al. 2019)", target: Target::Density, one_shot: true, structured: false, keys: ONE_SHOT, build: |c, b| one_shot(c, b, methods::taylor::Taylor) },
];

/// The method called `name`.
pub fn find(name: &str) -> Option<&'static MethodSpec> {
    METHODS.iter().find(|m| m.name == name)
}

/// Every method's name, for error messages.
pub fn names() -> String {
    METHODS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// The methods that read `key`, for error messages.
pub fn readers_of(key: &str) -> Vec<&'static str> {
    METHODS.iter().filter(|m| m.keys.contains(&key)).map(|m| m.name).collect()
}

/// A one-shot criterion at `warmup_steps` with the config's selection.
pub fn one_shot<C: Criterion + 'static>(c: &PruningConfig, b: &BuildContext, criterion: C) -> Result<Box<dyn Pruner>, String> {
    if c.granularity == crate::Granularity::Unit {
        for (key, set) in [("comparison", c.comparison.is_some()), ("n_m", c.n_m.is_some())] {
            if set {
                return Err(format!("pruning.{key} selects single weights; with pruning.granularity = \"unit\" every unit group keeps final_density of its units"));
            }
        }
    }
    Ok(Box::new(OneShot::new(criterion, c.warmup_steps, c.final_density, c.calibration_samples, c.comparison.unwrap_or_default(), b.nm).with_granularity(c.granularity)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_are_known() {
        for (i, m) in METHODS.iter().enumerate() {
            assert!(METHODS[..i].iter().all(|o| o.name != m.name), "{} twice", m.name);
            for k in m.keys {
                assert!(METHOD_KEYS.contains(k), "{}: unknown key {k}", m.name);
            }
        }
        // Every method-specific key is read by some method.
        for k in METHOD_KEYS {
            assert!(!readers_of(k).is_empty(), "{k} is read by no method");
        }
    }

    fn config(text: &str) -> Result<PruningConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_reads_methods_from_the_registry_and_names_the_readers_of_a_misplaced_key() {
        let err = config("method = \"wandaa\"").unwrap_err();
        assert!(err.contains("wandaa") && err.contains(&names()), "{err}");
        for m in METHODS {
            let c = config(&format!("method = \"{}\"\nfinal_density = 0.5\nwarmup_steps = 1", m.name)).unwrap();
            assert_eq!(c.method.name(), m.name);
            assert_eq!(toml::to_string(&c).unwrap().lines().next(), Some(format!("method = \"{}\"", m.name).as_str()));
            c.build(10).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        }
        let err = config("method = \"magnitude\"\nfinal_density = 0.5\nn_m = \"2:4\"").unwrap().build(10).err().expect("an error");
        assert!(err.contains("pruning.n_m") && err.contains("wanda, stade, oneshot_magnitude") && err.contains("\"magnitude\""), "{err}");
        let err = config("method = \"wanda\"\nfinal_density = 0.5\nstade_layers = \"all\"").unwrap().build(10).err().expect("an error");
        assert!(err.contains("pruning.stade_layers") && err.contains("applies to stade,") && err.contains("\"wanda\""), "{err}");
        // Tuning values of other methods are ignored, so that one base file serves a sweep.
        config("method = \"magnitude\"\nfinal_density = 0.5\nscores_lr = 0.01\nlambda = 3.0").unwrap().build(10).unwrap();
    }
}
