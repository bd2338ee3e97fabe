//! Our CPU kernels against burn (the reference) on random weights and inputs: every network
//! family, frame sizes that need the reflection padding, batches of one and several.

use burn::tensor::backend::Backend;
use deepinterp::backend::Cpu;
use deepinterp::engine::{Engine, Forward};
use deepinterp::model::{Network, UNetConfig, VolumeUNetConfig};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn random_input(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// Largest difference between the engines, relative to the largest output.
fn planar_gap(network: &Network<Cpu>, shape: [usize; 4], seed: u64) -> f32 {
    let device = Default::default();
    let input = random_input(shape.iter().product(), seed);
    let kernels = Forward::new(network, Engine::Kernels, &device)
        .unwrap()
        .planar(&input, shape)
        .unwrap();
    let burn = Forward::new(network, Engine::Burn, &device)
        .unwrap()
        .planar(&input, shape)
        .unwrap();
    assert_eq!(kernels.len(), shape[0] * shape[2] * shape[3]);
    gap(&kernels, &burn)
}

fn gap(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
        / scale
}

fn seeded<B: Backend>(seed: u64) -> B::Device {
    let device = B::Device::default();
    B::seed(&device, seed);
    device
}

#[test]
fn planar_networks_agree_with_burn_at_every_frame_size() {
    let device = seeded::<Cpu>(1);
    for (config, sizes) in [
        // Channel counts that fill blocks partly and exactly, the default's shape.
        (UNetConfig::scaled(6, 2, 4), vec![[8, 8], [13, 10], [3, 5]]),
        (UNetConfig::scaled(60, 3, 16), vec![[64, 64], [40, 72]]),
        // Wide enough for the Winograd path.
        (UNetConfig::scaled(20, 1, 64), vec![[16, 16], [22, 18]]),
    ] {
        let network = Network::Planar(config.init::<Cpu>(&device).unwrap());
        for (index, [height, width]) in sizes.into_iter().enumerate() {
            for batch in [1, 3] {
                let shape = [batch, config.in_channels, height, width];
                let gap = planar_gap(&network, shape, index as u64);
                assert!(gap < 1e-5, "{config:?} on {shape:?}: relative gap {gap}");
            }
        }
    }
}

#[test]
fn probe_networks_agree_with_burn() {
    let device = seeded::<Cpu>(2);
    for config in [
        UNetConfig::scaled_probe(8, 2, 8),
        UNetConfig::scaled_probe(60, 3, 16),
    ] {
        let network = Network::Planar(config.init::<Cpu>(&device).unwrap());
        for rows in [32, 48] {
            let shape = [4, config.in_channels, rows, 2];
            let gap = planar_gap(&network, shape, rows as u64);
            assert!(gap < 1e-5, "{config:?} on {shape:?}: relative gap {gap}");
        }
    }
}

#[test]
fn volumetric_networks_agree_with_burn() {
    let device = seeded::<Cpu>(3);
    for (config, side) in [
        (VolumeUNetConfig::fmri_unet_denoiser(5), [7, 7, 7]),
        (VolumeUNetConfig::scaled(3, 1, 4), [5, 6, 4]),
    ] {
        let network = Network::Volumetric(config.init::<Cpu>(&device).unwrap());
        for batch in [1, 17] {
            let shape = [batch, config.in_channels, side[0], side[1], side[2]];
            let input = random_input(shape.iter().product(), batch as u64);
            let kernels = Forward::new(&network, Engine::Kernels, &device)
                .unwrap()
                .volumetric(&input, shape)
                .unwrap();
            let burn = Forward::new(&network, Engine::Burn, &device)
                .unwrap()
                .volumetric(&input, shape)
                .unwrap();
            let gap = gap(&kernels, &burn);
            assert!(gap < 1e-5, "{config:?} on {shape:?}: relative gap {gap}");
        }
    }
}

#[test]
fn an_engine_for_one_kind_of_network_refuses_the_other_kind_of_input() {
    let device = seeded::<Cpu>(4);
    let planar = Network::Planar(UNetConfig::scaled(4, 1, 4).init::<Cpu>(&device).unwrap());
    for engine in [Engine::Kernels, Engine::Burn] {
        let mut forward = Forward::new(&planar, engine, &device).unwrap();
        assert!(forward.volumetric(&[0.0; 4 * 8], [1, 4, 2, 2, 2]).is_err());
    }
}
