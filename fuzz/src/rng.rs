//! The seeded random generator every case draws from: SplitMix64, written here so that a case
//! is the same input on every machine and every version of this crate's dependencies (a
//! library generator may change its stream between releases; a crasher's (target, seed, index)
//! must keep naming the same input).

/// SplitMix64 (Steele, Lea, Flood 2014): 64 bits of state, good enough statistics for fuzzing,
/// and every state is a valid seed.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

/// FNV-1a of a target name: the name enters the case's seed, so two targets with the same
/// (seed, index) draw different streams.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Rng {
    /// The generator of one case: a pure function of (target, seed, index).
    pub fn for_case(target: &str, seed: u64, index: u64) -> Rng {
        let mut r = Rng {
            state: fnv1a(target.as_bytes()) ^ seed.rotate_left(17),
        };
        r.state ^= r.next_u64() ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03);
        // Warm up so that neighbouring indexes diverge at once.
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: unbiased enough for fuzzing, no division.
        let wide = u128::from(self.next_u64()) * (n as u128);
        usize::try_from(wide >> 64).unwrap_or(0)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// One element of a non-empty slice (`None` for an empty one).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_is_a_function_of_target_seed_and_index() {
        let a: Vec<u64> = (0..4)
            .map(|_| Rng::for_case("t", 1, 2).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_case("t", 1, 2).next_u64(),
            Rng::for_case("t", 1, 3).next_u64()
        );
        assert_ne!(
            Rng::for_case("t", 1, 2).next_u64(),
            Rng::for_case("u", 1, 2).next_u64()
        );
        let mut r = Rng::for_case("t", 0, 0);
        assert!((0..1000).all(|_| r.below(7) < 7));
        assert_eq!(r.below(0), 0);
    }
}
