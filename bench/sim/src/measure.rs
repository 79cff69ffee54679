//! What a run measures while it goes, and checks: each like's lag to its count and to its
//! view, the folds a hot counter takes a second, and the counts clients read, held against the
//! acknowledged history by a counter checker in the manner of Jepsen's.

use std::collections::BTreeMap;

use contracts::keys::{Ksuid, LikeId, PostId};
use hdrhistogram::Histogram;
use projector::batch::Request;
use rustc_hash::FxHashMap;
use serde::Serialize;

/// A hot counter takes at most this many writes a second: one fold per slot
/// (`projector::batch::hot::FOLD_SLOT`).
pub const MAX_FOLDS_PER_SECOND: u32 = (1000 / projector::batch::hot::FOLD_SLOT.as_millis()) as u32;

/// A lag's distribution, in virtual milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// Likes measured.
    pub likes: u64,
    /// Median.
    pub p50_ms: u64,
    /// 99th percentile.
    pub p99_ms: u64,
    /// Maximum.
    pub max_ms: u64,
}

impl Lag {
    pub(crate) fn of(histogram: &Histogram<u64>) -> Self {
        Self {
            likes: histogram.len(),
            p50_ms: histogram.value_at_quantile(0.5),
            p99_ms: histogram.value_at_quantile(0.99),
            max_ms: histogram.max(),
        }
    }
}

/// One virtual second of a run, to see where a lag builds up (`sim --series`). Pairs are
/// `[the other posts, the hot post]`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Second {
    /// Virtual seconds since the run began.
    pub second: i64,
    /// Likes written.
    pub written: [u64; 2],
    /// Likes the counters took in (a hot post's when their delta was folded).
    pub counted: [u64; 2],
    /// The longest lag of those, in ms.
    pub counter_lag_max_ms: [u64; 2],
    /// Likes GSI1 showed in their views.
    pub viewed: [u64; 2],
    /// The longest lag of those, in ms.
    pub view_lag_max_ms: [u64; 2],
    /// Write units the table took, and GSI1.
    pub table_units: f64,
    /// See [`Second::table_units`].
    pub index_units: f64,
    /// Requests the table's limits throttled, whoever sent them.
    pub throttled: u64,
    /// The projector's counting transactions answered as throttled (by those limits or an
    /// injected fault), and its view stamps.
    pub throttled_counts: u64,
    /// See [`Second::throttled_counts`].
    pub throttled_stamps: u64,
    /// Invocations started (a replay's included).
    pub invocations: u64,
    /// Invocations that ended with records to deliver again (a failed record, a function
    /// error).
    pub failed_invocations: u64,
    /// Batches given up on.
    pub given_up: u64,
    /// Records the consumers held, read and not yet applied, at the second's first poll.
    pub waiting_records: u64,
    /// The age of the oldest of them then (Lambda's iterator age, in ms).
    pub oldest_waiting_ms: i64,
}

/// A run's seconds, by virtual second since `start_ms`.
pub(crate) struct Series {
    start_ms: i64,
    seconds: BTreeMap<i64, Second>,
    /// The last second whose waiting records were sampled.
    sampled: Option<i64>,
}

impl Series {
    pub(crate) fn new(start_ms: i64) -> Self {
        Self {
            start_ms,
            seconds: BTreeMap::new(),
            sampled: None,
        }
    }

    /// The second `at_ms` falls in (epoch milliseconds).
    pub(crate) fn at(&mut self, at_ms: i64) -> &mut Second {
        let second = (at_ms - self.start_ms).div_euclid(1000);
        self.seconds.entry(second).or_insert_with(|| Second {
            second,
            ..Second::default()
        })
    }

    /// Whether `at_ms` is the first look at its second's waiting records (and now it is not).
    pub(crate) fn first_look(&mut self, at_ms: i64) -> bool {
        let second = (at_ms - self.start_ms).div_euclid(1000);
        let first = self.sampled < Some(second);
        self.sampled = Some(second);
        first
    }

    pub(crate) fn into_seconds(self) -> Vec<Second> {
        self.seconds.into_values().collect()
    }
}

/// When a like was written, and what of it has been seen since.
pub(crate) struct Written {
    pub(crate) at: i64,
    pub(crate) hot: bool,
    pub(crate) counted: bool,
    pub(crate) viewed: bool,
}

/// The lags measured so far.
pub(crate) struct Lags {
    pub(crate) written: FxHashMap<LikeId, Written>,
    /// The likes each pending delta carries.
    deltas: FxHashMap<Ksuid, Vec<LikeId>>,
    pub(crate) counter: [Histogram<u64>; 2],
    pub(crate) view: [Histogram<u64>; 2],
    /// Folds committed into each post's counter in the current virtual second, and the most
    /// in any second.
    folds: FxHashMap<PostId, (i64, u32)>,
    pub(crate) most_folds: u32,
    pub(crate) series: Series,
}

impl Lags {
    pub(crate) fn new(start_ms: i64) -> Self {
        let histogram = || Histogram::new_with_bounds(1, 24 * 3_600_000, 3).expect("a histogram");
        Self {
            written: FxHashMap::default(),
            deltas: FxHashMap::default(),
            counter: [histogram(), histogram()],
            view: [histogram(), histogram()],
            folds: FxHashMap::default(),
            most_folds: 0,
            series: Series::new(start_ms),
        }
    }

    fn seen(&mut self, like: LikeId, now: i64, counted: bool) {
        let Some(written) = self.written.get_mut(&like) else {
            return;
        };
        let (done, histograms) = if counted {
            (&mut written.counted, &mut self.counter)
        } else {
            (&mut written.viewed, &mut self.view)
        };
        if !*done {
            *done = true;
            let lag = (now - written.at).max(1) as u64;
            let hot = usize::from(written.hot);
            histograms[hot].saturating_record(lag);
            let second = self.series.at(now);
            let (seen, most) = if counted {
                (&mut second.counted, &mut second.counter_lag_max_ms)
            } else {
                (&mut second.viewed, &mut second.view_lag_max_ms)
            };
            seen[hot] += 1;
            most[hot] = most[hot].max(lag);
        }
        if written.counted && written.viewed {
            self.written.remove(&like);
        }
    }

    /// A request landed, done: what it counted (`minted`: the delta ids it wrote).
    pub(crate) fn landed(&mut self, request: &Request, minted: &[Ksuid], now: i64) {
        let Request::Count { transaction, .. } = request else {
            return;
        };
        let mut minted = minted.iter();
        for count in &transaction.posts {
            let likes = count.marks.iter().map(|m| m.like.like_id);
            if count.via_delta {
                if let Some(id) = minted.next() {
                    self.deltas.insert(*id, likes.collect());
                }
            } else {
                for like in likes {
                    self.seen(like, now, true);
                }
            }
            if !count.folds.is_empty() {
                let second = now.div_euclid(1000);
                let (at, folds) = self.folds.entry(count.post.post).or_insert((second, 0));
                if *at != second {
                    (*at, *folds) = (second, 0);
                }
                *folds += 1;
                self.most_folds = self.most_folds.max(*folds);
            }
            for fold in &count.folds {
                for like in self.deltas.remove(&fold.delta.delta_id).unwrap_or_default() {
                    self.seen(like, now, true);
                }
            }
        }
    }

    /// A like entered GSI1, where readers of the likers view see it.
    pub(crate) fn viewed(&mut self, like: LikeId, at: i64) {
        self.seen(like, at, false);
    }
}

/// The least staleness for which `count` is a possible read at `now` of a counter with the
/// acknowledged `history` ((time, +1 or -1), in time order): all changes older than the window,
/// any subset of those in it. `None` if even the whole history allows no such count.
pub fn staleness(history: &[(i64, i64)], count: i64, now: i64) -> Option<i64> {
    let total: i64 = history.iter().map(|(_, change)| change).sum();
    // With the window (t - S, now]: the count lies in [total - likes in it, total + unlikes in it].
    let (mut likes, mut unlikes) = (0, 0);
    if count == total {
        return Some(0);
    }
    for (at, change) in history.iter().rev() {
        if *change > 0 {
            likes += change;
        } else {
            unlikes -= change;
        }
        if total - likes <= count && count <= total + unlikes {
            return Some(now - at);
        }
    }
    None
}
