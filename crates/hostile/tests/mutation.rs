//! Deterministic mutations of every seed fed to every harness: none may panic, and no
//! single allocation may exceed the memory budget (an allocation sized from an unchecked
//! header aborts the test binary with a message saying so).
//!
//! Stable Rust, inside `cargo test`: a small, fixed-seed cousin of the libFuzzer campaigns
//! in `fuzz/`. The budgeted allocator is in `common/mod.rs`.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{message_fault, running, set_budget};

/// Mutated inputs per seed.
const CASES_PER_SEED: usize = 100;

/// splitmix64: a fixed sequence, so every run tries the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// An offset into `len` bytes, half the time within the first 512 (where headers are).
    fn offset(&mut self, len: usize) -> usize {
        if self.next() & 1 == 0 {
            self.below(len.min(512))
        } else {
            self.below(len)
        }
    }
}

/// Writes `value`'s low `width` bytes at `at` (either byte order), clipped to the input.
fn put(data: &mut [u8], at: usize, value: u64, width: usize, big_endian: bool) {
    let bytes = if big_endian {
        value.to_be_bytes()[8 - width..].to_vec()
    } else {
        value.to_le_bytes()[..width].to_vec()
    };
    for (i, byte) in bytes.into_iter().enumerate() {
        if let Some(slot) = data.get_mut(at + i) {
            *slot = byte;
        }
    }
}

/// Numbers that break text headers (`.meta`, `.oebin`, legacy `.continuous`).
const TEXT_NUMBERS: [&str; 10] = [
    "0",
    "-1",
    "65535",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999",
    "1e308",
    "NaN",
    "inf",
    "-0",
];

/// One to three mutations of `seed`, and what they were.
fn mutate(seed: &[u8], rng: &mut Rng) -> (Vec<u8>, String) {
    let mut data = seed.to_vec();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let len = data.len();
        let at = rng.offset(len);
        let big_endian = rng.next() & 1 == 1;
        match rng.below(8) {
            0 if len > 0 => {
                let bit = rng.below(8);
                data[at] ^= 1 << bit;
                what.push(format!("flip bit {bit} at {at}"));
            }
            1 if len > 0 => {
                let value = rng.pick(&[0u8, 0xff, 0x7f, 0x80]);
                data[at] = value;
                what.push(format!("byte {value:#x} at {at}"));
            }
            2 => {
                let value = rng.pick(&[0u64, 1, 0x7fff, 0x8000, 0xffff]);
                put(&mut data, at, value, 2, big_endian);
                what.push(format!("u16 {value:#x} at {at}"));
            }
            3 => {
                let value = rng.pick(&[0u64, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]);
                put(&mut data, at, value, 4, big_endian);
                what.push(format!("u32 {value:#x} at {at}"));
            }
            4 => {
                let value = rng.pick(&[0u64, 1, i64::MAX as u64, 1 << 63, u64::MAX]);
                put(&mut data, at, value, 8, big_endian);
                what.push(format!("u64 {value:#x} at {at}"));
            }
            5 => {
                let keep = rng.below(len + 1);
                data.truncate(keep);
                what.push(format!("truncate to {keep}"));
            }
            6 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let into = rng.below(len + 1);
                let copy = data[start..end].to_vec();
                data.splice(into..into, copy);
                what.push(format!("copy {start}..{end} to {into}"));
            }
            _ => {
                // A digit run (a number in a text header) replaced by an extreme one.
                let digits: Vec<usize> = (0..len).filter(|&i| data[i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    continue;
                }
                let start = rng.pick(&digits);
                let end = (start..len)
                    .find(|&i| !data[i].is_ascii_digit() && data[i] != b'.')
                    .unwrap_or(len);
                let number = rng.pick(&TEXT_NUMBERS);
                data.splice(start..end, number.bytes());
                what.push(format!("number {number} at {start}"));
            }
        }
    }
    (data, what.join(", "))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_string())
}

/// The targets to run: all, or those named in `DEEPINTERP_HOSTILE_TARGETS` (comma
/// separated), to look at one parser at a time while another's finding is still open.
fn chosen_targets() -> Vec<deepinterp_hostile::Target> {
    let only = std::env::var(common::TARGETS_VAR).ok();
    deepinterp_hostile::targets()
        .into_iter()
        .filter(|t| {
            only.as_deref()
                .is_none_or(|names| names.split(',').any(|n| n.trim() == t.name))
        })
        .collect()
}

#[test]
fn every_seed_reads_through_without_error() {
    set_budget();
    for target in chosen_targets() {
        let seeds = (target.seeds)();
        assert!(!seeds.is_empty(), "{} has no seeds", target.name);
        for seed in seeds {
            running(format!("{} seed {}", target.name, seed.name), &seed.bytes);
            if let Err(error) = (target.check)(&seed.bytes) {
                panic!("{} seed {} is refused: {error}", target.name, seed.name);
            }
        }
    }
}

#[test]
fn mutated_seeds_never_panic_or_allocate_past_the_budget() {
    set_budget();
    if common::each_target_in_its_own_process(
        "mutated_seeds_never_panic_or_allocate_past_the_budget",
        "mutation test:",
    ) {
        return;
    }
    let saved = std::env::temp_dir().join("deepinterp-hostile-panics");
    let mut cases = 0usize;
    let mut refused = 0usize;
    let mut panics = Vec::new();
    let mut bad_messages = Vec::new();
    for target in chosen_targets() {
        // Seeded by the name: a target's cases do not change when others are added.
        let name_hash = target
            .name
            .bytes()
            .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let mut rng = Rng(0x5eed_0000 ^ name_hash);
        for seed in (target.seeds)() {
            for case in 0..CASES_PER_SEED {
                let (input, what) = mutate(&seed.bytes, &mut rng);
                cases += 1;
                running(
                    format!("{} seed {} case {case} ({what})", target.name, seed.name),
                    &input,
                );
                match catch_unwind(AssertUnwindSafe(|| (target.check)(&input))) {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        refused += 1;
                        if let Some(fault) = message_fault(&error.to_string()) {
                            let _ = std::fs::create_dir_all(&saved);
                            let file = saved.join(format!("{}-{}-{case}", target.name, seed.name));
                            let _ = std::fs::write(&file, &input);
                            bad_messages.push(format!(
                                "{} seed {} case {case} ({what}): {fault}: {:?} [input: {}]",
                                target.name,
                                seed.name,
                                error.to_string(),
                                file.display()
                            ));
                        }
                    }
                    Err(payload) => {
                        // Kept so it can be minimised and added under regressions/.
                        let _ = std::fs::create_dir_all(&saved);
                        let file = saved.join(format!("{}-{}-{case}", target.name, seed.name));
                        let _ = std::fs::write(&file, &input);
                        panics.push(format!(
                            "{} seed {} case {case} ({what}): {} [input: {}]",
                            target.name,
                            seed.name,
                            panic_message(&*payload),
                            file.display()
                        ));
                    }
                }
            }
        }
    }
    println!(
        "mutation test: {cases} cases, {refused} refused with an error, {} panics, {} bad messages",
        panics.len(),
        bad_messages.len()
    );
    let enough = if std::env::var_os(common::TARGETS_VAR).is_some() {
        50
    } else {
        500
    };
    assert!(cases >= enough, "too few cases ({cases}) to mean anything");
    assert!(
        refused > 0,
        "no mutation was refused: the mutations do nothing"
    );
    assert!(panics.is_empty(), "panics:\n{}", panics.join("\n"));
    assert!(
        bad_messages.is_empty(),
        "error messages that break the rules:\n{}",
        bad_messages.join("\n")
    );
}
