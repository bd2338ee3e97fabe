//! `LaneUNet` (samples in the lanes) against the loop reference: the fMRI shape, other
//! widths and kernels, planar shapes, batches that fill groups of 16 partly, every instruction
//! set this CPU runs, one and two threads, and calls that reuse one workspace.

mod common;

use common::{inputs_and_expected, max_error, network};
use deepinterp_kernels::{ConvWeights, Isa, LaneUNet, LaneWorkspace};
use rand::{SeedableRng, rngs::StdRng};

/// Batches around a group of 16: one sample, a group short of one, one group, one over, and
/// several groups with a partial last one.
const COUNTS: [usize; 5] = [1, 15, 16, 17, 40];

/// Runs every count of `COUNTS` (twice, through one workspace) for every instruction set and
/// 1 and 2 threads; each must match the reference, and a sample's output must not depend on
/// the batch it came in or the threads (its lane computes the same operations in any case).
fn check(name: &str, convs: &[ConvWeights], pools: &[[usize; 3]], size: [usize; 3], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let in_channels = convs[0].in_channels;
    let voxels: usize = size.iter().product();
    let most = COUNTS[COUNTS.len() - 1];
    let (input, expected) = inputs_and_expected(convs, pools, most, size, &mut rng);
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for isa in Isa::supported() {
        let mut first: Option<Vec<f32>> = None;
        for threads in [1, 2] {
            let mut net = LaneUNet::with_isa(isa, convs, pools).unwrap();
            net.set_threads(threads);
            assert_eq!(net.isa(), isa);
            let mut workspace = LaneWorkspace::new();
            for round in 0..2 {
                for samples in COUNTS {
                    let mut output = vec![f32::NAN; samples * voxels];
                    net.forward(
                        &mut workspace,
                        &input[..samples * in_channels * voxels],
                        samples,
                        size,
                        &mut output,
                    )
                    .unwrap();
                    let worst = max_error(&output, &expected[..samples * voxels]);
                    let at = format!(
                        "{name} {} threads {threads} round {round} samples {samples}",
                        isa.name()
                    );
                    assert!(
                        worst <= 2e-5 * scale,
                        "{at}: max error {worst} (scale {scale})"
                    );
                    let first = first.get_or_insert_with(|| {
                        let mut full = vec![0f32; most * voxels];
                        net.forward(&mut workspace, &input, most, size, &mut full)
                            .unwrap();
                        full
                    });
                    assert!(
                        output
                            .iter()
                            .zip(first.iter())
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{at}: differs from the same samples in a batch of {most}"
                    );
                }
            }
        }
    }
}

#[test]
fn fmri_unet_matches_the_reference() {
    // 7³ blocks of 5 channels, pooled 7 → 3 → 1 and zero-padded back up, widths 8/16/32.
    let mut rng = StdRng::seed_from_u64(21);
    let k = [3, 3, 3];
    let convs = network(&mut rng, 5, &[8, 16], 32, &[k, k, k, k, k, [1, 1, 1]]);
    check("fmri", &convs, &[[2, 2, 2]; 2], [7, 7, 7], 22);
}

#[test]
fn other_widths_and_kernels_match_the_reference() {
    // 3 → 5, 20 channels (chunks of 3 + 2 and 4 × 5 outputs), a 7-wide bottleneck, anisotropic
    // and even kernels (Keras puts the extra tap after), and a box that pools unevenly.
    let mut rng = StdRng::seed_from_u64(23);
    let kernels = [
        [3, 3, 3],
        [1, 3, 3],
        [2, 2, 2],
        [3, 1, 3],
        [3, 3, 3],
        [1, 1, 1],
    ];
    let convs = network(&mut rng, 3, &[5, 20], 7, &kernels);
    check("odd", &convs, &[[2, 2, 2], [1, 2, 2]], [5, 6, 7], 24);
}

#[test]
fn planar_unet_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(25);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 6, &[4, 20], 40, &[k3, k3, k3, k3, k3, [1, 1, 1]]);
    check("planar", &convs, &[[1, 2, 2]; 2], [1, 12, 10], 26);
}

#[test]
fn probe_unet_matches_the_reference() {
    // The ephys shape: 2×2 kernels at full resolution, a (2,2) pool, then 3×1 with (2,1).
    let mut rng = StdRng::seed_from_u64(27);
    let (k22, k31) = ([1, 2, 2], [1, 3, 1]);
    let convs = network(
        &mut rng,
        8,
        &[16, 24],
        32,
        &[k22, k31, k31, k31, k22, [1, 1, 1]],
    );
    check("probe", &convs, &[[1, 2, 2], [1, 2, 1]], [1, 16, 2], 28);
}

#[test]
fn a_network_without_pooling_is_one_conv_and_the_output() {
    let mut rng = StdRng::seed_from_u64(29);
    let convs = network(&mut rng, 3, &[], 5, &[[1, 3, 3], [1, 1, 1]]);
    check("flat", &convs, &[], [1, 5, 7], 30);
}

#[test]
fn one_workspace_follows_changes_of_size_and_network() {
    let mut rng = StdRng::seed_from_u64(31);
    let k = [3, 3, 3];
    let pools = [[2, 2, 2]; 2];
    let fmri = network(&mut rng, 5, &[8, 16], 32, &[k, k, k, k, k, [1, 1, 1]]);
    let wider = network(&mut rng, 5, &[12, 16], 24, &[k, k, k, k, k, [1, 1, 1]]);
    let mut workspace = LaneWorkspace::new();
    for (convs, size, samples) in [
        (&fmri, [7, 7, 7], 20),
        (&fmri, [6, 8, 9], 3),
        (&wider, [6, 8, 9], 18),
        (&fmri, [7, 7, 7], 33),
    ] {
        let (input, expected) = inputs_and_expected(convs, &pools, samples, size, &mut rng);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
        let mut net = LaneUNet::new(convs, &pools).unwrap();
        net.set_threads(2);
        let mut output = vec![f32::NAN; expected.len()];
        net.forward(&mut workspace, &input, samples, size, &mut output)
            .unwrap();
        let worst = max_error(&output, &expected);
        assert!(
            worst <= 2e-5 * scale,
            "{size:?} {samples}: max error {worst}"
        );
    }
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(33);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 4, &[8], 16, &[k3, k3, k3, [1, 1, 1]]);
    assert!(LaneUNet::new(&convs[..3], &[[1, 2, 2]]).is_err());
    let mut bad = convs.clone();
    bad[1].weight.pop();
    assert!(LaneUNet::new(&bad, &[[1, 2, 2]]).is_err());
    let net = LaneUNet::new(&convs, &[[1, 2, 2]]).unwrap();
    let mut workspace = LaneWorkspace::new();
    let mut output = vec![0f32; 1];
    // 1×1 cannot be pooled by 2.
    assert!(
        net.forward(&mut workspace, &[0.0; 4], 1, [1, 1, 1], &mut output)
            .is_err()
    );
    assert!(
        net.forward(&mut workspace, &[0.0; 3], 1, [1, 1, 1], &mut output)
            .is_err()
    );
    // No samples: nothing to do.
    net.forward(&mut workspace, &[], 0, [1, 4, 4], &mut [])
        .unwrap();
}
