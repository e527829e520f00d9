//! Statements of one transaction whose results nobody reads, written together: on SQLite
//! they go to the connection's thread as one script (one hop instead of one per statement,
//! the values bound in order across the statements), on PostgreSQL one after the other.
//!
//! A step's history row, its outbox rows and its timers are such statements: the step was
//! already decided by the checked update of its instance, and an error in any of them rolls
//! the whole transaction back.

use sea_orm::{ConnectionTrait, DbBackend, Statement, Value, Values};

use super::Result;

/// Statements to run in order, in the caller's transaction.
pub(super) struct Script {
    backend: DbBackend,
    statements: Vec<Statement>,
}

impl Script {
    /// An empty script for `backend`.
    pub fn new(backend: DbBackend) -> Script {
        Script {
            backend,
            statements: Vec::new(),
        }
    }

    /// The backend the statements are built for.
    pub fn backend(&self) -> DbBackend {
        self.backend
    }

    /// Appends a statement, built for this script's backend.
    pub fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// Runs the statements in order; the first error stops them.
    pub async fn run<C: ConnectionTrait>(self, conn: &C) -> Result<()> {
        match self.backend {
            DbBackend::Sqlite if self.statements.len() > 1 => {
                conn.execute_raw(joined(self.statements)).await?;
            }
            _ => {
                for statement in self.statements {
                    conn.execute_raw(statement).await?;
                }
            }
        }
        Ok(())
    }
}

/// One SQLite text of several statements, with their values in order: SQLite's `?`
/// placeholders take the next values, statement after statement.
fn joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values: Vec<Value> = Vec::new();
    for statement in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&statement.sql);
        if let Some(Values(v)) = statement.values {
            values.extend(v);
        }
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_statements_are_joined_with_their_values_in_order() {
        let a = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO t VALUES (?, ?)",
            [Value::from(1i64), Value::from("a")],
        );
        let b = Statement::from_string(DbBackend::Sqlite, "DELETE FROM u");
        let c = Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE t SET x = ?",
            [Value::from(2i64)],
        );
        let joined = joined(vec![a, b, c]);
        assert_eq!(
            joined.sql,
            "INSERT INTO t VALUES (?, ?);\nDELETE FROM u;\nUPDATE t SET x = ?"
        );
        assert_eq!(
            joined.values,
            Some(Values(vec![
                Value::from(1i64),
                Value::from("a"),
                Value::from(2i64)
            ]))
        );
    }
}
