//! Stored NIfTI elements <-> f32, in either byte order: decoding a volume's
//! bytes (with the header's scaling) and encoding f32 values as the output
//! type (rounding and clipping through [`OutputSample`], shared with the
//! movie writers).

use super::NiftiDtype;
use crate::movie::OutputSample;

/// One element type as it is laid out in a NIfTI file.
pub(crate) trait StoredSample: OutputSample {
    const SIZE: usize;
    /// Decodes one element from exactly `SIZE` bytes.
    fn decode(bytes: &[u8], big_endian: bool) -> Self;
    /// Appends the element's bytes.
    fn encode(self, big_endian: bool, out: &mut Vec<u8>);
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
}

macro_rules! stored_sample {
    ($t:ty) => {
        impl StoredSample for $t {
            const SIZE: usize = std::mem::size_of::<$t>();

            #[inline]
            fn decode(bytes: &[u8], big_endian: bool) -> Self {
                let mut raw = [0u8; std::mem::size_of::<$t>()];
                raw.copy_from_slice(bytes);
                if big_endian {
                    <$t>::from_be_bytes(raw)
                } else {
                    <$t>::from_le_bytes(raw)
                }
            }

            #[inline]
            fn encode(self, big_endian: bool, out: &mut Vec<u8>) {
                if big_endian {
                    out.extend_from_slice(&self.to_be_bytes());
                } else {
                    out.extend_from_slice(&self.to_le_bytes());
                }
            }

            #[inline]
            fn to_f32(self) -> f32 {
                self as f32
            }

            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}
stored_sample!(u8);
stored_sample!(i8);
stored_sample!(i16);
stored_sample!(u16);
stored_sample!(i32);
stored_sample!(u32);
stored_sample!(f32);
stored_sample!(f64);

/// Runs `$body` with `$t` bound to the Rust type of a [`NiftiDtype`].
macro_rules! with_sample_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            NiftiDtype::U8 => {
                type $t = u8;
                $body
            }
            NiftiDtype::I8 => {
                type $t = i8;
                $body
            }
            NiftiDtype::I16 => {
                type $t = i16;
                $body
            }
            NiftiDtype::U16 => {
                type $t = u16;
                $body
            }
            NiftiDtype::I32 => {
                type $t = i32;
                $body
            }
            NiftiDtype::U32 => {
                type $t = u32;
                $body
            }
            NiftiDtype::F32 => {
                type $t = f32;
                $body
            }
            NiftiDtype::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// Decodes `bytes` (whole elements of `dtype`) into `out`, applying
/// `scaling` = (slope, inter) in f64 before the cast to f32.
pub(crate) fn decode_values(
    dtype: NiftiDtype,
    big_endian: bool,
    scaling: Option<(f64, f64)>,
    bytes: &[u8],
    out: &mut [f32],
) {
    with_sample_type!(dtype, T => decode_as::<T>(big_endian, scaling, bytes, out))
}

fn decode_as<T: StoredSample>(
    big_endian: bool,
    scaling: Option<(f64, f64)>,
    bytes: &[u8],
    out: &mut [f32],
) {
    let values = bytes.chunks_exact(T::SIZE).zip(out.iter_mut());
    match scaling {
        None => {
            for (raw, value) in values {
                *value = T::decode(raw, big_endian).to_f32();
            }
        }
        Some((slope, inter)) => {
            for (raw, value) in values {
                *value = (T::decode(raw, big_endian).to_f64() * slope + inter) as f32;
            }
        }
    }
}

/// Appends `values` encoded as `dtype` to `out`; returns how many were
/// clipped (or NaN stored as 0) on the way to an integer type.
pub(crate) fn encode_values(
    dtype: NiftiDtype,
    big_endian: bool,
    values: &[f32],
    out: &mut Vec<u8>,
) -> u64 {
    with_sample_type!(dtype, T => encode_as::<T>(big_endian, values, out))
}

fn encode_as<T: StoredSample>(big_endian: bool, values: &[f32], out: &mut Vec<u8>) -> u64 {
    out.reserve(values.len() * T::SIZE);
    let mut clipped = 0u64;
    for &value in values {
        let (stored, was_clipped) = T::from_f32(value);
        stored.encode(big_endian, out);
        clipped += u64::from(was_clipped);
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_in_both_byte_orders() {
        let values = [0.0f32, 1.0, 7.0, 100.0, 127.0];
        for dtype in NiftiDtype::ALL {
            for big_endian in [false, true] {
                let mut bytes = Vec::new();
                let clipped = encode_values(dtype, big_endian, &values, &mut bytes);
                assert_eq!(clipped, 0, "{dtype}");
                assert_eq!(bytes.len(), values.len() * dtype.size_bytes());
                let mut back = [0f32; 5];
                decode_values(dtype, big_endian, None, &bytes, &mut back);
                assert_eq!(back, values, "{dtype} big_endian={big_endian}");
            }
        }
    }

    #[test]
    fn byte_order_and_scaling_are_applied() {
        // 0x0102 = 258 stored big-endian.
        let mut out = [0f32; 1];
        decode_values(NiftiDtype::I16, true, None, &[1, 2], &mut out);
        assert_eq!(out, [258.0]);
        decode_values(NiftiDtype::I16, false, Some((2.0, 10.0)), &[2, 1], &mut out);
        assert_eq!(out, [258.0 * 2.0 + 10.0]);
    }

    #[test]
    fn integer_outputs_round_and_clip() {
        let mut bytes = Vec::new();
        let clipped = encode_values(
            NiftiDtype::I8,
            false,
            &[-200.0, 2.5, f32::NAN, 126.6],
            &mut bytes,
        );
        assert_eq!(bytes, [(-128i8) as u8, 2, 0, 127]);
        assert_eq!(clipped, 2);
    }
}
