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
//!
//! seeds = [1, 2, 3]                  # optional (top level): every run once per seed; "{seed}"
//!                                     # in a value is replaced by it
//! ```
//!
//! After every run the outputs in `output_dir` are rewritten: `results.csv` (one row per run),
//! `table.md` and `table.csv` (one row per configuration: mean ± standard deviation over its
//! seeds), `accuracy_vs_remaining.png` and `kept_per_layer.png`. A sweep that stops keeps every
//! row it finished; an interrupted run continues from its last checkpoint. A run that fails is a
//! row with its error; the sweep goes on.

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
    /// Every run once per seed (`seed=N`, name suffix `-seedN`); none = the base file's seed.
    #[serde(default)]
    pub seeds: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub name: String,
    #[serde(default)]
    pub set: toml::Table,
}

/// One planned run: its name, the configuration it belongs to (its name without the seed), and
/// its overrides as `key=value` strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub name: String,
    pub group: String,
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
            .map(|r| Planned { name: r.name.clone(), group: r.name.clone(), overrides: common.iter().cloned().chain(r.set.iter().map(|(k, v)| setting(k, v))).collect() })
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
                out.push(Planned { group: name.clone(), name, overrides });
            }
        }
        if self.seeds.is_empty() {
            return out;
        }
        out.into_iter()
            .flat_map(|p| {
                self.seeds.iter().map(move |seed| Planned {
                    name: format!("{}-seed{seed}", p.name),
                    group: p.group.clone(),
                    // `{seed}` in a value becomes the run's seed (e.g. one starting model per seed).
                    overrides: p.overrides.iter().map(|o| o.replace("{seed}", &seed.to_string())).chain([format!("seed={seed}")]).collect(),
                })
            })
            .collect()
    }

    /// Resolves a planned run into a checked experiment writing to `output_dir/<name>`.
    pub fn experiment(&self, p: &Planned) -> Result<Experiment, String> {
        let mut overrides = p.overrides.clone();
        overrides.push(format!("output_dir={}", toml::Value::String(self.output_dir.join(&p.name).display().to_string())));
        overrides.push(format!("name={}", toml::Value::String(p.name.clone())));
        experiment::load(&self.base, &overrides).map_err(|e| format!("run {}: {e}", p.name))
    }
}

/// One finished (or failed) run.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub group: String,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The method options of the run that are not the paper's method (from its overrides),
    /// e.g. "fade_steps 200": plotted as a series of their own.
    pub variant: Option<String>,
}

/// Overrides that make a method a variant of itself, plotted apart from the plain method.
const VARIANT_KEYS: &[&str] = &["pruning.fade_steps", "pruning.compensate_bias", "pruning.freeze_scores_at", "pruning.scope"];

fn variant_of(overrides: &[String]) -> Option<String> {
    let parts: Vec<String> = overrides
        .iter()
        .filter_map(|o| o.split_once('='))
        .filter(|(k, _)| VARIANT_KEYS.contains(&k.trim()))
        .map(|(k, v)| format!("{} {}", k.trim().trim_start_matches("pruning."), v.trim().trim_matches('"')))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl Row {
    fn of(p: &Planned, summary: Option<serde_json::Value>, error: Option<String>) -> Self {
        Row { name: p.name.clone(), group: p.group.clone(), summary, error, variant: variant_of(&p.overrides) }
    }
}

fn csv_line(cells: &[String]) -> String {
    cells.iter().map(|x| if x.contains([',', '"', '\n']) { format!("\"{}\"", x.replace('"', "\"\"")) } else { x.clone() }).collect::<Vec<_>>().join(",") + "\n"
}

fn md_line(cells: &[String]) -> String {
    format!("| {} |\n", cells.iter().map(|x| x.replace('|', "\\|")).collect::<Vec<_>>().join(" | "))
}

fn f(s: &serde_json::Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(s, |v, k| v.get(*k))?.as_f64()
}

/// Subgroup attributes reported by any run (summary `groups`), in first-seen order.
fn group_attributes(rows: &[Row]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in rows.iter().filter_map(|r| r.summary.as_ref()) {
        for g in s["groups"].as_array().into_iter().flatten() {
            if let Some(a) = g["attribute"].as_str() {
                if !out.iter().any(|x| x == a) {
                    out.push(a.to_string());
                }
            }
        }
    }
    out
}

/// The accuracy gap of attribute `attr` after training, or before pruning.
fn gap(s: &serde_json::Value, attr: &str, before: bool) -> Option<f64> {
    let groups = if before { &s["before_pruning"]["groups"] } else { &s["groups"] };
    groups.as_array()?.iter().find(|g| g["attribute"].as_str() == Some(attr))?["accuracy_gap"].as_f64()
}

/// Extra columns when runs report subgroups: the test accuracy before pruning, and per
/// attribute the accuracy gap after and before pruning.
fn fairness_header(attrs: &[String], csv: bool) -> Vec<String> {
    if attrs.is_empty() {
        return Vec::new();
    }
    let mut h = Vec::new();
    let mut push = |name: String| {
        if csv {
            let key = name.replace(' ', "_");
            h.push(format!("{key}_mean"));
            h.push(format!("{key}_sd"));
        } else {
            h.push(name);
        }
    };
    push("test accuracy before pruning".into());
    for a in attrs {
        push(format!("{a} gap"));
        push(format!("{a} gap before pruning"));
    }
    h
}

fn fairness_values(s: &serde_json::Value, attrs: &[String]) -> Vec<Option<f64>> {
    let mut v = vec![f(s, &["before_pruning", "test", "accuracy"])];
    for a in attrs {
        v.push(gap(s, a, false));
        v.push(gap(s, a, true));
    }
    v
}

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// How a run is labelled in the plots: its method, its variant options in parentheses, and
/// "+ distillation" when it distilled.
fn series_label(s: &serde_json::Value, variant: Option<&str>) -> String {
    let method = s["pruning_method"].as_str().unwrap_or("?");
    let method = match variant {
        Some(v) => format!("{method} ({v})"),
        None => method.to_string(),
    };
    if s["distilled_from"].is_string() { format!("{method} + distillation") } else { method }
}

/// Kept fraction of each block (a BERT layer, an MLP hidden layer), from the per-matrix counts
/// of a summary and the depth the model declared for each matrix (summaries written before
/// that field have none, and no plot).
fn kept_by_layer(s: &serde_json::Value) -> Vec<(usize, f64)> {
    let mut acc: std::collections::BTreeMap<usize, (f64, f64)> = Default::default();
    for m in s["per_matrix"].as_array().into_iter().flatten() {
        let depth = m["depth"].as_u64().map(|d| d as usize);
        if let (Some(l), Some(n), Some(z)) = (depth, m["numel"].as_f64(), m["zeros"].as_f64()) {
            let e = acc.entry(l).or_default();
            e.0 += n - z;
            e.1 += n;
        }
    }
    acc.into_iter().map(|(l, (kept, n))| (l, kept / n.max(1.0))).collect()
}

const RUN_HEADER: [&str; 13] = [
    "run", "configuration", "method", "distilled", "target remaining", "remaining", "test accuracy", "test F1", "validation accuracy", "steps", "train s", "samples/s", "device",
];

fn run_cells(row: &Row) -> Vec<String> {
    let Some(s) = &row.summary else {
        let mut c = vec![row.name.clone(), row.group.clone(), format!("failed: {}", row.error.clone().unwrap_or_default())];
        c.resize(RUN_HEADER.len(), String::new());
        return c;
    };
    let num = |v: Option<f64>, d: usize| v.map(|x| format!("{x:.d$}")).unwrap_or_else(|| "-".into());
    vec![
        row.name.clone(),
        row.group.clone(),
        s["pruning_method"].as_str().unwrap_or("-").to_string(),
        if s["distilled_from"].is_string() { "yes".into() } else { "no".into() },
        num(f(s, &["target_density"]), 4),
        num(f(s, &["prunable_remaining"]), 4),
        num(f(s, &["test", "accuracy"]), 4),
        num(f(s, &["test", "f1"]), 4),
        num(f(s, &["validation", "accuracy"]), 4),
        s["steps"].to_string(),
        num(f(s, &["train_seconds"]), 0),
        num(f(s, &["train_samples_per_second"]), 1),
        s["device"].as_str().unwrap_or("-").to_string(),
    ]
}

const GROUP_HEADER: [&str; 11] =
    ["configuration", "method", "distilled", "target remaining", "remaining", "test accuracy", "test F1", "validation accuracy", "seeds", "steps", "train s (mean)"];
/// The CSV gives each statistic as two columns, mean and sample standard deviation.
const GROUP_CSV_HEADER: [&str; 15] = [
    "configuration", "method", "distilled", "target_remaining", "remaining_mean", "remaining_sd", "test_accuracy_mean", "test_accuracy_sd", "test_f1_mean", "test_f1_sd",
    "validation_accuracy_mean", "validation_accuracy_sd", "seeds", "steps", "train_seconds_mean",
];

/// One configuration over its seeds.
struct Group<'a> {
    name: &'a str,
    variant: Option<&'a str>,
    runs: Vec<&'a serde_json::Value>,
    failed: Vec<&'a str>,
}

fn groups(rows: &[Row]) -> Vec<Group<'_>> {
    let mut out: Vec<Group> = Vec::new();
    for r in rows {
        let i = match out.iter().position(|g| g.name == r.group) {
            Some(i) => i,
            None => {
                out.push(Group { name: &r.group, variant: r.variant.as_deref(), runs: Vec::new(), failed: Vec::new() });
                out.len() - 1
            }
        };
        match &r.summary {
            Some(s) => out[i].runs.push(s),
            None => out[i].failed.push(&r.name),
        }
    }
    out
}

fn group_cells(g: &Group, csv: bool) -> Vec<String> {
    let Some(first) = g.runs.first() else {
        let mut c = vec![g.name.to_string(), format!("failed: {}", g.failed.join(", "))];
        c.resize(if csv { GROUP_CSV_HEADER.len() } else { GROUP_HEADER.len() }, String::new());
        return c;
    };
    let stat = |path: &[&str], percent: bool| -> Vec<String> {
        let v: Vec<f64> = g.runs.iter().filter_map(|s| f(s, path)).collect();
        if v.is_empty() {
            return if csv { vec!["-".into(), "-".into()] } else { vec!["-".into()] };
        }
        let (m, sd) = mean_std(&v);
        match (csv, percent, v.len()) {
            (true, _, _) => vec![format!("{m:.6}"), format!("{sd:.6}")],
            (false, true, 1) => vec![format!("{:.2}%", 100.0 * m)],
            (false, true, _) => vec![format!("{:.2} ± {:.2}%", 100.0 * m, 100.0 * sd)],
            (false, false, 1) => vec![format!("{m:.3}")],
            (false, false, _) => vec![format!("{m:.3} ± {sd:.3}")],
        }
    };
    let seeds = if g.failed.is_empty() { g.runs.len().to_string() } else { format!("{} ({} failed)", g.runs.len(), g.failed.len()) };
    let train_s: Vec<f64> = g.runs.iter().filter_map(|s| f(s, &["train_seconds"])).collect();
    let mut c = vec![
        g.name.to_string(),
        first["pruning_method"].as_str().unwrap_or("-").to_string(),
        if first["distilled_from"].is_string() { "yes".into() } else { "no".into() },
        f(first, &["target_density"]).map(|x| if csv { format!("{x:.6}") } else { format!("{:.2}%", 100.0 * x) }).unwrap_or_else(|| "-".into()),
    ];
    c.extend(stat(&["prunable_remaining"], true));
    c.extend(stat(&["test", "accuracy"], true));
    c.extend(stat(&["test", "f1"], false));
    c.extend(stat(&["validation", "accuracy"], true));
    c.push(seeds);
    c.push(first["steps"].to_string());
    c.push(if train_s.is_empty() { "-".into() } else { format!("{:.0}", mean_std(&train_s).0) });
    c
}

/// One subgroup's (or the gap's) statistic over the runs of a configuration, after training or
/// before pruning.
fn group_stat(runs: &[&serde_json::Value], attr: &str, group: Option<&str>, key: &str, before: bool) -> String {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|s| {
            let groups = if before { &s["before_pruning"]["groups"] } else { &s["groups"] };
            let a = groups.as_array()?.iter().find(|g| g["attribute"].as_str() == Some(attr))?;
            match group {
                Some(name) => a["groups"].as_array()?.iter().find(|g| g["group"].as_str() == Some(name))?[key].as_f64(),
                None => a[key].as_f64(),
            }
        })
        .collect();
    match v.len() {
        0 => "-".into(),
        1 => format!("{:.2}", 100.0 * v[0]),
        _ => {
            let (m, sd) = mean_std(&v);
            format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
        }
    }
}

/// `groups.md`: per configuration and subgroup, accuracy and AUROC (in %) before pruning and
/// after, and the best-to-worst gaps.
fn group_table(gs: &[Group], attrs: &[String], source: &str) -> String {
    let mut md = format!(
        "<!-- written by `trainer sweep {source}`; test split (validation when there is none), in %, mean ± sample sd over seeds; groups marked * are below min_group_size and left out of the gaps -->\n\
         | configuration | attribute | group | n | accuracy before pruning | accuracy | AUROC before pruning | AUROC |\n|---|---|---|---|---|---|---|---|\n"
    );
    for g in gs.iter().filter(|g| !g.runs.is_empty()) {
        for a in attrs {
            let Some(first) = g.runs[0]["groups"].as_array().and_then(|v| v.iter().find(|x| x["attribute"].as_str() == Some(a))) else { continue };
            for grp in first["groups"].as_array().into_iter().flatten() {
                let name = grp["group"].as_str().unwrap_or("?");
                let star = if grp["in_gap"].as_bool() == Some(false) { "*" } else { "" };
                md += &md_line(&[
                    g.name.to_string(),
                    a.clone(),
                    format!("{name}{star}"),
                    grp["n"].to_string(),
                    group_stat(&g.runs, a, Some(name), "accuracy", true),
                    group_stat(&g.runs, a, Some(name), "accuracy", false),
                    group_stat(&g.runs, a, Some(name), "auroc", true),
                    group_stat(&g.runs, a, Some(name), "auroc", false),
                ]);
            }
            md += &md_line(&[
                g.name.to_string(),
                a.clone(),
                "**gap (best − worst)**".into(),
                String::new(),
                group_stat(&g.runs, a, None, "accuracy_gap", true),
                group_stat(&g.runs, a, None, "accuracy_gap", false),
                group_stat(&g.runs, a, None, "auroc_gap", true),
                group_stat(&g.runs, a, None, "auroc_gap", false),
            ]);
        }
    }
    md
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Writes `results.csv` (per run), `table.md` and `table.csv` (per configuration, mean ± sd over
/// seeds; the CSV in fractions, the markdown in percent) and the two plots.
pub fn write_tables(rows: &[Row], dir: &Path, source: &str) -> Result<(), String> {
    let attrs = group_attributes(rows);
    let mut results = RUN_HEADER.iter().map(|h| h.to_string()).chain(fairness_header(&attrs, false)).collect::<Vec<_>>().join(",") + "\n";
    for r in rows {
        let mut c = run_cells(r);
        if let Some(s) = &r.summary {
            c.extend(fairness_values(s, &attrs).into_iter().map(|v| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())));
        }
        results += &csv_line(&c);
    }
    write_atomic(&dir.join("results.csv"), results.as_bytes())?;
    let gs = groups(rows);
    let md_header: Vec<String> = GROUP_HEADER.iter().map(|h| h.to_string()).chain(fairness_header(&attrs, false)).collect();
    let mut md = format!(
        "<!-- written by `trainer sweep {source}`; mean ± sample standard deviation over seeds -->\n{}\n|{}\n",
        md_line(&md_header).trim_end(),
        "---|".repeat(md_header.len())
    );
    let mut csv = GROUP_CSV_HEADER.iter().map(|h| h.to_string()).chain(fairness_header(&attrs, true)).collect::<Vec<_>>().join(",") + "\n";
    for g in &gs {
        let (mut m, mut c) = (group_cells(g, false), group_cells(g, true));
        if !g.runs.is_empty() {
            for k in 0..fairness_header(&attrs, false).len() {
                let v: Vec<f64> = g.runs.iter().filter_map(|s| fairness_values(s, &attrs)[k]).collect();
                if v.is_empty() {
                    m.push("-".into());
                    c.extend(["-".to_string(), "-".to_string()]);
                    continue;
                }
                let (mean, sd) = mean_std(&v);
                m.push(if v.len() > 1 { format!("{:.2} ± {:.2}%", 100.0 * mean, 100.0 * sd) } else { format!("{:.2}%", 100.0 * mean) });
                c.extend([format!("{mean:.6}"), format!("{sd:.6}")]);
            }
        }
        md += &md_line(&m);
        csv += &csv_line(&c);
    }
    write_atomic(&dir.join("table.md"), md.as_bytes())?;
    if !attrs.is_empty() {
        write_atomic(&dir.join("groups.md"), group_table(&gs, &attrs, source).as_bytes())?;
    }
    write_atomic(&dir.join("table.csv"), csv.as_bytes())?;
    if let Err(e) = write_plots(&gs, dir, source) {
        tracing::warn!("plots not written: {e}");
    }
    Ok(())
}

fn write_plots(gs: &[Group], dir: &Path, source: &str) -> Result<(), String> {
    use crate::plots::{Point, Series};
    let mut series: Vec<Series> = Vec::new();
    let mut dense = Vec::new();
    let mut layers: Vec<Series> = Vec::new();
    // Test accuracy; where no run has a test split (GLUE: its dev set is the validation split),
    // validation accuracy, and the axis says which.
    let has_test = gs.iter().flat_map(|g| &g.runs).any(|s| f(s, &["test", "accuracy"]).is_some());
    let (split, y_desc) = if has_test { ("test", "test accuracy (%)") } else { ("validation", "validation accuracy (%)") };
    for g in gs.iter().filter(|g| !g.runs.is_empty()) {
        let first = g.runs[0];
        let acc: Vec<f64> = g.runs.iter().filter_map(|s| f(s, &[split, "accuracy"])).collect();
        if acc.is_empty() {
            continue;
        }
        let (y, spread) = mean_std(&acc);
        if first["pruning_method"].as_str() == Some("dense") || first["pruning_method"].as_str() == Some("none") {
            dense.push(y);
            continue;
        }
        let x = f(first, &["target_density"]).unwrap_or_else(|| mean_std(&g.runs.iter().filter_map(|s| f(s, &["prunable_remaining"])).collect::<Vec<_>>()).0);
        let label = series_label(first, g.variant);
        match series.iter_mut().find(|s| s.label == label) {
            Some(s) => s.points.push(Point { x, y, spread }),
            None => series.push(Series { label, points: vec![Point { x, y, spread }] }),
        }
        let kept = kept_by_layer(first);
        if !kept.is_empty() {
            layers.push(Series { label: g.name.to_string(), points: kept.into_iter().map(|(l, k)| Point { x: l as f64, y: k, spread: 0.0 }).collect() });
        }
    }
    let title = Path::new(source).file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
    if !series.is_empty() {
        crate::plots::accuracy_vs_remaining(&dir.join("accuracy_vs_remaining.png"), title, y_desc, &series, dense.first().copied())?;
    }
    if !layers.is_empty() {
        crate::plots::kept_per_layer(&dir.join("kept_per_layer.png"), &format!("{title}: kept weights per layer"), &layers)?;
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

/// The row of a run whose `summary.json` is at `summary_path`.
fn finished_row(p: &Planned, summary_path: &Path) -> Result<Row, String> {
    let text = std::fs::read_to_string(summary_path).map_err(|e| format!("{}: {e}", summary_path.display()))?;
    let v = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", summary_path.display()))?;
    Ok(Row::of(p, Some(v), None))
}

/// Rewrites the tables and plots from the runs that have finished (their `summary.json`),
/// running nothing: for runs made outside the sweep (several side by side, each with
/// `trainer run ... --set output_dir=<the sweep's run dir>`) or still under way. Returns the rows
/// written and the names of the runs left out.
pub fn tables_only(path: &Path) -> Result<(Vec<Row>, Vec<String>), String> {
    let sweep = SweepFile::load(path)?;
    let (mut rows, mut missing) = (Vec::new(), Vec::new());
    for p in sweep.plan() {
        let summary_path = sweep.experiment(&p)?.output_dir.join("summary.json");
        if summary_path.exists() {
            rows.push(finished_row(&p, &summary_path)?);
        } else {
            missing.push(p.name.clone());
        }
    }
    std::fs::create_dir_all(&sweep.output_dir).map_err(|e| format!("output_dir {}: {e}", sweep.output_dir.display()))?;
    write_tables(&rows, &sweep.output_dir, &format!("{} --tables-only", path.display()))?;
    Ok((rows, missing))
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
            finished_row(p, &summary_path)?
        } else {
            tracing::info!("sweep {}/{}: {} ({})", i + 1, plan.len(), p.name, p.overrides.join(" "));
            // A run interrupted earlier continues from its last checkpoint.
            match train_loop::run_with(exp, &sweep.base, train_loop::RunOptions { resume: true, overwrite: false }) {
                Ok(s) => Row::of(p, Some(serde_json::to_value(&s).map_err(|e| e.to_string())?), None),
                Err(e) => {
                    tracing::error!("sweep run {} failed: {e}", p.name);
                    Row::of(p, None, Some(e))
                }
            }
        };
        rows.push(row);
        write_tables(&rows, &sweep.output_dir, &path.display().to_string())?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::variant_of;

    #[test]
    fn variants_are_the_non_paper_options_among_the_overrides() {
        let o = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(variant_of(&o(&["pruning.method=\"movement\"", "pruning.final_density=0.1"])), None);
        assert_eq!(variant_of(&o(&["pruning.method=\"movement\"", "pruning.fade_steps=200"])).as_deref(), Some("fade_steps 200"));
        assert_eq!(variant_of(&o(&["pruning.scope=\"global\"", "pruning.compensate_bias=true"])).as_deref(), Some("scope global, compensate_bias true"));
    }
}
