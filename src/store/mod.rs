//! SQL text and row mapping for the hot path, and nothing else: no policy,
//! no decisions. Metering and lookups run these statements; the benchmark
//! imports this module so that pgbench runs exactly the server's SQL.
//! Rows are read through typed structs (`FromQueryResult`), so a column
//! renamed in a query fails a test instead of a request.

pub mod counters;
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

/// `(…), (…)`: `rows` groups of `columns` placeholders numbered from `first`.
pub(crate) fn placeholders(rows: usize, columns: usize, first: usize) -> String {
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (0..columns)
                .map(|c| format!("${}", first + row * columns + c))
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
