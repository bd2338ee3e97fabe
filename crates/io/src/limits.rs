//! Sizes checked before memory is taken.
//!
//! Every size that comes from a file header or a user's flag goes through
//! [`checked_product`] (no wrapping arithmetic) and [`check_memory`] (no
//! buffer larger than the memory budget) before anything is allocated, so a
//! tiny hostile file or a mistyped flag is a one-line error naming the file
//! and the field, never an allocation abort.
//!
//! The budget is `DEEPINTERP_MEMORY_BUDGET` (bytes, or with a `K`/`M`/`G`/`T`
//! suffix, powers of 1024) when set, else three quarters of the machine's
//! memory (`MemTotal` in `/proc/meminfo`), else 16 GiB.

use std::path::Path;
use std::sync::OnceLock;

use crate::error::IoError;

/// The environment variable that sets the memory budget.
pub const MEMORY_BUDGET_VAR: &str = "DEEPINTERP_MEMORY_BUDGET";

/// The most bytes a deflate stream can inflate to per byte (deflate's maximum
/// ratio is about 1032:1): a `.gz` file cannot hold more than this times its size.
pub const DEFLATE_MAX_RATIO: u64 = 1032;

/// Budget used when neither the variable nor `/proc/meminfo` says.
const FALLBACK_BUDGET: u64 = 16 << 30;

/// The most bytes one buffer sized from a header or a flag may take.
pub fn memory_budget() -> u64 {
    static BUDGET: OnceLock<u64> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var(MEMORY_BUDGET_VAR)
            .ok()
            .and_then(|text| parse_bytes(&text))
            .or_else(|| machine_memory().map(|total| total / 4 * 3))
            .unwrap_or(FALLBACK_BUDGET)
    })
}

/// `12345`, `512M`, `2G`, `1.5T` (powers of 1024) as bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = match text.chars().last()?.to_ascii_uppercase() {
        'K' => (&text[..text.len() - 1], 1u64 << 10),
        'M' => (&text[..text.len() - 1], 1 << 20),
        'G' => (&text[..text.len() - 1], 1 << 30),
        'T' => (&text[..text.len() - 1], 1 << 40),
        _ => (text, 1),
    };
    let value: f64 = number.trim().parse().ok()?;
    let bytes = value * scale as f64;
    (value.is_finite() && value > 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Physical memory of this machine, from `/proc/meminfo` (Linux).
fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Bytes as people read them: `812 B`, `3.4 MiB`, `1.2 TiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The product of `factors` (e.g. a header's dimensions times the bytes of
/// one value), or an error naming `path` and `what` when it overflows.
pub fn checked_product(path: &Path, what: &str, factors: &[u64]) -> Result<u64, IoError> {
    factors
        .iter()
        .try_fold(1u64, |product, &factor| product.checked_mul(factor))
        .ok_or_else(|| IoError::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "{what} ({}) is too large to be real",
                factors
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" x ")
            ),
        })
}

/// Errors when a buffer of `bytes` for `what` would exceed the memory
/// budget; call it before allocating anything sized from a header or flag.
pub fn check_memory(path: &Path, what: &str, bytes: u64) -> Result<(), IoError> {
    let budget = memory_budget();
    if bytes <= budget {
        return Ok(());
    }
    Err(IoError::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "{what} would need {} of memory, more than the budget of {} (set {MEMORY_BUDGET_VAR} to change it)",
            format_bytes(bytes),
            format_bytes(budget)
        ),
    })
}

/// Errors when data a header declares (`declared` bytes) cannot fit in what
/// the file holds (`available` bytes).
pub fn check_declared(
    path: &Path,
    what: &str,
    declared: u64,
    available: u64,
) -> Result<(), IoError> {
    if declared <= available {
        return Ok(());
    }
    Err(IoError::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "{what} declares {}, but the file holds only {}",
            format_bytes(declared),
            format_bytes(available)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_parse_with_suffixes() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("2K"), Some(2048));
        assert_eq!(parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(parse_bytes("-1"), None);
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes(""), None);
    }

    #[test]
    fn overflow_and_budget_are_errors_naming_the_file() {
        let path = Path::new("x.tif");
        assert_eq!(checked_product(path, "a frame", &[3, 4, 2]).unwrap(), 24);
        let error = checked_product(path, "a frame", &[u64::MAX, 2]).unwrap_err();
        assert!(error.to_string().starts_with("x.tif: a frame"), "{error}");
        let error = check_memory(path, "a frame", u64::MAX).unwrap_err();
        assert!(error.to_string().contains("budget"), "{error}");
        assert!(check_memory(path, "a frame", 1024).is_ok());
        let error = check_declared(path, "the image", 4 << 30, 1400).unwrap_err();
        assert!(error.to_string().contains("4.0 GiB"), "{error}");
    }

    #[test]
    fn sizes_print_readably() {
        assert_eq!(format_bytes(812), "812 B");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
    }
}
