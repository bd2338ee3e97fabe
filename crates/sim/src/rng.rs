//! Deterministic random-number streams for the simulator.
//!
//! Owns the seeding scheme: every random quantity in a simulated movie comes from a
//! [`StreamRng`] derived from `(seed, stream, index)` with SplitMix64, so that the movie is a
//! pure function of the seed. The generator (xoshiro256++) is implemented here rather than taken
//! from `rand::rngs::SmallRng`, whose algorithm `rand` reserves the right to change; a movie
//! generated today must be bit-identical next year.

use rand::RngCore;

/// Independent purposes that draw random numbers; each gets its own stream.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    /// Static scene: neuron placement, shapes, brightness, neuropil layout.
    Scene = 1,
    /// Per-frame dynamics: spikes, neuropil fluctuations, motion.
    Dynamics = 2,
    /// Per-frame photon (shot) and read noise; indexed by frame number.
    Noise = 3,
}

/// One step of SplitMix64: a good 64-bit mixer used for seeding.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256++ (Blackman & Vigna), seeded through SplitMix64.
#[derive(Clone, Debug)]
pub(crate) struct StreamRng {
    state: [u64; 4],
}

impl StreamRng {
    /// The generator for `stream` of the movie with `seed`, sub-stream `index` (e.g. a frame).
    pub(crate) fn new(seed: u64, stream: Stream, index: u64) -> Self {
        let mut mixer = seed
            ^ (stream as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ index.wrapping_mul(0x8CB9_2BA7_2F3D_8DD7);
        // Burn one output so that nearby seeds decorrelate fully.
        splitmix64(&mut mixer);
        let mut state = [0u64; 4];
        for word in &mut state {
            *word = splitmix64(&mut mixer);
        }
        if state == [0; 4] {
            state[0] = 1;
        }
        Self { state }
    }
}

impl RngCore for StreamRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    fn fill_bytes(&mut self, destination: &mut [u8]) {
        for chunk in destination.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_differ_and_repeat() {
        let mut a = StreamRng::new(7, Stream::Noise, 3);
        let mut b = StreamRng::new(7, Stream::Noise, 3);
        let mut c = StreamRng::new(7, Stream::Noise, 4);
        let mut d = StreamRng::new(7, Stream::Dynamics, 3);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..4).map(|_| c.next_u64()).collect();
        let ws: Vec<u64> = (0..4).map(|_| d.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        assert_ne!(xs, ws);
    }

    #[test]
    fn uniform_mean_is_half() {
        let mut rng = StreamRng::new(1, Stream::Scene, 0);
        let n = 100_000;
        let mean: f64 = (0..n).map(|_| rng.random::<f64>()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "mean {mean}");
    }
}
