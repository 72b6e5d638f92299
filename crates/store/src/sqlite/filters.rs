//! A small builder for the filtered queries of the logs and the DLQ:
//! numbered parameters, and one `IN (...)` per multi-valued filter.

use rusqlite::types::Value;

#[derive(Debug, Default)]
pub struct Where {
    pub clauses: Vec<String>,
    pub args: Vec<Value>,
}

impl Where {
    /// A placeholder for `v`.
    pub fn arg(&mut self, v: impl Into<Value>) -> String {
        self.args.push(v.into());
        format!("?{}", self.args.len())
    }

    pub fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// `column IN (values)`, skipped when `values` is empty.
    pub fn any_of<T: Clone + Into<Value>>(&mut self, column: &str, values: &[T]) {
        if values.is_empty() {
            return;
        }
        let marks: Vec<String> = values.iter().map(|v| self.arg(v.clone())).collect();
        self.clauses
            .push(format!("{column} IN ({})", marks.join(", ")));
    }

    /// Labels are stored as `,a,b,`: one of `labels` must be among them.
    pub fn any_label(&mut self, column: &str, labels: &[String]) {
        if labels.is_empty() {
            return;
        }
        let likes: Vec<String> = labels
            .iter()
            .map(|l| format!("{column} LIKE {}", self.arg(format!("%,{l},%"))))
            .collect();
        self.clauses.push(format!("({})", likes.join(" OR ")));
    }

    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1".into()
        } else {
            self.clauses.join(" AND ")
        }
    }
}
