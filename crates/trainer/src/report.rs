//! What a run writes: `metrics.jsonl` (one line per logged step and per evaluation) and
//! `summary.json` at the end. Lines are flushed as they are written, so a run that stops
//! early keeps everything it logged.

use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

pub struct MetricsLog {
    out: BufWriter<File>,
}

impl MetricsLog {
    pub fn create(path: &Path) -> Result<Self, String> {
        let f = File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { out: BufWriter::new(f) })
    }

    /// Continues the log of a resumed run: keeps the lines up to and including `step` (what the
    /// checkpoint had seen), drops later ones and any torn last line, and appends from there.
    pub fn resume(path: &Path, step: usize) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
                    .is_some_and(|s| s as usize <= step)
            })
            .collect();
        let tmp = path.with_extension("jsonl.tmp");
        let body: String = kept.iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(&tmp, body).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let f = std::fs::OpenOptions::new().append(true).open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self { out: BufWriter::new(f) })
    }

    pub fn write(&mut self, line: &serde_json::Value) {
        let _ = writeln!(self.out, "{line}");
        let _ = self.out.flush();
    }
}

/// Writes JSON atomically (temp file + rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
