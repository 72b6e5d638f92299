//! Small helpers over the driver: prepared statements cached per
//! connection, and the filter builder of the log, DLQ and cancel queries.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::Result;

pub type Param = Box<dyn ToSql + Sync + Send>;

pub async fn query<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query(&stmt, params).await?)
}

pub async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&stmt, params).await?)
}

pub async fn query_one<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Row> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.query_one(&stmt, params).await?)
}

pub async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    let stmt = c.prepare_cached(sql).await?;
    Ok(c.execute(&stmt, params).await?)
}

/// A `WHERE` clause with numbered parameters. Multi-valued filters bind one
/// array (`= ANY($n)`), so the SQL text depends only on which filters are
/// present, and prepared statements stay few.
#[derive(Default)]
pub struct Where {
    pub clauses: Vec<String>,
    pub args: Vec<Param>,
}

impl Where {
    /// A placeholder for `v`.
    pub fn arg(&mut self, v: impl ToSql + Sync + Send + 'static) -> String {
        self.args.push(Box::new(v));
        format!("${}", self.args.len())
    }

    pub fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// `column = ANY(values)`, skipped when `values` is empty.
    pub fn any_of<T>(&mut self, column: &str, values: &[T])
    where
        T: ToSql + Sync + Send + Clone + 'static,
    {
        if values.is_empty() {
            return;
        }
        let mark = self.arg(values.to_vec());
        self.clauses.push(format!("{column} = ANY({mark})"));
    }

    /// Labels are stored as `,a,b,`: one of `labels` must be among them.
    pub fn any_label(&mut self, column: &str, labels: &[String]) {
        if labels.is_empty() {
            return;
        }
        let patterns: Vec<String> = labels
            .iter()
            .map(|l| format!("%,{},%", like_escape(l)))
            .collect();
        let mark = self.arg(patterns);
        self.clauses.push(format!("{column} LIKE ANY({mark})"));
    }

    /// The clauses so far as SQL, leaving the builder empty of clauses
    /// (its parameters stay, so numbering continues across both parts).
    pub fn take_sql(&mut self) -> String {
        let sql = self.sql();
        self.clauses.clear();
        sql
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".into()
        } else {
            self.clauses.join(" AND ")
        }
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// `s` with LIKE's wildcards escaped (PostgreSQL's default escape is `\`).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_number_their_parameters_and_bind_arrays() {
        let mut w = Where::default();
        let user = w.arg("u".to_string());
        w.push(format!("user_id = {user}"));
        w.any_of("url", &["a".to_string(), "b".to_string()]);
        w.any_of::<String>("queue_name", &[]);
        w.any_label("labels", &["x_y".to_string()]);
        assert_eq!(
            w.sql(),
            "user_id = $1 AND url = ANY($2) AND labels LIKE ANY($3)"
        );
        assert_eq!(w.params().len(), 3);
        assert_eq!(like_escape("50%_off"), "50\\%\\_off");
    }
}
