//! Multi-row statements: chunk sizes that keep a handful of statement shapes, and the
//! placeholders each engine spells its own way.

use sqlx::AnyConnection;

use super::Backend;

/// Splits `items` into chunks of `max`, `max/4`, `max/16`, ... rows (down to 1), largest first,
/// so a multi-row statement only ever has a handful of shapes and stays in the prepared
/// statement cache: preparing a statement with thousands of parameters costs more than
/// running it.
pub fn statement_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    assert!(max > 0);
    let mut chunks = Vec::new();
    let mut rest = items;
    let mut size = max;
    while !rest.is_empty() {
        while size > 1 && rest.len() < size {
            size = (size / 4).max(1);
        }
        let (head, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// How bind parameters are written. SQLite gets anonymous `?` for long parameter lists: its
/// lookup of a named parameter (`$N`) scans every name, which makes binding a 4,000-parameter
/// multi-row insert quadratic. PostgreSQL only knows `$N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    Numbered,
    Positional,
}

impl Placeholders {
    pub fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Self::Positional
        } else {
            Self::Numbered
        }
    }

    pub fn for_backend(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Positional,
            Backend::Postgres => Self::Numbered,
        }
    }

    /// The verb of a multi-row insert. On SQLite, `INSERT OR FAIL`: a plain multi-row `INSERT`
    /// may abort half-way, so SQLite copies every page it touches into a statement journal to
    /// undo the statement alone (measured: a quarter of the insert's time, most of it in
    /// malloc). With `OR FAIL` a constraint error still fails the statement, and the caller
    /// rolls back the whole transaction, so no statement journal is needed.
    pub fn bulk_insert(self) -> &'static str {
        match self {
            Self::Positional => "INSERT OR FAIL INTO",
            Self::Numbered => "INSERT INTO",
        }
    }

    /// An aggregate that joins the text `expression` of every selected row into one value,
    /// rows separated by `;` (NULL when no row matches). Reading one value instead of a row per
    /// match saves the driver's per-row cost (measured on SQLite through `sqlx::Any`: about
    /// 6 µs a row), which dominates reads of thousands of small rows; the caller's fields must
    /// never contain `;`.
    pub fn joined_rows(self, expression: &str) -> String {
        match self {
            Self::Positional => format!("group_concat({expression}, ';')"),
            Self::Numbered => format!("string_agg({expression}, ';')"),
        }
    }

    fn write(self, sql: &mut String, number: usize) {
        match self {
            Self::Positional => sql.push('?'),
            Self::Numbered => {
                sql.push('$');
                sql.push_str(&number.to_string());
            }
        }
    }
}

/// `(p1, p2, ...), (...)` for a multi-row insert of `rows` rows of `columns` columns. Every
/// parameter of the statement must come from this (or [`list_placeholders`], in order).
pub fn values_placeholders(style: Placeholders, rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push(',');
            }
            style.write(&mut sql, row * columns + column + 1);
        }
        sql.push(')');
    }
    sql
}

/// PostgreSQL's text form of a `bigint[]` (`{1,-2,3}`), bound as one text parameter and cast
/// (`$1::bigint[]`). sqlx's `Any` driver binds no arrays, and a statement of thousands of
/// scalar parameters costs a round trip per few hundred keys and a bind per value; one array
/// is one parameter, parsed by the server in one pass.
pub fn postgres_bigint_array(values: impl IntoIterator<Item = i64>) -> String {
    let values = values.into_iter();
    let mut text = String::with_capacity(2 + values.size_hint().0 * 20);
    text.push('{');
    for (i, value) in values.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&value.to_string());
    }
    text.push('}');
    text
}

/// `p_first, p_first+1, ...` for an `IN (...)` list of `count` values.
pub fn list_placeholders(style: Placeholders, first: usize, count: usize) -> String {
    let mut sql = String::with_capacity(count * 5);
    for i in 0..count {
        if i > 0 {
            sql.push(',');
        }
        style.write(&mut sql, first + i);
    }
    sql
}
