//! The stream's shards as Lambda's event source reads them. Each shard takes the records of a
//! range of partition keys (by their hash), so an item's records stay in order in one shard.
//! Shards rotate: every open shard closes and a child takes its range, or two children take its
//! halves (a split). Lambda reads a child only once its parent has been read and processed
//! ("Lambda processes the parent shard before the child shards", AWS's Lambda developer guide,
//! *Polling and batching streams*), and the parent only once its own parent has; each shard has
//! the mapping's parallelization factor of consumers, a partition key always on the same one.

use bench::shards::key_hash;

/// One shard: its key range (inclusive), its parent, and its consumers.
#[derive(Debug)]
struct Shard {
    from: u64,
    to: u64,
    parent: Option<usize>,
    open: bool,
    consumers: Vec<usize>,
}

/// The shards, open and closed.
#[derive(Debug)]
pub(crate) struct Stream {
    shards: Vec<Shard>,
    /// Shards split so far.
    pub(crate) splits: usize,
    /// The shard of each consumer (by consumer number; replays have none).
    shard_of: Vec<Option<usize>>,
}

impl Stream {
    /// `shards` open shards of `parallelization` consumers each, numbered from 0.
    pub(crate) fn new(shards: usize, parallelization: usize) -> Self {
        let shards = shards.max(1) as u64;
        let width = u64::MAX / shards;
        let mut stream = Self {
            shards: Vec::new(),
            splits: 0,
            shard_of: Vec::new(),
        };
        for i in 0..shards {
            let to = if i + 1 == shards {
                u64::MAX
            } else {
                (i + 1) * width - 1
            };
            stream.open(i * width, to, None, parallelization);
        }
        stream
    }

    fn open(&mut self, from: u64, to: u64, parent: Option<usize>, parallelization: usize) {
        let id = self.shards.len();
        let first = self.shard_of.len();
        let consumers: Vec<usize> = (first..first + parallelization.max(1)).collect();
        self.shard_of.extend(consumers.iter().map(|_| Some(id)));
        self.shards.push(Shard {
            from,
            to,
            parent,
            open: true,
            consumers,
        });
    }

    /// Consumers so far, replays' numbers included.
    pub(crate) fn consumers(&self) -> usize {
        self.shard_of.len()
    }

    /// Take the next consumer number for a consumer of no shard (an operator's replay).
    pub(crate) fn add_replay(&mut self) -> usize {
        self.shard_of.push(None);
        self.shard_of.len() - 1
    }

    /// Close every open shard and open its children: one on its range, or two on its halves
    /// when `split` says so. New consumers are numbered after the existing ones.
    pub(crate) fn rotate(&mut self, mut split: impl FnMut() -> bool) {
        let parallelization = self.shards[0].consumers.len();
        let open: Vec<usize> = (0..self.shards.len())
            .filter(|s| self.shards[*s].open)
            .collect();
        for parent in open {
            self.shards[parent].open = false;
            let (from, to) = (self.shards[parent].from, self.shards[parent].to);
            if to > from && split() {
                self.splits += 1;
                let middle = from + (to - from) / 2;
                self.open(from, middle, Some(parent), parallelization);
                self.open(middle + 1, to, Some(parent), parallelization);
            } else {
                self.open(from, to, Some(parent), parallelization);
            }
        }
    }

    /// The consumer that gets a new record of partition key `pk`.
    pub(crate) fn consumer_of(&self, pk: &str) -> usize {
        let hash = key_hash(pk);
        let shard = self
            .shards
            .iter()
            .find(|s| s.open && s.from <= hash && hash <= s.to)
            .expect("the open shards cover every key");
        shard.consumers[(hash % shard.consumers.len() as u64) as usize]
    }

    /// Whether `consumer` must wait: some ancestor of its shard has a consumer that is not
    /// `idle` (records still to read or process).
    pub(crate) fn waits(&self, consumer: usize, idle: impl Fn(usize) -> bool) -> bool {
        let mut shard = self.shard_of.get(consumer).copied().flatten();
        while let Some(s) = shard {
            let parent = self.shards[s].parent;
            if let Some(p) = parent
                && !self.shards[p].consumers.iter().all(|c| idle(*c))
            {
                return true;
            }
            shard = parent;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_stays_in_its_range_through_rotations_and_children_wait_for_parents() {
        let mut stream = Stream::new(2, 2);
        assert_eq!(stream.consumers(), 4);
        let keys: Vec<String> = (0..200).map(|i| format!("USER#{i}")).collect();
        let before: Vec<usize> = keys.iter().map(|k| stream.consumer_of(k)).collect();
        assert!(before.iter().all(|c| *c < 4));
        let replay = stream.add_replay();
        assert_eq!(replay, 4);

        let mut splits = [true, false].into_iter();
        stream.rotate(|| splits.next().unwrap_or(false));
        // Shard 0 split in two (consumers 5..9), shard 1 rotated (consumers 9..11).
        assert_eq!(stream.consumers(), 11);
        assert_eq!(stream.splits, 1);
        for (key, old) in keys.iter().zip(&before) {
            let new = stream.consumer_of(key);
            let (old_shard, new_shard) = (stream.shard_of[*old], stream.shard_of[new]);
            assert_eq!(
                stream.shards[new_shard.unwrap()].parent,
                old_shard,
                "{key} moves to a child of its shard"
            );
        }
        // A child waits while its parent has work; its sibling's parent is another shard.
        let busy = before[0];
        let child = stream.consumer_of(&keys[0]);
        assert!(stream.waits(child, |c| c != busy));
        assert!(!stream.waits(child, |_| true));
        assert!(
            !stream.waits(replay, |_| false),
            "a replay reads the whole stream"
        );
        assert!(
            !stream.waits(busy, |_| false),
            "a first shard waits for nobody"
        );
        // Grandchildren wait for their grandparent too.
        stream.rotate(|| false);
        let grandchild = stream.consumer_of(&keys[0]);
        assert!(stream.waits(grandchild, |c| c != busy));
    }
}
