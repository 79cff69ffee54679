//! Which stream records are the projector's work: one table of rules, [`RULES`], that is both
//! what the decoder ([`crate::change::decode_json`]) checks to tell work from what it ignores,
//! and the event filter patterns the deployed event source mapping applies
//! (`infra/filters.json`, written from [`contract`]; a test fails when it is stale).
//!
//! Lambda matches the patterns with EventBridge's pattern language, in which `exists` matches
//! leaf nodes only. In a stream record every attribute is an object (`{"S": "Like"}`), so each
//! condition names the attribute's type key (`countedBy.S`): on the attribute itself,
//! `exists: true` would never match and `exists: false` always would. A record no pattern
//! matches reaches nothing on AWS (no error, metric or failure destination), so every local
//! delivery path (the poller, `replay`, `rebuild`'s replay, the simulated event source) passes
//! records through [`Filter`], the same patterns matched by quamina, an implementation of that
//! pattern language, before the handler sees them.

use serde_json::{Map, Value, json};

use crate::items::{CountedBy, ItemType, attr};
use crate::keys;

/// A kind of record the projector acts on: one per [`crate::change::Change`] that is work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Work {
    /// An INSERT of a like nobody has counted.
    LikeAdded,
    /// The REMOVE of a like the projector counted.
    LikeRemoved,
    /// An INSERT of a hot post's delta.
    DeltaAdded,
    /// A MODIFY of a like whose stamp was deferred, not in the view yet.
    StampDue,
}

impl Work {
    /// Its name in `infra/filters.json` and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Work::LikeAdded => "LikeAdded",
            Work::LikeRemoved => "LikeRemoved",
            Work::DeltaAdded => "DeltaAdded",
            Work::StampDue => "StampDue",
        }
    }

    /// Its rule in [`RULES`].
    pub fn rule(self) -> &'static Rule {
        RULES
            .iter()
            .find(|rule| rule.work == self)
            .expect("every kind of work has a rule")
    }
}

/// Which image of the record a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image {
    /// `NewImage`: the item as written.
    New,
    /// `OldImage`: the item as it was before.
    Old,
}

impl Image {
    /// The record's field that holds the image.
    pub fn field(self) -> &'static str {
        match self {
            Image::New => "NewImage",
            Image::Old => "OldImage",
        }
    }
}

/// What a condition asks of one attribute's value under its type key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    /// The value is exactly this.
    Is(&'static str),
    /// The attribute is there, with a value of this type.
    Present,
    /// The attribute is not there.
    Absent,
}

/// One attribute of the image, read under its type key (`S`, `N`): a leaf, as `exists` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    /// The attribute's name.
    pub attribute: &'static str,
    /// Its DynamoDB type key (`S`, `N`).
    pub type_key: &'static str,
    /// What its value must be.
    pub test: Test,
}

/// The records of one kind of work: an event name and conditions on one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The kind of work the records are.
    pub work: Work,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event: &'static str,
    /// The image the conditions read.
    pub image: Image,
    /// Every one must hold.
    pub conditions: &'static [Condition],
}

const fn string(attribute: &'static str, test: Test) -> Condition {
    Condition {
        attribute,
        type_key: "S",
        test,
    }
}

const fn of_type(item_type: ItemType) -> Condition {
    string(keys::TYPE, Test::Is(item_type.as_str()))
}

/// Every kind of work, and nothing else: a record that no rule holds for is ignored by the
/// decoder and dropped by the deployed filters.
pub const RULES: [Rule; 4] = [
    Rule {
        work: Work::LikeAdded,
        event: "INSERT",
        image: Image::New,
        // A like the transactional writer counted arrives with `countedBy` set.
        conditions: &[
            of_type(ItemType::Like),
            string(attr::COUNTED_BY, Test::Absent),
        ],
    },
    Rule {
        work: Work::LikeRemoved,
        event: "REMOVE",
        image: Image::Old,
        // Whoever counted a like owns its decrement: the writer's are taken back by it.
        conditions: &[
            of_type(ItemType::Like),
            string(attr::COUNTED_BY, Test::Is(CountedBy::Projector.as_str())),
        ],
    },
    Rule {
        work: Work::DeltaAdded,
        event: "INSERT",
        image: Image::New,
        conditions: &[of_type(ItemType::Delta)],
    },
    Rule {
        work: Work::StampDue,
        event: "MODIFY",
        image: Image::New,
        // A stamp removes `stampDue` and sets GSI1PK in one write: a like in the view is done.
        conditions: &[
            of_type(ItemType::Like),
            Condition {
                attribute: attr::STAMP_DUE,
                type_key: "N",
                test: Test::Present,
            },
            string(keys::GSI1PK, Test::Absent),
        ],
    },
];

impl Rule {
    /// Whether the rule holds for a record in Lambda's JSON shape.
    pub fn holds(&self, record: &Value) -> bool {
        if record.get("eventName").and_then(Value::as_str) != Some(self.event) {
            return false;
        }
        let image = record
            .get("dynamodb")
            .and_then(|change| change.get(self.image.field()));
        self.conditions.iter().all(|condition| {
            let leaf = image
                .and_then(|image| image.get(condition.attribute))
                .and_then(|attribute| attribute.get(condition.type_key));
            match condition.test {
                Test::Is(wanted) => leaf.and_then(Value::as_str) == Some(wanted),
                Test::Present => leaf.is_some(),
                Test::Absent => leaf.is_none(),
            }
        })
    }

    /// The rule as an event filter pattern (EventBridge's pattern language).
    pub fn pattern(&self) -> Value {
        let mut image = Map::new();
        for condition in self.conditions {
            let test = match condition.test {
                Test::Is(value) => json!([value]),
                Test::Present => json!([{"exists": true}]),
                Test::Absent => json!([{"exists": false}]),
            };
            image.insert(
                condition.attribute.to_owned(),
                json!({ condition.type_key: test }),
            );
        }
        json!({
            "eventName": [self.event],
            "dynamodb": { self.image.field(): image },
        })
    }
}

/// The kind of work a record is, if any.
pub fn work_of(record: &Value) -> Option<Work> {
    RULES
        .iter()
        .find(|rule| rule.holds(record))
        .map(|rule| rule.work)
}

/// `infra/filters.json`: each kind of work with its pattern, in [`RULES`] order.
pub fn contract() -> Value {
    Value::Array(
        RULES
            .iter()
            .map(|rule| json!({"work": rule.work.name(), "pattern": rule.pattern()}))
            .collect(),
    )
}

/// The deployed patterns, matched as Lambda's event source matches them.
pub struct Filter(quamina::Quamina<usize>);

impl Filter {
    /// The patterns of [`RULES`].
    pub fn deployed() -> Self {
        Self::of(RULES.iter().map(Rule::pattern))
    }

    /// Any patterns (tests of the matcher itself).
    pub fn of(patterns: impl IntoIterator<Item = Value>) -> Self {
        let mut matcher = quamina::Quamina::new();
        for (i, pattern) in patterns.into_iter().enumerate() {
            matcher
                .add_pattern(i, &pattern.to_string())
                .unwrap_or_else(|e| panic!("pattern {pattern} is not valid: {e}"));
        }
        Self(matcher)
    }

    /// Whether some pattern matches the record (Lambda's JSON shape). A record that is not
    /// valid JSON to the matcher passes, so the handler sees it and quarantines it.
    pub fn passes(&self, record: &Value) -> bool {
        self.passes_json(&serde_json::to_vec(record).expect("a JSON value serializes"))
    }

    /// [`passes`](Self::passes) for a record's JSON text, read without building a `Value`.
    pub fn passes_json(&self, record: &[u8]) -> bool {
        self.0.has_matches(record).unwrap_or(true)
    }
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("patterns", &self.0.pattern_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: Value, event: Value) -> bool {
        Filter::of([pattern]).passes(&event)
    }

    /// AWS's documented filtering rules, as the matcher applies them
    /// (<https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html>,
    /// <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>).
    #[test]
    fn the_matcher_follows_awss_pattern_rules() {
        let record = |image: Value| json!({"eventName": "MODIFY", "dynamodb": {"NewImage": image}});
        let due = record(json!({"type": {"S": "Like"}, "stampDue": {"N": "17"}}));
        let plain = record(json!({"type": {"S": "Like"}}));
        // `exists` matches leaf nodes only: an attribute is an object, its type key a leaf.
        let on_attribute = json!({"dynamodb": {"NewImage": {"stampDue": [{"exists": true}]}}});
        assert!(!matches(on_attribute.clone(), due.clone()));
        assert!(!matches(on_attribute, plain.clone()));
        let on_leaf = json!({"dynamodb": {"NewImage": {"stampDue": {"N": [{"exists": true}]}}}});
        assert!(matches(on_leaf.clone(), due.clone()));
        assert!(!matches(on_leaf, plain.clone()));
        // `exists: false` holds for an absent key and for a key whose value is an object.
        let absent = json!({"dynamodb": {"NewImage": {"stampDue": [{"exists": false}]}}});
        assert!(matches(absent.clone(), plain.clone()));
        assert!(matches(absent, due.clone()));
        let absent_leaf =
            json!({"dynamodb": {"NewImage": {"stampDue": {"N": [{"exists": false}]}}}});
        assert!(matches(absent_leaf.clone(), plain.clone()));
        assert!(!matches(absent_leaf, due.clone()));
        // Values match exactly, under their DynamoDB JSON type key; a list of values is an OR.
        let typed = json!({"dynamodb": {"NewImage": {"type": {"S": ["Like", "Delta"]}}}});
        assert!(matches(typed, plain.clone()));
        let untyped = json!({"dynamodb": {"NewImage": {"type": ["Like"]}}});
        assert!(!matches(untyped, plain.clone()));
        // Every field of a pattern must match.
        let both =
            json!({"eventName": ["INSERT"], "dynamodb": {"NewImage": {"type": {"S": ["Like"]}}}});
        assert!(!matches(both, plain));
    }

    #[test]
    fn every_exists_sits_on_a_leaf() {
        for rule in &RULES {
            let pattern = rule.pattern();
            let image = &pattern["dynamodb"][rule.image.field()];
            for (attribute, under) in image.as_object().unwrap() {
                let object = under.as_object().unwrap_or_else(|| {
                    panic!("{}: {attribute} must name its type key", rule.work.name())
                });
                assert_eq!(object.len(), 1, "{attribute}: one type key");
                assert!(
                    object.values().all(Value::is_array),
                    "{attribute}: a leaf test"
                );
            }
        }
    }

    #[test]
    fn committed_filters_json_matches_the_rules() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/filters.json");
        let written = serde_json::to_string_pretty(&contract()).unwrap() + "\n";
        if std::env::var_os("UPDATE_CONTRACTS").is_some() {
            std::fs::write(path, written).unwrap();
        } else {
            let committed = std::fs::read_to_string(path).unwrap_or_default();
            assert_eq!(
                committed, written,
                "infra/filters.json is stale: run with UPDATE_CONTRACTS=1"
            );
        }
    }

    #[test]
    fn each_kind_of_work_has_one_rule() {
        for (i, rule) in RULES.iter().enumerate() {
            assert_eq!(rule.work.rule(), rule);
            assert!(RULES[..i].iter().all(|r| r.work != rule.work));
        }
    }
}
