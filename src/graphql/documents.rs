//! Parsed queries, kept by their text. A dashboard, a gateway and codegen
//! send the same few documents over and over, and parsing one costs more
//! than answering a small query (a seventh of a `me` request's CPU, by
//! perf). Parsing is a pure function of the text, so a kept document is
//! exactly what parsing again would give; a request carries its own
//! variables and operation name, which are not part of it.

use std::sync::Arc;

use async_graphql::parser::parse_query;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, ServerError};

use super::guard;
use crate::bounded_map::BoundedMap;

/// Documents kept at most, and the longest query kept: together they bound
/// the memory to a few MiB whatever clients send. Past the count, the map
/// starts over.
const CAPACITY: usize = 512;
const LONGEST: usize = 8 * 1024;

fn refused(message: &'static str) -> ServerError {
    ServerError::new(message, None)
}

pub struct Documents {
    parsed: BoundedMap<String, Arc<ExecutableDocument>>,
}

impl Default for Documents {
    fn default() -> Self {
        Self {
            parsed: BoundedMap::new(CAPACITY),
        }
    }
}

impl Documents {
    /// Gives `request` its parsed document, from memory when this text was
    /// parsed and passed the guards before; otherwise checks the text,
    /// parses it (long texts on the blocking pool, so that no worker is
    /// held) and checks the document. A refusal is the error to answer.
    pub async fn prepare(&self, request: &mut Request) -> Result<(), ServerError> {
        let known = (request.query.len() <= LONGEST)
            .then(|| self.parsed.get(&request.query))
            .flatten();
        if let Some(document) = known {
            request.set_parsed_query(ExecutableDocument::clone(&document));
            return Ok(());
        }
        guard::check_nesting(&request.query).map_err(refused)?;
        let document = if request.query.len() <= LONGEST {
            parse_query(&request.query)?
        } else {
            let query = request.query.clone();
            tokio::task::spawn_blocking(move || parse_query(query))
                .await
                .map_err(|_| ServerError::new("internal server error", None))??
        };
        guard::check_document(&document).map_err(refused)?;
        if request.query.len() <= LONGEST {
            self.keep(request.query.clone(), document.clone());
        }
        request.set_parsed_query(document);
        Ok(())
    }

    fn keep(&self, query: String, document: ExecutableDocument) {
        self.parsed.insert(query, Arc::new(document));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(documents: &Documents, query: &str) -> Result<Request, ServerError> {
        let mut request = Request::new(query);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(documents.prepare(&mut request))?;
        Ok(request)
    }

    #[test]
    fn a_query_is_parsed_once_and_then_served_from_memory() {
        let documents = Documents::default();
        prepare(&documents, "{ me { id } }").unwrap();
        assert_eq!(documents.parsed.len(), 1);
        let mut second = prepare(&documents, "{ me { id } }").unwrap();
        assert_eq!(documents.parsed.len(), 1);
        let kept = documents.parsed.get("{ me { id } }").unwrap();
        let given = second.parsed_query().unwrap();
        assert_eq!(format!("{given:?}"), format!("{kept:?}"));
    }

    #[test]
    fn queries_that_do_not_parse_or_are_too_long_are_not_kept() {
        let documents = Documents::default();
        assert!(prepare(&documents, "{ me { id ").is_err());
        let long = format!("{{ me {{ id }} }} # {}", "x".repeat(LONGEST));
        prepare(&documents, &long).unwrap();
        assert!(documents.parsed.is_empty());
    }

    #[test]
    fn refused_documents_are_not_kept() {
        let documents = Documents::default();
        let nested = format!("{{ keys(includeRevoked: {}) {{ id }} }}", "[".repeat(5000));
        assert!(prepare(&documents, &nested).is_err());
        assert!(documents.parsed.is_empty());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let documents = Documents::default();
        for i in 0..CAPACITY + 5 {
            prepare(&documents, &format!("{{ f{i} }}")).unwrap();
        }
        assert!(documents.parsed.len() <= CAPACITY);
    }
}
