//! How outputs appear, and what they may never be.
//!
//! One rule for every command that writes:
//!
//! - **No output over an input.** [`OutputGuard`] collects a command's
//!   inputs (recordings with their sidecars, models, configs) and outputs
//!   (with theirs) and refuses, before anything is written, an output that is
//!   one of the inputs or another output: by path, through a symlink, or as a
//!   hard link of the same file.
//! - **Atomic appearance.** Writers write to an [`AtomicOutput`]: a
//!   temporary file beside the final path, renamed onto it only when the
//!   writer finishes. An error, a panic or a dropped writer removes it.
//! - **Clean interruption.** Temporary files are registered while they are
//!   pending; [`remove_pending_outputs`] (called by the front end's SIGINT /
//!   SIGTERM handler) removes them. A temporary file is named
//!   `.<output name>.tmp-<pid>-<n>`, so one left by a killed process
//!   (`kill -9`) is removed by the next writer to the same output once that
//!   process is gone.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::IoError;

// ---------------------------------------------------------------------------
// Atomic outputs.
// ---------------------------------------------------------------------------

/// Set once [`remove_pending_outputs`] ran: the process is ending, so no new
/// temporary file may start.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Temporary files not yet renamed or removed, for the interruption handler.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere while the lock was held leaves a usable list.
    PENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A temporary file next to the final output path. Dropping it removes the
/// temporary file; [`AtomicOutput::commit`] renames it onto the final path.
/// Writers own one, so an error, a panic or an interruption never leaves a
/// half-written file at the final path.
#[derive(Debug)]
pub struct AtomicOutput {
    temp_path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl AtomicOutput {
    /// Picks a fresh temporary path `.NAME.tmp-<pid>-<n>` in the directory
    /// of `final_path` (the file itself is created by the format writer),
    /// after removing temporary files of the same output left by processes
    /// that no longer run.
    pub fn new(final_path: &Path) -> Result<Self, IoError> {
        Self::with_temp_extension(final_path, None)
    }

    /// Like [`Self::new`], for writers that choose the format by the file's extension: the
    /// temporary name ends with `extension` (`.NAME.tmp-<pid>-<n>.<extension>`).
    pub fn keeping_extension(final_path: &Path) -> Result<Self, IoError> {
        let extension = final_path.extension().and_then(|e| e.to_str());
        Self::with_temp_extension(final_path, extension)
    }

    fn with_temp_extension(final_path: &Path, extension: Option<&str>) -> Result<Self, IoError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let file_name = final_path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| IoError::InvalidRequest {
                path: final_path.to_path_buf(),
                detail: "output path has no valid file name".to_string(),
            })?;
        let dir = parent_dir(final_path);
        if !dir.is_dir() {
            return Err(IoError::InvalidRequest {
                path: final_path.to_path_buf(),
                detail: format!("output directory {} does not exist", dir.display()),
            });
        }
        if final_path.is_dir() {
            return Err(IoError::InvalidRequest {
                path: final_path.to_path_buf(),
                detail: "is a directory; name a file to write".to_string(),
            });
        }
        remove_stale_temporaries(&dir, file_name);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut temp = temp_name(file_name, std::process::id(), n);
        if let Some(extension) = extension {
            temp.push('.');
            temp.push_str(extension);
        }
        let temp_path = dir.join(temp);
        let mut list = pending();
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(IoError::InvalidRequest {
                path: final_path.to_path_buf(),
                detail: "not written: the command was interrupted".to_string(),
            });
        }
        list.push(temp_path.clone());
        drop(list);
        Ok(Self {
            temp_path,
            final_path: final_path.to_path_buf(),
            committed: false,
        })
    }

    /// Where the format writer writes.
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Where the output appears on [`Self::commit`].
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Renames the (closed, flushed) temporary file onto the final path.
    pub fn commit(mut self) -> Result<PathBuf, IoError> {
        std::fs::rename(&self.temp_path, &self.final_path).map_err(|source| IoError::Os {
            path: self.final_path.clone(),
            action: "renaming the finished temporary file onto the output",
            error: source,
        })?;
        self.committed = true;
        forget_pending(&self.temp_path);
        Ok(self.final_path.clone())
    }
}

impl Drop for AtomicOutput {
    fn drop(&mut self) {
        if !self.committed {
            // Nothing useful can be done with an error here: the file may
            // never have been created.
            let _ = std::fs::remove_file(&self.temp_path);
            forget_pending(&self.temp_path);
        }
    }
}

fn forget_pending(temp_path: &Path) {
    pending().retain(|path| path != temp_path);
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it
/// onto `path`: readers see the old file or the whole new one, never a part.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let output = AtomicOutput::new(path)?;
    let written = (|| {
        let mut file = std::fs::File::create(output.temp_path())?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    written.map_err(|error| IoError::Os {
        path: path.to_path_buf(),
        action: "writing",
        error,
    })?;
    output.commit()?;
    Ok(())
}

/// Removes every temporary output this process has pending and returns
/// their paths. For an interruption handler, just before the process exits:
/// writers still running afterwards would fail, not resurrect the files.
pub fn remove_pending_outputs() -> Vec<PathBuf> {
    let mut list = pending();
    INTERRUPTED.store(true, Ordering::SeqCst);
    let removed: Vec<PathBuf> = list
        .drain(..)
        .filter(|path| std::fs::remove_file(path).is_ok())
        .collect();
    removed
}

fn temp_name(file_name: &str, pid: u32, n: u64) -> String {
    format!(".{file_name}.tmp-{pid}-{n}")
}

/// The process id in a temporary name of `file_name`, if `entry` is one.
fn temp_owner(entry: &str, file_name: &str) -> Option<u32> {
    let rest = entry.strip_prefix('.')?.strip_prefix(file_name)?;
    let (pid, n) = rest.strip_prefix(".tmp-")?.split_once('-')?;
    // `<n>` or `<n>.<extension>`.
    let n = n.split_once('.').map_or(n, |(n, _)| n);
    n.parse::<u64>().ok()?;
    pid.parse().ok()
}

/// Whether a process with this id still runs. Where that cannot be told
/// (no `/proc`), every process counts as running and nothing is removed.
fn process_runs(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    !proc_root.join("self").exists() || proc_root.join(pid.to_string()).exists()
}

/// Removes `.NAME.tmp-<pid>-<n>` files in `dir` whose process is gone.
fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|name| temp_owner(name, file_name)) else {
            continue;
        };
        if pid != std::process::id() && !process_runs(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

// ---------------------------------------------------------------------------
// The guard.
// ---------------------------------------------------------------------------

/// One file a command reads or writes.
#[derive(Debug, Clone)]
struct Claim {
    /// What it is to the command ("the training recording", "the model").
    role: String,
    /// As the user named it (or as derived from a name they gave).
    path: PathBuf,
    /// Absolute and normalised, links kept as named.
    lexical: PathBuf,
    /// Absolute, with every existing ancestor's symlinks resolved.
    resolved: PathBuf,
    /// Device and inode when the file exists (symlinks followed).
    identity: Option<(u64, u64)>,
}

impl Claim {
    fn new(role: &str, path: &Path) -> Self {
        Self {
            role: role.to_string(),
            path: path.to_path_buf(),
            lexical: normalise(&absolute(path)),
            resolved: resolve(path),
            identity: identity(path),
        }
    }

    /// Whether two claims name the same file.
    fn same_file(&self, other: &Claim) -> bool {
        match (self.identity, other.identity) {
            (Some(a), Some(b)) => a == b,
            _ => self.resolved == other.resolved,
        }
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// `path` made absolute, with its longest existing ancestor canonicalised
/// (so `a/../b`, `./b` and a symlinked folder compare equal) and the rest
/// normalised lexically.
fn resolve(path: &Path) -> PathBuf {
    let absolute = absolute(path);
    let mut existing = absolute.as_path();
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut resolved = canonical;
            for part in rest.iter().rev() {
                resolved.push(part);
            }
            return normalise(&resolved);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                existing = parent;
            }
            _ => return normalise(&absolute),
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|dir| dir.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The inputs and outputs of one command, checked against each other before
/// anything is written.
#[derive(Debug, Default, Clone)]
pub struct OutputGuard {
    inputs: Vec<Claim>,
    outputs: Vec<Claim>,
}

impl OutputGuard {
    /// A guard with nothing claimed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims a file the command reads (`role` says what it is, e.g. "the
    /// training recording"). Add a recording's sidecars too (see
    /// [`recording_files`]).
    pub fn input(&mut self, role: &str, path: &Path) -> &mut Self {
        self.inputs.push(Claim::new(role, path));
        self
    }

    /// Claims every file of a recording (the data file and its header or
    /// sidecars) as inputs.
    pub fn recording(&mut self, role: &str, path: &Path) -> &mut Self {
        for file in recording_files(path) {
            self.input(role, &file);
        }
        self
    }

    /// Claims a file the command writes.
    pub fn output(&mut self, role: &str, path: &Path) -> &mut Self {
        self.outputs.push(Claim::new(role, path));
        self
    }

    /// Refuses, with one line naming both, an output that is one of the
    /// inputs or another output (by path, symlink or hard link).
    pub fn check(&self) -> Result<(), IoError> {
        for (index, output) in self.outputs.iter().enumerate() {
            if let Some(input) = self.inputs.iter().find(|input| output.same_file(input)) {
                return Err(collision(output, input));
            }
            if let Some(other) = self.outputs[..index]
                .iter()
                .find(|other| output.same_file(other))
            {
                return Err(collision(output, other));
            }
        }
        Ok(())
    }
}

fn collision(output: &Claim, victim: &Claim) -> IoError {
    let how = if output.lexical == victim.lexical {
        String::new()
    } else {
        " (the same file through a link)".to_string()
    };
    IoError::WouldOverwrite {
        path: output.path.clone(),
        detail: format!(
            "refusing to overwrite {} {}{how} with {}; choose another output path",
            victim.role,
            victim.path.display(),
            output.role
        ),
    }
}

/// Every file that makes up the recording at `path`: the path itself, and
/// for an extracellular recording its header and data files (SpikeGLX
/// `.bin` + `.meta`, Open Ephys `structure.oebin` + `continuous.dat`, every
/// legacy channel file). A path that cannot be opened claims just itself and
/// the sidecar names it would have, so a broken input is still protected.
pub fn recording_files(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if crate::ephys::is_ephys_path(path) {
        files.extend(crate::ephys::recording_files(path));
        files.extend(ephys_sidecars(path));
    }
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(file.clone()));
    files
}

/// The sidecar written beside an extracellular output at `path`: the
/// SpikeGLX-style `.meta` of a `.bin`/`.dat`/`.raw` file.
pub fn ephys_sidecars(path: &Path) -> Vec<PathBuf> {
    let data = matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bin" | "dat" | "raw")
    );
    if data {
        vec![path.with_extension("meta")]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_carry_output_and_pid() {
        let name = temp_name("movie.h5", 4242, 7);
        assert_eq!(name, ".movie.h5.tmp-4242-7");
        assert_eq!(temp_owner(&name, "movie.h5"), Some(4242));
        assert_eq!(temp_owner(".movie.h5.tmp-x-7", "movie.h5"), None);
        assert_eq!(temp_owner(".plot.png.tmp-12-0.png", "plot.png"), Some(12));
        assert_eq!(temp_owner(".other.h5.tmp-4242-7", "movie.h5"), None);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("movie.h5");
        // PIDs above the kernel's maximum (2^22) never run.
        let dead = dir.path().join(temp_name("movie.h5", 4_194_999, 0));
        let alive = dir
            .path()
            .join(temp_name("movie.h5", std::process::id(), 999));
        let unrelated = dir.path().join(temp_name("other.h5", 4_194_999, 0));
        for path in [&dead, &alive, &unrelated] {
            std::fs::write(path, b"x").unwrap();
        }
        write_file_atomically(&out, b"data").unwrap();
        assert!(!dead.exists(), "a dead process's temporary file stays");
        assert!(alive.exists() && unrelated.exists());
        assert_eq!(std::fs::read(&out).unwrap(), b"data");
    }

    #[test]
    fn pending_outputs_are_listed_until_committed_or_dropped() {
        // remove_pending_outputs itself ends the process's writing, so the CLI's signal tests
        // cover it; here, the list it works from.
        let dir = tempfile::tempdir().unwrap();
        let first = AtomicOutput::new(&dir.path().join("a.bin")).unwrap();
        let second = AtomicOutput::new(&dir.path().join("b.bin")).unwrap();
        std::fs::write(second.temp_path(), b"whole").unwrap();
        let listed = |path: &Path| pending().iter().any(|p| p == path);
        assert!(listed(first.temp_path()) && listed(second.temp_path()));
        let second_temp = second.temp_path().to_path_buf();
        second.commit().unwrap();
        assert!(!listed(&second_temp));
        let first_temp = first.temp_path().to_path_buf();
        std::fs::write(&first_temp, b"partial").unwrap();
        drop(first);
        assert!(!listed(&first_temp) && !first_temp.exists());
        assert!(dir.path().join("b.bin").exists());
    }

    #[test]
    fn guard_refuses_an_output_over_an_input_by_path_link_or_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("rec.h5");
        std::fs::write(&input, b"movie").unwrap();
        let check = |output: &Path| {
            let mut guard = OutputGuard::new();
            guard
                .input("the input recording", &input)
                .output("the denoised recording", output);
            guard.check()
        };
        let error = check(&dir.path().join("./sub/../rec.h5")).unwrap_err();
        assert!(error.to_string().contains("the input recording"), "{error}");
        #[cfg(unix)]
        {
            let link = dir.path().join("link.h5");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            let error = check(&link).unwrap_err().to_string();
            assert!(error.contains("through a link"), "{error}");
            let hard = dir.path().join("hard.h5");
            std::fs::hard_link(&input, &hard).unwrap();
            assert!(check(&hard).is_err());
        }
        assert!(check(&dir.path().join("out.h5")).is_ok());
    }

    #[test]
    fn guard_refuses_two_outputs_on_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut guard = OutputGuard::new();
        guard
            .output("the noisy recording", &dir.path().join("x.h5"))
            .output("the clean recording", &dir.path().join("x.h5"));
        let error = guard.check().unwrap_err().to_string();
        assert!(error.contains("the noisy recording"), "{error}");
    }
}
