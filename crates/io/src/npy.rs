//! NumPy `.npy` arrays of little-endian float32 in C order: reading the
//! golden arrays of the Keras fixtures, and writing arrays for comparison
//! in Python. Header versions 1.0, 2.0 and 3.0 are read; 1.0 is written
//! (2.0 when the header would not fit).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::error::{IoError, escape_text};
use crate::limits::{check_memory, checked_product};
use crate::movie::require_file;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

fn npy_err(path: &Path, detail: impl Into<String>) -> IoError {
    IoError::Npy {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Reads a little-endian float32, C-order `.npy` file: its shape and values.
pub fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), IoError> {
    require_file(path)?;
    let os_err = |action| {
        move |source| IoError::Os {
            path: path.to_path_buf(),
            action,
            error: source,
        }
    };
    let mut file = File::open(path).map_err(os_err("opening"))?;
    let file_bytes = file
        .metadata()
        .map_err(os_err("reading the file size"))?
        .len();
    // The whole file is read at once (fixtures are small), so its size, not
    // a header, sizes the buffer, and it must fit the memory budget.
    check_memory(path, "the whole .npy file", file_bytes)?;
    let mut bytes = Vec::with_capacity(usize::try_from(file_bytes).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(os_err("reading"))?;
    let (shape, data_start) = parse_header(path, &bytes)?;
    let factors: Vec<u64> = shape.iter().map(|&d| d as u64).chain([4]).collect();
    let what = format!("shape {shape:?} of float32");
    let data_bytes = checked_product(path, &what, &factors)?;
    let payload = &bytes[data_start..];
    if payload.len() as u64 != data_bytes {
        let why = if (payload.len() as u64) < data_bytes {
            "truncated?"
        } else {
            "trailing bytes?"
        };
        return Err(npy_err(
            path,
            format!(
                "shape {shape:?} needs {data_bytes} data bytes, the file has {} ({why})",
                payload.len()
            ),
        ));
    }
    let data = payload
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((shape, data))
}

/// Parses the magic, version and header dict; returns the shape and the
/// offset of the first data byte.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize), IoError> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(npy_err(
            path,
            "missing the \\x93NUMPY magic; not a .npy file",
        ));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(npy_err(path, "truncated header"));
            }
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (len as usize, 12)
        }
        v => return Err(npy_err(path, format!("unsupported format version {v}"))),
    };
    // `header_len` is at most 4 GiB and `bytes` is in memory: no overflow.
    let header_end = header_start + header_len;
    let header = bytes
        .get(header_start..header_end)
        .ok_or_else(|| npy_err(path, "truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| npy_err(path, "header is not text"))?;

    let descr =
        dict_value(header, "descr").ok_or_else(|| npy_err(path, "header has no 'descr'"))?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    if descr != "<f4" {
        return Err(npy_err(
            path,
            format!(
                "dtype '{}' is not supported, expected little-endian float32 '<f4'",
                escape_text(descr)
            ),
        ));
    }
    let fortran = dict_value(header, "fortran_order")
        .ok_or_else(|| npy_err(path, "header has no 'fortran_order'"))?;
    if fortran.trim() != "False" {
        return Err(npy_err(path, "Fortran-order arrays are not supported"));
    }
    let shape_text =
        dict_value(header, "shape").ok_or_else(|| npy_err(path, "header has no 'shape'"))?;
    let shape = shape_text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| npy_err(path, format!("bad shape '{}'", escape_text(shape_text))))?;
    Ok((shape, header_end))
}

/// The text of a value in the header dict: after `'key':` up to the next
/// top-level comma or the closing brace.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let key_at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let after_key = &header[key_at + key.len() + 2..];
    let value = after_key.trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in value.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&value[..i]),
            _ => {}
        }
    }
    None
}

/// Writes `data` as a little-endian float32, C-order `.npy` file of shape
/// `shape`.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), IoError> {
    let count: usize = shape.iter().product();
    if count != data.len() {
        return Err(npy_err(
            path,
            format!(
                "shape {shape:?} holds {count} values, but {} were given",
                data.len()
            ),
        ));
    }
    let shape_text = match shape {
        [single] => format!("({single},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // The header (with magic and length field) is padded with spaces to a
    // multiple of 64 bytes and ends with a newline.
    let fits_v1 = header.len() + 11 < usize::from(u16::MAX);
    let prefix_len = if fits_v1 { 10 } else { 12 };
    let padded = (prefix_len + header.len() + 1).div_ceil(64) * 64;
    header.push_str(&" ".repeat(padded - prefix_len - header.len() - 1));
    header.push('\n');

    let os_err = |source| IoError::Os {
        path: path.to_path_buf(),
        action: "writing",
        error: source,
    };
    let mut out = BufWriter::new(File::create(path).map_err(os_err)?);
    let mut prefix = MAGIC.to_vec();
    if fits_v1 {
        prefix.extend_from_slice(&[1, 0]);
        prefix.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        prefix.extend_from_slice(&[2, 0]);
        prefix.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.write_all(&prefix).map_err(os_err)?;
    out.write_all(header.as_bytes()).map_err(os_err)?;
    for v in data {
        out.write_all(&v.to_le_bytes()).map_err(os_err)?;
    }
    out.flush().map_err(os_err)?;
    Ok(())
}
