//! The event ids already handled, the newest `capacity` of them: Sendbird re-sends a webhook it
//! saw no answer to, byte for byte, so the gateway may store one event twice under one
//! `event_id`. In memory: a restarted consumer forgets, and may notify again for a record that
//! is re-delivered after a crash (at least once). Keep it in Redis or a table to share it.

use std::collections::{HashSet, VecDeque};

pub struct Seen {
    capacity: usize,
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    pub fn new(capacity: usize) -> Seen {
        Seen {
            capacity: capacity.max(1),
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Remembers `id`, forgetting the oldest when full.
    pub fn insert(&mut self, id: &str) {
        if !self.ids.insert(id.to_owned()) {
            return;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_only() {
        let mut seen = Seen::new(2);
        seen.insert("a");
        seen.insert("b");
        seen.insert("a");
        assert!(seen.contains("a") && seen.contains("b"));
        seen.insert("c");
        assert!(!seen.contains("a"), "the oldest is forgotten");
        assert!(seen.contains("b") && seen.contains("c"));
    }
}
