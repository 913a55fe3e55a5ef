//! The dashboard's reads, as the page sends them: every `query` document of
//! `src/http/assets/queries.js` (read from the file, as
//! `tests/dashboard_documents.rs` reads it), with the variables a
//! signed-in page gives, and the answer keymeter gave it once seeded. The
//! benchmark runs each on keymeter and on the bare stack answering the
//! same document with that same answer (`bare-stack`'s `/documents/NAME`).

use anyhow::{bail, Context as _};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

const QUERIES: &str = include_str!("../../src/http/assets/queries.js");

/// One of the dashboard's reads.
pub struct Document {
    /// The operation's name, e.g. "Dashboard".
    pub name: String,
    /// The request body: query, variables and operationName.
    pub body: Value,
    /// The `data` keymeter answered.
    pub answer: Value,
}

impl Document {
    /// The benchmark's scenario name for it.
    pub fn scenario(&self) -> String {
        format!("dashboard {}", self.name)
    }
}

/// The query documents of queries.js, as (operation name, text).
fn queries() -> Vec<(String, &'static str)> {
    let mut found = Vec::new();
    let mut rest = QUERIES;
    while let Some(at) = rest.find("\nexport const ") {
        rest = &rest[at + "\nexport const ".len()..];
        let Some((_, after)) = rest.split_once(" = `") else {
            break;
        };
        let Some((text, after)) = after.split_once('`') else {
            break;
        };
        rest = after;
        let Some(header) = text.trim_start().strip_prefix("query ") else {
            continue;
        };
        let name: String = header
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        found.push((name, text));
    }
    found
}

/// The values a page gives the operation's required variables (optional
/// ones are left to their defaults: the user's own account, the current
/// cycle): `from` is the cycle's start, where the seeded usage is.
fn variables(text: &str, cycle_start: DateTime<Utc>) -> anyhow::Result<Value> {
    let mut variables = Map::new();
    let declared = text
        .split_once('(')
        .filter(|(before, _)| !before.contains('{'))
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
        .unwrap_or("");
    for declaration in declared.split(',').filter(|d| !d.trim().is_empty()) {
        let (name, ty) = declaration
            .split_once(':')
            .with_context(|| format!("a variable declaration: {declaration}"))?;
        let (name, ty) = (name.trim().trim_start_matches('$'), ty.trim());
        if !ty.ends_with('!') || ty.contains('=') {
            continue;
        }
        match name {
            "from" => variables.insert(
                name.into(),
                cycle_start
                    .to_rfc3339_opts(SecondsFormat::Secs, true)
                    .into(),
            ),
            _ => bail!("no value for the required variable ${name}"),
        };
    }
    Ok(Value::Object(variables))
}

/// Every query document, its body, and keymeter's answer to it for the
/// signed-in user of `token`.
pub async fn record(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    cycle_start: DateTime<Utc>,
) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    for (name, text) in queries() {
        let body = json!({
            "query": text,
            "variables": variables(text, cycle_start).with_context(|| name.clone())?,
            "operationName": name,
        });
        let answered: Value = http
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if answered.get("errors").is_some() {
            bail!("{name} answered errors: {answered}");
        }
        documents.push(Document {
            name,
            body,
            answer: answered["data"].clone(),
        });
    }
    if documents.len() < 5 {
        bail!(
            "found only {} query documents in queries.js",
            documents.len()
        );
    }
    Ok(documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_of_the_dashboard_is_found_with_its_variables() {
        let found = queries();
        let names: Vec<&str> = found.iter().map(|(name, _)| name.as_str()).collect();
        for expected in [
            "Dashboard",
            "UsageSeries",
            "KeySparklines",
            "Members",
            "AuditLog",
        ] {
            assert!(names.contains(&expected), "{names:?}");
        }
        let now = Utc::now();
        for (name, text) in found {
            variables(text, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
