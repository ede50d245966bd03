//! `trainer latency --cnn-runs DIR,...`: forward latency of the compacted ConvNets that pruning
//! runs report, re-timed together on one quiet machine. Latency depends on the shapes, not on
//! the weights, so each run's network is rebuilt from its dense shapes (`config.json` of its
//! `model_source`) and the widths its `summary.json` says compaction kept, with random weights;
//! runs with the same shapes share one timing. A benchmark, not a test.

use burn::tensor::{Device, Distribution, Tensor};
use models::cnn::{Cnn, CnnConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The compacted shapes of one run: its dense config with the kept widths put in.
pub fn compacted_config(dense: &CnnConfig, kept: &[(String, usize)]) -> Result<CnnConfig, String> {
    let mut c = dense.clone();
    if c.residual && c.inner_channels.is_empty() {
        c.inner_channels = c.channels.clone();
    }
    for (name, k) in kept {
        let parts: Vec<&str> = name.split('.').collect();
        match parts.as_slice() {
            ["convs", i, "filters"] => {
                let i: usize = i.parse().map_err(|_| format!("unknown unit group {name:?}"))?;
                let (stage, slot) = if c.residual { (i / 3, i % 3) } else { (i, 0) };
                let stages = c.channels.len();
                let target = match slot {
                    0 => c.channels.get_mut(stage),
                    1 => c.inner_channels.get_mut(stage),
                    _ => None,
                };
                *target.ok_or_else(|| format!("unit group {name:?} does not exist in a network of {stages} stages"))? = *k;
            }
            ["fcs", "0", "neurons"] if c.hidden > 0 => c.hidden = *k,
            _ => return Err(format!("unknown unit group {name:?}")),
        }
    }
    c.validate()?;
    Ok(c)
}

struct Run {
    name: String,
    dense: CnnConfig,
    small: CnnConfig,
}

fn read_run(summary: &Path) -> Result<Run, String> {
    let at = |e: String| format!("{}: {e}", summary.display());
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(summary).map_err(|e| at(e.to_string()))?).map_err(|e| at(e.to_string()))?;
    let source = s["model_source"].as_str().ok_or_else(|| at("no model_source".into()))?;
    let cfg_path = Path::new(source).join("config.json");
    let dense: CnnConfig = serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| format!("{} (model_source of {}): {e}", cfg_path.display(), summary.display()))?)
        .map_err(|e| format!("{}: not a CNN config: {e}", cfg_path.display()))?;
    let kept = s["compaction"]["kept"].as_array().ok_or_else(|| at("no compaction.kept (the run did not compact)".into()))?;
    let kept: Vec<(String, usize)> = kept
        .iter()
        .map(|k| match (k[0].as_str(), k[1].as_u64()) {
            (Some(n), Some(v)) => Ok((n.to_string(), v as usize)),
            _ => Err(at(format!("compaction.kept entry {k} is not [name, kept, of]"))),
        })
        .collect::<Result<_, _>>()?;
    let small = compacted_config(&dense, &kept).map_err(at)?;
    let name = s["name"].as_str().unwrap_or("?").to_string();
    Ok(Run { name, dense, small })
}

/// Every `summary.json` under the given folders (one level down) or given directly.
fn summaries(paths: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let p = PathBuf::from(p);
        if p.is_file() {
            out.push(p);
            continue;
        }
        if p.join("summary.json").is_file() {
            out.push(p.join("summary.json"));
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| format!("--cnn-runs {}: {e}", p.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter_map(|d| if d.join("summary.json").is_file() { Some(d.join("summary.json")) } else if d.to_string_lossy().ends_with(".summary.json") { Some(d) } else { None })
            .collect();
        if found.is_empty() {
            return Err(format!("--cnn-runs {}: no summary.json in it or in its folders", p.display()));
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}

fn shape_key(c: &CnnConfig) -> String {
    format!("channels {:?}{} hidden {}", c.channels, if c.residual { format!(" inner {:?}", c.inner_channels) } else { String::new() }, c.hidden)
}

pub fn main(runs: &[String], batch_sizes: &[usize], warmup: usize, reps: usize, out: Option<&Path>, device: &Device, device_name: &str) -> Result<(), String> {
    let runs: Vec<Run> = summaries(runs)?.iter().map(|p| read_run(p)).collect::<Result<_, _>>()?;
    // One timing per distinct shape; the dense shapes first.
    let mut shapes: BTreeMap<String, (CnnConfig, Vec<String>)> = BTreeMap::new();
    let mut dense_keys = Vec::new();
    for r in &runs {
        let dk = shape_key(&r.dense);
        if !dense_keys.contains(&dk) {
            dense_keys.push(dk.clone());
        }
        shapes.entry(dk).or_insert_with(|| (r.dense.clone(), Vec::new()));
        shapes.entry(shape_key(&r.small)).or_insert_with(|| (r.small.clone(), Vec::new())).1.push(r.name.clone());
    }
    if dense_keys.len() != 1 {
        return Err(format!("--cnn-runs: the runs start from {} different dense shapes ({dense_keys:?}); time one network family at a time", dense_keys.len()));
    }
    let dense_key = dense_keys[0].clone();
    let order: Vec<String> = std::iter::once(dense_key.clone()).chain(shapes.keys().filter(|k| **k != dense_key).cloned()).collect();
    let models: Vec<Cnn> = order.iter().map(|k| Cnn::new(&shapes[k].0, 0, device)).collect();
    let dense_macs = shapes[&dense_key].0.macs() as f64;
    let mut rows = Vec::new();
    for &batch in batch_sizes {
        let side = shapes[&dense_key].0.image_size;
        let x = Tensor::<4>::random([batch, shapes[&dense_key].0.in_channels, side, side], Distribution::Normal(0.0, 1.0), device);
        let timed = crate::latency::interleaved(models.len(), warmup, reps, |m| {
            let _ = models[m].forward(x.clone()).into_data(); // waits for the result
            device.sync().map_err(|e| format!("{e:?}"))
        })?;
        let medians: Vec<f64> = timed.iter().map(|(median, _)| median * 1e3).collect();
        let times: Vec<Vec<f64>> = timed.into_iter().map(|(_, t)| t.into_iter().map(|s| s * 1e3).collect()).collect();
        for (i, key) in order.iter().enumerate() {
            let (cfg, names) = &shapes[key];
            let macs = cfg.macs() as f64;
            println!("batch {batch:>4}  {key:<48} {:>9.3} ms  speedup {:5.2}x  MAC ratio {:5.2}x  ({} runs)", medians[i], medians[0] / medians[i], dense_macs / macs, if i == 0 { "dense".to_string() } else { names.len().to_string() });
            rows.push(serde_json::json!({"shape": key, "dense": i == 0, "batch_size": batch, "median_ms": medians[i], "speedup_vs_dense": medians[0] / medians[i],
                "mac_ratio": dense_macs / macs, "params": cfg.num_params(), "macs": cfg.macs(), "runs": names, "times_ms": times[i]}));
        }
    }
    let result = serde_json::json!({"device": device_name, "warmup": warmup, "reps": reps,
        "threads": rayon_threads(), "results": rows});
    if let Some(p) = out {
        std::fs::write(p, serde_json::to_string_pretty(&result).unwrap_or_default()).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(residual: bool) -> CnnConfig {
        CnnConfig { in_channels: 1, image_size: 28, channels: vec![32, 64, 128], inner_channels: vec![], kernel_size: 3, batch_norm: true, residual, hidden: 256, num_classes: 10, dropout: 0.0 }
    }

    #[test]
    fn kept_widths_replace_the_dense_ones() {
        let kept = vec![("convs.0.filters".to_string(), 3), ("convs.1.filters".into(), 6), ("convs.2.filters".into(), 13), ("fcs.0.neurons".into(), 26)];
        let c = compacted_config(&dense(false), &kept).unwrap();
        assert_eq!((c.channels.clone(), c.hidden), (vec![3, 6, 13], 26));
        // The MACs of the 90% row of issue 23's table.
        assert_eq!(c.macs(), 90620);
        // Residual: convs 3s are the stage width, 3s+1 the inner width.
        let kept = vec![("convs.0.filters".to_string(), 16), ("convs.1.filters".into(), 8), ("convs.4.filters".into(), 20)];
        let c = compacted_config(&dense(true), &kept).unwrap();
        assert_eq!((c.channels.clone(), c.inner_channels.clone()), (vec![16, 64, 128], vec![8, 20, 128]));
        assert!(compacted_config(&dense(false), &[("convs.5.filters".into(), 3)]).unwrap_err().contains("convs.5.filters"));
        assert!(compacted_config(&dense(false), &[("heads".into(), 3)]).unwrap_err().contains("heads"));
    }
}
