#![no_main]

use libfuzzer_sys::fuzz_target;

// The checkpoint loader contains the panics of burn's record decoder with `catch_unwind` (a
// documented part of its design) and turns them into errors. libfuzzer-sys's panic hook
// aborts on every panic, caught or not, so here a quiet hook replaces it and only a panic
// that escapes the harness aborts (and is reported as a crash).
fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
        let escaped = std::panic::catch_unwind(|| deepinterp_hostile::engine::checkpoint(data));
        if escaped.is_err() {
            eprintln!("a panic escaped the checkpoint harness");
            std::process::abort();
        }
    }
);
