//! SQL text and row mapping for the hot path, and the database handle that
//! runs them (`db`), and nothing else: no policy, no decisions. Metering and lookups run these statements; the benchmark
//! imports this module so that pgbench runs exactly the server's SQL.
//! Rows are read through typed structs (`FromQueryResult`), so a column
//! renamed in a query fails a test instead of a request.

pub mod counters;
pub mod db;
pub mod keys;
pub mod rate_windows;
pub mod refunds;
pub mod requests;
pub mod series;
pub mod sweeps;
pub mod usage;

use sea_orm::{DbBackend, Statement, Value};

/// A statement for `backend`; every statement here numbers its parameters
/// `$1…`, which sea-orm rewrites for SQLite.
pub fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// The highest `$n` in `statement`: how many values it must be given.
pub fn parameters(statement: &str) -> usize {
    statement
        .split('$')
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

/// A statement's text and its values, built together: a value is bound
/// where the text names it and answers its `$n`, so text and values cannot
/// disagree on an offset. A value the text names twice is bound once and
/// its `$n` reused.
#[derive(Default)]
pub struct Binds(Vec<Value>);

impl Binds {
    /// Binds `value`; its placeholder.
    pub fn value(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }

    /// Binds a row's cells: `($a, $b, …)`.
    pub fn row<const N: usize>(&mut self, cells: [Value; N]) -> String {
        let cells: Vec<String> = cells.into_iter().map(|cell| self.value(cell)).collect();
        format!("({})", cells.join(", "))
    }

    /// Binds rows: `(…), (…)`, for a VALUES list.
    pub fn rows<const N: usize>(&mut self, rows: impl IntoIterator<Item = [Value; N]>) -> String {
        let rows: Vec<String> = rows.into_iter().map(|row| self.row(row)).collect();
        rows.join(", ")
    }

    /// Binds a list's items: `$a, $b, …`, for IN (…).
    pub fn list(&mut self, items: impl IntoIterator<Item = Value>) -> String {
        let items: Vec<String> = items.into_iter().map(|item| self.value(item)).collect();
        items.join(", ")
    }

    /// The statement: `sql`, which these values were bound for.
    pub fn statement(self, backend: DbBackend, sql: &str) -> Statement {
        statement(backend, sql, self.0)
    }
}

/// Asserts that `statement` is given exactly the values its text names:
/// each of `$1…$n` appears, and there are n values.
#[cfg(test)]
pub(crate) fn binds_match(statement: &Statement) {
    let values = statement.values.as_ref().map_or(0, |values| values.0.len());
    assert_eq!(parameters(&statement.sql), values, "{}", statement.sql);
    for n in 1..=values {
        let named = statement
            .sql
            .match_indices(&format!("${n}"))
            .any(|(at, name)| {
                !statement.sql[at + name.len()..].starts_with(|c: char| c.is_ascii_digit())
            });
        assert!(named, "${n} is bound but not named in {}", statement.sql);
    }
}
