//! Writes the movies `tests/interop.py` reads with h5py and tifffile:
//! `interop_<dtype>.<h5|tif>` for int16, uint16 and float32, 5 frames of
//! 7x9 pixels with values `3*i - 100` (`3*i` for uint16).
//!
//! Usage: `cargo run -p deepinterp-io --example write_interop -- DIR`

use std::path::PathBuf;

use deepinterp_io::{Dtype, IoError, MovieInfo, create_movie};

fn main() -> Result<(), IoError> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write_interop DIR");
        std::process::exit(2);
    };
    for extension in ["h5", "tif"] {
        for dtype in [Dtype::I16, Dtype::U16, Dtype::F32] {
            let info = MovieInfo {
                frames: 5,
                height: 7,
                width: 9,
                dtype,
            };
            let offset = if dtype == Dtype::U16 { 0.0 } else { 100.0 };
            let frames: Vec<f32> = (0..info.frames * info.frame_len())
                .map(|i| i as f32 * 3.0 - offset)
                .collect();
            let path = dir.join(format!("interop_{dtype}.{extension}"));
            let mut writer = create_movie(&path, &info)?;
            writer.write_frames(&frames, info.frames)?;
            let summary = writer.finish()?;
            println!("wrote {}", summary.path.display());
        }
    }
    Ok(())
}
