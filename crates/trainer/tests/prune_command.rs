//! `trainer prune`: one-shot pruning of a fine-tuned run's output directory, no retraining. The
//! data comes from the run's own config.toml; the summary holds the accuracy before (the model
//! as fine-tuned) and after; every weight that is kept is exactly the fine-tuned one.

mod common;

use common::{experiment, tmp, write_checkpoint, write_tsvs};
use models::checkpoint::read_safetensors;
use std::path::Path;
use trainer::prune::{self, PruneArgs};
use trainer::train_loop;

fn args(source: &Path, method: &str, density: f64, output: &Path) -> PruneArgs {
    PruneArgs {
        source: source.to_path_buf(),
        method: method.into(),
        density,
        n_m: None,
        structured: false,
        calibration_samples: 20,
        output: Some(output.to_path_buf()),
        overrides: vec![],
    }
}

fn floats(t: &burn::tensor::TensorData) -> Vec<f32> {
    t.clone().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn prune_a_fine_tuned_run_in_one_shot_without_changing_a_kept_weight() {
    let (ckpt, data, out) = (tmp("prune-ckpt"), tmp("prune-data"), tmp("prune-out"));
    write_checkpoint(&ckpt);
    write_tsvs(&data);
    // The fine-tuned model: a short dense run.
    let dense_dir = out.join("dense");
    let dense = train_loop::run(&experiment(&ckpt, &data, &dense_dir, "none"), Path::new("test.toml")).unwrap();
    for method in ["wanda", "taylor"] {
        let pruned_dir = out.join(method);
        let exp = prune::experiment(&args(&dense_dir, method, 0.5, &pruned_dir)).unwrap();
        assert_eq!(exp.model.source, dense_dir.display().to_string());
        assert_eq!((exp.train.epochs, exp.pruning.warmup_steps), (0.0, 0));
        let s = train_loop::run(&exp, Path::new("trainer prune")).unwrap();
        assert_eq!(s.steps, 0, "{method}: no optimizer step");
        assert!((s.prunable_sparsity - 0.5).abs() < 1e-12, "{method}: every row keeps half: {}", s.prunable_sparsity);
        // Before = the fine-tuned model as it was saved.
        let before = s.before_pruning.as_ref().expect("accuracy before pruning");
        assert_eq!(before.validation.accuracy, dense.validation.accuracy, "{method}");
        assert!((before.validation.loss - dense.validation.loss).abs() < 1e-6, "{method}");
        // Every kept weight is exactly the fine-tuned one; the others are exactly 0.
        let a = read_safetensors(&dense_dir.join("model.safetensors")).unwrap();
        let b = read_safetensors(&pruned_dir.join("model.safetensors")).unwrap();
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        let mut zeroed = 0;
        for (name, ta) in &a {
            let (va, vb) = (floats(ta), floats(&b[name]));
            for (x, y) in va.iter().zip(&vb) {
                assert!(*y == *x || (*y == 0.0 && name.ends_with("weight")), "{method}: {name} changed: {x} → {y}");
                zeroed += (*y == 0.0 && *x != 0.0) as usize;
            }
        }
        assert_eq!(zeroed, s.prunable_params / 2, "{method}: exactly the pruned half went to 0");
    }
    // A method that prunes over training steps is refused, naming the one-shot ones.
    let err = prune::experiment(&args(&dense_dir, "movement", 0.5, &out.join("x"))).unwrap_err();
    assert!(err.contains("movement") && err.contains("wanda") && err.contains("taylor"), "{err}");
    // A directory that is not a run's output names the file it looked for.
    let err = prune::experiment(&args(&ckpt, "wanda", 0.5, &out.join("y"))).unwrap_err();
    assert!(err.contains("config.toml"), "{err}");
    let err = prune::experiment(&args(&dense_dir, "wandaa", 0.5, &out.join("z"))).unwrap_err();
    assert!(err.contains("--method") && err.contains("wandaa"), "{err}");
}
