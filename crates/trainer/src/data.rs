//! config → dataset → tokenised items (encoded once per run).

use crate::experiment::DataSection;
use datasets::glue::{assign_labels, label_names, read_tsv};
use datasets::{EncodedItem, TextDataset, TextTokenizer};

pub struct EncodedData {
    pub source: String,
    pub label_names: Vec<String>,
    pub train: Vec<EncodedItem>,
    pub validation: Vec<EncodedItem>,
    pub test: Vec<EncodedItem>,
}

pub fn load(section: &DataSection) -> Result<TextDataset, String> {
    let (mut ds, max_train, max_eval) = match section {
        DataSection::SpamAssassin { subset, split_seed, max_train_samples, max_eval_samples } => (
            datasets::spam_assassin::load(*subset, *split_seed).map_err(|e| e.to_string())?,
            *max_train_samples,
            *max_eval_samples,
        ),
        DataSection::GlueTsv { train, validation, test, columns, max_train_samples, max_eval_samples } => {
            let tr = read_tsv(train, columns)?;
            let va = read_tsv(validation, columns)?;
            let te = test.as_ref().map(|p| read_tsv(p, columns)).transpose()?;
            let mut all = vec![&tr, &va];
            all.extend(te.as_ref());
            let names = label_names(&all);
            if names.len() < 2 {
                return Err(format!("data.train {}: fewer than 2 distinct labels in column `{}`", train.display(), columns.label));
            }
            let ds = TextDataset {
                source: format!("GLUE-style TSV: {}", train.display()),
                train: assign_labels(tr, &names, train)?,
                validation: assign_labels(va, &names, validation)?,
                test: match (te, test) {
                    (Some(te), Some(p)) => assign_labels(te, &names, p)?,
                    _ => Vec::new(),
                },
                label_names: names,
            };
            (ds, *max_train_samples, *max_eval_samples)
        }
        DataSection::Glue { task, path, max_train_samples, max_eval_samples } => {
            let t = datasets::glue::glue_task(task)?;
            let dir = match path {
                Some(p) => p.clone(),
                None => datasets::fetch::glue_dir(t).map_err(|e| format!("data.task = {task:?}: {e}"))?,
            };
            let (train, validation, names) = t.read(&dir)?;
            let ds = TextDataset { source: format!("GLUE {} ({}; evaluated on {})", t.dir, dir.display(), t.dev), train, validation, test: Vec::new(), label_names: names };
            (ds, *max_train_samples, *max_eval_samples)
        }
        DataSection::Adult(_) | DataSection::Compas(_) | DataSection::Csv(_) => {
            return Err("data: tabular data (adult, compas, csv) goes with model.kind = \"mlp\"".into())
        }
        DataSection::FashionMnist(_) | DataSection::Mnist5k(_) => {
            return Err("data: image data (fashion_mnist, mnist_5k) goes with model.kind = \"cnn\"".into())
        }
    };
    if let Some(n) = max_train {
        ds.train.truncate(n);
    }
    if let Some(n) = max_eval {
        ds.validation.truncate(n);
        ds.test.truncate(n);
    }
    if ds.train.is_empty() {
        return Err("data: the training split is empty".into());
    }
    if ds.train.iter().any(|i| i.label.is_none()) {
        return Err("data: the training split has rows without a label".into());
    }
    Ok(ds)
}

pub fn encode(ds: &TextDataset, tok: &TextTokenizer) -> Result<EncodedData, String> {
    Ok(EncodedData {
        source: ds.source.clone(),
        label_names: ds.label_names.clone(),
        train: tok.encode_all(&ds.train)?,
        validation: tok.encode_all(&ds.validation)?,
        test: tok.encode_all(&ds.test)?,
    })
}
