//! The kernels against a plain, obviously-correct U-Net written with nested loops (burn is
//! compared in `deepinterp`'s tests): every instruction set this CPU runs, planar and
//! volumetric shapes, channel counts that fill blocks partly, and input chunks.

mod common;

use common::{inputs_and_expected, max_error, network};
use deepinterp_kernels::{ConvWeights, Isa, UNet, Workspace};
use rand::{SeedableRng, rngs::StdRng};

fn check(
    name: &str,
    convs: &[ConvWeights],
    pools: &[[usize; 3]],
    samples: usize,
    size: [usize; 3],
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let in_channels = convs[0].in_channels;
    let voxels: usize = size.iter().product();
    let (input, expected) = inputs_and_expected(convs, pools, samples, size, &mut rng);
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    for isa in Isa::supported() {
        for threads in [1, 2] {
            let mut net = UNet::with_isa(isa, convs, pools).unwrap();
            net.set_threads(threads);
            let mut workspace = Workspace::new();
            // Through one workspace after a pass on other values (large, so that anything
            // left of them shows): a call must not see an earlier call's values, whose
            // activations share memory with its own.
            let other: Vec<f32> = input.iter().map(|v| 1e3 * v + 7.0).collect();
            let mut output = vec![0f32; samples * voxels];
            net.forward(&mut workspace, &other, samples, size, &mut output)
                .unwrap();
            for round in 0..2 {
                let mut output = vec![f32::NAN; samples * voxels];
                net.forward(&mut workspace, &input, samples, size, &mut output)
                    .unwrap();
                let worst = max_error(&output, &expected);
                assert!(
                    worst <= 2e-5 * scale,
                    "{name} {} threads {threads} round {round}: max error {worst} (scale {scale})",
                    isa.name()
                );
            }
            // Fewer samples through a workspace sized for more.
            let mut output = vec![0f32; voxels];
            net.forward(
                &mut workspace,
                &input[..in_channels * voxels],
                1,
                size,
                &mut output,
            )
            .unwrap();
            let worst = max_error(&output, &expected[..voxels]);
            assert!(worst <= 2e-5 * scale, "{name} {}: one sample", isa.name());
        }
    }
}

#[test]
fn planar_unet_with_partial_blocks_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(1);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 6, &[4, 20], 40, &[k3, k3, k3, k3, k3, [1, 1, 1]]);
    check("planar", &convs, &[[1, 2, 2]; 2], 3, [1, 12, 20], 2);
}

#[test]
fn planar_unet_with_full_and_paired_blocks_matches_the_reference() {
    let mut rng = StdRng::seed_from_u64(3);
    let k3 = [1, 3, 3];
    let convs = network(
        &mut rng,
        60,
        &[32, 48],
        64,
        &[k3, k3, k3, k3, k3, [1, 1, 1]],
    );
    check("wide", &convs, &[[1, 2, 2]; 2], 2, [1, 8, 12], 4);
}

#[test]
fn input_chunks_accumulate_like_one_pass() {
    // A 3×3 conv on more than 14 input blocks is computed in chunks.
    let mut rng = StdRng::seed_from_u64(5);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 4, &[96], 256, &[k3, k3, k3, [1, 1, 1]]);
    check("chunked", &convs, &[[1, 2, 2]], 1, [1, 6, 6], 6);
}

#[test]
fn probe_unet_matches_the_reference() {
    // The ephys shape: 2×2 kernels at full resolution, a (2,2) pool, then 3×1 with (2,1).
    let mut rng = StdRng::seed_from_u64(7);
    let (k22, k31) = ([1, 2, 2], [1, 3, 1]);
    let convs = network(
        &mut rng,
        8,
        &[16, 24],
        32,
        &[k22, k31, k31, k31, k22, [1, 1, 1]],
    );
    check("probe", &convs, &[[1, 2, 2], [1, 2, 1]], 3, [1, 16, 2], 8);
}

#[test]
fn volumetric_unet_with_floored_pools_matches_the_reference() {
    // The fMRI shape: 7³ blocks pooled 7 → 3 → 1, zero-padded back up on the way out.
    let mut rng = StdRng::seed_from_u64(9);
    let k = [3, 3, 3];
    let convs = network(&mut rng, 5, &[8, 16], 24, &[k, k, k, k, k, [1, 1, 1]]);
    check("volumetric", &convs, &[[2, 2, 2]; 2], 4, [7, 7, 7], 10);
}

#[test]
fn a_network_without_pooling_is_one_conv_and_the_output() {
    let mut rng = StdRng::seed_from_u64(11);
    let convs = network(&mut rng, 3, &[], 5, &[[1, 3, 3], [1, 1, 1]]);
    check("flat", &convs, &[], 2, [1, 5, 7], 12);
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let mut rng = StdRng::seed_from_u64(13);
    let k3 = [1, 3, 3];
    let convs = network(&mut rng, 4, &[8], 16, &[k3, k3, k3, [1, 1, 1]]);
    assert!(UNet::new(&convs[..3], &[[1, 2, 2]]).is_err());
    let mut bad = convs.clone();
    bad[1].weight.pop();
    assert!(UNet::new(&bad, &[[1, 2, 2]]).is_err());
    let net = UNet::new(&convs, &[[1, 2, 2]]).unwrap();
    let mut workspace = Workspace::new();
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
}
