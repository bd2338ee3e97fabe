//! The backward pass against central differences of a plain f64 U-Net (nested loops): for
//! the loss `L = Σ output · R` with random `R`, dL/d(a handful of weights and biases of
//! every convolution) and dL/d(some inputs), on planar 3×3, probe (2×2 then 3×1 with (2,2)
//! and (2,1) pools) and volumetric 3³ networks with floor pooling, every instruction set,
//! direct and Winograd; one and two threads give the same bits.

use deepinterp_kernels::raw::Method;
mod common;

use common::{Conv64, Map, loss_network as network, reference, to64};
use deepinterp_kernels::{BackwardRequest, Gradients, Isa, UNet, Workspace};
use rand::{Rng, SeedableRng, rngs::StdRng};

/// `Σ output · r` over every sample, in f64.
fn loss(
    convs: &[Conv64],
    pools: &[[usize; 3]],
    input: &[f64],
    samples: usize,
    size: [usize; 3],
    r: &[f32],
) -> f64 {
    let in_channels = convs[0].in_channels;
    let voxels: usize = size.iter().product();
    let mut total = 0.0;
    for n in 0..samples {
        let out = reference(
            convs,
            pools,
            Map {
                channels: in_channels,
                size,
                values: input[n * in_channels * voxels..][..in_channels * voxels].to_vec(),
            },
        );
        total += out
            .iter()
            .zip(&r[n * voxels..][..voxels])
            .map(|(a, &b)| a * b as f64)
            .sum::<f64>();
    }
    total
}

fn run(
    net: &UNet,
    input: &[f32],
    samples: usize,
    size: [usize; 3],
    r: &[f32],
    request: &BackwardRequest,
) -> Gradients {
    let mut workspace = Workspace::new();
    let voxels: usize = size.iter().product();
    // Twice through one workspace: the second backward must not see the first's values.
    let mut grads = None;
    for _ in 0..2 {
        let mut output = vec![0f32; samples * voxels];
        net.forward_for_training(&mut workspace, input, samples, size, &mut output)
            .unwrap();
        grads = Some(net.backward(&mut workspace, r, request).unwrap());
    }
    grads.unwrap()
}

#[allow(clippy::too_many_arguments)]
fn check(
    name: &str,
    in_channels: usize,
    widths: &[usize],
    bottleneck: usize,
    kernels: &[[usize; 3]],
    pools: &[[usize; 3]],
    samples: usize,
    size: [usize; 3],
    methods: &[Method],
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let convs = network(&mut rng, in_channels, widths, bottleneck, kernels);
    let voxels: usize = size.iter().product();
    let input: Vec<f32> = (0..samples * in_channels * voxels)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let r: Vec<f32> = (0..samples * voxels)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let convs64 = to64(&convs);
    let input64: Vec<f64> = input.iter().map(|&v| v as f64).collect();
    let h = 1e-5;
    // Central differences of a few weights and biases per convolution and a few inputs.
    let mut probes: Vec<(usize, bool, usize)> = Vec::new();
    for (index, conv) in convs.iter().enumerate() {
        for _ in 0..5 {
            probes.push((index, false, rng.random_range(0..conv.weight.len())));
        }
        probes.push((index, true, rng.random_range(0..conv.bias.len())));
    }
    let numeric: Vec<f64> = probes
        .iter()
        .map(|&(index, is_bias, at)| {
            let mut plus = convs64.clone();
            let mut minus = convs64.clone();
            if is_bias {
                plus[index].bias[at] += h;
                minus[index].bias[at] -= h;
            } else {
                plus[index].weight[at] += h;
                minus[index].weight[at] -= h;
            }
            (loss(&plus, pools, &input64, samples, size, &r)
                - loss(&minus, pools, &input64, samples, size, &r))
                / (2.0 * h)
        })
        .collect();
    let input_probes: Vec<usize> = (0..6).map(|_| rng.random_range(0..input.len())).collect();
    let input_numeric: Vec<f64> = input_probes
        .iter()
        .map(|&at| {
            let mut plus = input64.clone();
            let mut minus = input64.clone();
            plus[at] += h;
            minus[at] -= h;
            (loss(&convs64, pools, &plus, samples, size, &r)
                - loss(&convs64, pools, &minus, samples, size, &r))
                / (2.0 * h)
        })
        .collect();
    let request = BackwardRequest {
        weights: Vec::new(),
        input: true,
    };
    for isa in Isa::supported() {
        for &method in methods {
            let mut reference_bits: Option<Gradients> = None;
            for threads in [1, 2] {
                let mut net = UNet::with_method(isa, method, &convs, pools).unwrap();
                net.set_threads(threads);
                let grads = run(&net, &input, samples, size, &r, &request);
                let label = format!("{name} {} {method:?} threads {threads}", isa.name());
                for (&(index, is_bias, at), &expected) in probes.iter().zip(&numeric) {
                    let conv = &grads.convs[index];
                    let scale = conv
                        .weight
                        .iter()
                        .chain(&conv.bias)
                        .fold(0f32, |m, v| m.max(v.abs()))
                        .max(1e-3) as f64;
                    let got = if is_bias {
                        conv.bias[at]
                    } else {
                        conv.weight[at]
                    } as f64;
                    assert!(
                        (got - expected).abs() <= 1e-3 * scale,
                        "{label}: conv {index} {} {at}: {got} vs {expected} (scale {scale})",
                        if is_bias { "bias" } else { "weight" }
                    );
                }
                let input_grad = grads.input.as_ref().expect("input gradient");
                let scale = input_grad
                    .iter()
                    .fold(0f32, |m, v| m.max(v.abs()))
                    .max(1e-3) as f64;
                for (&at, &expected) in input_probes.iter().zip(&input_numeric) {
                    let got = input_grad[at] as f64;
                    assert!(
                        (got - expected).abs() <= 1e-3 * scale,
                        "{label}: input {at}: {got} vs {expected}"
                    );
                }
                match &reference_bits {
                    None => reference_bits = Some(grads),
                    Some(first) => {
                        for (a, b) in first.convs.iter().zip(&grads.convs) {
                            assert!(
                                a.weight == b.weight && a.bias == b.bias,
                                "{label}: threads change the bits"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn planar_3x3() {
    let k = [1, 3, 3];
    check(
        "planar",
        3,
        &[5, 18],
        20,
        &[k, k, k, k, k, [1, 1, 1]],
        &[[1, 2, 2], [1, 2, 2]],
        2,
        [1, 8, 12],
        &[Method::Direct, Method::Winograd],
        1,
    );
}

#[test]
fn probe_2x2_then_3x1() {
    let (a, b) = ([1, 2, 2], [1, 3, 1]);
    check(
        "probe",
        4,
        &[6, 8],
        17,
        &[a, b, b, b, a, [1, 1, 1]],
        &[[1, 2, 2], [1, 2, 1]],
        3,
        [1, 16, 2],
        &[Method::Direct],
        2,
    );
}

#[test]
fn volumetric_3x3x3_floor_pools() {
    let k = [3, 3, 3];
    check(
        "volumetric",
        5,
        &[4, 6],
        8,
        &[k, k, k, k, k, [1, 1, 1]],
        &[[2, 2, 2], [2, 2, 2]],
        2,
        [7, 7, 7],
        &[Method::Direct],
        3,
    );
}

#[test]
fn frozen_layers_are_skipped_and_the_rest_unchanged() {
    let mut rng = StdRng::seed_from_u64(4);
    let k = [1, 3, 3];
    let convs = network(&mut rng, 2, &[4, 8], 8, &[k, k, k, k, k, [1, 1, 1]]);
    let pools = [[1, 2, 2], [1, 2, 2]];
    let size = [1, 8, 8];
    let input: Vec<f32> = (0..2 * 64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let r: Vec<f32> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let net = UNet::new(&convs, &pools).unwrap();
    let all = run(&net, &input, 1, size, &r, &BackwardRequest::default());
    let frozen = BackwardRequest {
        weights: vec![false, false, true, true, true, true],
        input: false,
    };
    let some = run(&net, &input, 1, size, &r, &frozen);
    assert!(some.convs[0].weight.is_empty() && some.convs[1].bias.is_empty());
    for index in 2..6 {
        assert_eq!(all.convs[index].weight, some.convs[index].weight);
        assert_eq!(all.convs[index].bias, some.convs[index].bias);
    }
    assert!(some.input.is_none());
}

#[test]
fn one_workspace_serves_networks_of_other_widths() {
    let mut rng = StdRng::seed_from_u64(5);
    let k = [1, 3, 3];
    let kernels = [k, k, k, k, k, [1, 1, 1]];
    let narrow = network(&mut rng, 2, &[4, 8], 8, &kernels);
    let wide = network(&mut rng, 2, &[20, 40], 40, &kernels);
    let pools = [[1, 2, 2], [1, 2, 2]];
    let size = [1, 8, 8];
    let input: Vec<f32> = (0..2 * 64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let r: Vec<f32> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut workspace = Workspace::new();
    for convs in [&narrow, &wide, &narrow] {
        let net = UNet::new(convs, &pools).unwrap();
        let mut output = vec![0f32; 64];
        net.forward_for_training(&mut workspace, &input, 1, size, &mut output)
            .unwrap();
        let shared = net
            .backward(&mut workspace, &r, &BackwardRequest::default())
            .unwrap();
        let alone = run(&net, &input, 1, size, &r, &BackwardRequest::default());
        for (a, b) in shared.convs.iter().zip(&alone.convs) {
            assert_eq!(a.weight, b.weight);
        }
    }
}

#[test]
fn an_inference_only_network_refuses_backward_and_still_infers() {
    let mut rng = StdRng::seed_from_u64(6);
    let k = [1, 3, 3];
    let convs = network(&mut rng, 2, &[4, 8], 8, &[k, k, k, k, k, [1, 1, 1]]);
    let pools = [[1, 2, 2], [1, 2, 2]];
    let size = [1, 8, 8];
    let input: Vec<f32> = (0..2 * 64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let full = UNet::new(&convs, &pools).unwrap();
    let mut inference = full.clone();
    inference.drop_backward_weights();
    let mut want = vec![0f32; 64];
    full.forward(&mut Workspace::new(), &input, 1, size, &mut want)
        .unwrap();
    let mut got = vec![0f32; 64];
    inference
        .forward(&mut Workspace::new(), &input, 1, size, &mut got)
        .unwrap();
    assert_eq!(got, want);
    let mut workspace = Workspace::new();
    inference
        .forward_for_training(&mut workspace, &input, 1, size, &mut got)
        .unwrap();
    let refused = inference.backward(&mut workspace, &want, &BackwardRequest::default());
    assert!(refused.is_err());
}
