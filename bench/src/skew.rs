//! Which post a client likes next: the hot post with a fixed share, otherwise a Zipf-skewed
//! choice among the cold posts (rank `r` has weight `1 / r^exponent`; exponent 0 is uniform).
//! One generator for the tests' load, the chaos test and the load benchmark.

use rand::Rng;

/// A post chooser over `0..=cold`: index 0 is the hot post, `1..=cold` the cold ones by rank.
#[derive(Debug, Clone)]
pub struct PostSkew {
    hot_share: f64,
    /// Cumulative weights of the cold posts, ending at 1.
    cdf: Vec<f64>,
}

impl PostSkew {
    /// `cold` cold posts (at least one) and a hot post taking `hot_share` of the choices.
    pub fn new(cold: usize, exponent: f64, hot_share: f64) -> Self {
        let weights: Vec<f64> = (1..=cold.max(1))
            .map(|rank| 1.0 / (rank as f64).powf(exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let cdf = weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w / total;
                Some(*acc)
            })
            .collect();
        Self {
            hot_share: hot_share.clamp(0.0, 1.0),
            cdf,
        }
    }

    /// The index of the hot post.
    pub const HOT: usize = 0;

    /// Posts in all, the hot one included.
    pub fn posts(&self) -> usize {
        self.cdf.len() + 1
    }

    /// The next post: [`HOT`](Self::HOT) with probability `hot_share`, else a cold one.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        if rng.random_bool(self.hot_share) {
            return Self::HOT;
        }
        let x: f64 = rng.random();
        1 + self
            .cdf
            .iter()
            .position(|&c| x <= c)
            .unwrap_or(self.cdf.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_hot_post_gets_its_share_and_cold_posts_fall_off_by_rank() {
        let skew = PostSkew::new(20, 1.1, 0.3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut seen = vec![0u32; skew.posts()];
        for _ in 0..100_000 {
            seen[skew.pick(&mut rng)] += 1;
        }
        let hot = f64::from(seen[PostSkew::HOT]) / 100_000.0;
        assert!((hot - 0.3).abs() < 0.01, "hot share {hot}");
        assert!(
            seen[1] > seen[2] && seen[2] > seen[6] && seen[6] > seen[20],
            "{seen:?}"
        );
        let uniform = PostSkew::new(4, 0.0, 0.0);
        let mut seen = [0u32; 5];
        for _ in 0..40_000 {
            seen[uniform.pick(&mut rng)] += 1;
        }
        assert_eq!(seen[0], 0, "no hot post without a share");
        assert!(
            seen[1..].iter().all(|&n| (9_000..11_000).contains(&n)),
            "{seen:?}"
        );
    }
}
