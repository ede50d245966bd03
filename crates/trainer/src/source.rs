//! Where a model comes from: the packaged MiniLM, a local Hugging Face directory, or a hub id.

use std::path::{Path, PathBuf};

const NEEDED: [&str; 2] = ["config.json", "model.safetensors"];

/// Resolves `model.source` to a checkpoint directory.
pub fn resolve(source: &str) -> Result<PathBuf, String> {
    if matches!(source, "minilm" | "all-MiniLM-L6-v2" | "sentence-transformers/all-MiniLM-L6-v2") {
        return datasets::fetch::minilm_dir().map_err(|e| format!("model.source = {source:?}: {e}"));
    }
    let path = Path::new(source);
    if path.is_dir() {
        return check_dir(path).map(|_| path.to_path_buf());
    }
    if is_hub_id(source) {
        return from_hub(source);
    }
    Err(format!(
        "model.source = {source:?}: not \"minilm\", not a directory, not a hub id (org/name). \
         Give a local Hugging Face checkpoint directory with config.json, model.safetensors and tokenizer.json"
    ))
}

fn check_dir(dir: &Path) -> Result<(), String> {
    for f in NEEDED {
        if !dir.join(f).exists() {
            let hint = if f == "model.safetensors" && dir.join("pytorch_model.bin").exists() {
                " (only pytorch_model.bin is there: save it as safetensors with `model.save_pretrained(dir, safe_serialization=True)`)"
            } else {
                ""
            };
            return Err(format!("model directory {}: missing {f}{hint}", dir.display()));
        }
    }
    if !dir.join("tokenizer.json").exists() && !dir.join("vocab.txt").exists() {
        return Err(format!("model directory {}: missing tokenizer.json (or vocab.txt)", dir.display()));
    }
    Ok(())
}

fn is_hub_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
}

/// A hub id: first the local Hugging Face cache (what `transformers` already downloaded), then
/// `huggingface_hub` if Python has it and the machine is online.
fn from_hub(id: &str) -> Result<PathBuf, String> {
    let hub = std::env::var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
        let home = std::env::var("HF_HOME").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| ".".into())).join(".cache").join("huggingface")
        });
        home.join("hub")
    });
    let snapshots = hub.join(format!("models--{}", id.replace('/', "--"))).join("snapshots");
    if let Ok(entries) = std::fs::read_dir(&snapshots) {
        for e in entries.flatten() {
            if check_dir(&e.path()).is_ok() {
                tracing::info!("model {id}: found in the Hugging Face cache at {}", e.path().display());
                return Ok(e.path());
            }
        }
    }
    tracing::info!("model {id}: not in the Hugging Face cache ({}); trying huggingface_hub", hub.display());
    let script = format!(
        "from huggingface_hub import snapshot_download; print(snapshot_download({id:?}, allow_patterns=['config.json','model.safetensors','tokenizer.json','vocab.txt','tokenizer_config.json']))"
    );
    let out = std::process::Command::new("python3").args(["-c", &script]).output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string());
            check_dir(&dir)?;
            Ok(dir)
        }
        _ => Err(format!(
            "model.source = {id:?}: not in the Hugging Face cache and could not be downloaded (offline, or no \
             `huggingface_hub` in python3). Download it on a machine with internet and give its directory, or use \
             model.source = \"minilm\""
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_hub_id_and_bad_dirs_give_clear_errors() {
        std::env::set_var("HF_HUB_CACHE", "/nonexistent-hf-cache");
        let err = resolve("no-such-org/no-such-model-xyz").unwrap_err();
        assert!(err.contains("no-such-org/no-such-model-xyz") && err.contains("could not be downloaded"), "{err}");
        let dir = std::env::temp_dir().join(format!("prunekit-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("pytorch_model.bin"), "").unwrap();
        let err = resolve(dir.to_str().unwrap()).unwrap_err();
        assert!(err.contains("model.safetensors") && err.contains("safe_serialization"), "{err}");
        assert!(resolve("not a model").unwrap_err().contains("not a hub id"));
    }
}
