//! `deepinterp export`: a trained model written as an original-layout Keras `.h5` denoises
//! exactly as the model it came from when read back through our importer.

mod common;

use common::{run, run_ok, s, simulate, tiny_model};
use deepinterp_io::open_movie;

fn frames(path: &std::path::Path) -> Vec<f32> {
    let mut reader = open_movie(path).unwrap();
    let info = reader.info().clone();
    let mut values = vec![0f32; info.frames * info.frame_len()];
    reader.read_frames(0, info.frames, &mut values).unwrap();
    values
}

#[test]
fn an_exported_model_denoises_exactly_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let (movie, _) = simulate(dir.path(), 30, 32, 1);
    let model = tiny_model(dir.path(), &movie, "tiny.dimodel", &[]);
    let keras = dir.path().join("tiny.h5");
    run_ok(&["export", s(&model), "-o", s(&keras), "--format", "keras"]);
    let (ours, theirs) = (dir.path().join("ours.h5"), dir.path().join("theirs.h5"));
    run_ok(&["denoise", s(&movie), "--model", s(&model), "-o", s(&ours)]);
    run_ok(&["denoise", s(&movie), "--model", s(&keras), "-o", s(&theirs)]);
    assert_eq!(frames(&ours), frames(&theirs));

    let missing = run(&[
        "export",
        s(&dir.path().join("none.dimodel")),
        "-o",
        s(&keras),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("none.dimodel"));
}
