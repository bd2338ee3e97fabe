//! The training forward pass as one burn autodiff operation run by our CPU kernels.
//!
//! [`UNetTrainOps`] is the backend extension the training loop calls: on
//! `Autodiff<Flex>` (the CPU training backend) the whole network is one custom operation
//! whose inputs are the batch and every weight and bias flattened into one 1-D tensor
//! (`Tensor::cat` of reshaped parameters: burn routes each slice of that tensor's gradient
//! back to its parameter, and drops those of frozen ones); its forward is
//! [`deepinterp_kernels::UNet::forward_for_training`], its state the kernels' workspace,
//! its backward [`deepinterp_kernels::UNet::backward`]. Other backends (CUDA) keep burn's
//! forward, and `DEEPINTERP_ENGINE=burn` selects it on the CPU too: burn stays the
//! reference the kernels are tested against.

use std::sync::{Arc, Mutex};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData, TensorPrimitive};
use deepinterp_kernels::{BackwardRequest, ConvWeights, UNet as KernelUNet, Workspace};

use crate::engine::Engine;
use crate::model::Network;

/// A training backend's forward pass of a whole network on a flat batch.
pub trait UNetTrainOps: AutodiffBackend {
    /// [`Network::forward_flat`] for training: same values, and gradients for every
    /// parameter that requires them. The default is burn's own forward.
    fn train_forward(
        network: &Network<Self>,
        input: Tensor<Self, 1>,
        shape: &[usize],
    ) -> Tensor<Self, 1> {
        network.forward_flat(input, shape)
    }

    /// What computes validation losses (forward passes on the inner backend, no gradients):
    /// burn unless the backend runs the kernels.
    fn validation_engine() -> Engine {
        Engine::Burn
    }
}

/// The engine training uses on the CPU: the kernels unless `DEEPINTERP_ENGINE=burn`.
pub fn train_engine() -> Engine {
    match std::env::var("DEEPINTERP_ENGINE").ok().as_deref() {
        Some("burn") => Engine::Burn,
        _ => Engine::Kernels,
    }
}

impl UNetTrainOps for Autodiff<Flex> {
    fn train_forward(
        network: &Network<Self>,
        input: Tensor<Self, 1>,
        shape: &[usize],
    ) -> Tensor<Self, 1> {
        match train_engine() {
            Engine::Burn => network.forward_flat(input, shape),
            Engine::Kernels => kernels_forward(network, input, shape),
        }
    }

    fn validation_engine() -> Engine {
        train_engine()
    }
}

#[cfg(feature = "cuda")]
impl UNetTrainOps for crate::backend::GpuTrain {}

type Train = Autodiff<Flex>;

/// The network's forward pass through the kernels as one autodiff operation.
pub fn kernels_forward(
    network: &Network<Train>,
    input: Tensor<Train, 1>,
    shape: &[usize],
) -> Tensor<Train, 1> {
    let mut params = Vec::new();
    let mut wanted = Vec::new();
    let mut convs = Vec::new();
    let pools: Vec<[usize; 3]> = match network {
        Network::Planar(net) => {
            for conv in &net.convs {
                let weight = conv.weight.val();
                let [out_channels, in_channels, kh, kw] = weight.dims();
                wanted.push(weight.is_require_grad() || conv.bias.val().is_require_grad());
                convs.push((out_channels, in_channels, [1, kh, kw]));
                params.push(weight.reshape([out_channels * in_channels * kh * kw]));
                params.push(conv.bias.val());
            }
            net.pools().iter().map(|p| [1, p[0], p[1]]).collect()
        }
        Network::Volumetric(net) => {
            for conv in &net.convs {
                let weight = conv.weight.val();
                let [out_channels, in_channels, kx, ky, kz] = weight.dims();
                wanted.push(weight.is_require_grad() || conv.bias.val().is_require_grad());
                convs.push((out_channels, in_channels, [kx, ky, kz]));
                params.push(weight.reshape([out_channels * in_channels * kx * ky * kz]));
                params.push(conv.bias.val());
            }
            net.pools().to_vec()
        }
    };
    let params = Tensor::cat(params, 0);
    let spec = Spec {
        convs,
        pools,
        wanted,
    };
    match (network, shape) {
        (Network::Planar(net), &[n, c, h, w]) => {
            let multiple = net.size_multiple();
            let padded = [
                h.next_multiple_of(multiple[0]),
                w.next_multiple_of(multiple[1]),
            ];
            if padded == [h, w] {
                return apply(input, params, &spec, n, c, [1, h, w]);
            }
            // Padding and cropping stay burn operations (the input needs no gradient, the
            // crop routes the output's back).
            let x = crate::model::unet::pad_reflect_or_edge(
                input.reshape([n, c, h, w]),
                padded[0] - h,
                padded[1] - w,
            );
            let x = x.reshape([n * c * padded[0] * padded[1]]);
            let y = apply(x, params, &spec, n, c, [1, padded[0], padded[1]]);
            y.reshape([n, 1, padded[0], padded[1]])
                .slice([0..n, 0..1, 0..h, 0..w])
                .reshape([n * h * w])
        }
        (Network::Volumetric(_), &[n, c, x, y, z]) => apply(input, params, &spec, n, c, [x, y, z]),
        _ => panic!("a batch of shape {shape:?} does not fit this network"),
    }
}

/// What the operation needs to rebuild the kernels' network from the flat parameters.
#[derive(Clone, Debug)]
struct Spec {
    /// Per convolution: out and in channels, kernel sides.
    convs: Vec<(usize, usize, [usize; 3])>,
    pools: Vec<[usize; 3]>,
    /// Per convolution: whether its parameters want a gradient.
    wanted: Vec<bool>,
}

impl Spec {
    fn weights(&self, flat: &[f32]) -> Vec<ConvWeights> {
        let mut at = 0;
        self.convs
            .iter()
            .map(|&(out_channels, in_channels, kernel)| {
                let len = out_channels * in_channels * kernel.iter().product::<usize>();
                let weight = flat[at..at + len].to_vec();
                at += len;
                let bias = flat[at..at + out_channels].to_vec();
                at += out_channels;
                ConvWeights {
                    out_channels,
                    in_channels,
                    kernel,
                    weight,
                    bias,
                }
            })
            .collect()
    }
}

/// One workspace kept between steps (they have the same shapes), so that a step allocates
/// and zeroes nothing; a state dropped after its backward pass gives its workspace back.
static SPARE: Mutex<Option<Workspace>> = Mutex::new(None);

/// What the backward pass needs: the network and the forward's activations.
struct State {
    unet: KernelUNet,
    workspace: Option<Workspace>,
    spec: Spec,
    input_len: usize,
    params_len: usize,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("input_len", &self.input_len)
            .field("params_len", &self.params_len)
            .finish_non_exhaustive()
    }
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(workspace) = self.workspace.take()
            && let Ok(mut spare) = SPARE.lock()
        {
            *spare = Some(workspace);
        }
    }
}

#[derive(Debug)]
struct UNetBackward;

impl Backward<Flex, 2> for UNetBackward {
    type State = Arc<Mutex<State>>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_input, node_params] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let grad = read(grad);
        let mut state = ops.state.lock().expect("kernel state");
        let state = &mut *state;
        let request = BackwardRequest {
            weights: if node_params.is_some() {
                state.spec.wanted.clone()
            } else {
                vec![false; state.spec.wanted.len()]
            },
            input: node_input.is_some(),
        };
        let workspace = state.workspace.as_mut().expect("the forward's workspace");
        let gradients = state
            .unet
            .backward(workspace, &grad, &request)
            .expect("the kernels' backward pass fits its forward pass");
        if let Some(node) = node_params {
            let mut flat = Vec::with_capacity(state.params_len);
            for (conv, (&wanted, &(out_channels, in_channels, kernel))) in gradients
                .convs
                .iter()
                .zip(state.spec.wanted.iter().zip(&state.spec.convs))
            {
                if wanted {
                    flat.extend_from_slice(&conv.weight);
                    flat.extend_from_slice(&conv.bias);
                } else {
                    // A frozen layer: burn drops its slice of the gradient.
                    let taps: usize = kernel.iter().product();
                    flat.resize(flat.len() + (in_channels * taps + 1) * out_channels, 0.0);
                }
            }
            grads.register::<Flex>(node.id, write(flat));
        }
        if let Some(node) = node_input {
            let input = gradients.input.expect("input gradient requested");
            grads.register::<Flex>(node.id, write(input));
        }
    }
}

fn read(tensor: FloatTensor<Flex>) -> Vec<f32> {
    Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(tensor))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 values")
}

fn write(values: Vec<f32>) -> FloatTensor<Flex> {
    let len = values.len();
    Tensor::<Flex, 1>::from_data(TensorData::new(values, [len]), &Default::default())
        .into_primitive()
        .tensor()
}

/// The operation on `samples` inputs of `channels` × `size`.
fn apply(
    input: Tensor<Train, 1>,
    params: Tensor<Train, 1>,
    spec: &Spec,
    samples: usize,
    channels: usize,
    size: [usize; 3],
) -> Tensor<Train, 1> {
    let input = input.into_primitive().tensor();
    let params = params.into_primitive().tensor();
    let input_values = read(input.primitive.clone());
    let param_values = read(params.primitive.clone());
    let weights = spec.weights(&param_values);
    debug_assert_eq!(weights[0].in_channels, channels);
    let unet = KernelUNet::new(&weights, &spec.pools).expect("a U-Net the kernels run");
    let voxels: usize = size.iter().product();
    let mut output = vec![0f32; samples * voxels];
    let prep = UNetBackward
        .prepare::<NoCheckpointing>([input.node.clone(), params.node.clone()])
        .compute_bound()
        .stateful();
    let result = match prep {
        OpsKind::Tracked(prep) => {
            let mut workspace = SPARE
                .lock()
                .ok()
                .and_then(|mut spare| spare.take())
                .unwrap_or_default();
            unet.forward_for_training(&mut workspace, &input_values, samples, size, &mut output)
                .expect("a batch the kernels run");
            let state = State {
                unet,
                workspace: Some(workspace),
                spec: spec.clone(),
                input_len: input_values.len(),
                params_len: param_values.len(),
            };
            prep.finish(Arc::new(Mutex::new(state)), write(output))
        }
        OpsKind::UnTracked(prep) => {
            let mut workspace = Workspace::new();
            unet.forward(&mut workspace, &input_values, samples, size, &mut output)
                .expect("a batch the kernels run");
            prep.finish(write(output))
        }
    };
    Tensor::from_primitive(TensorPrimitive::Float(result))
}

#[cfg(test)]
mod tests {
    //! The kernels' operation against burn's autodiff on the same random batches: every
    //! parameter's loss gradient, frozen encoders, and the weights after an optimiser step.

    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::Distribution;

    use super::*;
    use crate::model::{UNetConfig, VolumeUNetConfig};
    use crate::training::{Loss, adam, rmsprop};

    /// burn's autodiff, with graphs built and differentiated on several threads at once,
    /// now and then returns a gradient that differs from the same graph run alone, or none
    /// (seen with and without this crate's operation: 6 of 200 parallel runs of these tests,
    /// 0 of 150 serial ones). These tests compare numbers, not threads: one at a time, each
    /// from a fixed seed, so that a failure repeats (a max-pool window whose two largest
    /// inputs nearly tie routes its gradient by rounding, which differs between the engines).
    static SERIAL: Mutex<()> = Mutex::new(());

    fn serial() -> std::sync::MutexGuard<'static, ()> {
        let guard = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        <Train as burn::tensor::backend::Backend>::seed(&Default::default(), 20_261_128);
        guard
    }

    fn planar(config: UNetConfig) -> Network<Train> {
        Network::Planar(config.init::<Train>(&Default::default()).unwrap())
    }

    fn volumetric(config: VolumeUNetConfig) -> Network<Train> {
        Network::Volumetric(config.init::<Train>(&Default::default()).unwrap())
    }

    fn loss(
        network: &Network<Train>,
        input: &Tensor<Train, 1>,
        target: &Tensor<Train, 1>,
        shape: &[usize],
        kind: Loss,
        kernels: bool,
    ) -> Tensor<Train, 1> {
        let prediction = if kernels {
            kernels_forward(network, input.clone(), shape)
        } else {
            network.forward_flat(input.clone(), shape)
        };
        let difference = prediction - target.clone();
        match kind {
            Loss::L1 => difference.abs().mean(),
            Loss::L2 => difference.powi_scalar(2).mean(),
        }
    }

    fn batch(shape: &[usize]) -> (Tensor<Train, 1>, Tensor<Train, 1>) {
        let device = Default::default();
        let inputs: usize = shape.iter().product();
        let outputs = inputs / shape[1];
        (
            Tensor::random([inputs], Distribution::Normal(0.0, 1.0), &device),
            Tensor::random([outputs], Distribution::Normal(0.0, 1.0), &device),
        )
    }

    /// Every parameter's gradient as (name, values) in execution order; `None` for frozen.
    fn param_grads(
        network: &Network<Train>,
        grads: &<Train as AutodiffBackend>::Gradients,
    ) -> Vec<Option<Vec<f32>>> {
        let values = |t: Option<Tensor<Flex, 1>>| t.map(|t| t.into_data().to_vec::<f32>().unwrap());
        let mut out = Vec::new();
        match network {
            Network::Planar(net) => {
                for conv in &net.convs {
                    out.push(values(
                        conv.weight.val().grad(grads).map(|g| g.flatten(0, 3)),
                    ));
                    out.push(values(conv.bias.val().grad(grads)));
                }
            }
            Network::Volumetric(net) => {
                for conv in &net.convs {
                    out.push(values(
                        conv.weight.val().grad(grads).map(|g| g.flatten(0, 4)),
                    ));
                    out.push(values(conv.bias.val().grad(grads)));
                }
            }
        }
        out
    }

    fn compare_gradients(name: &str, network: &Network<Train>, shape: &[usize], kind: Loss) {
        let (input, mut target) = batch(shape);
        if kind == Loss::L1 {
            // L1's gradient is the sign of prediction − target: where the two nearly tie,
            // rounding decides it. Targets are moved 0.01 away from burn's prediction there.
            let prediction: Vec<f32> = network
                .forward_flat(input.clone(), shape)
                .into_data()
                .to_vec()
                .unwrap();
            let moved: Vec<f32> = target
                .clone()
                .into_data()
                .to_vec::<f32>()
                .unwrap()
                .into_iter()
                .zip(&prediction)
                .map(|(t, &p)| if (t - p).abs() < 1e-3 { p + 0.01 } else { t })
                .collect();
            target = Tensor::from_floats(moved.as_slice(), &Default::default());
        }
        let ours = loss(network, &input, &target, shape, kind, true);
        let theirs = loss(network, &input, &target, shape, kind, false);
        let (a, b) = (
            ours.clone().into_scalar() as f64,
            theirs.clone().into_scalar() as f64,
        );
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
            "{name}: loss {a} vs {b}"
        );
        let ours = param_grads(network, &ours.backward());
        let theirs = param_grads(network, &theirs.backward());
        // A gradient can cancel to zero (an L1 loss's last bias: ±1/N over outputs whose
        // signs balance), leaving only rounding that depends on the order of the sum: the
        // largest gradient of the network bounds its scale from below.
        let largest = theirs
            .iter()
            .flatten()
            .flatten()
            .fold(0f32, |m, v| m.max(v.abs()));
        for (index, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            match (a, b) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    let scale = b
                        .iter()
                        .fold(0f32, |m, v| m.max(v.abs()))
                        .max(1e-3 * largest)
                        .max(1e-12);
                    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                    // Winograd layers (16 channels and more) round differently from burn's
                    // direct convolutions (~1e-6 of an activation), and a gradient summed
                    // over every output keeps that error while its value may cancel: 1e-3
                    // still catches any wrong term, which is off by its whole size.
                    assert!(
                        worst <= 1e-3 * scale,
                        "{name} {kind:?}: parameter {index}: max difference {worst}, max |grad| {scale}"
                    );
                }
                _ => panic!("{name}: parameter {index} has a gradient on one side only"),
            }
        }
    }

    #[test]
    fn planar_gradients_match_burn() {
        let _serial = serial();
        let network = planar(UNetConfig::scaled(4, 2, 8));
        for kind in [Loss::L1, Loss::L2] {
            compare_gradients("planar", &network, &[2, 4, 16, 16], kind);
        }
        // Not a multiple of the pools: padded by burn, cropped back.
        compare_gradients("planar padded", &network, &[2, 4, 13, 10], Loss::L2);
    }

    #[test]
    fn probe_gradients_match_burn() {
        let _serial = serial();
        let network = planar(UNetConfig::scaled_probe(4, 2, 8));
        for kind in [Loss::L1, Loss::L2] {
            compare_gradients("probe", &network, &[3, 4, 16, 2], kind);
        }
    }

    #[test]
    fn volumetric_gradients_match_burn() {
        let _serial = serial();
        let network = volumetric(VolumeUNetConfig::scaled(5, 2, 8));
        for kind in [Loss::L1, Loss::L2] {
            compare_gradients("volumetric", &network, &[2, 5, 7, 7, 7], kind);
        }
    }

    #[test]
    fn frozen_encoder_gets_no_gradient() {
        let _serial = serial();
        let network = planar(UNetConfig::scaled(4, 2, 8)).freeze_encoder();
        compare_gradients("frozen", &network, &[2, 4, 16, 16], Loss::L1);
        let (input, target) = batch(&[2, 4, 16, 16]);
        let grads = loss(&network, &input, &target, &[2, 4, 16, 16], Loss::L1, true).backward();
        let grads = param_grads(&network, &grads);
        assert!(grads[..4].iter().all(Option::is_none));
        assert!(grads[4..].iter().all(Option::is_some));
    }

    fn weights(network: &Network<Train>) -> Vec<f32> {
        network
            .weight_values()
            .unwrap()
            .into_iter()
            .flat_map(|c| c.weight.into_iter().chain(c.bias))
            .collect()
    }

    #[test]
    fn an_optimiser_step_gives_the_same_weights() {
        let _serial = serial();
        for (name, network, shape) in [
            (
                "planar",
                planar(UNetConfig::scaled(4, 2, 8)),
                vec![2, 4, 16, 16],
            ),
            (
                "volumetric",
                volumetric(VolumeUNetConfig::scaled(5, 2, 8)),
                vec![2, 5, 7, 7, 7],
            ),
        ] {
            let (input, target) = batch(&shape);
            let lr = 1e-3;
            let step = |kernels: bool, adam_step: bool| {
                let net = network.clone();
                let l = loss(&net, &input, &target, &shape, Loss::L2, kernels);
                let grads = GradientsParams::from_grads(l.backward(), &net);
                let net = if adam_step {
                    adam::<Train>().step(lr, net, grads)
                } else {
                    rmsprop::<Train>().step(lr, net, grads)
                };
                weights(&net)
            };
            // The first adaptive step is about lr · g / |g|: where |g| is near the
            // optimisers' epsilon (1e-7), the rounding of g decides the step. Weights are
            // compared where burn's gradient is at least 1e-3 of the largest and 1e-5 (well
            // above epsilon); the rest are mostly weights of units that are zero on this
            // batch.
            let gradients: Vec<f32> = param_grads(
                &network,
                &loss(&network, &input, &target, &shape, Loss::L2, false).backward(),
            )
            .into_iter()
            .flatten()
            .flatten()
            .collect();
            let largest = gradients.iter().fold(0f32, |m, g| m.max(g.abs()));
            let compared: Vec<bool> = gradients
                .iter()
                .map(|g| g.abs() >= 0.01 * largest)
                .collect();
            let share = compared.iter().filter(|&&c| c).count() as f32 / compared.len() as f32;
            assert!(
                share > 0.05,
                "{name}: only {share} of the weights have a clear gradient"
            );
            for adam_step in [false, true] {
                let (a, b) = (step(true, adam_step), step(false, adam_step));
                let before = weights(&network);
                assert_eq!(a.len(), compared.len());
                let worst = a
                    .iter()
                    .zip(&b)
                    .zip(&compared)
                    .filter(|(_, c)| **c)
                    .fold(0f32, |m, ((x, y), _)| m.max((x - y).abs()));
                let moved = a
                    .iter()
                    .zip(&before)
                    .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
                assert!(moved > 0.5 * lr as f32, "{name}: the step moved nothing");
                assert!(
                    worst <= 0.01 * lr as f32,
                    "{name} adam {adam_step}: weights differ by {worst} after one step"
                );
            }
        }
    }

    #[test]
    fn steps_repeat_bit_for_bit() {
        let _serial = serial();
        let network = planar(UNetConfig::scaled(4, 2, 8));
        let shape = [2, 4, 16, 16];
        let (input, target) = batch(&shape);
        let run = || {
            let mut net = network.clone();
            let mut optimizer = rmsprop::<Train>();
            for _ in 0..3 {
                let l = loss(&net, &input, &target, &shape, Loss::L1, true);
                let grads = GradientsParams::from_grads(l.backward(), &net);
                net = optimizer.step(1e-3, net, grads);
            }
            weights(&net)
        };
        assert!(run() == run(), "two runs of the same steps differ");
    }
}
