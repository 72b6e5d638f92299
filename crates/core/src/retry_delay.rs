//! `Upstash-Retry-Delay`: a math expression in `retried` giving milliseconds.
//!
//! fasteval evaluates it; it has no statements, assignments or IO, and caps
//! input size and nesting depth, so a user's expression can never do more
//! than arithmetic.

use std::time::Duration;

/// Longest delay an expression may produce; matches the Retry-After cap.
pub const MAX_DELAY: Duration = Duration::from_secs(86_400);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetryDelayError {
    #[error("invalid retry delay expression {expr:?}: {reason}")]
    Invalid { expr: String, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryDelayExpr(String);

impl RetryDelayExpr {
    /// Accepts the expression only if it evaluates to a finite, non-negative
    /// number for the first retries, so bad input fails at publish time.
    pub fn parse(expr: &str) -> Result<Self, RetryDelayError> {
        let parsed = Self(expr.trim().to_string());
        if parsed.0.is_empty() {
            return Err(parsed.invalid("empty expression"));
        }
        for retried in 0..3 {
            parsed.eval_ms(retried)?;
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The delay before the retry that follows `retried` earlier retries.
    pub fn delay(&self, retried: u32) -> Result<Duration, RetryDelayError> {
        let ms = self.eval_ms(retried)?;
        Ok(Duration::from_millis(ms as u64).min(MAX_DELAY))
    }

    fn eval_ms(&self, retried: u32) -> Result<f64, RetryDelayError> {
        let mut unknown = None;
        let mut namespace = |name: &str, args: Vec<f64>| -> Option<f64> {
            let value = match (name, args.as_slice()) {
                ("retried", []) => Some(retried as f64),
                ("pow", [base, exp]) => Some(base.powf(*exp)),
                ("exp", [x]) => Some(x.exp()),
                ("sqrt", [x]) => Some(x.sqrt()),
                _ => None,
            };
            if value.is_none() {
                unknown = Some(name.to_string());
            }
            value
        };
        let value = fasteval::ez_eval(&self.0, &mut namespace).map_err(|e| match &unknown {
            Some(name) => self.invalid(&format!("unknown name or wrong arguments: {name}")),
            None => self.invalid(&e.to_string()),
        })?;
        if !value.is_finite() || value < 0.0 {
            return Err(self.invalid(&format!("evaluates to {value} for retried={retried}")));
        }
        Ok(value)
    }

    fn invalid(&self, reason: &str) -> RetryDelayError {
        RetryDelayError::Invalid {
            expr: self.0.clone(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_documented_functions() {
        let e = RetryDelayExpr::parse("pow(2, retried) * 1000").unwrap();
        assert_eq!(e.delay(0).unwrap(), Duration::from_millis(1000));
        assert_eq!(e.delay(3).unwrap(), Duration::from_millis(8000));
        let e = RetryDelayExpr::parse("max(10, min(sqrt(retried) * 100, 5000)) + abs(-1) + floor(1.5) + ceil(0.2) + round(0.4) + exp(0)").unwrap();
        assert_eq!(e.delay(4).unwrap(), Duration::from_millis(204));
        assert_eq!(
            RetryDelayExpr::parse("1000").unwrap().delay(7).unwrap(),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn caps_huge_results_at_one_day() {
        let e = RetryDelayExpr::parse("pow(10, retried * 100)").unwrap();
        assert_eq!(e.delay(1).unwrap(), MAX_DELAY);
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "retried +",
            "foo(1)",
            "system(1)",
            "retried - 5",
            "sqrt(-1)",
            "1/0",
            "x",
        ] {
            assert!(
                RetryDelayExpr::parse(bad).is_err(),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn rejects_deeply_nested_input_quickly() {
        let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(RetryDelayExpr::parse(&deep).is_err());
    }
}
