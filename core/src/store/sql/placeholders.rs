//! Positional parameters for SQLite's multi-row statements.
//!
//! The store spells parameters `$1`, `$2`, … on both backends. On SQLite a `$n` is a *named*
//! parameter: binding it, sqlx asks SQLite for each parameter's name to find its argument, and
//! SQLite finds a name by walking the statement's list of names from the start, so binding a
//! statement of k named parameters costs k²/2 steps. A batch's multi-row inserts bind a few
//! hundred parameters each; in a storm of declarations that lookup was 8% of the writer
//! connection's CPU (`sqlite3_bind_parameter_name`, profiled). A bare `?` has no name and is bound
//! by position, in one step.
//!
//! [`positional`] turns a statement whose parameters are `$1`, `$2`, … `$k`, each once and in
//! that order, into the same statement with `?`s. Any other statement (a parameter used twice,
//! or out of order) is returned as it was: its arguments would not line up by position.

use sqlx::AnyConnection;

/// `sql` with `?` for each `$n` on SQLite, when its parameters are `$1` … `$k` in order, each
/// once (quoted text is left alone); otherwise, or on PostgreSQL, `sql` unchanged.
pub(super) fn positional(conn: &AnyConnection, sql: String) -> String {
    if conn.backend_name() != "SQLite" {
        return sql;
    }
    to_positional(&sql).unwrap_or(sql)
}

/// The rewrite itself: `None` when the parameters are not `$1` … `$k` in order, each once.
fn to_positional(sql: &str) -> Option<String> {
    let mut out = String::with_capacity(sql.len());
    let mut next = 1usize;
    let mut quoted = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c != '$' || quoted {
            out.push(c);
            continue;
        }
        let mut n = 0usize;
        let mut digits = 0;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n.checked_mul(10)?.checked_add(v as usize)?;
            digits += 1;
            chars.next();
        }
        if digits == 0 || n != next {
            return None;
        }
        next += 1;
        out.push('?');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::to_positional;

    #[test]
    fn parameters_in_order_each_once_become_positional() {
        assert_eq!(
            to_positional("INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)").as_deref(),
            Some("INSERT INTO t (a, b) VALUES (?,?),(?,?)")
        );
        assert_eq!(
            to_positional("INSERT INTO t VALUES ($1,'pending',$2); UPDATE h SET s = $3").as_deref(),
            Some("INSERT INTO t VALUES (?,'pending',?); UPDATE h SET s = ?")
        );
        // Ten and more: the number is read whole.
        let sql: String = (1..=12).map(|n| format!("${n},")).collect();
        assert_eq!(to_positional(&sql), Some("?,".repeat(12)));
    }

    #[test]
    fn anything_else_is_left_named() {
        // Used twice, out of order, skipping one, or starting elsewhere: positions would not
        // match the arguments.
        assert_eq!(to_positional("VALUES ($1,$2,$1)"), None);
        assert_eq!(to_positional("VALUES ($2,$1)"), None);
        assert_eq!(to_positional("VALUES ($1,$3)"), None);
        assert_eq!(to_positional("WHERE a = $2"), None);
        assert_eq!(to_positional("WHERE a = $"), None);
    }

    #[test]
    fn quoted_text_is_not_a_parameter() {
        assert_eq!(
            to_positional("SELECT '$1 costs $2', $1").as_deref(),
            Some("SELECT '$1 costs $2', ?")
        );
    }
}
