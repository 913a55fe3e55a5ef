//! Bounds on what one document may cost, checked before async-graphql
//! spends anything on it. async-graphql recurses on nested values while
//! parsing (2,000 nested `[` overflow a worker's stack) and follows every
//! fragment spread again while validating (fragments that each spread the
//! next one twice cost 2^k visits): both are guarded here, in front of it.

use std::collections::HashMap;

use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::parser::Positioned;
use async_graphql::Name;

/// Deepest nesting of brackets (`{`, `[`, `(`) a query text may have. The
/// selection depth limit (16 by default) and any real input value fit well
/// inside it; the parser's stack does too.
pub const MAX_NESTING: usize = 64;

/// Most fields a document may select once every fragment spread is
/// expanded (the standard introspection query selects a few hundred).
pub const MAX_EXPANDED_FIELDS: u64 = 2_000;

/// Longest chain of fragments spreading fragments; validation follows such
/// a chain recursively, so a long one would exhaust its stack.
pub const MAX_FRAGMENT_CHAIN: usize = 32;

/// Operations that sign someone in: those that check a password (Argon2,
/// deliberately slow) and those that store or redeem a provider sign-in,
/// each counted against a limit. One per request.
const PASSWORD_CHECKS: &[&str] = &["signup", "login", "startSignIn", "completeSignIn"];

/// The deepest bracket nesting of `query`, outside strings and comments,
/// refused past `MAX_NESTING`. Linear in the text and never recursive, so
/// it is safe to run on anything before the parser sees it.
pub fn check_nesting(query: &str) -> Result<(), &'static str> {
    let mut depth = 0usize;
    let mut bytes = query.as_bytes().iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        match byte {
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err("the query nests brackets too deeply");
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            b'#' => {
                for byte in bytes.by_ref() {
                    if byte == b'\n' || byte == b'\r' {
                        break;
                    }
                }
            }
            // A string, or a block string (`"""`, which contains no
            // unescaped `"""`): either way, skip to its closing quote. An
            // empty string `""` followed by more text reads as the start of
            // a block string only if a third quote follows, as in GraphQL.
            b'"' => skip_string(&mut bytes),
            _ => {}
        }
    }
    Ok(())
}

fn skip_string(bytes: &mut std::iter::Peekable<impl Iterator<Item = u8>>) {
    let mut quotes = 0;
    let mut block = false;
    let mut first = true;
    while let Some(byte) = bytes.next() {
        if first && byte == b'"' && bytes.peek() == Some(&b'"') {
            bytes.next();
            block = true;
            first = false;
            continue;
        }
        if first && byte == b'"' {
            return; // the empty string `""`
        }
        first = false;
        match (block, byte) {
            (_, b'\\') => {
                bytes.next();
                quotes = 0;
            }
            (false, b'"') => return,
            (true, b'"') => {
                quotes += 1;
                if quotes == 3 {
                    return;
                }
            }
            _ => quotes = 0,
        }
    }
}

/// What a parsed document would cost, refused before validation: fields
/// after expanding fragments (each fragment's size computed once), and
/// password checks per request.
pub fn check_document(document: &ExecutableDocument) -> Result<(), &'static str> {
    let mut measures = Measures::new(&document.fragments);
    let mut expanded: u64 = 0;
    for (_, operation) in document.operations.iter() {
        let measure = measures.of_set(&operation.node.selection_set);
        if measure.password_checks > 1 {
            return Err("at most one signup, login, startSignIn or completeSignIn per request");
        }
        expanded = expanded.saturating_add(measure.fields);
    }
    for name in document.fragments.keys() {
        expanded = expanded.saturating_add(measures.of_fragment(name).fields);
    }
    if measures.chain_too_long {
        return Err("the query's fragments spread each other too deeply");
    }
    if expanded > MAX_EXPANDED_FIELDS {
        return Err("the query selects too many fields once its fragments are expanded");
    }
    Ok(())
}

/// What a selection costs once expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Measure {
    /// Fields selected, at every depth.
    fields: u64,
    /// Password-checking fields at its top level.
    password_checks: u64,
    /// Longest chain of fragment spreads within it.
    chain: usize,
}

impl Measure {
    fn plus(self, other: Self) -> Self {
        Self {
            fields: self.fields.saturating_add(other.fields),
            password_checks: self.password_checks.saturating_add(other.password_checks),
            chain: self.chain.max(other.chain),
        }
    }
}

/// The measure of each fragment, memoized: a fragment is walked once
/// however often it is spread. A fragment that spreads itself counts as
/// empty inside itself; validation refuses the cycle.
struct Measures<'a> {
    fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>,
    known: HashMap<&'a str, Option<Measure>>,
    /// Fragments on the path being walked.
    chain: usize,
    chain_too_long: bool,
}

impl<'a> Measures<'a> {
    fn new(fragments: &'a HashMap<Name, Positioned<FragmentDefinition>>) -> Self {
        Self {
            fragments,
            known: HashMap::new(),
            chain: 0,
            chain_too_long: false,
        }
    }

    fn of_fragment(&mut self, name: &'a str) -> Measure {
        match self.known.get(name) {
            Some(Some(measure)) => return *measure,
            Some(None) => return Measure::default(), // on the current path: a cycle
            None => {}
        }
        let Some(fragment) = self.fragments.get(name) else {
            return Measure::default();
        };
        if self.chain >= MAX_FRAGMENT_CHAIN {
            self.chain_too_long = true;
            return Measure::default();
        }
        self.known.insert(name, None);
        self.chain += 1;
        let measure = self.of_set(&fragment.node.selection_set);
        self.chain -= 1;
        self.chain_too_long |= measure.chain >= MAX_FRAGMENT_CHAIN;
        self.known.insert(name, Some(measure));
        measure
    }

    fn of_set(&mut self, set: &'a Positioned<SelectionSet>) -> Measure {
        set.node
            .items
            .iter()
            .fold(Measure::default(), |total, item| {
                let measure = match &item.node {
                    Selection::Field(field) => {
                        let children = self.of_set(&field.node.selection_set);
                        Measure {
                            fields: 1u64.saturating_add(children.fields),
                            password_checks: u64::from(
                                PASSWORD_CHECKS.contains(&field.node.name.node.as_str()),
                            ),
                            chain: children.chain,
                        }
                    }
                    Selection::FragmentSpread(spread) => {
                        let fragment = self.of_fragment(spread.node.fragment_name.node.as_str());
                        Measure {
                            chain: fragment.chain + 1,
                            ..fragment
                        }
                    }
                    Selection::InlineFragment(inline) => self.of_set(&inline.node.selection_set),
                };
                total.plus(measure)
            })
    }
}
