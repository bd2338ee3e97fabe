//! Hostile inputs through the binary: files built to lie about their sizes, to be cut short,
//! to point outside their folder, to echo terminal escapes, and flags set to absurd values.
//! Every case runs the release-like binary in a child with a memory budget
//! (`DEEPINTERP_MEMORY_BUDGET=512M`), an address-space limit and a timeout, and must end with
//! exit code 1 and one clean line `error: ...` naming the file or flag at fault, within a
//! bounded peak RSS, leaving its output folder as it found it and every input untouched.
//! All cases run before anything is asserted, so a failure lists every case that broke a
//! rule, not just the first.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{fixture, s, simulate, tiny_model, train_briefly};
use flate2::Compression;
use flate2::write::{GzEncoder, ZlibEncoder};

/// The library's budget for buffers sized from headers and flags, given to every child.
const MEMORY_BUDGET: &str = "512M";
/// Address space a child may map: generous for a tiny run, far below what an allocation sized
/// from an unchecked hostile header would ask for.
const ADDRESS_SPACE_BYTES: u64 = 6 << 30;
/// Peak resident memory a child may reach: twice the budget.
const PEAK_RSS_LIMIT_MIB: f64 = 1024.0;
/// A hostile case fails fast; one still running after this is a hang (a FIFO read, a loop).
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);
/// An error message is one readable line: text echoed from a file must be shortened.
const MAX_LINE_CHARS: usize = 4096;

/// One hostile run of the binary and what its message must name.
struct Case {
    name: String,
    args: Vec<String>,
    /// Every group must be matched by one of its alternatives (case-sensitive): the file or
    /// the flag at fault, and where the cause is a field, the field.
    must_name: Vec<Vec<String>>,
    /// Words the message must not hold: a wrong cause (a FIFO called a directory).
    must_not: Vec<String>,
    /// The folder the case may write into (it must stay empty).
    out: PathBuf,
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    Exited(i32),
    Signalled(i32),
    /// Killed after [`CHILD_TIMEOUT`].
    Hung,
}

struct Outcome {
    ending: Ending,
    stderr: Vec<u8>,
    peak_rss_mib: f64,
    seconds: f64,
}

/// The cases, the folder they live in, and the shared valid inputs they reuse.
struct Suite {
    root: PathBuf,
    logs: PathBuf,
    cases: Vec<Case>,
    movie: PathBuf,
    model: PathBuf,
    ephys_model: PathBuf,
    fmri_model: PathBuf,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// `[name]` as a required group.
fn named(name: &str) -> Vec<String> {
    vec![name.to_string()]
}

/// A flag's (or field's) name as a required group: `batch-size` (as in `--batch-size`), its
/// config key `batch_size`, or in words, `batch size`.
fn flag(name: &str) -> Vec<String> {
    let name = name.trim_start_matches('-');
    let mut names = vec![name.to_string()];
    if name.contains('-') {
        names.push(name.replace('-', "_"));
        names.push(name.replace('-', " "));
    }
    names
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().to_string()
}

/// Which commands a hostile recording is run through.
#[derive(Clone, Copy)]
struct Commands {
    inspect: bool,
    denoise: bool,
    train: bool,
}

const ALL: Commands = Commands {
    inspect: true,
    denoise: true,
    train: true,
};
/// For files that are well formed but whose declared size only a read (or a buffer) shows
/// to be absurd: `inspect` may describe them without reading their data.
const READERS: Commands = Commands {
    inspect: false,
    denoise: true,
    train: true,
};

#[derive(Clone, Copy, PartialEq)]
enum Modality {
    TwoPhoton,
    Ephys,
    Fmri,
}

impl Suite {
    /// A fresh, empty output folder for the next case.
    fn out_dir(&self) -> PathBuf {
        let dir = self
            .root
            .join("outs")
            .join(format!("{:03}", self.cases.len()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Adds a case whose arguments may use its output folder.
    fn add(
        &mut self,
        name: &str,
        args: impl FnOnce(&Path) -> Vec<String>,
        must_name: Vec<Vec<String>>,
    ) {
        let out = self.out_dir();
        let args = args(&out);
        self.cases.push(Case {
            name: name.to_string(),
            args,
            must_name,
            must_not: Vec::new(),
            out,
        });
    }

    /// The cases added since `first` must not say any of `words`.
    fn forbid_since(&mut self, first: usize, words: &[&str]) {
        for case in &mut self.cases[first..] {
            case.must_not.extend(strings(words));
        }
    }

    /// Training flags that keep a run tiny; a flag appended later overrides one of these.
    fn tiny_training(modality: Modality) -> Vec<String> {
        let mut args = match modality {
            Modality::TwoPhoton => strings(&[
                "--arch",
                "unet-d1-w4",
                "--pre-frames",
                "2",
                "--post-frames",
                "2",
                "--patch-size",
                "16",
            ]),
            Modality::Ephys => strings(&[
                "--arch",
                "unet-ephys-d1-w4",
                "--pre-frames",
                "4",
                "--post-frames",
                "4",
            ]),
            Modality::Fmri => strings(&["--arch", "unet3d-d1-w4"]),
        };
        args.extend(strings(&[
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--steps-per-epoch",
            "1",
            "--validation-samples",
            "2",
            "--seed",
            "5",
        ]));
        args
    }

    /// Runs a hostile recording through `commands`; each message must name every group.
    fn recording(
        &mut self,
        label: &str,
        input: &Path,
        modality: Modality,
        commands: Commands,
        extra: &[&str],
        must_name: Vec<Vec<String>>,
    ) {
        let input = s(input).to_string();
        let extra = strings(extra);
        if commands.inspect {
            let mut args = vec!["inspect".to_string(), input.clone()];
            args.extend(extra.clone());
            self.add(&format!("{label}: inspect"), |_| args, must_name.clone());
        }
        if commands.denoise {
            let (model, output) = match modality {
                Modality::TwoPhoton => (&self.model, "denoised.h5"),
                Modality::Ephys => (&self.ephys_model, "denoised.bin"),
                Modality::Fmri => (&self.fmri_model, "denoised.nii.gz"),
            };
            let model = s(model).to_string();
            let (input, extra) = (input.clone(), extra.clone());
            self.add(
                &format!("{label}: denoise"),
                |out| {
                    let mut args = vec!["denoise".to_string(), input, "-o".into()];
                    args.push(s(&out.join(output)).to_string());
                    args.extend(["--model".to_string(), model]);
                    args.extend(extra);
                    args
                },
                must_name.clone(),
            );
        }
        if commands.train {
            let (input, extra) = (input.clone(), extra.clone());
            self.add(
                &format!("{label}: train"),
                |out| {
                    let mut args = vec!["train".to_string(), input, "-o".into()];
                    args.push(s(&out.join("m.dimodel")).to_string());
                    args.extend(Self::tiny_training(modality));
                    args.extend(extra);
                    args
                },
                must_name,
            );
        }
    }

    /// `train` on the valid movie with `flags` appended (they override the tiny settings).
    fn train_flags(&mut self, flags: &[&str], must_name: Vec<Vec<String>>) {
        let movie = s(&self.movie).to_string();
        let flags = strings(flags);
        self.add(
            &format!("train {}", flags.join(" ")),
            |out| {
                let mut args = vec!["train".to_string(), movie, "-o".into()];
                args.push(s(&out.join("m.dimodel")).to_string());
                args.extend(Self::tiny_training(Modality::TwoPhoton));
                args.extend(flags);
                args
            },
            must_name,
        );
    }

    /// `denoise` of the valid movie with the tiny model and `flags` appended.
    fn denoise_flags(&mut self, flags: &[&str], must_name: Vec<Vec<String>>) {
        let (movie, model) = (s(&self.movie).to_string(), s(&self.model).to_string());
        let flags = strings(flags);
        self.add(
            &format!("denoise {}", flags.join(" ")),
            |out| {
                let mut args = vec!["denoise".to_string(), movie, "-o".into()];
                args.push(s(&out.join("denoised.h5")).to_string());
                args.extend(["--model".to_string(), model]);
                args.extend(flags);
                args
            },
            must_name,
        );
    }

    /// `denoise` of the valid movie with `model` as the model.
    fn model_case(&mut self, label: &str, model: &Path, inspect: bool) {
        let name = file_name(model);
        let movie = s(&self.movie).to_string();
        let model = s(model).to_string();
        if inspect {
            let args = vec!["inspect".to_string(), model.clone()];
            self.add(&format!("{label}: inspect"), |_| args, vec![named(&name)]);
        }
        self.add(
            &format!("{label}: denoise"),
            |out| {
                let mut args = vec!["denoise".to_string(), movie, "-o".into()];
                args.push(s(&out.join("denoised.h5")).to_string());
                args.extend(["--model".to_string(), model]);
                args
            },
            vec![named(&name)],
        );
    }

    /// `export` and `finetune` of `model`: the other two commands that load a model.
    fn model_other_commands(&mut self, label: &str, model: &Path) {
        let name = file_name(model);
        let model = s(model).to_string();
        let copy = model.clone();
        self.add(
            &format!("{label}: export"),
            |out| {
                let output = s(&out.join("exported.h5")).to_string();
                vec!["export".into(), copy, "-o".into(), output]
            },
            vec![named(&name)],
        );
        let movie = s(&self.movie).to_string();
        self.add(
            &format!("{label}: finetune"),
            |out| {
                let mut args = vec!["finetune".to_string(), "--model".into(), model, movie];
                args.extend(["-o".to_string(), s(&out.join("tuned.dimodel")).to_string()]);
                args.extend(strings(&["--steps", "2", "--batch-size", "2"]));
                args
            },
            vec![named(&name)],
        );
    }

    /// `evaluate` with the hostile recording as both the noisy and the denoised one, so that
    /// their shapes agree and only reading it can fail.
    fn evaluate_case(&mut self, label: &str, recording: &Path) {
        // A SpikeGLX .bin's header is its .meta: either names the recording.
        let mut names = vec![file_name(recording)];
        if recording.extension().is_some_and(|e| e == "bin") {
            names.push(file_name(&recording.with_extension("meta")));
        }
        let (noisy, denoised) = (s(recording).to_string(), s(recording).to_string());
        self.add(
            &format!("{label}: evaluate"),
            |out| {
                let report = s(&out.join("report.json")).to_string();
                let mut args = vec!["evaluate".to_string(), "--noisy".into(), noisy];
                args.extend([
                    "--denoised".to_string(),
                    denoised,
                    "--report".into(),
                    report,
                ]);
                args
            },
            vec![names],
        );
    }

    /// `simulate ...` writing into the case's folder, with `flags` appended.
    fn simulate_flags(&mut self, kind: &str, flags: &[&str], must_name: Vec<Vec<String>>) {
        let flags = strings(flags);
        let kind = kind.to_string();
        self.add(
            &format!("simulate {kind} {}", flags.join(" ")),
            |out| {
                let (noisy, clean) = match kind.as_str() {
                    "2p" => ("sim.h5", "sim-clean.h5"),
                    "ephys" => ("sim.bin", "sim-clean.bin"),
                    _ => ("sim.nii.gz", "sim-clean.nii.gz"),
                };
                let mut args = vec!["simulate".to_string(), kind, "-o".into()];
                args.push(s(&out.join(noisy)).to_string());
                args.push("--clean".into());
                args.push(s(&out.join(clean)).to_string());
                args.extend(flags);
                args
            },
            must_name,
        );
    }
}

// ---------------------------------------------------------------------------
// Running one child.
// ---------------------------------------------------------------------------

/// Runs the binary with `args` under the budget, the address-space limit and the timeout,
/// its output redirected to files (no pipe to fill and block on).
fn run_limited(args: &[String], logs: &Path, index: usize) -> Outcome {
    let stdout_path = logs.join(format!("{index:03}.stdout"));
    let stderr_path = logs.join(format!("{index:03}.stderr"));
    let mut command = Command::new(env!("CARGO_BIN_EXE_deepinterp"));
    command
        .args(args)
        .env("DEEPINTERP_MEMORY_BUDGET", MEMORY_BUDGET)
        // glibc reserves 64 MiB of address space per malloc arena, up to 8 per core: capped,
        // the address-space limit means the same on a 2-core laptop and a 128-core server.
        .env("MALLOC_ARENA_MAX", "4")
        // A panic then reports itself the same short way on every machine.
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(|| {
            let address_space = libc::rlimit {
                rlim_cur: ADDRESS_SPACE_BYTES,
                rlim_max: ADDRESS_SPACE_BYTES,
            };
            // No core files from a case that aborts: the exit status says enough.
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &address_space) != 0
                || libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let start = Instant::now();
    let child = command.spawn().expect("the deepinterp binary starts");
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hung = false;
    loop {
        // SAFETY: pid is our own child, not yet reaped; status and usage are valid pointers.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        if reaped < 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "wait4 failed: {error}"
            );
            continue;
        }
        if start.elapsed() > CHILD_TIMEOUT {
            hung = true;
            // SAFETY: as above; the blocking wait reaps the killed child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                while libc::wait4(pid, &mut status, 0, &mut usage) < 0 {
                    let error = std::io::Error::last_os_error();
                    assert_eq!(
                        error.kind(),
                        std::io::ErrorKind::Interrupted,
                        "wait4: {error}"
                    );
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // `child` was reaped by wait4 above; dropping it neither waits nor kills.
    drop(child);
    let ending = if hung {
        Ending::Hung
    } else if libc::WIFEXITED(status) {
        Ending::Exited(libc::WEXITSTATUS(status))
    } else {
        Ending::Signalled(libc::WTERMSIG(status))
    };
    Outcome {
        ending,
        stderr: std::fs::read(&stderr_path).unwrap(),
        // ru_maxrss is in KiB on Linux.
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// What a path is, as far as "unchanged" goes: kind, and for files length and mtime.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Dir,
    File(u64, Option<SystemTime>),
    Other(u64, Option<SystemTime>),
}

/// Every path under `root` (not following links), relative to it.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<PathBuf, Entry>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            if meta.is_dir() {
                found.insert(relative, Entry::Dir);
                walk(root, &path, found);
            } else if meta.is_file() {
                found.insert(relative, Entry::File(meta.len(), meta.modified().ok()));
            } else {
                found.insert(relative, Entry::Other(meta.len(), meta.modified().ok()));
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(root, root, &mut found);
    found
}

/// Differences between two snapshots, as readable lines.
fn changes(before: &BTreeMap<PathBuf, Entry>, after: &BTreeMap<PathBuf, Entry>) -> Vec<String> {
    let mut found = Vec::new();
    for (path, entry) in after {
        match before.get(path) {
            None => found.push(format!("left {}", path.display())),
            Some(old) if old != entry => found.push(format!("modified {}", path.display())),
            _ => {}
        }
    }
    for path in before.keys().filter(|path| !after.contains_key(*path)) {
        found.push(format!("removed {}", path.display()));
    }
    found
}

/// The rules one outcome broke.
fn broken_rules(case: &Case, outcome: &Outcome) -> Vec<String> {
    let mut broken = Vec::new();
    match outcome.ending {
        Ending::Exited(1) => {}
        Ending::Exited(101) => broken.push("panicked (exit 101)".to_string()),
        Ending::Exited(code) => broken.push(format!("exit code {code}, expected 1")),
        Ending::Signalled(signal) => broken.push(format!("killed by signal {signal}")),
        Ending::Hung => broken.push(format!("still running after {CHILD_TIMEOUT:?}: killed")),
    }
    let text = match std::str::from_utf8(&outcome.stderr) {
        Ok(text) => text.to_string(),
        Err(_) => {
            broken.push("stderr is not UTF-8 (raw bytes echoed from a file)".to_string());
            String::from_utf8_lossy(&outcome.stderr).to_string()
        }
    };
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    if lines.len() != 1 {
        broken.push(format!(
            "{} non-empty stderr lines, expected 1",
            lines.len()
        ));
    }
    if let Some(line) = lines.first() {
        if !line.starts_with("error: ") {
            broken.push("the message does not start with 'error: '".to_string());
        }
        if line.chars().any(char::is_control) {
            broken.push("the message holds control characters".to_string());
        }
        if line.chars().count() > MAX_LINE_CHARS {
            broken.push(format!(
                "the message is {} characters long (at most {MAX_LINE_CHARS})",
                line.chars().count()
            ));
        }
        for group in &case.must_name {
            if !group.iter().any(|needle| line.contains(needle.as_str())) {
                broken.push(format!("the message does not name {}", group.join(" or ")));
            }
        }
        for word in &case.must_not {
            if line.contains(word.as_str()) {
                broken.push(format!("the message says '{word}', which is not the cause"));
            }
        }
    }
    if outcome.peak_rss_mib >= PEAK_RSS_LIMIT_MIB {
        broken.push(format!(
            "peak RSS {:.0} MiB (limit {PEAK_RSS_LIMIT_MIB} MiB)",
            outcome.peak_rss_mib
        ));
    }
    broken
}

/// The first `limit` characters of `text` with control characters escaped, for the report.
fn shown(text: &str, limit: usize) -> String {
    let mut shown: String = text.trim_end().escape_debug().collect();
    if shown.chars().count() > limit {
        shown = shown.chars().take(limit).collect::<String>() + "...";
    }
    shown
}

// ---------------------------------------------------------------------------
// Hostile files.
// ---------------------------------------------------------------------------

fn write_hdf5<T: rust_hdf5::H5Type + Clone>(path: &Path, name: &str, shape: &[usize], value: T) {
    let file = rust_hdf5::H5File::create(path).unwrap();
    let dataset = file.new_dataset::<T>().shape(shape).create(name).unwrap();
    dataset
        .write_raw(&vec![value; shape.iter().product()])
        .unwrap();
    file.close().unwrap();
}

/// An HDF5 file whose chunked `data` declares `shape` and holds no chunk at all.
fn write_sparse_hdf5(path: &Path, shape: &[usize], chunk: &[usize]) {
    let file = rust_hdf5::H5File::create(path).unwrap();
    // Resizable: an extensible chunk index, which the writer does not lay out in advance.
    file.new_dataset::<i16>()
        .shape(shape)
        .chunk(chunk)
        .resizable()
        .create("data")
        .unwrap();
    file.close().unwrap();
}

/// An HDF5 movie `data` [12, 64, 64] int16 in deflate-filtered chunks of 4 frames (32 KiB
/// each), every chunk stored as a zlib stream of 64 MiB of zeros (~64 KB on disk).
fn write_deflate_bomb_hdf5(path: &Path) {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
    let block = vec![0u8; 1 << 20];
    for _ in 0..64 {
        encoder.write_all(&block).unwrap();
    }
    let stream = encoder.finish().unwrap();
    let file = rust_hdf5::H5File::create(path).unwrap();
    let dataset = file
        .new_dataset::<i16>()
        .shape([12, 64, 64])
        .chunk(&[4, 64, 64])
        .deflate(6)
        .create("data")
        .unwrap();
    for chunk in 0..3 {
        dataset.write_chunk_raw(chunk, &stream, 0).unwrap();
    }
    file.close().unwrap();
}

/// A little-endian classic TIFF of `pages` uint16 grey pages, each one strip of
/// `strip_bytes` at `strip_offset` (or, when `None`, real zero pixels after the IFDs);
/// `self_loop` points the last page's next-IFD offset back at itself.
fn write_tiff(
    path: &Path,
    width: u32,
    height: u32,
    pages: usize,
    strip: Option<(u32, u32)>,
    self_loop: bool,
) {
    const ENTRIES: u16 = 9;
    let ifd_bytes = 2 + 12 * ENTRIES as u32 + 4;
    // Only used for real pixels (small pages); saturating for the lying ones.
    let pixels = (width as u64)
        .saturating_mul(height as u64)
        .saturating_mul(2);
    let mut bytes = b"II*\0".to_vec();
    bytes.extend_from_slice(&8u32.to_le_bytes());
    let data_start = 8 + ifd_bytes * pages as u32;
    for page in 0..pages as u32 {
        let here = 8 + ifd_bytes * page;
        let (offset, count) =
            strip.unwrap_or_else(|| (data_start + page * pixels as u32, pixels as u32));
        bytes.extend_from_slice(&ENTRIES.to_le_bytes());
        let mut entry = |tag: u16, kind: u16, value: u32| {
            bytes.extend_from_slice(&tag.to_le_bytes());
            bytes.extend_from_slice(&kind.to_le_bytes());
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        };
        const SHORT: u16 = 3;
        const LONG: u16 = 4;
        entry(256, LONG, width);
        entry(257, LONG, height);
        entry(258, SHORT, 16);
        entry(259, SHORT, 1);
        entry(262, SHORT, 1);
        entry(273, LONG, offset);
        entry(277, SHORT, 1);
        entry(278, LONG, height);
        entry(279, LONG, count);
        let last = page + 1 == pages as u32;
        let next = match (last, self_loop) {
            (false, _) => here + ifd_bytes,
            (true, true) => here,
            (true, false) => 0,
        };
        bytes.extend_from_slice(&next.to_le_bytes());
    }
    if strip.is_none() {
        bytes.resize(bytes.len() + pages * pixels as usize, 0);
    }
    std::fs::write(path, bytes).unwrap();
}

/// A NIfTI-1 header (with its 4-byte extension flag) for an int16 image of `dim`.
fn nifti1_header(dim: [i16; 8], vox_offset: f32) -> Vec<u8> {
    let mut header = vec![0u8; 352];
    header[0..4].copy_from_slice(&348i32.to_le_bytes());
    for (axis, side) in dim.iter().enumerate() {
        header[40 + 2 * axis..42 + 2 * axis].copy_from_slice(&side.to_le_bytes());
    }
    header[70..72].copy_from_slice(&4i16.to_le_bytes()); // DT_INT16
    header[72..74].copy_from_slice(&16i16.to_le_bytes());
    for axis in 0..8 {
        header[76 + 4 * axis..80 + 4 * axis].copy_from_slice(&1f32.to_le_bytes());
    }
    header[108..112].copy_from_slice(&vox_offset.to_le_bytes());
    header[344..348].copy_from_slice(b"n+1\0");
    header
}

/// A NIfTI-2 header (with its extension flag) for an int16 image of `dim`.
fn nifti2_header(dim: [i64; 8]) -> Vec<u8> {
    let mut header = vec![0u8; 544];
    header[0..4].copy_from_slice(&540i32.to_le_bytes());
    header[4..12].copy_from_slice(b"n+2\0\r\n\x1a\n");
    header[12..14].copy_from_slice(&4i16.to_le_bytes());
    header[14..16].copy_from_slice(&16i16.to_le_bytes());
    for (axis, side) in dim.iter().enumerate() {
        header[16 + 8 * axis..24 + 8 * axis].copy_from_slice(&side.to_le_bytes());
    }
    for axis in 0..8 {
        header[104 + 8 * axis..112 + 8 * axis].copy_from_slice(&1f64.to_le_bytes());
    }
    header[168..176].copy_from_slice(&544i64.to_le_bytes());
    header
}

/// Gzips `head` followed by `zeros` zero bytes (streamed: no buffer of that size).
fn write_gzip(path: &Path, head: &[u8], zeros: usize) {
    let mut encoder = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::best());
    encoder.write_all(head).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let take = left.min(block.len());
        encoder.write_all(&block[..take]).unwrap();
        left -= take;
    }
    encoder.finish().unwrap();
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Deterministic noise bytes (they do not compress, so a cut lands mid-stream).
fn noise(count: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..count)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// An Open Ephys legacy channel file: its 1024-byte header, then `records` records of
/// 1024 samples, then `extra` bytes of a cut-off record; the whole cut to `cut` bytes if set.
fn write_continuous(path: &Path, channel: usize, records: usize, cut: Option<usize>) {
    let mut header = format!(
        "header.format = 'Open Ephys Data Format';\nheader.version = 0.4;\n\
         header.header_bytes = 1024;\nheader.description = 'hostile test';\n\
         header.date_created = '27-Nov-2026 000000';\nheader.channel = 'CH{channel}';\n\
         header.channelType = 'Continuous';\nheader.sampleRate = 30000;\n\
         header.blockLength = 1024;\nheader.bufferSize = 1024;\nheader.bitVolts = 0.195;\n"
    )
    .into_bytes();
    header.resize(1024, b' ');
    let mut bytes = header;
    for record in 0..records {
        bytes.extend_from_slice(&(record as i64 * 1024).to_le_bytes());
        bytes.extend_from_slice(&1024u16.to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes());
        for sample in 0..1024 {
            let value = ((sample * 7 + channel * 13 + record) % 200) as i16 - 100;
            bytes.extend_from_slice(&value.to_be_bytes());
        }
        bytes.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 255]);
    }
    if let Some(cut) = cut {
        bytes.truncate(cut);
    }
    std::fs::write(path, bytes).unwrap();
}

/// A raw int16 interleaved file of `channels` x `samples`.
fn write_i16_file(path: &Path, channels: usize, samples: usize) {
    let bytes: Vec<u8> = (0..channels * samples)
        .flat_map(|i| (((i * 31) % 400) as i16 - 200).to_le_bytes())
        .collect();
    std::fs::write(path, bytes).unwrap();
}

/// `dir/structure.oebin` (from `stream`, the JSON of one continuous stream entry, or the
/// whole text when `raw`) with a valid 4-channel `continuous/S.0/continuous.dat`.
fn write_oebin(dir: &Path, stream: &str, raw: bool) -> PathBuf {
    let data_dir = dir.join("continuous").join("S.0");
    std::fs::create_dir_all(&data_dir).unwrap();
    write_i16_file(&data_dir.join("continuous.dat"), 4, 3000);
    let text = if raw {
        stream.to_string()
    } else {
        format!(
            r#"{{"GUI version": "0.6.4", "continuous": [{stream}], "events": [], "spikes": []}}"#
        )
    };
    let oebin = dir.join("structure.oebin");
    std::fs::write(&oebin, text).unwrap();
    oebin
}

/// A 4-channel stream entry with `fields` (JSON members) added.
fn oe_stream(fields: &str) -> String {
    let channels: Vec<String> = (1..=4)
        .map(|c| format!(r#"{{"channel_name": "CH{c}", "bit_volts": 0.195, "units": "uV"}}"#))
        .collect();
    format!(
        r#"{{"sample_rate": 30000.0, "source_processor_name": "Hostile", "channels": [{}], {fields}}}"#,
        channels.join(", ")
    )
}

fn mkfifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: name is a valid NUL-terminated path.
    let result = unsafe { libc::mkfifo(name.as_ptr(), 0o644) };
    assert_eq!(result, 0, "mkfifo {}", path.display());
}

/// A copy of a SpikeGLX pair as `<dir>/<name>.bin` + `.meta`, with the meta edited by
/// `edit` (over its raw bytes) and the .bin cut to `bin_bytes` if set.
fn spikeglx_variant(
    dir: &Path,
    source_bin: &Path,
    name: &str,
    edit: impl FnOnce(Vec<u8>) -> Vec<u8>,
    bin_bytes: Option<usize>,
) -> (PathBuf, PathBuf) {
    let bin = dir.join(format!("{name}.bin"));
    let meta = dir.join(format!("{name}.meta"));
    let mut data = std::fs::read(source_bin).unwrap();
    if let Some(length) = bin_bytes {
        data.truncate(length);
    }
    std::fs::write(&bin, &data).unwrap();
    let source_meta = std::fs::read(source_bin.with_extension("meta")).unwrap();
    std::fs::write(&meta, edit(source_meta)).unwrap();
    (bin, meta)
}

/// An edit of a `.meta` file's bytes.
type MetaEdit = Box<dyn FnOnce(Vec<u8>) -> Vec<u8>>;

/// A SpikeGLX case: its name, the edit of its meta, the length its .bin is cut to, and the
/// fields its message must name.
type MetaVariant = (&'static str, MetaEdit, Option<usize>, Vec<Vec<String>>);

/// The meta text with the value of `key` replaced.
fn set_meta(text: Vec<u8>, key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut found = false;
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let is_key = line.starts_with(key.as_bytes()) && line.get(key.len()) == Some(&b'=');
        if is_key {
            found = true;
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value);
        } else {
            out.extend_from_slice(line);
        }
        out.push(b'\n');
    }
    assert!(found, "the simulated meta has {key}");
    out
}

/// Our model file split into (magic, JSON, weights).
fn model_parts(bytes: &[u8]) -> (usize, usize) {
    let magic = b"DEEPINTERP-MODEL\n".len();
    let json_len = u64::from_le_bytes(bytes[magic..magic + 8].try_into().unwrap()) as usize;
    (magic + 8, magic + 8 + json_len)
}

/// A Keras `model_config`: a 512x512x60 input feeding `layer` (JSON), the output `output`.
fn keras_config(layer: &str, output: &str) -> String {
    format!(
        r#"{{"class_name": "Functional", "config": {{"name": "m", "layers": [
            {{"class_name": "InputLayer", "name": "input_1",
              "config": {{"name": "input_1", "batch_input_shape": [null, 512, 512, 60]}},
              "inbound_nodes": []}},
            {layer}],
            "input_layers": [["input_1", 0, 0]], "output_layers": [["{output}", 0, 0]]}}}}"#
    )
}

/// A model file with the same weights and `json` as its header.
fn with_header(bytes: &[u8], json: &str) -> Vec<u8> {
    let (json_start, json_end) = model_parts(bytes);
    let mut out = bytes[..json_start - 8].to_vec();
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&bytes[json_end..]);
    out
}

// ---------------------------------------------------------------------------
// The suite.
// ---------------------------------------------------------------------------

fn build_cases(suite: &mut Suite) {
    let root = suite.root.clone();
    let inputs = root.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    let at = |name: &str| inputs.join(name);

    // --- HDF5 movies -------------------------------------------------------------------
    let huge = at("huge_sparse.h5");
    write_sparse_hdf5(&huge, &[100_000, 100_000, 100_000], &[1, 256, 256]);
    let name = vec![named("huge_sparse.h5")];
    suite.recording(
        "hdf5 100000^3 chunked, no chunk",
        &huge,
        Modality::TwoPhoton,
        READERS,
        &[],
        name,
    );

    let inflating = at("deflate_bomb.h5");
    write_deflate_bomb_hdf5(&inflating);
    let name = vec![named("deflate_bomb.h5")];
    suite.recording(
        "hdf5 chunks inflating to 64 MiB each",
        &inflating,
        Modality::TwoPhoton,
        READERS,
        &[],
        name,
    );

    let flat = at("flat.h5");
    write_hdf5(&flat, "data", &[10, 8], 1i16);
    suite.recording(
        "hdf5 2-D data",
        &flat,
        Modality::TwoPhoton,
        ALL,
        &[],
        vec![named("flat.h5")],
    );

    let no_data = at("no_data.h5");
    write_hdf5(&no_data, "movie", &[10, 8, 8], 1i16);
    let name = vec![named("no_data.h5")];
    suite.recording(
        "hdf5 without data",
        &no_data,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let group = at("data_is_group.h5");
    let file = rust_hdf5::H5File::create(&group).unwrap();
    file.create_group("data").unwrap();
    file.close().unwrap();
    let name = vec![named("data_is_group.h5")];
    suite.recording(
        "hdf5 data is a group",
        &group,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let truncated = at("truncated.h5");
    let bytes = std::fs::read(&suite.movie).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let name = vec![named("truncated.h5")];
    suite.recording(
        "hdf5 truncated",
        &truncated,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let header_only = at("header_only.h5");
    std::fs::write(&header_only, &bytes[..bytes.len().min(600)]).unwrap();
    let name = vec![named("header_only.h5")];
    suite.recording(
        "hdf5 cut after 600 bytes",
        &header_only,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let empty = at("empty.h5");
    std::fs::write(&empty, b"").unwrap();
    suite.recording(
        "hdf5 empty",
        &empty,
        Modality::TwoPhoton,
        ALL,
        &[],
        vec![named("empty.h5")],
    );

    let text = at("text.h5");
    std::fs::write(&text, "this is a note, not an HDF5 file\n").unwrap();
    suite.recording(
        "hdf5 text",
        &text,
        Modality::TwoPhoton,
        ALL,
        &[],
        vec![named("text.h5")],
    );

    // --- TIFF ----------------------------------------------------------------------------
    let big = at("big_100k.tif");
    write_tiff(&big, 100_000, 100_000, 12, Some((8, u32::MAX)), false);
    let name = vec![named("big_100k.tif")];
    suite.recording(
        "tiff 100000x100000",
        &big,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let max = at("u32max.tif");
    write_tiff(&max, u32::MAX, u32::MAX, 12, Some((8, u32::MAX)), false);
    let name = vec![named("u32max.tif")];
    suite.recording(
        "tiff 4294967295^2",
        &max,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let past = at("strips_past_end.tif");
    write_tiff(&past, 8, 8, 12, Some((10_000_000, 128)), false);
    let name = vec![named("strips_past_end.tif")];
    suite.recording(
        "tiff strips past the end",
        &past,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let looped = at("ifd_loop.tif");
    write_tiff(&looped, 8, 8, 3, None, true);
    let name = vec![named("ifd_loop.tif")];
    suite.recording(
        "tiff IFD chain loops",
        &looped,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    let lost = at("ifd_past_end.tif");
    let mut bytes = b"II*\0".to_vec();
    bytes.extend_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    std::fs::write(&lost, bytes).unwrap();
    let name = vec![named("ifd_past_end.tif")];
    suite.recording(
        "tiff first IFD past the end",
        &lost,
        Modality::TwoPhoton,
        ALL,
        &[],
        name,
    );

    // --- NIfTI ---------------------------------------------------------------------------
    let huge_dims = [4, 32767, 32767, 32767, 32767, 1, 1, 1];
    let nii = at("huge_dims.nii");
    let mut bytes = nifti1_header(huge_dims, 352.0);
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&nii, &bytes).unwrap();
    let name = vec![named("huge_dims.nii")];
    suite.recording("nii huge dims", &nii, Modality::Fmri, ALL, &[], name);

    let nii_gz = at("huge_dims.nii.gz");
    std::fs::write(&nii_gz, gzip_bytes(&bytes)).unwrap();
    let name = vec![named("huge_dims.nii.gz")];
    suite.recording(
        "nii.gz huge dims",
        &nii_gz,
        Modality::Fmri,
        READERS,
        &[],
        name,
    );

    // ~65 KB of gzip declaring 4096x4096x256x2 int16 (8 GiB) and inflating to 64 MiB.
    let bomb = at("bomb.nii.gz");
    write_gzip(
        &bomb,
        &nifti1_header([4, 4096, 4096, 256, 2, 1, 1, 1], 352.0),
        64 << 20,
    );
    let name = vec![named("bomb.nii.gz")];
    suite.recording(
        "nii.gz bomb 4096x4096x256x2",
        &bomb,
        Modality::Fmri,
        READERS,
        &[],
        name,
    );

    // vox_offset at the 256 MiB the reader allows, then zeros and no data: the extension
    // bytes are inflated from a few hundred KB.
    let offset_bomb = at("offset_bomb.nii.gz");
    write_gzip(
        &offset_bomb,
        &nifti1_header([4, 4, 4, 4, 2, 1, 1, 1], 268_435_456.0),
        256 << 20,
    );
    let name = vec![named("offset_bomb.nii.gz")];
    suite.recording(
        "nii.gz vox_offset 256 MiB of zeros",
        &offset_bomb,
        Modality::Fmri,
        READERS,
        &[],
        name,
    );

    let cut = at("cut.nii.gz");
    let mut image = nifti1_header([4, 8, 8, 4, 10, 1, 1, 1], 352.0);
    image.extend(noise(8 * 8 * 4 * 10 * 2));
    let gz = gzip_bytes(&image);
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    suite.recording(
        "nii.gz cut mid-stream",
        &cut,
        Modality::Fmri,
        READERS,
        &[],
        vec![named("cut.nii.gz")],
    );

    for (label, file, dim) in [
        (
            "nii negative dim",
            "negative_dim.nii",
            [4, 8, -8, 4, 10, 1, 1, 1],
        ),
        ("nii zero dim", "zero_dim.nii", [4, 8, 8, 0, 10, 1, 1, 1]),
    ] {
        let path = at(file);
        let mut bytes = nifti1_header(dim, 352.0);
        bytes.extend(vec![0u8; 8 * 8 * 4 * 10 * 2]);
        std::fs::write(&path, bytes).unwrap();
        suite.recording(label, &path, Modality::Fmri, ALL, &[], vec![named(file)]);
    }

    let nan_offset = at("nan_offset.nii");
    let mut bytes = nifti1_header([4, 8, 8, 4, 10, 1, 1, 1], f32::NAN);
    bytes.extend(vec![0u8; 8 * 8 * 4 * 10 * 2]);
    std::fs::write(&nan_offset, bytes).unwrap();
    let must = vec![named("nan_offset.nii"), named("vox_offset")];
    suite.recording(
        "nii vox_offset NaN",
        &nan_offset,
        Modality::Fmri,
        ALL,
        &[],
        must,
    );

    let not_gzip = at("text.nii.gz");
    std::fs::write(&not_gzip, "a note, not a gzip stream\n").unwrap();
    let must = vec![named("text.nii.gz")];
    suite.recording(
        "nii.gz that is text",
        &not_gzip,
        Modality::Fmri,
        ALL,
        &[],
        must,
    );

    let nifti2 = at("huge_dims_v2.nii");
    let mut bytes = nifti2_header([4, 1 << 40, 1 << 40, 1 << 40, 1 << 40, 1, 1, 1]);
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&nifti2, bytes).unwrap();
    let name = vec![named("huge_dims_v2.nii")];
    suite.recording(
        "nifti-2 dims 2^40 each",
        &nifti2,
        Modality::Fmri,
        ALL,
        &[],
        name,
    );

    // --- SpikeGLX ------------------------------------------------------------------------
    let glx = root.join("spikeglx");
    std::fs::create_dir_all(&glx).unwrap();
    let source = root.join("base").join("rec.bin");
    let variants: Vec<MetaVariant> = vec![
        (
            "saved_chans",
            Box::new(|m| set_meta(m, "nSavedChans", b"9223372036855930808")),
            None,
            vec![flag("nSavedChans")],
        ),
        (
            "zero_saved_chans",
            Box::new(|m| set_meta(m, "nSavedChans", b"0")),
            None,
            vec![flag("nSavedChans")],
        ),
        (
            "zero_gains",
            Box::new(|m| {
                let text = String::from_utf8(m).unwrap().replace(" 500 250 ", " 0 0 ");
                text.into_bytes()
            }),
            None,
            vec![vec!["gain".into(), "Gain".into(), "imroTbl".into()]],
        ),
        (
            "zero_range",
            Box::new(|m| set_meta(m, "imAiRangeMax", b"0")),
            None,
            vec![flag("imAiRangeMax")],
        ),
        (
            "zero_max_int",
            Box::new(|m| set_meta(m, "imMaxInt", b"0")),
            None,
            vec![flag("imMaxInt")],
        ),
        (
            // More sync channels than saved channels: neural = saved - sync must not wrap.
            "huge_sync_count",
            Box::new(|m| set_meta(m, "snsApLfSy", b"384,0,9223372036854775807")),
            None,
            vec![flag("snsApLfSy")],
        ),
        (
            "nan_rate",
            Box::new(|m| set_meta(m, "imSampRate", b"nan")),
            None,
            vec![flag("imSampRate")],
        ),
        (
            "escape_line",
            Box::new(|mut m| {
                m.extend_from_slice(b"\x1b[31mhostile \xff\xfe line\x1b[0m\n");
                m
            }),
            None,
            vec![],
        ),
        (
            "escape_value",
            Box::new(|m| set_meta(m, "imSampRate", b"\x1b[31m30000\xff")),
            None,
            vec![flag("imSampRate")],
        ),
        (
            "short_bin",
            Box::new(|m| set_meta(m, "fileSizeBytes", b"3")),
            Some(3),
            vec![],
        ),
    ];
    for (name, edit, bin_bytes, fields) in variants {
        let (bin, _) = spikeglx_variant(&glx, &source, name, edit, bin_bytes);
        let mut must = vec![vec![format!("{name}.bin"), format!("{name}.meta")]];
        must.extend(fields);
        suite.recording(
            &format!("spikeglx {name}"),
            &bin,
            Modality::Ephys,
            ALL,
            &[],
            must,
        );
    }

    // --- raw .dat ------------------------------------------------------------------------
    let raw = at("raw.dat");
    write_i16_file(&raw, 4, 250);
    let channels_flag = |label: &str| vec![vec!["raw.dat".to_string(), label.to_string()]];
    suite.recording(
        "raw --channels 9223372036855927808",
        &raw,
        Modality::Ephys,
        ALL,
        &["--channels", "9223372036855927808"],
        channels_flag("--channels"),
    );
    suite.recording(
        "raw --channels 0",
        &raw,
        Modality::Ephys,
        ALL,
        &["--channels", "0"],
        channels_flag("--channels"),
    );
    suite.recording(
        "raw --sample-rate nan",
        &raw,
        Modality::Ephys,
        ALL,
        &["--channels", "4", "--sample-rate", "nan"],
        channels_flag("--sample-rate"),
    );

    // --- Open Ephys binary ---------------------------------------------------------------
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_i16_file(&elsewhere.join("continuous.dat"), 4, 3000);
    let json_string = |text: &str| serde_json::to_string(text).unwrap();
    let oe_cases: Vec<(&str, String, bool, Vec<Vec<String>>)> = vec![
        (
            "oe_absolute",
            oe_stream(&format!(r#""num_channels": 4, "folder_name": {}"#, json_string(s(&elsewhere)))),
            false,
            vec![flag("folder_name")],
        ),
        (
            "oe_dotdot",
            oe_stream(r#""num_channels": 4, "folder_name": "../../elsewhere/""#),
            false,
            vec![flag("folder_name")],
        ),
        (
            "oe_data_file",
            oe_stream(&format!(
                r#""num_channels": 4, "folder_name": "S.0/", "deepinterp_data_file": {}"#,
                json_string(s(&elsewhere.join("continuous.dat")))
            )),
            false,
            vec![flag("deepinterp_data_file")],
        ),
        (
            "oe_malformed",
            r#"{"continuous": [{"folder_name": "S.0/", "sample_rate": 30000.0, "num_chan"#.to_string(),
            true,
            vec![],
        ),
        (
            "oe_huge_channels",
            r#"{"continuous": [{"folder_name": "S.0/", "sample_rate": 30000.0, "num_channels": 9223372036854775807}]}"#
                .to_string(),
            true,
            vec![flag("num_channels")],
        ),
        (
            "oe_escape_folder",
            oe_stream(r#""num_channels": 4, "folder_name": "S\u001b[31m.0/""#),
            false,
            vec![],
        ),
    ];
    for (name, stream, raw_text, fields) in oe_cases {
        let dir = root.join(name);
        let oebin = write_oebin(&dir, &stream, raw_text);
        let mut must = vec![named(name), named("structure.oebin")];
        must.extend(fields);
        suite.recording(
            &format!("open ephys {name}"),
            &oebin,
            Modality::Ephys,
            ALL,
            &[],
            must,
        );
    }

    // --- Open Ephys legacy ---------------------------------------------------------------
    for (name, cut) in [
        ("legacy_ch2_header_cut", 100),
        ("legacy_ch2_record_cut", 1024 + 1035),
    ] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for channel in 1..=4 {
            let path = dir.join(format!("100_CH{channel}.continuous"));
            write_continuous(&path, channel, 8, (channel == 2).then_some(cut));
        }
        let must = vec![named("CH2.continuous")];
        suite.recording(
            &format!("open ephys {name}"),
            &dir,
            Modality::Ephys,
            ALL,
            &[],
            must,
        );
    }

    for (name, key, value) in [
        ("legacy_block_length", "blockLength", "1000000000"),
        ("legacy_header_bytes", "header_bytes", "1000000000"),
    ] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for channel in 1..=4 {
            let path = dir.join(format!("100_CH{channel}.continuous"));
            write_continuous(&path, channel, 8, None);
            // The header's space padding absorbs the longer value: it stays 1024 bytes.
            let bytes = std::fs::read(&path).unwrap();
            let (head, records) = bytes.split_at(1024);
            let head = String::from_utf8(head.to_vec()).unwrap();
            let from = format!("header.{key} = 1024;");
            let to = format!("header.{key} = {value};");
            assert!(head.contains(&from));
            let mut head = head.replace(&from, &to).into_bytes();
            head.truncate(1024);
            std::fs::write(&path, [head.as_slice(), records].concat()).unwrap();
        }
        let must = vec![named("CH1.continuous"), named(key)];
        suite.recording(
            &format!("open ephys {name}"),
            &dir,
            Modality::Ephys,
            ALL,
            &[],
            must,
        );
    }

    // --- Models --------------------------------------------------------------------------
    let models = root.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let good = std::fs::read(&suite.model).unwrap();
    let (json_start, json_end) = model_parts(&good);

    let mut bytes = good.clone();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    let flipped_weight = models.join("flipped_weight.dimodel");
    std::fs::write(&flipped_weight, &bytes).unwrap();
    suite.model_case("model one weight byte flipped", &flipped_weight, true);

    let mut bytes = good.clone();
    let middle = (json_start + json_end) / 2;
    bytes[middle] ^= 0x01;
    let flipped_header = models.join("flipped_header.dimodel");
    std::fs::write(&flipped_header, &bytes).unwrap();
    suite.model_case("model one header byte flipped", &flipped_header, true);

    let truncated_model = models.join("truncated.dimodel");
    std::fs::write(
        &truncated_model,
        &good[..json_end + (good.len() - json_end) / 2],
    )
    .unwrap();
    suite.model_case("model truncated", &truncated_model, true);

    let mut bytes = good.clone();
    bytes[json_end..json_end + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let nan_model = models.join("nan_weight.dimodel");
    std::fs::write(&nan_model, &bytes).unwrap();
    suite.model_case("model with a NaN weight", &nan_model, true);

    let mut bytes = good.clone();
    bytes[json_start - 8..json_start].copy_from_slice(&u64::MAX.to_le_bytes());
    let huge_len = models.join("header_length_max.dimodel");
    std::fs::write(&huge_len, &bytes).unwrap();
    suite.model_case("model header length u64::MAX", &huge_len, true);

    // Shapes whose element count overflows 64 bits, consistent with the spec.
    let json = std::str::from_utf8(&good[json_start..json_end]).unwrap();
    let mut header: serde_json::Value = serde_json::from_str(json).unwrap();
    let giant = 1u64 << 32;
    header["spec"]["network"]["in_channels"] = giant.into();
    header["spec"]["network"]["encoder_widths"] = serde_json::json!([giant]);
    header["arrays"][0]["shape"] = serde_json::json!([giant, giant, 3, 3]);
    header["arrays"][1]["shape"] = serde_json::json!([giant]);
    let overflow = models.join("overflowing_shapes.dimodel");
    std::fs::write(&overflow, with_header(&good, &header.to_string())).unwrap();
    suite.model_case("model shapes overflowing u64", &overflow, true);

    let deep = models.join("deep_header.dimodel");
    let nested = "[".repeat(100_000) + &"]".repeat(100_000);
    std::fs::write(&deep, with_header(&good, &nested)).unwrap();
    suite.model_case("model header nested 100000 deep", &deep, true);

    let empty_model = models.join("empty.dimodel");
    std::fs::write(&empty_model, b"").unwrap();
    suite.model_case("model empty", &empty_model, true);

    let movie_as_keras = models.join("movie_not_keras.h5");
    write_hdf5(&movie_as_keras, "data", &[10, 8, 8], 1i16);
    suite.model_case("keras .h5 that is a movie", &movie_as_keras, false);

    let keras_cases = [
        ("keras_config_not_json.h5", "{".to_string()),
        (
            "keras_config_deep.h5",
            "[".repeat(100_000) + &"]".repeat(100_000),
        ),
        (
            "keras_escape_class.h5",
            keras_config(
                r#"{"class_name": "\u001b[31mEvil", "name": "e\u001b[0m",
                    "config": {"name": "e\u001b[0m"}, "inbound_nodes": [[["input_1", 0, 0, {}]]]}"#,
                "e\\u001b[0m",
            ),
        ),
        (
            "keras_huge_filters.h5",
            keras_config(
                r#"{"class_name": "Conv2D", "name": "c",
                    "config": {"name": "c", "filters": 1000000000, "kernel_size": [3, 3],
                               "strides": [1, 1], "dilation_rate": [1, 1], "padding": "same",
                               "data_format": "channels_last", "activation": "relu",
                               "use_bias": true},
                    "inbound_nodes": [[["input_1", 0, 0, {}]]]}"#,
                "c",
            ),
        ),
    ];
    for (name, config) in keras_cases {
        let path = models.join(name);
        let file = rust_hdf5::H5File::create(&path).unwrap();
        file.set_attr_string("backend", "tensorflow").unwrap();
        file.set_attr_string("keras_version", "2.2.4").unwrap();
        file.set_attr_string("model_config", &config).unwrap();
        // An empty weights group without `layer_names`: the layer order comes from the config.
        file.create_group("model_weights").unwrap();
        file.close().unwrap();
        suite.model_case(&format!("keras {name}"), &path, true);
    }

    for (label, model) in [
        ("model one weight byte flipped", &flipped_weight),
        ("model with a NaN weight", &nan_model),
        ("model truncated", &truncated_model),
        ("model shapes overflowing u64", &overflow),
        ("model header nested 100000 deep", &deep),
        ("keras .h5 that is a movie", &movie_as_keras),
    ] {
        suite.model_other_commands(label, model);
    }

    let text_as_keras = models.join("text_not_keras.h5");
    std::fs::write(&text_as_keras, "not a keras model\n").unwrap();
    suite.model_case("keras .h5 that is text", &text_as_keras, false);

    // --- evaluate reads recordings too ------------------------------------------------
    for (label, recording) in [
        ("hdf5 100000^3 chunked, no chunk", &huge),
        ("tiff 100000x100000", &big),
        ("tiff 4294967295^2", &max),
        ("nii.gz bomb 4096x4096x256x2", &bomb),
        ("nii huge dims", &nii),
        ("spikeglx saved_chans", &glx.join("saved_chans.bin")),
    ] {
        suite.evaluate_case(label, recording);
    }

    // --- Flags ---------------------------------------------------------------------------
    suite.train_flags(
        &["--omitted-frames", "18446744073709551615"],
        vec![flag("omitted-frames")],
    );
    suite.train_flags(
        &["--omitted-frames", "9223372036854775808"],
        vec![flag("omitted-frames")],
    );
    suite.train_flags(
        &["--pre-frames", "18446744073709551615"],
        vec![flag("pre-frames")],
    );
    suite.train_flags(&["--learning-rate", "-1"], vec![flag("learning-rate")]);
    suite.train_flags(&["--learning-rate=-1"], vec![flag("learning-rate")]);
    suite.train_flags(&["--learning-rate", "nan"], vec![flag("learning-rate")]);
    suite.train_flags(&["--learning-rate", "inf"], vec![flag("learning-rate")]);
    suite.train_flags(&["--max-minutes", "nan"], vec![flag("max-minutes")]);
    suite.train_flags(
        &["--validation-fraction", "1"],
        vec![flag("validation-fraction")],
    );
    suite.train_flags(
        &["--validation-fraction", "nan"],
        vec![flag("validation-fraction")],
    );
    suite.train_flags(&["--steps", "0"], vec![flag("steps")]);
    suite.train_flags(&["--steps-per-epoch", "0"], vec![flag("steps-per-epoch")]);
    suite.train_flags(&["--patch-size", "4096"], vec![flag("patch-size")]);
    suite.train_flags(
        &["--arch", "unet-d1-w100000"],
        vec![vec![
            "--arch".into(),
            "arch".into(),
            "unet-d1-w100000".into(),
        ]],
    );
    suite.train_flags(
        &["--arch", "unet-d64-w4"],
        vec![vec!["--arch".into(), "arch".into(), "unet-d64-w4".into()]],
    );
    suite.train_flags(&["--batch-size", "100000000"], vec![flag("batch-size")]);
    suite.train_flags(
        &["--validation-samples", "100000000000"],
        vec![flag("validation-samples")],
    );

    suite.denoise_flags(
        &["--mode", "parity"],
        vec![vec!["--mode".into(), "parity".into()]],
    );
    suite.denoise_flags(&["--batch-size", "100000000"], vec![flag("batch-size")]);
    suite.denoise_flags(
        &["--start-frame", "18446744073709551615"],
        vec![flag("start-frame")],
    );
    suite.denoise_flags(
        &["--start-frame", "30", "--end-frame", "10"],
        vec![vec!["--start-frame".into(), "--end-frame".into()]],
    );

    let small = ["--frames", "20", "--height", "16", "--width", "16"];
    let mut flags = small.to_vec();
    flags.extend(["--neurons", "1000000000"]);
    suite.simulate_flags("2p", &flags, vec![flag("neurons")]);
    suite.simulate_flags(
        "2p",
        &[
            "--frames",
            "20",
            "--height",
            "100000000",
            "--width",
            "100000000",
        ],
        vec![vec!["--height".into(), "--width".into()]],
    );
    let mut flags = small.to_vec();
    flags.extend(["--photons", "nan"]);
    suite.simulate_flags("2p", &flags, vec![flag("photons")]);
    suite.simulate_flags("ephys", &["--duration", "1e12"], vec![flag("duration")]);
    suite.simulate_flags("ephys", &["--duration", "nan"], vec![flag("duration")]);
    suite.simulate_flags(
        "ephys",
        &["--duration", "0.01", "--channels", "100000000000"],
        vec![flag("channels")],
    );
    suite.simulate_flags(
        "fmri",
        &["--shape", "100000,100000,100000,100000"],
        vec![flag("shape")],
    );

    // --- Config files --------------------------------------------------------------------
    let configs = root.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let unknown = configs.join("unknown_key.toml");
    std::fs::write(&unknown, "learning_rate = 0.001\nlearnin_rate = 0.1\n").unwrap();
    suite.train_flags(
        &["--config", s(&unknown)],
        vec![named("unknown_key.toml"), named("learnin_rate")],
    );
    let nan = configs.join("nan_rate.toml");
    std::fs::write(&nan, "learning_rate = nan\n").unwrap();
    suite.train_flags(
        &["--config", s(&nan)],
        vec![vec![
            "nan_rate.toml".into(),
            "learning_rate".into(),
            "learning-rate".into(),
        ]],
    );
    let escape = configs.join("escape_key.toml");
    std::fs::write(&escape, "\"\\u001b[31mred\" = 1\n").unwrap();
    suite.train_flags(&["--config", s(&escape)], vec![named("escape_key.toml")]);
    let huge_config = configs.join("huge.toml");
    let mut text = String::with_capacity(50 << 20);
    // `loss` is not among the tiny training flags, so the file's value is the one used.
    text.push_str("loss = \"");
    text.extend(std::iter::repeat_n('A', 50 << 20));
    text.push_str("\"\n");
    std::fs::write(&huge_config, text).unwrap();
    suite.train_flags(&["--config", s(&huge_config)], vec![named("huge.toml")]);

    // --- Paths ---------------------------------------------------------------------------
    let paths = root.join("paths");
    let special_files = suite.cases.len();
    let fifo = paths.join("fifo").join("movie.h5");
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    mkfifo(&fifo);
    // Each command that blocks on a FIFO costs the whole timeout: two readers are enough.
    let no_train = Commands {
        inspect: true,
        denoise: true,
        train: false,
    };
    let must = vec![named("movie.h5")];
    suite.recording(
        "a FIFO named movie.h5",
        &fifo,
        Modality::TwoPhoton,
        no_train,
        &[],
        must,
    );

    let fifo_nii = paths.join("fifo").join("run.nii.gz");
    mkfifo(&fifo_nii);
    let must = vec![named("run.nii.gz")];
    let denoise_only = Commands {
        inspect: false,
        denoise: true,
        train: false,
    };
    suite.recording(
        "a FIFO named run.nii.gz",
        &fifo_nii,
        Modality::Fmri,
        denoise_only,
        &[],
        must,
    );

    let fifo_model = paths.join("fifo").join("model.dimodel");
    mkfifo(&fifo_model);
    suite.model_case("a FIFO as the model", &fifo_model, false);

    let fifo_config = paths.join("fifo").join("config.toml");
    mkfifo(&fifo_config);
    suite.train_flags(&["--config", s(&fifo_config)], vec![named("config.toml")]);

    let zero = paths.join("zero").join("movie.h5");
    std::fs::create_dir_all(zero.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let must = vec![named("movie.h5")];
    suite.recording(
        "/dev/zero named movie.h5",
        &zero,
        Modality::TwoPhoton,
        ALL,
        &[],
        must,
    );

    let zero_raw = paths.join("zero").join("raw.dat");
    std::os::unix::fs::symlink("/dev/zero", &zero_raw).unwrap();
    let must = vec![named("raw.dat")];
    suite.recording(
        "/dev/zero named raw.dat",
        &zero_raw,
        Modality::Ephys,
        ALL,
        &["--channels", "4"],
        must,
    );

    let zero_model = paths.join("zero").join("model.dimodel");
    std::os::unix::fs::symlink("/dev/zero", &zero_model).unwrap();
    suite.model_case("/dev/zero as the model", &zero_model, true);

    let zero_config = paths.join("zero").join("config.toml");
    std::os::unix::fs::symlink("/dev/zero", &zero_config).unwrap();
    suite.train_flags(&["--config", s(&zero_config)], vec![named("config.toml")]);

    // A FIFO or a device is not a directory: saying so sends the user looking for the wrong
    // problem.
    suite.forbid_since(special_files, &["directory"]);

    let directory = paths.join("dir").join("movie.h5");
    std::fs::create_dir_all(&directory).unwrap();
    let must = vec![named("movie.h5")];
    suite.recording(
        "a directory named movie.h5",
        &directory,
        Modality::TwoPhoton,
        ALL,
        &[],
        must,
    );

    let missing = paths.join("missing").join("movie.h5");
    std::fs::create_dir_all(missing.parent().unwrap()).unwrap();
    let must = vec![named("movie.h5")];
    suite.recording(
        "a missing movie.h5",
        &missing,
        Modality::TwoPhoton,
        ALL,
        &[],
        must,
    );

    // A name holding a terminal escape: echoed, it must be escaped.
    let escaped = paths.join("missing").join("mov\x1b[31mie.h5");
    let must = vec![named("ie.h5")];
    suite.recording(
        "a missing file named with ESC",
        &escaped,
        Modality::TwoPhoton,
        ALL,
        &[],
        must,
    );
}

#[test]
fn hostile_inputs_get_one_clean_line_bounded_memory_and_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let base = root.join("base");
    std::fs::create_dir_all(&base).unwrap();

    // The valid inputs cases reuse: a 32x32 movie with a tiny model, a short SpikeGLX
    // recording with a tiny probe-grid model, and the original's fMRI model.
    let (movie, _) = simulate(&base, 40, 32, 1);
    let model = tiny_model(&base, &movie, "tiny.dimodel", &[]);
    let rec = base.join("rec.bin");
    common::run_ok(&[
        "simulate",
        "ephys",
        "-o",
        s(&rec),
        "--clean",
        s(&base.join("rec-clean.bin")),
        "--duration",
        "0.05",
        "--seed",
        "1",
    ]);
    let ephys_settings = [
        "--arch",
        "unet-ephys-d1-w4",
        "--pre-frames",
        "4",
        "--post-frames",
        "4",
        "--batch-size",
        "4",
        "--validation-samples",
        "4",
    ];
    let ephys_model = train_briefly(&base, &rec, "ephys.dimodel", &ephys_settings, &[]);
    let mut suite = Suite {
        root: root.clone(),
        logs: logs.path().to_path_buf(),
        cases: Vec::new(),
        movie,
        model,
        ephys_model,
        fmri_model: fixture("keras/model_fmri_unet_denoiser.h5"),
    };

    // The harness itself: a valid run under the same limits succeeds, so the limits do not
    // break normal work, and its RSS is measured.
    let control_out = root.join("control");
    std::fs::create_dir_all(&control_out).unwrap();
    let control_args = vec![
        "denoise".to_string(),
        s(&suite.movie).to_string(),
        "-o".into(),
        s(&control_out.join("denoised.h5")).to_string(),
        "--model".into(),
        s(&suite.model).to_string(),
    ];
    let control = run_limited(&control_args, &suite.logs, 999);
    assert_eq!(
        control.ending,
        Ending::Exited(0),
        "a valid denoise fails under the limits: {}",
        String::from_utf8_lossy(&control.stderr)
    );
    assert!(
        control.peak_rss_mib > 1.0 && control.peak_rss_mib < PEAK_RSS_LIMIT_MIB,
        "control peak RSS {} MiB",
        control.peak_rss_mib
    );
    println!(
        "control: valid denoise, peak RSS {:.0} MiB",
        control.peak_rss_mib
    );

    build_cases(&mut suite);

    let mut failures = Vec::new();
    let (mut panics, mut aborts) = (0, 0);
    let mut largest = (0.0f64, String::new());
    let started = Instant::now();
    for (index, case) in suite.cases.iter().enumerate() {
        let before = snapshot(&root);
        let outcome = run_limited(&case.args, &suite.logs, index);
        let after = snapshot(&root);
        let mut broken = broken_rules(case, &outcome);
        broken.extend(changes(&before, &after));
        if let Ok(entries) = std::fs::read_dir(&case.out) {
            // Clean up whatever a failing case wrote, so later cases start from the same tree.
            for entry in entries {
                let path = entry.unwrap().path();
                let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
            }
        }
        match outcome.ending {
            Ending::Exited(101) => panics += 1,
            Ending::Exited(134) | Ending::Signalled(libc::SIGABRT) => aborts += 1,
            _ => {}
        }
        if outcome.peak_rss_mib > largest.0 {
            largest = (outcome.peak_rss_mib, case.name.clone());
        }
        let stderr = String::from_utf8_lossy(&outcome.stderr).to_string();
        println!(
            "{:<3} {:<58} {:<12} {:>6.0} MiB {:>6.2} s  {}",
            index,
            case.name,
            format!("{:?}", outcome.ending),
            outcome.peak_rss_mib,
            outcome.seconds,
            shown(&stderr, 200)
        );
        if !broken.is_empty() {
            failures.push(format!(
                "{} [{:?}, {:.0} MiB]: {}\n    args: {}\n    stderr: {}",
                case.name,
                outcome.ending,
                outcome.peak_rss_mib,
                broken.join("; "),
                shown(&case.args.join(" "), 300),
                shown(&stderr, 400)
            ));
        }
    }
    println!(
        "hostile suite: {} cases, {panics} panics, {aborts} aborts, largest peak RSS {:.0} MiB",
        suite.cases.len(),
        largest.0
    );
    println!(
        "(largest peak RSS: {}; the cases took {:.0} s)",
        largest.1,
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases broke a rule:\n{}",
        failures.len(),
        suite.cases.len(),
        failures.join("\n")
    );
}
