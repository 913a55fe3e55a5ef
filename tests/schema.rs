//! The GraphQL schema, checked against the documents clients rely on:
//! `schema.graphql`, the server's schema as checked in, and the contracts
//! dashboards and gateways are written against, `contract/api-contract.graphql`
//! (v1), `contract/api-contract-v2.graphql` (v2, a superset of v1) and
//! `contract/api-contract-v3.graphql` (v3, a superset of v2, served but for
//! the parts still to come), each vendored from `../shared/`.

use std::collections::HashMap;
use std::fs;
use std::io::ErrorKind;

use async_graphql::parser::parse_schema;
use async_graphql::parser::types::{
    FieldDefinition, InputValueDefinition, ServiceDocument, TypeDefinition, TypeKind,
    TypeSystemDefinition,
};
use async_graphql::Positioned;

const SCHEMA_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
const CONTRACT_V1: &str = "api-contract.graphql";
const CONTRACT_V2: &str = "api-contract-v2.graphql";
const CONTRACT_V3: &str = "api-contract-v3.graphql";

/// The parts of contract v3 still to come, each left out by the
/// differences it causes, exactly. An entry the server comes to serve fails
/// the test until it is taken off. Empty: v3 is served whole.
const V3_NOT_YET: &[&str] = &[];

/// The vendored copy of a contract, which the tests read: CI runs on a
/// clean clone, where the canonical `../shared/` may be absent.
fn vendored(file: &str) -> String {
    format!("{}/contract/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn shared(file: &str) -> String {
    format!("{}/../shared/{file}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schema_matches_the_server() {
    let served = keymeter::graphql::sdl();
    // The usual "bless" switch: regenerate the file instead of failing.
    if std::env::var_os("KEYMETER_UPDATE_SCHEMA").is_some_and(|value| value == "1") {
        fs::write(SCHEMA_PATH, &served)
            .unwrap_or_else(|err| panic!("cannot write {SCHEMA_PATH}: {err}"));
        return;
    }
    let checked_in = read(SCHEMA_PATH);
    assert!(
        checked_in == served,
        "schema.graphql is not the server's schema; regenerate it with \
         `cargo run -- schema > schema.graphql` \
         (or `KEYMETER_UPDATE_SCHEMA=1 cargo test --test schema`) and commit it.\n{}",
        first_difference(&checked_in, &served),
    );
}

#[test]
fn server_schema_contains_the_whole_v2_contract() {
    let path = vendored(CONTRACT_V2);
    let contract = parse(&read(&path), &path);
    let server = parse(&keymeter::graphql::sdl(), "the server's schema");

    let problems = contract_differences(&contract, &server);
    assert!(
        problems.is_empty(),
        "{} problem(s) between the server's schema and contract v2:\n  {}",
        problems.len(),
        problems.join("\n  "),
    );
}

#[test]
fn server_schema_contains_contract_v3_but_the_parts_still_to_come() {
    let path = vendored(CONTRACT_V3);
    let contract = parse(&read(&path), &path);
    let server = parse(&keymeter::graphql::sdl(), "the server's schema");

    let problems = contract_differences(&contract, &server);
    let unexpected: Vec<&String> = problems
        .iter()
        .filter(|problem| !V3_NOT_YET.contains(&problem.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} problem(s) between the server's schema and contract v3:\n  {}",
        unexpected.len(),
        unexpected
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
    );
    let served: Vec<&&str> = V3_NOT_YET
        .iter()
        .filter(|left_out| !problems.iter().any(|problem| problem == *left_out))
        .collect();
    assert!(
        served.is_empty(),
        "now served, take them off V3_NOT_YET: {served:?}"
    );
}

/// v2 is a superset of v1, so this holds as long as the v2 test does; it is
/// kept because v1 clients must never break, whatever v2 becomes.
#[test]
fn server_schema_contains_the_whole_v1_contract() {
    let path = vendored(CONTRACT_V1);
    let contract = parse(&read(&path), &path);
    let server = parse(&keymeter::graphql::sdl(), "the server's schema");

    let problems = contract_differences(&contract, &server);
    assert!(
        problems.is_empty(),
        "{} problem(s) between the server's schema and contract v1:\n  {}",
        problems.len(),
        problems.join("\n  "),
    );
}

#[test]
fn vendored_contracts_are_current() {
    for file in [CONTRACT_V1, CONTRACT_V2, CONTRACT_V3] {
        let shared = match fs::read(shared(file)) {
            Ok(bytes) => bytes,
            // Not there on a clean clone (CI): the vendored copy is all we have.
            Err(err) if err.kind() == ErrorKind::NotFound => continue,
            Err(err) => panic!("cannot read ../shared/{file}: {err}"),
        };
        let vendored = fs::read(vendored(file))
            .unwrap_or_else(|err| panic!("cannot read contract/{file}: {err}"));
        assert!(
            vendored == shared,
            "contract/{file} is out of date; refresh it with \
             `cp ../shared/{file} contract/` and commit it"
        );
    }
}

/// Proves the comparison can fail: every kind of break it looks for is
/// planted once, and each must be reported, with nothing else.
#[test]
fn comparison_detects_differences() {
    let contract = parse(
        r#"
        type Query {
          count(limit: Int = 1): Int!
          name: String!
          tags: [String!]!
        }
        enum Color { RED GREEN }
        type Gone { id: ID! }
        input Filter { color: Color = RED }
        "#,
        "the test contract",
    );
    let server = parse(
        r#"
        type Query {
          count(limit: Int = 2, strict: Boolean!, optional: Int): Int
          tags: [String]!
          added: Int
        }
        enum Color { RED }
        scalar Filter
        "#,
        "the test server",
    );

    assert_eq!(
        contract_differences(&contract, &server),
        [
            "Query.count: type is Int on the server, Int! in the contract",
            "Query.count(limit): default is = 2 on the server, = 1 in the contract",
            "Query.count(strict): new on the server and required without a default",
            "Query.name: missing on the server",
            "Query.tags: type is [String]! on the server, [String!]! in the contract",
            "Color.GREEN: enum value missing on the server",
            "Gone: type missing on the server",
            "Filter: a scalar on the server, an input object in the contract",
        ],
    );
}

/// Every way the server's schema falls short of the contract, in contract
/// order. The server may add types, fields, optional arguments and enum
/// values; descriptions and directives are not compared.
fn contract_differences(contract: &ServiceDocument, server: &ServiceDocument) -> Vec<String> {
    let served = types_by_name(server);
    let mut problems = Vec::new();
    for wanted in type_definitions(contract) {
        let name = wanted.name.node.as_str();
        let Some(found) = served.get(name) else {
            problems.push(format!("{name}: type missing on the server"));
            continue;
        };
        match (&wanted.kind, &found.kind) {
            (TypeKind::Scalar, TypeKind::Scalar) => {}
            (TypeKind::Object(wanted), TypeKind::Object(found)) => {
                compare_interfaces(name, &wanted.implements, &found.implements, &mut problems);
                compare_fields(name, &wanted.fields, &found.fields, &mut problems);
            }
            (TypeKind::Interface(wanted), TypeKind::Interface(found)) => {
                compare_interfaces(name, &wanted.implements, &found.implements, &mut problems);
                compare_fields(name, &wanted.fields, &found.fields, &mut problems);
            }
            (TypeKind::Union(wanted), TypeKind::Union(found)) => {
                for member in &wanted.members {
                    if !found.members.iter().any(|m| m.node == member.node) {
                        problems.push(format!("{name}: union member {} missing", member.node));
                    }
                }
            }
            (TypeKind::Enum(wanted), TypeKind::Enum(found)) => {
                for value in &wanted.values {
                    let value = value.node.value.node.as_str();
                    if !found.values.iter().any(|v| v.node.value.node == value) {
                        problems.push(format!("{name}.{value}: enum value missing on the server"));
                    }
                }
            }
            (TypeKind::InputObject(wanted), TypeKind::InputObject(found)) => {
                // A new required input field breaks clients just as a new
                // required argument does, so input fields get the same check.
                compare_input_values(
                    &wanted.fields,
                    &found.fields,
                    |field| format!("{name}.{field}"),
                    &mut problems,
                );
            }
            (wanted, found) => problems.push(format!(
                "{name}: {} on the server, {} in the contract",
                kind_name(found),
                kind_name(wanted)
            )),
        }
    }
    problems
}

/// Fields of an object or interface: each must exist with the same type and
/// the same arguments.
fn compare_fields(
    type_name: &str,
    wanted: &[Positioned<FieldDefinition>],
    found: &[Positioned<FieldDefinition>],
    problems: &mut Vec<String>,
) {
    for wanted in wanted.iter().map(|f| &f.node) {
        let name = wanted.name.node.as_str();
        let path = format!("{type_name}.{name}");
        let Some(found) = found.iter().map(|f| &f.node).find(|f| f.name.node == name) else {
            problems.push(format!("{path}: missing on the server"));
            continue;
        };
        if wanted.ty.node != found.ty.node {
            problems.push(format!(
                "{path}: type is {} on the server, {} in the contract",
                found.ty.node, wanted.ty.node
            ));
        }
        compare_input_values(
            &wanted.arguments,
            &found.arguments,
            |argument| format!("{path}({argument})"),
            problems,
        );
    }
}

/// Arguments of a field, or fields of an input object: each must exist with
/// the same type and default, and whatever the server adds must be optional,
/// or requests written against the contract would be rejected.
fn compare_input_values<'a>(
    wanted: impl IntoIterator<Item = &'a Positioned<InputValueDefinition>>,
    found: &[Positioned<InputValueDefinition>],
    path: impl Fn(&str) -> String,
    problems: &mut Vec<String>,
) {
    let wanted: Vec<&InputValueDefinition> = wanted.into_iter().map(|v| &v.node).collect();
    for wanted in &wanted {
        let name = wanted.name.node.as_str();
        let Some(found) = found.iter().map(|v| &v.node).find(|v| v.name.node == name) else {
            problems.push(format!("{}: missing on the server", path(name)));
            continue;
        };
        if wanted.ty.node != found.ty.node {
            problems.push(format!(
                "{}: type is {} on the server, {} in the contract",
                path(name),
                found.ty.node,
                wanted.ty.node
            ));
        }
        let wanted_default = wanted.default_value.as_ref().map(|d| &d.node);
        if wanted_default != found.default_value.as_ref().map(|d| &d.node) {
            problems.push(format!(
                "{}: default is {} on the server, {} in the contract",
                path(name),
                show_default(found),
                show_default(wanted)
            ));
        }
    }
    for added in found.iter().map(|v| &v.node) {
        let name = added.name.node.as_str();
        let is_new = !wanted.iter().any(|w| w.name.node == name);
        if is_new && !added.ty.node.nullable && added.default_value.is_none() {
            problems.push(format!(
                "{}: new on the server and required without a default",
                path(name)
            ));
        }
    }
}

/// Interfaces a type implements: clients may rely on them in fragments.
fn compare_interfaces(
    type_name: &str,
    wanted: &[Positioned<async_graphql::Name>],
    found: &[Positioned<async_graphql::Name>],
    problems: &mut Vec<String>,
) {
    for interface in wanted {
        if !found.iter().any(|f| f.node == interface.node) {
            problems.push(format!(
                "{type_name}: does not implement {} on the server",
                interface.node
            ));
        }
    }
}

/// A default value as it reads in SDL, `= 2`, or `none`.
fn show_default(value: &InputValueDefinition) -> String {
    match &value.default_value {
        Some(default) => format!("= {}", default.node),
        None => "none".to_owned(),
    }
}

fn kind_name(kind: &TypeKind) -> &'static str {
    match kind {
        TypeKind::Scalar => "a scalar",
        TypeKind::Object(_) => "an object",
        TypeKind::Interface(_) => "an interface",
        TypeKind::Union(_) => "a union",
        TypeKind::Enum(_) => "an enum",
        TypeKind::InputObject(_) => "an input object",
    }
}

/// The type definitions of a document, in document order. Schema and
/// directive definitions are not part of what the contract fixes.
fn type_definitions(document: &ServiceDocument) -> impl Iterator<Item = &TypeDefinition> {
    document
        .definitions
        .iter()
        .filter_map(|definition| match definition {
            TypeSystemDefinition::Type(ty) => Some(&ty.node),
            TypeSystemDefinition::Schema(_) | TypeSystemDefinition::Directive(_) => None,
        })
}

fn types_by_name(document: &ServiceDocument) -> HashMap<&str, &TypeDefinition> {
    type_definitions(document)
        .map(|ty| (ty.name.node.as_str(), ty))
        .collect()
}

fn parse(sdl: &str, source: &str) -> ServiceDocument {
    parse_schema(sdl).unwrap_or_else(|err| panic!("cannot parse {source}: {err}"))
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

/// Where two texts first differ, to point at the fix without dumping both.
fn first_difference(checked_in: &str, served: &str) -> String {
    let checked_in: Vec<&str> = checked_in.lines().collect();
    let served: Vec<&str> = served.lines().collect();
    let same = checked_in
        .iter()
        .zip(&served)
        .take_while(|(a, b)| a == b)
        .count();
    match (checked_in.get(same), served.get(same)) {
        (None, None) => "They differ only in line endings or the final newline.".to_owned(),
        (file_line, server_line) => format!(
            "First difference, line {}:\n  schema.graphql: {}\n  server:         {}",
            same + 1,
            file_line.unwrap_or(&"<end of file>"),
            server_line.unwrap_or(&"<end of file>"),
        ),
    }
}
