//! What kind of recording a path holds. The content decides where it can (the signatures of
//! HDF5, TIFF, NIfTI-1/2 and gzipped NIfTI files), then the name and the files beside it: a
//! movie written to `scan.dat` is still a movie, and a NIfTI run named `run.img` still a run.
//! Only the first bytes of a regular file are read (never of a FIFO or a device), so judging
//! a path never blocks and costs nothing.

use std::io::Read;
use std::path::Path;

use crate::ephys::is_ephys_path;
use crate::nifti::is_nifti_path;

/// The three kinds of recording deepinterp reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordingKind {
    /// A movie `[t, y, x]` (HDF5, TIFF).
    Movie,
    /// An extracellular recording `[samples, channels]` (SpikeGLX, Open Ephys, raw).
    Extracellular,
    /// A volume series `[x, y, z, t]` (NIfTI).
    Volumes,
}

/// The file signatures this module knows, found at the start of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// HDF5's superblock signature.
    Hdf5,
    /// Classic or BigTIFF, either byte order.
    Tiff,
    /// A NIfTI-1 or NIfTI-2 header, either byte order, plain or gzipped.
    Nifti,
}

const HDF5_SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";
const GZIP_SIGNATURE: &[u8] = b"\x1f\x8b";
/// Enough of a file for every signature: a NIfTI-1 header's magic ends at byte 348.
const SNIFF_BYTES: u64 = 540;

/// The signature at the start of `path`, when it is a regular file that can be read and
/// starts with one this module knows.
pub fn signature(path: &Path) -> Option<Signature> {
    if !std::fs::metadata(path).ok()?.is_file() {
        return None;
    }
    let mut head = Vec::with_capacity(SNIFF_BYTES as usize);
    std::fs::File::open(path)
        .ok()?
        .take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    if head.starts_with(GZIP_SIGNATURE) {
        // Only a gzipped NIfTI header counts; other gzip files are for the name to judge.
        let mut inner = Vec::with_capacity(SNIFF_BYTES as usize);
        let file = std::fs::File::open(path).ok()?;
        flate2::read::GzDecoder::new(file)
            .take(SNIFF_BYTES)
            .read_to_end(&mut inner)
            .ok()?;
        return is_nifti_header(&inner).then_some(Signature::Nifti);
    }
    if head.starts_with(HDF5_SIGNATURE) {
        return Some(Signature::Hdf5);
    }
    if head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
        || head.starts_with(b"II+\0")
        || head.starts_with(b"MM\0+")
    {
        return Some(Signature::Tiff);
    }
    is_nifti_header(&head).then_some(Signature::Nifti)
}

/// A NIfTI-1 header (`sizeof_hdr` 348 in either byte order, magic `n+1` or `ni1` at 344) or
/// NIfTI-2 header (`sizeof_hdr` 540, magic `n+2` or `ni2` at 4).
fn is_nifti_header(head: &[u8]) -> bool {
    let size = |bytes: &[u8]| -> Option<(u32, u32)> {
        let word: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        Some((u32::from_le_bytes(word), u32::from_be_bytes(word)))
    };
    let Some((little, big)) = size(head) else {
        return false;
    };
    let magic_at = |at: usize, versions: [&[u8]; 2]| {
        head.get(at..at + 4)
            .is_some_and(|magic| versions.contains(&magic))
    };
    ((little == 348 || big == 348) && magic_at(344, [b"n+1\0", b"ni1\0"]))
        || ((little == 540 || big == 540) && magic_at(4, [b"n+2\0", b"ni2\0"]))
}

/// The kind of recording `path` holds: a header or folder layout of an extracellular format
/// (`.meta`, `.oebin`, `.continuous`, an Open Ephys folder), else the file's signature, else
/// its name (`.nii`/`.nii.gz` volumes; `.bin`/`.dat`/`.raw` extracellular; anything else a
/// movie, for the movie readers to accept or refuse). Paths that do not exist (outputs) are
/// judged by their name.
pub fn recording_kind(path: &Path) -> RecordingKind {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let header_format = matches!(extension.as_str(), "meta" | "oebin" | "continuous");
    if path.is_dir() || header_format {
        return if is_ephys_path(path) {
            RecordingKind::Extracellular
        } else {
            RecordingKind::Movie
        };
    }
    match signature(path) {
        Some(Signature::Hdf5 | Signature::Tiff) => return RecordingKind::Movie,
        Some(Signature::Nifti) => return RecordingKind::Volumes,
        None => {}
    }
    if is_nifti_path(path) {
        RecordingKind::Volumes
    } else if is_ephys_path(path) {
        RecordingKind::Extracellular
    } else {
        RecordingKind::Movie
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_before_the_name() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let mut hdf5 = HDF5_SIGNATURE.to_vec();
        hdf5.extend([0u8; 100]);
        assert_eq!(
            recording_kind(&write("scan.dat", &hdf5)),
            RecordingKind::Movie
        );
        assert_eq!(
            recording_kind(&write("stack.bin", b"II*\0\x08\0\0\0")),
            RecordingKind::Movie
        );
        let mut nifti = vec![0u8; 352];
        nifti[..4].copy_from_slice(&348u32.to_le_bytes());
        nifti[344..348].copy_from_slice(b"n+1\0");
        assert_eq!(
            recording_kind(&write("run.img", &nifti)),
            RecordingKind::Volumes
        );
        let mut big_endian = vec![0u8; 352];
        big_endian[..4].copy_from_slice(&348u32.to_be_bytes());
        big_endian[344..348].copy_from_slice(b"n+1\0");
        assert_eq!(
            signature(&write("be.raw", &big_endian)),
            Some(Signature::Nifti)
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &nifti).unwrap();
        let gzipped = gz.finish().unwrap();
        assert_eq!(
            recording_kind(&write("run.gz", &gzipped)),
            RecordingKind::Volumes
        );
        // Without a signature the name decides, as before.
        assert_eq!(
            recording_kind(&write("probe.dat", &[1, 2, 3, 4])),
            RecordingKind::Extracellular
        );
        assert_eq!(
            recording_kind(&write("garbage.h5", b"xx")),
            RecordingKind::Movie
        );
        assert_eq!(
            recording_kind(&write("bad.nii", b"xx")),
            RecordingKind::Volumes
        );
        // Outputs that do not exist yet.
        assert_eq!(
            recording_kind(&dir.path().join("out.nii.gz")),
            RecordingKind::Volumes
        );
        assert_eq!(
            recording_kind(&dir.path().join("out.bin")),
            RecordingKind::Extracellular
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_judged_by_its_name_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.h5");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Opening a FIFO for reading would block until a writer comes: this returns.
        assert_eq!(signature(&fifo), None);
        assert_eq!(recording_kind(&fifo), RecordingKind::Movie);
    }
}
