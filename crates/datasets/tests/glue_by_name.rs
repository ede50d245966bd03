//! GLUE by name on fixtures (no network): the task table, the unpacking of a task zip laid out
//! as the GLUE download ships it (with its checksums recorded and checked on later use), the
//! pinned SST-2 checksums, and CoLA's header-less files.

use datasets::fetch::{glue_dir, unpack_glue_zip, FetchError};
use datasets::glue::glue_task;
use std::io::Write;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("prunekit-glue-by-name-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_zip(path: &Path, files: &[(&str, &str)]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, body) in files {
        z.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(body.as_bytes()).unwrap();
    }
    z.finish().unwrap();
}

const RTE_TRAIN: &str = "index\tsentence1\tsentence2\tlabel\n0\tA man sleeps.\tA person rests.\tentailment\n1\tIt rains.\tThe sun shines.\tnot_entailment\n";
const RTE_DEV: &str = "index\tsentence1\tsentence2\tlabel\n0\tCats purr.\tAnimals make sounds.\tentailment\n";

#[test]
fn tasks_by_name() {
    assert_eq!(glue_task("SST-2").unwrap().name, "sst2");
    assert_eq!(glue_task("sst2").unwrap().dir, "SST-2");
    assert_eq!(glue_task("mnli").unwrap().dev, "dev_matched.tsv");
    // The zips the GLUE download script fetches (their folders are QQP/ and QNLI/).
    assert_eq!((glue_task("qqp").unwrap().zip, glue_task("qnli").unwrap().zip, glue_task("rte").unwrap().zip), ("QQP-clean", "QNLIv2", "RTE"));
    let e = glue_task("stsb").unwrap_err();
    assert!(e.contains("regression"), "{e}");
    let e = glue_task("imdb").unwrap_err();
    assert!(e.contains("imdb") && e.contains("sst2") && e.contains("qnli"), "{e}");
}

#[test]
fn a_task_zip_unpacks_records_checksums_and_reads_as_pairs() {
    let d = tmp("rte");
    let zip = d.join("RTE.zip");
    write_zip(&zip, &[("RTE/train.tsv", RTE_TRAIN), ("RTE/dev.tsv", RTE_DEV), ("RTE/test.tsv", "index\tsentence1\tsentence2\n0\ta\tb\n"), ("RTE/readme.txt", "x"), ("__MACOSX/RTE/._train.tsv", "junk")]);
    let task = glue_task("rte").unwrap();
    let out = d.join("glue").join("RTE");
    unpack_glue_zip(&zip, task, &out).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, vec!["checksums.json", "dev.tsv", "test.tsv", "train.tsv"]);
    let sums: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("checksums.json")).unwrap()).unwrap();
    assert_eq!(sums["train.tsv"].as_str().unwrap(), datasets::fetch::sha256_file(&out.join("train.tsv")).unwrap());
    let (train, dev, names) = task.read(&out).unwrap();
    assert_eq!(names, vec!["entailment", "not_entailment"]);
    assert_eq!((train.len(), dev.len()), (2, 1));
    assert_eq!((train[1].text_a.as_str(), train[1].text_b.as_deref(), train[1].label), ("It rains.", Some("The sun shines."), Some(1)));

    // A zip without the dev file is refused, naming it.
    let bad = d.join("bad.zip");
    write_zip(&bad, &[("RTE/train.tsv", RTE_TRAIN)]);
    let e = unpack_glue_zip(&bad, task, &d.join("bad")).unwrap_err().to_string();
    assert!(e.contains("RTE/dev.tsv"), "{e}");
}

#[test]
fn sst2_files_are_checked_against_the_pinned_checksums() {
    let d = tmp("sst2");
    let zip = d.join("SST-2.zip");
    write_zip(&zip, &[("SST-2/train.tsv", "sentence\tlabel\nnot the real file\t1\n"), ("SST-2/dev.tsv", "sentence\tlabel\nx\t0\n")]);
    match unpack_glue_zip(&zip, glue_task("sst2").unwrap(), &d.join("SST-2")) {
        Err(FetchError::Checksum { path, .. }) => assert!(path.contains("SST-2/train.tsv"), "{path}"),
        other => panic!("expected a checksum error, got {other:?}"),
    }
    assert!(!d.join("SST-2").exists(), "nothing is left half-unpacked under the final name");
}

#[test]
fn a_cached_task_is_used_offline_and_a_changed_file_is_caught() {
    // The cache root comes from PRUNEKIT_CACHE (this test is the only one here that reads it).
    let cache = tmp("cache");
    std::env::set_var("PRUNEKIT_CACHE", &cache);
    let task = glue_task("wnli").unwrap();
    let zip = cache.join("WNLI.zip");
    write_zip(&zip, &[("WNLI/train.tsv", RTE_TRAIN.replace("not_entailment", "0").replace("entailment", "1").as_str()), ("WNLI/dev.tsv", RTE_DEV.replace("entailment", "1").as_str())]);
    unpack_glue_zip(&zip, task, &cache.join("glue").join("WNLI")).unwrap();
    let dir = glue_dir(task).unwrap();
    assert_eq!(dir, cache.join("glue").join("WNLI"));
    let (_, _, names) = task.read(&dir).unwrap();
    assert_eq!(names, vec!["0", "1"]);
    std::fs::write(dir.join("dev.tsv"), "index\tsentence1\tsentence2\tlabel\n0\tedited\tby hand\t1\n").unwrap();
    assert!(matches!(glue_dir(task), Err(FetchError::Checksum { .. })));
}

#[test]
fn cola_files_have_no_header() {
    let d = tmp("cola");
    std::fs::write(d.join("train.tsv"), "gj04\t1\t\tOur friends won't buy this analysis.\ngj04\t0\t*\tThey drank the pub.\n").unwrap();
    std::fs::write(d.join("dev.tsv"), "gj04\t1\t\tThe sailors rode the breeze clear of the rocks.\n").unwrap();
    let (train, dev, names) = glue_task("cola").unwrap().read(&d).unwrap();
    assert_eq!(names, vec!["0", "1"]);
    assert_eq!((train[1].text_a.as_str(), train[1].label), ("They drank the pub.", Some(0)));
    assert_eq!(dev.len(), 1);
    // Errors give the file's own line numbers.
    std::fs::write(d.join("dev.tsv"), "gj04\t1\n").unwrap();
    let e = glue_task("cola").unwrap().read(&d).unwrap_err();
    assert!(e.contains("dev.tsv:1:"), "{e}");
}
