//! Replays every saved hostile input (`regressions/<target>/<file>`, minimised crashes of
//! the fuzz campaigns and the mutation test) through its harness: none may panic, no
//! allocation may exceed the budget (the allocator of `common/mod.rs` aborts on one), and
//! every error message must be one line, free of control bytes, naming the file.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions")
}

/// The saved inputs, as (target folder, file) pairs, sorted.
fn saved_inputs() -> Vec<(String, PathBuf)> {
    let mut inputs = Vec::new();
    let Ok(folders) = std::fs::read_dir(regressions_dir()) else {
        return inputs;
    };
    for folder in folders.flatten().filter(|entry| entry.path().is_dir()) {
        let target = folder.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(folder.path())
            .expect("a regression folder")
            .flatten()
        {
            let path = file.path();
            let hidden = file.file_name().to_string_lossy().starts_with('.');
            if path.is_file() && !hidden && path.extension().is_none_or(|e| e != "md") {
                inputs.push((target.clone(), path));
            }
        }
    }
    inputs.sort();
    inputs
}

#[test]
fn every_regression_folder_names_a_target() {
    let known: Vec<&str> = deepinterp_hostile::targets()
        .iter()
        .map(|t| t.name)
        .collect();
    for (target, path) in saved_inputs() {
        assert!(
            known.contains(&target.as_str()),
            "{} is saved under '{target}', which is not a target ({known:?})",
            path.display()
        );
    }
}

#[test]
fn saved_hostile_inputs_do_not_panic() {
    common::set_budget();
    if common::each_target_in_its_own_process("saved_hostile_inputs_do_not_panic", "replayed") {
        return;
    }
    let only = std::env::var(common::TARGETS_VAR).unwrap_or_default();
    let inputs: Vec<(String, PathBuf)> = saved_inputs()
        .into_iter()
        .filter(|(target, _)| only.split(',').any(|name| name.trim() == target))
        .collect();
    let mut panics = Vec::new();
    let mut bad_messages: Vec<String> = Vec::new();
    for (target, path) in &inputs {
        let Some(harness) = deepinterp_hostile::target(target) else {
            continue;
        };
        let bytes = std::fs::read(path).expect("a regression input");
        common::running(format!("{target} regression {}", path.display()), &bytes);
        match catch_unwind(AssertUnwindSafe(|| (harness.check)(&bytes))) {
            Err(_) => panics.push(path.display().to_string()),
            Ok(Err(error)) => {
                if let Some(fault) = common::message_fault(&error.to_string()) {
                    bad_messages.push(format!(
                        "{}: {fault}: {:?}",
                        path.display(),
                        error.to_string()
                    ));
                }
            }
            Ok(Ok(())) => {}
        }
    }
    println!("replayed {} saved inputs", inputs.len());
    assert!(
        panics.is_empty(),
        "these saved inputs still panic: {panics:#?}"
    );
    assert!(
        bad_messages.is_empty(),
        "these saved inputs get messages that break the rules: {bad_messages:#?}"
    );
}
