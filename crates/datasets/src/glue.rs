//! GLUE-style TSV files (SST-2, CoLA, MRPC, MNLI, …): a header row, tab-separated columns, no
//! quoting (as `transformers`' GLUE processors read them). Single sentences or pairs, with or
//! without a label column.

use crate::item::TextItem;
use std::path::Path;

/// Which columns hold what.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TsvColumns {
    /// Column of the first sentence, e.g. "sentence" (SST-2) or "sentence1" (MRPC-style).
    pub text_a: String,
    /// Column of the second sentence for pair tasks.
    #[serde(default)]
    pub text_b: Option<String>,
    /// Label column; a file without it is read as unlabelled (GLUE test files).
    #[serde(default = "default_label")]
    pub label: String,
    /// Optional subgroup column, for per-group metrics.
    #[serde(default)]
    pub group: Option<String>,
}

fn default_label() -> String {
    "label".into()
}

/// Raw rows of one file, labels still as strings.
pub struct TsvRows {
    pub items: Vec<TextItem>,
    pub raw_labels: Vec<Option<String>>,
}

/// Reads one TSV file; errors name the file, the line and the column.
pub fn read_tsv(path: &Path, cols: &TsvColumns) -> Result<TsvRows, String> {
    read_tsv_header(path, cols, None)
}

/// [`read_tsv`] for a file whose first row may be data: `header` names its columns (`None`: the
/// first row is the header). Line numbers in errors are the file's own.
pub fn read_tsv_header(path: &Path, cols: &TsvColumns, header: Option<&[&str]>) -> Result<TsvRows, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut lines = text.lines();
    let (header, first_line): (Vec<&str>, usize) = match header {
        Some(h) => (h.to_vec(), 1),
        None => (lines.next().ok_or_else(|| format!("{}: empty file, expected a header row", path.display()))?.split('\t').collect(), 2),
    };
    let find = |name: &str| header.iter().position(|h| h.trim() == name);
    let need = |name: &str| find(name).ok_or_else(|| format!("{}: no column `{name}` in header {:?}", path.display(), header));
    let a = need(&cols.text_a)?;
    let b = cols.text_b.as_deref().map(need).transpose()?;
    let g = cols.group.as_deref().map(need).transpose()?;
    let l = find(&cols.label);
    let mut items = Vec::new();
    let mut raw_labels = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let get = |i: usize, what: &str| {
            f.get(i).map(|s| s.to_string()).ok_or_else(|| {
                format!("{}:{}: {} fields, column `{what}` is field {}", path.display(), n + first_line, f.len(), i + 1)
            })
        };
        items.push(TextItem {
            text_a: get(a, &cols.text_a)?,
            text_b: b.map(|i| get(i, cols.text_b.as_deref().unwrap_or(""))).transpose()?,
            label: None,
            group: g.map(|i| get(i, cols.group.as_deref().unwrap_or(""))).transpose()?,
        });
        raw_labels.push(l.map(|i| get(i, &cols.label)).transpose()?);
    }
    Ok(TsvRows { items, raw_labels })
}

/// The label names: if every label is an integer, `0..=max`; otherwise the sorted distinct strings.
pub fn label_names(all: &[&TsvRows]) -> Vec<String> {
    let labels: Vec<&str> = all.iter().flat_map(|r| r.raw_labels.iter().flatten().map(|s| s.trim())).collect();
    if !labels.is_empty() && labels.iter().all(|s| s.parse::<usize>().is_ok()) {
        let max = labels.iter().map(|s| s.parse::<usize>().unwrap_or(0)).max().unwrap_or(0);
        return (0..=max).map(|i| i.to_string()).collect();
    }
    let mut names: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
    names.sort();
    names.dedup();
    names
}

/// Sets each item's label index from its raw label.
pub fn assign_labels(rows: TsvRows, names: &[String], path: &Path) -> Result<Vec<TextItem>, String> {
    rows.items
        .into_iter()
        .zip(rows.raw_labels)
        .enumerate()
        .map(|(n, (mut item, raw))| {
            if let Some(raw) = raw {
                let idx = names.iter().position(|x| x == raw.trim());
                item.label = Some(idx.ok_or_else(|| format!("{}:{}: unknown label {raw:?}", path.display(), n + 2))?);
            }
            Ok(item)
        })
        .collect()
}

/// A GLUE classification task by name: where its files are and which columns hold what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlueTask {
    /// The name in `data.task` (as the `datasets` library names them).
    pub name: &'static str,
    /// The folder in the GLUE layout (inside the public zip too).
    pub dir: &'static str,
    /// The public zip's name (`<zip>.zip`): the folder's, except QQP's and QNLI's, which the GLUE
    /// download script fetches as `QQP-clean.zip` and `QNLIv2.zip`.
    pub zip: &'static str,
    pub text_a: &'static str,
    pub text_b: Option<&'static str>,
    pub label: &'static str,
    /// The evaluation file (the GLUE dev set).
    pub dev: &'static str,
    /// Column names for files without a header row (CoLA); `None`: the first row is the header.
    pub header: Option<&'static [&'static str]>,
}

/// The GLUE classification tasks (STS-B, a regression, is not one of them).
pub const GLUE_TASKS: &[GlueTask] = &[
    GlueTask { name: "cola", dir: "CoLA", zip: "CoLA", text_a: "sentence", text_b: None, label: "label", dev: "dev.tsv", header: Some(&["source", "label", "original_label", "sentence"]) },
    GlueTask { name: "sst2", dir: "SST-2", zip: "SST-2", text_a: "sentence", text_b: None, label: "label", dev: "dev.tsv", header: None },
    GlueTask { name: "mrpc", dir: "MRPC", zip: "MRPC", text_a: "#1 String", text_b: Some("#2 String"), label: "Quality", dev: "dev.tsv", header: None },
    GlueTask { name: "qqp", dir: "QQP", zip: "QQP-clean", text_a: "question1", text_b: Some("question2"), label: "is_duplicate", dev: "dev.tsv", header: None },
    GlueTask { name: "mnli", dir: "MNLI", zip: "MNLI", text_a: "sentence1", text_b: Some("sentence2"), label: "gold_label", dev: "dev_matched.tsv", header: None },
    GlueTask { name: "qnli", dir: "QNLI", zip: "QNLIv2", text_a: "question", text_b: Some("sentence"), label: "label", dev: "dev.tsv", header: None },
    GlueTask { name: "rte", dir: "RTE", zip: "RTE", text_a: "sentence1", text_b: Some("sentence2"), label: "label", dev: "dev.tsv", header: None },
    GlueTask { name: "wnli", dir: "WNLI", zip: "WNLI", text_a: "sentence1", text_b: Some("sentence2"), label: "label", dev: "dev.tsv", header: None },
];

/// The task called `name` (case and `-`/`_` ignored: "SST-2", "sst2", "sst_2"); the error lists
/// the known ones.
pub fn glue_task(name: &str) -> Result<&'static GlueTask, String> {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    let n = norm(name);
    if n == "stsb" {
        return Err("data.task = \"stsb\": STS-B is a regression task; prunekit trains classifiers".into());
    }
    GLUE_TASKS
        .iter()
        .find(|t| norm(t.name) == n || norm(t.dir) == n)
        .ok_or_else(|| format!("data.task = {name:?}: not a GLUE classification task; expected one of {}", GLUE_TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")))
}

impl GlueTask {
    pub fn columns(&self) -> TsvColumns {
        TsvColumns { text_a: self.text_a.into(), text_b: self.text_b.map(Into::into), label: self.label.into(), group: None }
    }

    /// The task's training and evaluation files in `dir` (a folder in the GLUE layout), read and
    /// labelled: `(train, dev, label names)`.
    pub fn read(&self, dir: &Path) -> Result<(Vec<TextItem>, Vec<TextItem>, Vec<String>), String> {
        let cols = self.columns();
        let (tp, dp) = (dir.join("train.tsv"), dir.join(self.dev));
        let tr = read_tsv_header(&tp, &cols, self.header)?;
        let dv = read_tsv_header(&dp, &cols, self.header)?;
        let names = label_names(&[&tr, &dv]);
        if names.len() < 2 {
            return Err(format!("{}: fewer than 2 distinct labels in column `{}`", tp.display(), self.label));
        }
        Ok((assign_labels(tr, &names, &tp)?, assign_labels(dv, &names, &dp)?, names))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("prunekit-glue-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn single_sentence_with_and_without_labels() {
        let cols = TsvColumns { text_a: "sentence".into(), text_b: None, label: "label".into(), group: None };
        let train = write("sst_train.tsv", "sentence\tlabel\nit is great \t1\nawful\t0\n");
        let test = write("sst_test.tsv", "index\tsentence\n0\tfine film\n");
        let (tr, te) = (read_tsv(&train, &cols).unwrap(), read_tsv(&test, &cols).unwrap());
        let names = label_names(&[&tr, &te]);
        assert_eq!(names, vec!["0", "1"]);
        let tr = assign_labels(tr, &names, &train).unwrap();
        assert_eq!(tr[0].text_a, "it is great ");
        assert_eq!(tr.iter().map(|i| i.label).collect::<Vec<_>>(), vec![Some(1), Some(0)]);
        let te = assign_labels(te, &names, &test).unwrap();
        assert_eq!((te[0].text_a.as_str(), te[0].label), ("fine film", None));
    }

    #[test]
    fn sentence_pairs_with_string_labels() {
        let cols = TsvColumns { text_a: "sentence1".into(), text_b: Some("sentence2".into()), label: "gold_label".into(), group: None };
        let p = write("mnli.tsv", "index\tsentence1\tsentence2\tgold_label\n0\tA man.\tA person.\tentailment\n1\tA dog.\tA cat.\tcontradiction\n");
        let rows = read_tsv(&p, &cols).unwrap();
        let names = label_names(&[&rows]);
        assert_eq!(names, vec!["contradiction", "entailment"]);
        let items = assign_labels(rows, &names, &p).unwrap();
        assert_eq!(items[1].text_b.as_deref(), Some("A cat."));
        assert_eq!(items[0].label, Some(1));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let cols = TsvColumns { text_a: "sentence".into(), text_b: None, label: "label".into(), group: None };
        let p = write("bad.tsv", "sentence\tlabel\nok\t1\nshort\n");
        let err = read_tsv(&p, &cols).err().unwrap();
        assert!(err.contains("bad.tsv:3") && err.contains("`label`"), "{err}");
        let missing = TsvColumns { text_a: "text".into(), ..cols };
        let err = read_tsv(&p, &missing).err().unwrap();
        assert!(err.contains("no column `text`"), "{err}");
    }
}
