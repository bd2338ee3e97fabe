//! The test binaries' allocator: it aborts, with a message naming the case being run, on
//! any single allocation above the memory budget it also gives the library, so that an
//! allocation sized from an unchecked header fails the test loudly instead of passing on a
//! machine with memory to spare.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::{Mutex, Once, OnceLock};

/// The budget the library is told (`DEEPINTERP_MEMORY_BUDGET`) and the allocator enforces.
const BUDGET_BYTES: usize = 64 << 20;
const BUDGET_TEXT: &str = "64M";

/// Aborts, loudly, on any single allocation above [`BUDGET_BYTES`]: the library checks
/// every size read from a header against the same budget before allocating, so a bigger
/// request means a size went unchecked.
struct BudgetedAllocator;

fn over_budget(bytes: usize) -> ! {
    // No formatting machinery here: it could allocate inside the allocator.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = bytes;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut stderr = std::io::stderr();
    let _ = stderr.write_all(b"\nhostile test: one allocation of ");
    let _ = stderr.write_all(&digits[at..]);
    let _ = stderr.write_all(
        b" bytes exceeds the 64 MiB memory budget: a size read from a file was not checked \
          before allocating\n",
    );
    // Which case it was, and its input kept for a regression file (try_lock: the
    // allocation may come from a thread that holds the lock).
    if let Ok(current) = CURRENT.try_lock() {
        let _ = stderr.write_all(b"while running: ");
        let _ = stderr.write_all(current.0.as_bytes());
        if let (Some(mut file), Some(path)) = (OVER_BUDGET_FILE.get(), OVER_BUDGET_PATH.get())
            && file.write_all(&current.1).is_ok()
        {
            let _ = stderr.write_all(b"\ninput saved as ");
            let _ = stderr.write_all(path.as_bytes());
        }
        let _ = stderr.write_all(b"\n");
    }
    std::process::abort();
}

// SAFETY: every method forwards to `System` with the caller's layout and pointers; the
// only addition is a size check before the call.
unsafe impl GlobalAlloc for BudgetedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > BUDGET_BYTES {
            over_budget(layout.size());
        }
        // SAFETY: forwarded unchanged (see the impl's comment).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > BUDGET_BYTES {
            over_budget(layout.size());
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > BUDGET_BYTES {
            over_budget(new_size);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The case being run (description, input), for the over-budget message.
static CURRENT: Mutex<(String, Vec<u8>)> = Mutex::new((String::new(), Vec::new()));
/// Opened before the cases run, so that saving an input allocates nothing.
static OVER_BUDGET_FILE: OnceLock<std::fs::File> = OnceLock::new();
static OVER_BUDGET_PATH: OnceLock<String> = OnceLock::new();

/// Records the case about to run.
pub fn running(description: String, input: &[u8]) {
    let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    *current = (description, input.to_vec());
}

#[global_allocator]
static ALLOCATOR: BudgetedAllocator = BudgetedAllocator;

/// Sets the library's budget before its first call (it reads the variable once).
pub fn set_budget() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, before any test thread calls into the library or reads the
        // environment; nothing else in this binary sets variables.
        unsafe { std::env::set_var("DEEPINTERP_MEMORY_BUDGET", BUDGET_TEXT) };
        let path = std::env::temp_dir().join("deepinterp-hostile-over-budget.bin");
        if let Ok(file) = std::fs::File::create(&path) {
            let _ = OVER_BUDGET_FILE.set(file);
            let _ = OVER_BUDGET_PATH.set(path.display().to_string());
        }
    });
    assert_eq!(
        deepinterp_io::limits::memory_budget(),
        BUDGET_BYTES as u64,
        "the library must use the test's budget"
    );
}

/// What is wrong with an error message, if anything: it must be one line, free of control
/// bytes (text from a file is escaped), and name the file (every harness input lives in a
/// `deepinterp-hostile-*` temporary folder).
pub fn message_fault(message: &str) -> Option<&'static str> {
    if message.contains('\n') {
        Some("more than one line")
    } else if message.chars().any(char::is_control) {
        Some("a control character")
    } else if !message.contains("deepinterp-hostile-") {
        Some("no file named")
    } else {
        None
    }
}

/// Names the targets a test binary runs (comma separated); unset, the tests that use
/// [`each_target_in_its_own_process`] run every target, each in a child process.
pub const TARGETS_VAR: &str = "DEEPINTERP_HOSTILE_TARGETS";

/// Without [`TARGETS_VAR`]: re-runs the test `test` of this binary once per target, each in
/// its own process with [`TARGETS_VAR`] naming it, so that an allocation abort in one
/// parser does not hide what the others do; prints each child's text from `summary` on, fails naming every target whose child failed, and returns `true` (the caller
/// is done). With [`TARGETS_VAR`] set it returns `false`: the caller runs the cases here.
pub fn each_target_in_its_own_process(test: &str, summary: &str) -> bool {
    if std::env::var_os(TARGETS_VAR).is_some() {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut failures = Vec::new();
    for target in deepinterp_hostile::targets() {
        let output = std::process::Command::new(&exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(TARGETS_VAR, target.name)
            .output()
            .expect("running the test binary for one target");
        let stdout = String::from_utf8_lossy(&output.stdout);
        // The libtest harness may print its own text before ours on the same line.
        for line in stdout
            .lines()
            .filter_map(|l| l.find(summary).map(|at| &l[at..]))
        {
            println!("{}: {line}", target.name);
        }
        if !output.status.success() {
            // The child's own report: its assertion, or the allocator's message.
            let stderr = String::from_utf8_lossy(&output.stderr);
            let report: Vec<&str> = stdout
                .lines()
                .chain(stderr.lines())
                .filter(|l| {
                    let l = l.trim_start();
                    !(l.is_empty()
                        || l.starts_with("at ")
                        || l.split(':')
                            .next()
                            .is_some_and(|n| n.parse::<u32>().is_ok())
                        || l.starts_with("note:"))
                })
                .collect();
            failures.push(format!(
                "{} ({}):\n{}",
                target.name,
                output.status,
                report.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failing targets:\n\n{}",
        failures.join("\n\n")
    );
    true
}
