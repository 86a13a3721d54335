//! A cheap hash for maps whose keys the program chose: a multiply-rotate over 8 bytes at a
//! time. Lookups of any string are safe with it (flooding a map needs inserting chosen keys);
//! SipHash's defence against chosen keys is not needed, and costs more than the lookup.

use std::hash::{BuildHasherDefault, Hasher};

/// [`FastHasher`]'s builder, for `HashMap<K, V, FastHash>`.
pub(crate) type FastHash = BuildHasherDefault<FastHasher>;

/// See the module docs.
#[derive(Default)]
pub(crate) struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
