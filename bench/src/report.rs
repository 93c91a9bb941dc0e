//! One table on the terminal, the same figures as JSON for comparing runs.

use serde::{Deserialize, Serialize};

use crate::load::Outcome;

#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub connections: usize,
    pub movements_per_second: f64,
    pub requests_per_second: f64,
    /// JSON has no NaN: a figure that does not apply is written `null` and read back NaN.
    #[serde(deserialize_with = "nan_if_null")]
    pub p50_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub p99_ms: f64,
    pub requests: u64,
    pub failures: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failure: Option<String>,
    /// The rate as a share of the broker's own ceiling measured in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_ceiling: Option<f64>,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

impl Row {
    pub fn new(scenario: impl Into<String>, connections: usize, outcome: &Outcome) -> Self {
        Self {
            scenario: scenario.into(),
            connections,
            movements_per_second: outcome.per_second().round(),
            requests_per_second: outcome.requests_per_second().round(),
            p50_ms: outcome.percentile_ms(0.50),
            p99_ms: outcome.percentile_ms(0.99),
            requests: outcome.requests,
            failures: outcome.failures,
            first_failure: outcome.first_failure.clone(),
            of_ceiling: None,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Report {
    pub suite: String,
    pub started_at: String,
    pub machine: String,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// This machine in one line: CPU model, cores, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.trim().trim_end_matches(" kB").parse::<u64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.0} GiB", kib as f64 / 1_048_576.0),
        );
    format!("{model}, {cores} cores, {memory}")
}

impl Report {
    pub fn print(&self) {
        let mut out = String::new();
        out.push_str(&format!(
            "\n{} — {}\n{}\n\n",
            self.suite, self.started_at, self.machine
        ));
        out.push_str(&format!(
            "{:<58} {:>6} {:>12} {:>10} {:>9} {:>9} {:>9} {:>10}\n",
            "scenario",
            "conns",
            "movements/s",
            "requests/s",
            "p50 ms",
            "p99 ms",
            "failures",
            "of broker"
        ));
        for row in &self.rows {
            let share = row
                .of_ceiling
                .map_or_else(|| "-".to_owned(), |share| format!("{share:.2}"));
            out.push_str(&format!(
                "{:<58} {:>6} {:>12.0} {:>10.0} {:>9.2} {:>9.2} {:>9} {:>10}\n",
                row.scenario,
                row.connections,
                row.movements_per_second,
                row.requests_per_second,
                row.p50_ms,
                row.p99_ms,
                row.failures,
                share
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("{note}\n"));
        }
        for row in self.rows.iter().filter(|row| row.first_failure.is_some()) {
            out.push_str(&format!(
                "first failure in {}: {}\n",
                row.scenario,
                row.first_failure.as_deref().unwrap_or_default()
            ));
        }
        // The report is this program's output.
        #[allow(clippy::print_stdout)]
        {
            print!("{out}");
        }
    }

    /// Sets each throughput row's share of the broker's ceiling (`broker`, measured in the
    /// same run): ingest's and the pipeline's rows against the produce rate, the
    /// processors' backlog against the consume rate. Fixed-rate rows, refused requests and
    /// reads (which do not touch the broker) have none.
    pub fn relate_to(&mut self, broker: &Self) {
        let rate = |scenario: &str| {
            broker
                .rows
                .iter()
                .find(|row| row.scenario == scenario)
                .map(|row| row.movements_per_second)
                .filter(|rate| *rate > 0.0)
        };
        let ceiling = match self.suite.as_str() {
            "ingest" | "pipeline" => rate(crate::broker::PRODUCE),
            "processors" => rate(crate::broker::CONSUME),
            _ => None,
        };
        let Some(ceiling) = ceiling else {
            return;
        };
        for row in &mut self.rows {
            if !row.scenario.contains("steady") && !row.scenario.contains("refused") {
                row.of_ceiling = Some(row.movements_per_second / ceiling);
            }
        }
        self.notes.push(format!(
            "\"of broker\": the rate as a share of the broker's own ceiling in this run ({ceiling:.0} records/s)"
        ));
    }

    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        Ok(serde_json::from_slice(&std::fs::read(path)?)?)
    }

    /// The suites' reports of one run as one: rows and notes named by their suite.
    pub fn combine(reports: Vec<Self>) -> Self {
        let mut combined = Self {
            suite: "make bench".into(),
            started_at: reports
                .iter()
                .map(|report| report.started_at.clone())
                .min()
                .unwrap_or_default(),
            machine: machine(),
            rows: Vec::new(),
            notes: Vec::new(),
        };
        for report in reports {
            for mut row in report.rows {
                row.scenario = format!("{}: {}", report.suite, row.scenario);
                combined.rows.push(row);
            }
            for note in report.notes {
                combined.notes.push(format!("{}: {note}", report.suite));
            }
        }
        combined
    }

    pub fn save(&self, directory: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
        std::fs::create_dir_all(directory)?;
        let path = directory.join(format!(
            "{}-{}.json",
            self.suite.replace(' ', "-"),
            self.started_at.replace(':', "")
        ));
        std::fs::write(&path, serde_json::to_vec_pretty(self)?)?;
        Ok(path)
    }
}
