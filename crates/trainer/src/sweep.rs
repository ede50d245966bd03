//! Sweeps: one base experiment, many variants, one table.
//!
//! ```toml
//! base = "bert_movement.toml"        # relative to this file
//! output_dir = "runs/sweep"          # each run writes to output_dir/<run name>
//! skip_existing = true               # reuse runs whose summary.json exists (resume)
//!
//! [[run]]                            # explicit runs: a name and --set style overrides
//! name = "dense"
//! set = { "pruning.method" = "none" }
//!
//! [grid]                             # plus the cartesian product of these keys
//! "pruning.method" = ["magnitude", "movement"]
//! "pruning.final_density" = [0.10, 0.03]
//! ```
//!
//! After every run the table is rewritten (`table.md`, `table.csv` in `output_dir`), so a sweep
//! that stops keeps every row it finished. A run that fails is a row with its error; the sweep
//! goes on.

use crate::experiment::{self, Experiment};
use crate::train_loop;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    pub base: PathBuf,
    pub output_dir: PathBuf,
    #[serde(default)]
    pub skip_existing: bool,
    #[serde(default)]
    pub run: Vec<RunSpec>,
    /// Key → list of values; keys vary in file order, the last fastest.
    #[serde(default)]
    pub grid: toml::Table,
    /// Overrides applied to every run (before the run's own).
    #[serde(default)]
    pub set: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub name: String,
    #[serde(default)]
    pub set: toml::Table,
}

/// One planned run: its name and its overrides as `key=value` strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub name: String,
    pub overrides: Vec<String>,
}

/// The part of a run name a grid value contributes: the value itself; for a switch, the name
/// of what it switches when on (`distillation.enabled = true` → "distillation") and nothing
/// when off.
fn short(key: &str, v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Boolean(true) => key.split('.').rev().find(|p| *p != "enabled").map(str::to_string),
        toml::Value::Boolean(false) => None,
        other => Some(other.to_string()),
    }
}

fn setting(key: &str, v: &toml::Value) -> String {
    format!("{key}={v}")
}

impl SweepFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read sweep {}: {e}", path.display()))?;
        let mut s: SweepFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if s.base.is_relative() {
            s.base = path.parent().unwrap_or(Path::new(".")).join(&s.base);
        }
        for (key, values) in &s.grid {
            if !values.as_array().is_some_and(|a| !a.is_empty()) {
                return Err(format!("{}: grid.\"{key}\": expected a non-empty list of values", path.display()));
            }
        }
        if s.run.is_empty() && s.grid.is_empty() {
            return Err(format!("{}: no runs: give [[run]] entries or a [grid]", path.display()));
        }
        Ok(s)
    }

    /// The runs in order: the explicit ones, then the grid (the last key varies fastest).
    pub fn plan(&self) -> Vec<Planned> {
        let common: Vec<String> = self.set.iter().map(|(k, v)| setting(k, v)).collect();
        let mut out: Vec<Planned> = self
            .run
            .iter()
            .map(|r| Planned { name: r.name.clone(), overrides: common.iter().cloned().chain(r.set.iter().map(|(k, v)| setting(k, v))).collect() })
            .collect();
        if !self.grid.is_empty() {
            let mut combos: Vec<Vec<(&String, &toml::Value)>> = vec![Vec::new()];
            for (key, values) in &self.grid {
                let values = values.as_array().expect("checked in load");
                combos = combos.into_iter().flat_map(|c| values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((key, v));
                    c
                })).collect();
            }
            for c in combos {
                let name = c.iter().filter_map(|(k, v)| short(k, v)).collect::<Vec<_>>().join("-");
                let overrides = common.iter().cloned().chain(c.iter().map(|(k, v)| setting(k, v))).collect();
                out.push(Planned { name, overrides });
            }
        }
        out
    }

    /// Resolves a planned run into a checked experiment writing to `output_dir/<name>`.
    pub fn experiment(&self, p: &Planned) -> Result<Experiment, String> {
        let mut overrides = p.overrides.clone();
        overrides.push(format!("output_dir={}", toml::Value::String(self.output_dir.join(&p.name).display().to_string())));
        overrides.push(format!("name={}", toml::Value::String(p.name.clone())));
        experiment::load(&self.base, &overrides).map_err(|e| format!("run {}: {e}", p.name))
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

const HEADER: [&str; 12] = [
    "run", "method", "distilled", "target remaining", "remaining", "test accuracy", "test F1", "validation accuracy", "steps", "train s", "samples/s", "device",
];

fn cells(row: &Row) -> Vec<String> {
    let Some(s) = &row.summary else {
        let mut c = vec![row.name.clone(), format!("failed: {}", row.error.clone().unwrap_or_default())];
        c.resize(HEADER.len(), String::new());
        return c;
    };
    let pct = |v: &serde_json::Value| v.as_f64().map(|x| format!("{:.2}%", 100.0 * x)).unwrap_or_else(|| "-".into());
    let num = |v: &serde_json::Value, d: usize| v.as_f64().map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
    vec![
        row.name.clone(),
        s["pruning_method"].as_str().unwrap_or("-").to_string(),
        if s["distilled_from"].is_string() { "yes".into() } else { "no".into() },
        pct(&s["target_density"]),
        pct(&s["prunable_remaining"]),
        pct(&s["test"]["accuracy"]),
        num(&s["test"]["f1"], 3),
        pct(&s["validation"]["accuracy"]),
        s["steps"].to_string(),
        num(&s["train_seconds"], 0),
        num(&s["train_samples_per_second"], 1),
        s["device"].as_str().unwrap_or("-").to_string(),
    ]
}

/// Writes `table.md` and `table.csv` (atomically).
pub fn write_tables(rows: &[Row], dir: &Path, source: &str) -> Result<(), String> {
    let mut md = format!("<!-- written by `trainer sweep {source}` -->\n| {} |\n|{}\n", HEADER.join(" | "), "---|".repeat(HEADER.len()));
    let mut csv = HEADER.join(",") + "\n";
    for r in rows {
        let c = cells(r);
        md += &format!("| {} |\n", c.iter().map(|x| x.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
        csv += &(c.iter().map(|x| if x.contains([',', '"', '\n']) { format!("\"{}\"", x.replace('"', "\"\"")) } else { x.clone() }).collect::<Vec<_>>().join(",") + "\n");
    }
    for (name, text) in [("table.md", md), ("table.csv", csv)] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    Ok(())
}

/// Checks every run's configuration and prints the plan.
pub fn dry_run(path: &Path) -> Result<(), String> {
    let sweep = SweepFile::load(path)?;
    let plan = sweep.plan();
    for (i, p) in plan.iter().enumerate() {
        let exp = sweep.experiment(p)?;
        let done = if exp.output_dir.join("summary.json").exists() { " (done)" } else { "" };
        println!("{:>3}. {}{done}: {}", i + 1, p.name, p.overrides.join(" "));
    }
    println!("{} runs; base {}; tables in {}", plan.len(), sweep.base.display(), sweep.output_dir.display());
    Ok(())
}

/// Runs every planned run (or reuses it), rewriting the tables after each.
pub fn run(path: &Path) -> Result<Vec<Row>, String> {
    let sweep = SweepFile::load(path)?;
    let plan = sweep.plan();
    // Check every run's configuration before the first starts: a typo fails now, not at run 20.
    let exps: Vec<Experiment> = plan.iter().map(|p| sweep.experiment(p)).collect::<Result<_, _>>()?;
    std::fs::create_dir_all(&sweep.output_dir).map_err(|e| format!("output_dir {}: {e}", sweep.output_dir.display()))?;
    let mut rows = Vec::new();
    for (i, (p, exp)) in plan.iter().zip(&exps).enumerate() {
        let summary_path = exp.output_dir.join("summary.json");
        let row = if sweep.skip_existing && summary_path.exists() {
            tracing::info!("sweep {}/{}: {} (reusing {})", i + 1, plan.len(), p.name, summary_path.display());
            let text = std::fs::read_to_string(&summary_path).map_err(|e| format!("{}: {e}", summary_path.display()))?;
            let v = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", summary_path.display()))?;
            Row { name: p.name.clone(), summary: Some(v), error: None }
        } else {
            tracing::info!("sweep {}/{}: {} ({})", i + 1, plan.len(), p.name, p.overrides.join(" "));
            // A run interrupted earlier continues from its last checkpoint.
            match train_loop::run_with(exp, &sweep.base, train_loop::RunOptions { resume: true, overwrite: false }) {
                Ok(s) => Row { name: p.name.clone(), summary: Some(serde_json::to_value(&s).map_err(|e| e.to_string())?), error: None },
                Err(e) => {
                    tracing::error!("sweep run {} failed: {e}", p.name);
                    Row { name: p.name.clone(), summary: None, error: Some(e) }
                }
            }
        };
        rows.push(row);
        write_tables(&rows, &sweep.output_dir, &path.display().to_string())?;
    }
    Ok(rows)
}
