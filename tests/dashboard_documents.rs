//! Every GraphQL document the dashboard sends (src/http/assets/queries.js)
//! is valid against the server's schema (schema.graphql, which
//! tests/schema.rs keeps equal to the served one): a schema change that
//! would break the page breaks the build instead.

use apollo_compiler::{ExecutableDocument, Schema};

const QUERIES: &str = include_str!("../src/http/assets/queries.js");
const SCHEMA: &str = include_str!("../schema.graphql");

/// Each `export const NAME = `…`;` starting a line of queries.js, as (NAME, text).
fn documents() -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    let mut rest = QUERIES;
    while let Some(at) = rest.find("\nexport const ") {
        rest = &rest[at + "\nexport const ".len()..];
        let (name, after) = rest.split_once(" = `").expect("export const NAME = `...`");
        let (text, after) = after.split_once('`').expect("a closing backtick");
        assert!(
            !text.contains("${"),
            "{name}: no interpolation, the test reads the text as is"
        );
        found.push((name, text));
        rest = after;
    }
    found
}

#[test]
fn every_dashboard_document_is_valid_against_the_schema() {
    let schema = Schema::parse_and_validate(SCHEMA, "schema.graphql").expect("a valid schema");
    // usageSeries is being added to the server (issue 12, metering part):
    // until schema.graphql has it, the documents that ask for it may fail
    // on it alone; from the moment it is there, they must be valid too.
    let has_usage_series = SCHEMA.contains("usageSeries(");
    let documents = documents();
    assert!(documents.len() >= 14, "found only {documents:?}");
    for (name, text) in documents {
        let checked = ExecutableDocument::parse_and_validate(&schema, text, name);
        let Err(invalid) = checked else { continue };
        let errors = invalid.errors.to_string();
        let pending = !has_usage_series && text.contains("usageSeries");
        if pending {
            // What the missing field entails: the field itself, its
            // UsageInterval type, and the variables only it used.
            let entailed = |message: &str| {
                ["usageSeries", "UsageInterval", "unused variable"]
                    .iter()
                    .any(|part| message.contains(part))
            };
            for error in invalid.errors.iter() {
                let message = error.error.to_string();
                assert!(entailed(&message), "{name}: {message}\n{errors}");
            }
        } else {
            panic!("{name} is not valid against schema.graphql:\n{errors}");
        }
    }
}

#[test]
fn a_drifted_document_is_caught() {
    let schema = Schema::parse_and_validate(SCHEMA, "schema.graphql").unwrap();
    let drifted = "query { keys { id nickname } }";
    assert!(ExecutableDocument::parse_and_validate(&schema, drifted, "drifted").is_err());
}
