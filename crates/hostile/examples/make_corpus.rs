//! Writes the seed corpora of every fuzz target: `fuzz/corpus/<target>/<seed>`.
//!
//! Usage: `cargo run -p deepinterp-hostile --example make_corpus [-- OUT_DIR [SHARED_DIR]]`
//! (defaults `fuzz/corpus` and `/work/shared`). The seeds come from our own writers (the
//! same ones the tests use); small real files from SHARED_DIR are added when it exists:
//! NIfTI images (decompressed, under 200 KB) and the head of an Open Ephys legacy channel
//! file (header and three records).

use std::io::Read;
use std::path::{Path, PathBuf};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "fuzz/corpus".to_string()));
    let shared = PathBuf::from(args.next().unwrap_or_else(|| "/work/shared".to_string()));
    for target in deepinterp_hostile::targets() {
        let dir = out.join(target.name);
        std::fs::create_dir_all(&dir)?;
        let seeds = (target.seeds)();
        for seed in &seeds {
            std::fs::write(dir.join(&seed.name), &seed.bytes)?;
        }
        let real = real_seeds(target.name, &shared);
        for (name, bytes) in &real {
            std::fs::write(dir.join(name), bytes)?;
        }
        println!(
            "{}: {} seeds from our writers, {} real",
            target.name,
            seeds.len(),
            real.len()
        );
    }
    Ok(())
}

/// Real files are at most this big (the fuzzer slows down with large inputs).
const REAL_SEED_LIMIT: usize = 200 << 10;

fn real_seeds(target: &str, shared: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    match target {
        "nifti" => {
            for relative in [
                "data/fmri/nitime_fmri1.nii.gz",
                "fixtures/keras/fmri_input_13x12x10x12_int16.nii.gz",
            ] {
                let path = shared.join(relative);
                let Ok(file) = std::fs::File::open(&path) else {
                    continue;
                };
                // The harness compresses its input itself: the seed is the plain image.
                let mut plain = Vec::new();
                let decoded = flate2::read::MultiGzDecoder::new(file)
                    .take(REAL_SEED_LIMIT as u64 + 1)
                    .read_to_end(&mut plain);
                if decoded.is_ok() && plain.len() <= REAL_SEED_LIMIT {
                    let name = path.file_name().unwrap_or_default().to_string_lossy();
                    found.push((format!("real_{}", name.trim_end_matches(".gz")), plain));
                }
            }
        }
        "legacy_continuous" => {
            let folder = shared.join("data/ephys/openephys_example_data_v0.6.7");
            let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "continuous"))
                .collect();
            files.sort();
            if let Some(path) = files.first()
                && let Ok(bytes) = std::fs::read(path)
            {
                // The header and three 1024-sample records (2070 bytes each).
                let head = bytes[..bytes.len().min(1024 + 3 * 2070)].to_vec();
                found.push(("real_head.continuous".to_string(), head));
            }
        }
        _ => {}
    }
    found
}
