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
