//! Where the tests of every crate find their data, in one place: the repository's
//! `fixtures/` (which must exist: a missing fixture fails the test loudly), and the few files
//! only `../shared` beside the checkout holds (the two large paper models, the Allen movie
//! and the goldens only they serve), without which a test says in one line that it skipped —
//! or, with `DEEPINTERP_REQUIRE_SHARED=1` (as `.ci/run` sets it), fails.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The workspace root (this crate sits in `crates/testdata`).
fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A file or folder of the repository's test fixtures (`fixtures/` at the workspace root;
/// its README gives each file's provenance); panics naming it when it is missing.
pub fn fixture(relative: &str) -> PathBuf {
    let path = workspace_root().join("fixtures").join(relative);
    assert!(
        path.exists(),
        "test fixture missing: expected {} (fixtures/ is part of the repository)",
        path.display()
    );
    path
}

/// A Keras fixture file of the repository (`fixtures/keras/NAME`).
pub fn keras_fixture(name: &str) -> PathBuf {
    fixture(&format!("keras/{name}"))
}

/// Files of `../shared` beside the checkout that the repository does not carry. When one is
/// absent the calling test prints `skipped <test>: needs ../shared/<file> (absent)` to
/// stderr and gets `None` (it must return at once); with `DEEPINTERP_REQUIRE_SHARED=1`
/// absence panics instead.
pub fn shared_or_skip<const N: usize>(relative: [&str; N]) -> Option<[PathBuf; N]> {
    let root = workspace_root().join("../shared");
    let paths = relative.map(|file| root.join(file));
    let absent: Vec<String> = relative
        .iter()
        .zip(&paths)
        .filter(|(_, path)| !path.exists())
        .map(|(file, _)| format!("../shared/{file}"))
        .collect();
    if absent.is_empty() {
        return Some(paths);
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed test>");
    let line = format!("{test}: needs {} (absent)", absent.join(", "));
    if std::env::var_os("DEEPINTERP_REQUIRE_SHARED").is_some_and(|v| v == "1") {
        panic!("{line}; DEEPINTERP_REQUIRE_SHARED=1 requires ../shared beside the checkout");
    }
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(std::io::stderr(), "skipped {line}");
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_found_in_the_repository() {
        assert!(fixture("README.md").is_file());
        assert!(keras_fixture("model_fmri_unet_denoiser.h5").is_file());
    }

    #[test]
    #[should_panic(expected = "test fixture missing")]
    fn a_missing_fixture_fails_loudly() {
        fixture("no/such/file.h5");
    }
}
