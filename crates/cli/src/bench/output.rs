//! Results: one JSON object per line on stdout, so runs can be appended to a file and plotted;
//! human-readable progress and summaries go to stderr.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The result of one scenario run, built up field by field.
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    /// A report with the fields every result carries: scenario, label, time and generator setup.
    pub fn new(scenario: &str, common: &super::Common) -> Self {
        let mut fields = Map::new();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        fields.insert("scenario".into(), json!(scenario));
        fields.insert("label".into(), json!(common.label));
        fields.insert("unix_time".into(), json!(unix));
        fields.insert("generator_threads".into(), json!(common.threads()));
        fields.insert("loadavg_1m".into(), json!(super::procfs::load_average()));
        fields.insert(
            "generator_cpus".into(),
            json!(std::thread::available_parallelism().map_or(1, |n| n.get())),
        );
        Self { fields }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Adds every field of an object value (e.g. a CPU meter's reading).
    pub fn merge(&mut self, value: Value) -> &mut Self {
        if let Value::Object(map) = value {
            self.fields.extend(map);
        }
        self
    }

    /// Writes the report as one line on stdout.
    pub fn emit(self) {
        let line = Value::Object(self.fields).to_string();
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not worth failing a finished run for.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
