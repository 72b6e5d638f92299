//! The report: figures per scenario, as a Markdown table on stdout and as
//! JSON.

use serde::Serialize;

use crate::qstash::CpuUse;

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    PerSecond,
    Millis,
    Seconds,
    Bytes,
    Count,
    /// A fraction, shown as a percentage.
    Ratio,
    /// Microseconds (CPU time per message).
    Micros,
    /// A byte count small enough to show whole (bytes per message).
    ByteCount,
}

/// What a figure should reach, from the targets.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// At least this fraction of the machine's ceiling.
    MinRatio(f64),
    /// At most this value, in the figure's unit.
    Max(f64),
    /// At least this multiple of the database's one-row pgbench rate.
    MinDatabaseRatio(f64),
    /// At least this value, in the figure's unit.
    Min(f64),
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: Unit,
    /// Fraction of the direct-to-sink rate, for throughput figures.
    pub vs_ceiling: Option<f64>,
    /// Multiple of pgbench's one-row rate, for throughput figures of runs
    /// on PostgreSQL.
    pub vs_database: Option<f64>,
    pub target: Option<Target>,
    pub met: Option<bool>,
}

impl Figure {
    pub fn new(name: &str, value: f64, unit: Unit) -> Figure {
        Figure {
            name: name.into(),
            value,
            unit,
            vs_ceiling: None,
            vs_database: None,
            target: None,
            met: None,
        }
    }

    pub fn target(mut self, t: Target) -> Figure {
        self.target = Some(t);
        self
    }

    /// Fills the ratio to the ceiling and whether the target is met.
    fn finish(&mut self, ceiling: Option<f64>, database: Option<f64>) {
        if self.unit == Unit::PerSecond {
            self.vs_ceiling = ceiling.filter(|c| *c > 0.0).map(|c| self.value / c);
            if matches!(self.target, Some(Target::MinDatabaseRatio(_))) {
                self.vs_database = database.filter(|c| *c > 0.0).map(|c| self.value / c);
            }
        }
        self.met = match self.target {
            Some(Target::MinRatio(r)) => self.vs_ceiling.map(|v| v >= r),
            Some(Target::MinDatabaseRatio(r)) => self.vs_database.map(|v| v >= r),
            Some(Target::Max(m)) => Some(self.value <= m),
            Some(Target::Min(m)) => Some(self.value >= m),
            None => None,
        };
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum Status {
    Ok,
    /// The server does not offer what the scenario needs (yet).
    NotAvailable(String),
    Failed(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    pub figures: Vec<Figure>,
    pub cpu: Option<CpuUse>,
    /// Anything worth reading next to the figures.
    pub notes: Vec<String>,
}

impl Scenario {
    pub fn new(id: &'static str, title: &'static str) -> Scenario {
        Scenario {
            id,
            title,
            status: Status::Ok,
            figures: Vec::new(),
            cpu: None,
            notes: Vec::new(),
        }
    }

    pub fn figure(&mut self, f: Figure) -> &mut Self {
        self.figures.push(f);
        self
    }

    pub fn note(&mut self, n: impl Into<String>) -> &mut Self {
        self.notes.push(n.into());
        self
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.value)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub memory_bytes: u64,
    pub cpu_model: String,
    pub load_before: String,
    pub load_after: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        Machine {
            nproc: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes,
            cpu_model,
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub command: String,
    pub binary: String,
    pub server_args: Vec<String>,
    pub machine: Machine,
    /// The load generator straight to the sink, requests per second.
    pub ceiling_per_second: Option<f64>,
    /// pgbench's one-row INSERT transactions per second (PostgreSQL runs).
    pub database_ceiling_per_second: Option<f64>,
    pub scenarios: Vec<Scenario>,
}

impl Report {
    /// Ratios and target checks, once every scenario ran.
    pub fn finish(&mut self) {
        self.ceiling_per_second = self
            .scenarios
            .iter()
            .find(|s| s.id == "ceiling" && s.status == Status::Ok)
            .and_then(|s| s.get("requests"));
        self.database_ceiling_per_second = self
            .scenarios
            .iter()
            .find(|s| s.id == "pgbench" && s.status == Status::Ok)
            .and_then(|s| s.get("one row per transaction"));
        for s in &mut self.scenarios {
            // pgbench's rates are the database's, not HTTP round trips.
            let http = self.ceiling_per_second.filter(|_| s.id != "pgbench");
            for f in &mut s.figures {
                f.finish(http, self.database_ceiling_per_second);
            }
        }
    }

    pub fn table(&self) -> String {
        let mut out = String::from(
            "| scenario | figure | value | vs ceiling | target |\n|---|---|---:|---:|---|\n",
        );
        for s in &self.scenarios {
            match &s.status {
                Status::Ok => {}
                Status::NotAvailable(why) => {
                    out.push_str(&format!("| {} | not available | {why} | | |\n", s.title));
                }
                Status::Failed(why) => {
                    out.push_str(&format!("| {} | FAILED | {why} | | |\n", s.title));
                }
            }
            for f in &s.figures {
                let ratio = f
                    .vs_ceiling
                    .map(|r| format!("{:.0}%", r * 100.0))
                    .unwrap_or_default();
                let target = match (f.target, f.met) {
                    (Some(t @ Target::MinDatabaseRatio(_)), Some(met)) => format!(
                        "{} ({:.2}×) {}",
                        describe(t, f.unit),
                        f.vs_database.unwrap_or_default(),
                        if met { "✓" } else { "✗" }
                    ),
                    (Some(t), Some(met)) => {
                        format!("{} {}", describe(t, f.unit), if met { "✓" } else { "✗" })
                    }
                    (Some(t), None) => describe(t, f.unit),
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {ratio} | {target} |\n",
                    s.title,
                    f.name,
                    format_value(f.value, f.unit)
                ));
            }
        }
        out
    }
}

fn describe(t: Target, unit: Unit) -> String {
    match t {
        Target::MinRatio(r) => format!("≥ {:.0}% of ceiling", r * 100.0),
        Target::Max(m) => format!("< {}", format_value(m, unit)),
        Target::MinDatabaseRatio(r) => format!("≥ {r}× pgbench one-row"),
        Target::Min(m) => format!("≥ {}", format_value(m, unit)),
    }
}

pub fn format_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSecond => format!("{} /s", thousands(v.round() as u64)),
        Unit::Millis => format!("{v:.2} ms"),
        Unit::Seconds => format!("{v:.2} s"),
        Unit::Bytes => format!("{:.1} MB", v / 1e6),
        Unit::Count => thousands(v.round() as u64),
        Unit::Ratio => format!("{:.0}%", v * 100.0),
        Unit::Micros => format!("{v:.1} µs"),
        Unit::ByteCount => format!("{} B", thousands(v.round() as u64)),
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_value(12345.4, Unit::PerSecond), "12,345 /s");
        assert_eq!(format_value(999.0, Unit::Count), "999");
        assert_eq!(format_value(1_000_000.0, Unit::Count), "1,000,000");
        assert_eq!(format_value(1.234, Unit::Millis), "1.23 ms");
        assert_eq!(format_value(250e6, Unit::Bytes), "250.0 MB");
        assert_eq!(format_value(31.26, Unit::Micros), "31.3 µs");
        assert_eq!(format_value(2612.4, Unit::ByteCount), "2,612 B");
    }

    #[test]
    fn ratios_and_targets() {
        let mut ceiling = Scenario::new("ceiling", "ceiling");
        ceiling.figure(Figure::new("requests", 1000.0, Unit::PerSecond));
        let mut publish = Scenario::new("publish", "publish");
        publish.figure(
            Figure::new("acknowledged", 400.0, Unit::PerSecond).target(Target::MinRatio(0.5)),
        );
        publish.figure(Figure::new("p99", 12.0, Unit::Millis).target(Target::Max(10.0)));
        let mut r = Report {
            mode: "test",
            command: String::new(),
            binary: String::new(),
            server_args: vec![],
            machine: Machine::read(),
            ceiling_per_second: None,
            database_ceiling_per_second: None,
            scenarios: vec![ceiling, publish],
        };
        r.finish();
        assert_eq!(r.ceiling_per_second, Some(1000.0));
        let f = &r.scenarios[1].figures;
        assert_eq!(f[0].vs_ceiling, Some(0.4));
        assert_eq!(f[0].met, Some(false));
        assert_eq!(f[1].vs_ceiling, None);
        assert_eq!(f[1].met, Some(false));
        let table = r.table();
        assert!(table.contains("| publish | acknowledged | 400 /s | 40% | ≥ 50% of ceiling ✗ |"));
    }
}
