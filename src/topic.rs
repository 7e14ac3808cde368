//! Topic names and routing overrides: what every provider's router and the Kafka sink share.

use std::fmt;

/// A legal Kafka topic name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

impl TopicName {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.len() > 249 {
            return Err(format!("topic {value:?} must have 1 to 249 characters"));
        }
        if value == "." || value == ".." {
            return Err(format!("topic {value:?} is not allowed by Kafka"));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "topic {value:?} contains {c:?}; Kafka allows letters, digits, '.', '_' and '-'"
            ));
        }
        Ok(TopicName(value.to_owned()))
    }

    /// `prefix` followed by `suffix`, checked.
    pub fn prefixed(prefix: &str, suffix: &str) -> Result<Self, String> {
        TopicName::parse(&format!("{prefix}{suffix}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registry subject under TopicNameStrategy.
    pub fn value_subject(&self) -> String {
        format!("{}-value", self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An exact event type or category (`group_channel:message_send`, `message.new`) or a prefix
/// ending in `*` (`group_channel:*`, `message.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryPattern {
    text: String,
    prefix: bool,
}

impl CategoryPattern {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err("pattern must not be empty".into());
        }
        let (text, prefix) = match value.strip_suffix('*') {
            Some(head) => (head, true),
            None => (value, false),
        };
        if text.contains('*') {
            return Err(format!(
                "pattern {value:?}: '*' is only allowed once, at the end"
            ));
        }
        Ok(CategoryPattern {
            text: text.to_owned(),
            prefix,
        })
    }

    pub fn matches(&self, category: &str) -> bool {
        if self.prefix {
            category.starts_with(&self.text)
        } else {
            category == self.text
        }
    }
}

/// The pattern as written: `group_channel:*`.
impl fmt::Display for CategoryPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.prefix {
            f.write_str("*")?;
        }
        Ok(())
    }
}

/// A configured route: events whose category matches go to `topic` instead of their family's.
#[derive(Clone, Debug)]
pub struct RouteOverride {
    pub pattern: CategoryPattern,
    pub topic: TopicName,
}

/// The first override matching `category`, if any.
fn override_for<'a>(overrides: &'a [RouteOverride], category: &str) -> Option<&'a TopicName> {
    overrides
        .iter()
        .find(|o| o.pattern.matches(category))
        .map(|o| &o.topic)
}

/// A source's topics: one per family under its prefix, its route overrides, and the dead-letter
/// topic `<prefix>dlq`. Each provider's router names its families and routes through this.
#[derive(Debug, Clone)]
pub struct Topics {
    families: Vec<(&'static str, TopicName)>,
    overrides: Vec<RouteOverride>,
    dlq: TopicName,
}

impl Topics {
    /// `<prefix><family>` for every family label, and `<prefix>dlq`.
    pub fn new(
        prefix: &str,
        families: &[&'static str],
        overrides: Vec<RouteOverride>,
    ) -> Result<Topics, String> {
        let families = families
            .iter()
            .map(|f| Ok((*f, TopicName::prefixed(prefix, f)?)))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Topics {
            families,
            overrides,
            dlq: TopicName::prefixed(prefix, "dlq")?,
        })
    }

    /// The topic of one of the family labels given to [`Topics::new`].
    pub fn family(&self, family: &str) -> &TopicName {
        &self
            .families
            .iter()
            .find(|(f, _)| *f == family)
            .expect("the router names only families it created topics for")
            .1
    }

    /// Where an event of `category` in `family` goes: the first matching override, else the
    /// family's topic.
    pub fn route(&self, category: &str, family: &str) -> &TopicName {
        override_for(&self.overrides, category).unwrap_or_else(|| self.family(family))
    }

    /// Every topic that carries Avro event records (each needs a registered schema).
    pub fn event_topics(&self) -> Vec<TopicName> {
        let mut topics: Vec<TopicName> = self
            .families
            .iter()
            .map(|(_, t)| t.clone())
            .chain(self.overrides.iter().map(|o| o.topic.clone()))
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// Where authentic bodies that cannot become records go, byte for byte.
    pub fn dlq(&self) -> &TopicName {
        &self.dlq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_and_patterns_are_checked() {
        assert!(TopicName::parse("ok.topic_1-x").is_ok());
        assert!(TopicName::parse("bad topic").is_err());
        assert!(TopicName::parse("..").is_err());
        assert!(TopicName::parse(&"a".repeat(250)).is_err());
        assert!(CategoryPattern::parse("a*b").is_err());
        assert!(CategoryPattern::parse("").is_err());
        let p = CategoryPattern::parse("user:*").expect("valid");
        assert!(p.matches("user:block") && !p.matches("users:block"));
        let p = CategoryPattern::parse("message.*").expect("valid");
        assert!(p.matches("message.new") && !p.matches("messages.new"));
    }
}
