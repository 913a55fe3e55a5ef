//! Parsed queries, kept by their text. A dashboard, a gateway and codegen
//! send the same few documents over and over, and parsing one costs more
//! than answering a small query (a seventh of a `me` request's CPU, by
//! perf). Parsing is a pure function of the text, so a kept document is
//! exactly what parsing again would give; a request carries its own
//! variables and operation name, which are not part of it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::Request;

/// Documents kept at most, and the longest query kept: together they bound
/// the memory to a few MiB whatever clients send. Past the count, the map
/// starts over.
const CAPACITY: usize = 512;
const LONGEST: usize = 8 * 1024;

#[derive(Default)]
pub struct Documents {
    parsed: Mutex<HashMap<String, Arc<ExecutableDocument>>>,
}

impl Documents {
    /// Gives `request` its parsed document, from memory when this text was
    /// parsed before. A query that does not parse is left to the schema,
    /// which answers with the syntax error.
    pub fn prepare(&self, request: &mut Request) {
        if request.query.len() > LONGEST {
            return;
        }
        let known = self.lock().get(&request.query).cloned();
        match known {
            Some(document) => request.set_parsed_query(ExecutableDocument::clone(&document)),
            None => {
                if let Ok(document) = request.parsed_query() {
                    let document = Arc::new(document.clone());
                    let mut parsed = self.lock();
                    if parsed.len() >= CAPACITY {
                        parsed.clear();
                    }
                    parsed.insert(request.query.clone(), document);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ExecutableDocument>>> {
        // Only a cache of pure results: one left mid-update by a panic is still valid.
        self.parsed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_parsed_once_and_then_served_from_memory() {
        let documents = Documents::default();
        let mut first = Request::new("{ me { id } }");
        documents.prepare(&mut first);
        assert_eq!(documents.lock().len(), 1);
        let mut second = Request::new("{ me { id } }");
        documents.prepare(&mut second);
        assert_eq!(documents.lock().len(), 1);
        let kept = documents.lock().get("{ me { id } }").cloned().unwrap();
        let given = second.parsed_query().unwrap();
        assert_eq!(format!("{given:?}"), format!("{kept:?}"));
    }

    #[test]
    fn queries_that_do_not_parse_or_are_too_long_are_not_kept() {
        let documents = Documents::default();
        documents.prepare(&mut Request::new("{ me { id "));
        let long = format!("{{ me {{ id }} }} # {}", "x".repeat(LONGEST));
        documents.prepare(&mut Request::new(long));
        assert!(documents.lock().is_empty());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let documents = Documents::default();
        for i in 0..CAPACITY + 5 {
            documents.prepare(&mut Request::new(format!("{{ f{i} }}")));
        }
        assert!(documents.lock().len() <= CAPACITY);
    }
}
