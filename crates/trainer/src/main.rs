//! `trainer`: fine-tune with pruning inside the loop.
//!
//! ```text
//! trainer experiments/bert_movement.toml [--set train.lr=1e-4 ...]   # = trainer run ...
//! trainer experiments/bert_movement.toml --resume                     # after a crash or kill
//! trainer encode --model minilm --input sentences.txt
//! trainer bench --device cpu --batch-size 32 --seq-len 128
//! trainer latency --device cpu --keep 0.5,0.25                  # dense vs compacted
//! trainer sweep experiments/sweep_movement_paper.toml           # table.md + table.csv
//! trainer prune runs/sst2_dense --method wanda --density 0.5     # one-shot, no retraining
//! CUBECL_WGPU_DEFAULT_DEVICE=Cpu trainer gpu-check --device wgpu # CPU vs wgpu parity (JSON)
//! ```

use trainer::{bench, encode, experiment, gpu_check, latency, prune, sweep, train_loop};

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "trainer", version, about = "Fine-tune BERT with pruning inside the training loop", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// Experiment file (TOML).
    experiment: Option<PathBuf>,
    /// Override a key: --set section.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Continue an interrupted run from the newest valid checkpoint in its output_dir.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
    /// Delete the checkpoints of an unfinished run in output_dir and start again.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run one experiment file.
    Run(RunArgs),
    /// Print one JSON line per input line: its input_ids and the last layer's CLS vector.
    Encode(encode::EncodeArgs),
    /// Time training steps on random-initialised shapes and write JSON.
    Bench(bench::BenchArgs),
    /// Inference latency: dense vs compacted structured vs unstructured sparsity (JSON).
    Latency(latency::LatencyArgs),
    /// GPU parity: the same model, gradients, optimizer steps, masks, compaction and
    /// checkpoint on the CPU and on a GPU device, compared (JSON).
    GpuCheck(gpu_check::GpuCheckArgs),
    /// One-shot pruning of a fine-tuned model, no retraining (wanda, stade, taylor,
    /// oneshot_magnitude, mi_layerwise): writes the pruned model and a summary with the
    /// accuracy before and after.
    Prune(prune::PruneArgs),
    /// Run a sweep file (a base experiment and its variants) and write table.md + table.csv.
    Sweep {
        /// Sweep file (TOML).
        sweep: PathBuf,
        /// Check every run's configuration and print the plan; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rewrite table.md, table.csv and the plots from the runs that have finished; run nothing.
        #[arg(long, conflicts_with = "dry_run")]
        tables_only: bool,
    },
}

fn main() -> ExitCode {
    // Before any thread starts: a headless machine's Vulkan loader would otherwise print six
    // "XDG_RUNTIME_DIR is invalid or not set" lines (see device::quiet_wayland).
    trainer::device::quiet_wayland();
    let kept = trainer::device::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tracing::debug!("keep freed memory in the process (glibc mallopt): {kept}");
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Run(args)) => run(args),
        Some(Command::Encode(args)) => encode::main(args),
        Some(Command::Bench(args)) => bench::main(args),
        Some(Command::Latency(args)) => latency::main(args),
        Some(Command::GpuCheck(args)) => gpu_check::main(args),
        Some(Command::Prune(args)) => prune::main(args),
        Some(Command::Sweep { sweep: path, dry_run: true, .. }) => sweep::dry_run(&path),
        Some(Command::Sweep { sweep: path, tables_only: true, .. }) => sweep::tables_only(&path).map(|(rows, missing)| {
            println!("sweep: tables from {} finished runs in table.md and table.csv", rows.len());
            if !missing.is_empty() {
                println!("not finished (left out): {}", missing.join(", "));
            }
        }),
        Some(Command::Sweep { sweep: path, .. }) => sweep::run(&path).map(|rows| {
            let failed = rows.iter().filter(|r| r.error.is_some()).count();
            println!("sweep: {} runs ({failed} failed); tables in table.md and table.csv", rows.len());
        }),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs) -> Result<(), String> {
    let path = args.experiment.ok_or("give an experiment file, e.g. `trainer experiments/quickstart.toml` (see --help)")?;
    let exp = experiment::load(&path, &args.overrides)?;
    let s = train_loop::run_with(&exp, &path, train_loop::RunOptions { resume: args.resume, overwrite: args.overwrite })?;
    let test = s.test.as_ref().map(|m| format!("test accuracy {:.4} F1 {:.4}, ", m.accuracy, m.f1)).unwrap_or_default();
    println!(
        "{}: {}validation accuracy {:.4} F1 {:.4}; sparsity of the prunable weights {:.2}% ({} of {} weights remain); {} steps in {:.0}s train ({:.1} samples/s) on {}; wrote {}",
        s.name,
        test,
        s.validation.accuracy,
        s.validation.f1,
        100.0 * s.prunable_sparsity,
        s.prunable_nonzero,
        s.prunable_params,
        s.steps,
        s.train_seconds,
        s.train_samples_per_second,
        s.device,
        exp.output_dir.join("summary.json").display()
    );
    Ok(())
}
