//! The store's decisions on DynamoDB's answers to a like or an unlike, apart from its I/O
//! ([`crate::store`] sends; these read what came back), so that the deterministic simulation
//! (`sim::writer`, bench/sim) runs the writer's own decisions against its table.

/// How a like request changed the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LikeOutcome {
    /// A new like.
    Created,
    /// The user liked the post already: nothing changed.
    AlreadyLiked,
    /// No such post.
    PostMissing,
}

impl LikeOutcome {
    /// A transactional like (the like and its count) cancelled by a failed condition: the
    /// like's own (action 0: it is there already), or else the counter's (the post is gone).
    pub fn of_cancelled(like_condition_failed: bool) -> Self {
        if like_condition_failed {
            LikeOutcome::AlreadyLiked
        } else {
            LikeOutcome::PostMissing
        }
    }
}

/// Which delete an unlike tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delete {
    /// A writer-counted like, with its decrement, in one transaction.
    Counted,
    /// A like the writer did not count, plainly (the projector owns its decrement).
    Uncounted,
}

/// What one delete of a like found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The like is gone.
    Yes,
    /// There was no like.
    Absent,
    /// A like is there, but of the other kind (writer-counted or not).
    OtherKind,
}

impl Deleted {
    /// A delete whose condition failed: its `ALL_OLD` item is the like, of the other kind, or
    /// nothing (no like).
    pub fn of_failed_condition(item_present: bool) -> Self {
        if item_present {
            Deleted::OtherKind
        } else {
            Deleted::Absent
        }
    }

    /// The counted delete's transaction cancelled by a failed condition: the like's (with
    /// whether its item came back), or else the counter's: the post is gone, so there is
    /// nothing to decrement and the like is deleted plainly.
    pub fn of_cancelled_counted(like_failed: Option<bool>) -> Self {
        like_failed.map_or(Deleted::OtherKind, Self::of_failed_condition)
    }
}

/// An unlike, round by round: each round tries one kind of delete and either finishes or
/// learns which kind of like is there. A like's `countedBy` never changes from writer to
/// anything else, so two rounds suffice except under races with re-likes, which a few more
/// absorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unlike {
    next: Delete,
    rounds_left: u8,
}

impl Unlike {
    /// Rounds before the unlike gives up (it kept racing with re-likes).
    pub const ROUNDS: u8 = 4;

    /// An unlike trying the counted delete first (transactional mode) or the plain one.
    pub fn new(counted_first: bool) -> Self {
        Self {
            next: if counted_first {
                Delete::Counted
            } else {
                Delete::Uncounted
            },
            rounds_left: Self::ROUNDS,
        }
    }

    /// The delete to try now; `None` once the rounds are spent.
    pub fn next(&self) -> Option<Delete> {
        (self.rounds_left > 0).then_some(self.next)
    }

    /// What the delete found: `Some(removed)` when the unlike is done, `None` to go on with
    /// the other kind.
    pub fn found(&mut self, deleted: Deleted) -> Option<bool> {
        self.rounds_left = self.rounds_left.saturating_sub(1);
        match deleted {
            Deleted::Yes => Some(true),
            Deleted::Absent => Some(false),
            Deleted::OtherKind => {
                self.next = match self.next {
                    Delete::Counted => Delete::Uncounted,
                    Delete::Uncounted => Delete::Counted,
                };
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlike_switches_kind_on_what_it_finds_and_gives_up_after_its_rounds() {
        let mut unlike = Unlike::new(false);
        assert_eq!(unlike.next(), Some(Delete::Uncounted));
        assert_eq!(unlike.found(Deleted::OtherKind), None);
        assert_eq!(
            unlike.next(),
            Some(Delete::Counted),
            "a writer-counted like"
        );
        assert_eq!(unlike.found(Deleted::Yes), Some(true));

        let mut racing = Unlike::new(true);
        for _ in 0..Unlike::ROUNDS {
            assert!(racing.next().is_some());
            assert_eq!(racing.found(Deleted::OtherKind), None);
        }
        assert_eq!(racing.next(), None, "re-likes kept changing its kind");
        assert_eq!(Unlike::new(true).found(Deleted::Absent), Some(false));
    }

    #[test]
    fn failed_conditions_say_what_was_there() {
        assert_eq!(Deleted::of_failed_condition(true), Deleted::OtherKind);
        assert_eq!(Deleted::of_failed_condition(false), Deleted::Absent);
        assert_eq!(
            Deleted::of_cancelled_counted(None),
            Deleted::OtherKind,
            "post gone"
        );
        assert_eq!(Deleted::of_cancelled_counted(Some(false)), Deleted::Absent);
        assert_eq!(LikeOutcome::of_cancelled(true), LikeOutcome::AlreadyLiked);
        assert_eq!(LikeOutcome::of_cancelled(false), LikeOutcome::PostMissing);
    }
}
