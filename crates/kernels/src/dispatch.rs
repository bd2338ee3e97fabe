//! Which instruction set the kernels use, decided once per process from the CPU (and the
//! `DEEPINTERP_KERNELS` environment variable, which can only lower it: tests and benchmarks
//! run every path on one machine).

use std::sync::OnceLock;

/// An instruction set the convolution kernels are written for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// 512-bit vectors (AVX-512F), 32 registers.
    Avx512,
    /// 256-bit vectors with fused multiply-add (AVX2 + FMA), 16 registers.
    Avx2,
    /// Plain Rust, vectorised by the compiler where it can.
    Portable,
}

impl Isa {
    /// The best set this CPU supports, lowered by `DEEPINTERP_KERNELS=avx2|portable`.
    pub fn detected() -> Isa {
        static CHOSEN: OnceLock<Isa> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let best = Isa::best_supported();
            match std::env::var("DEEPINTERP_KERNELS").ok().as_deref() {
                Some("portable") => Isa::Portable,
                Some("avx2") => best.max(Isa::Avx2),
                _ => best,
            }
        })
    }

    /// Every set this CPU can run, best first.
    pub fn supported() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|isa| *isa >= Isa::best_supported())
            .collect()
    }

    fn best_supported() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Name as printed in benchmarks and logs.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2+fma",
            Isa::Portable => "portable",
        }
    }
}
