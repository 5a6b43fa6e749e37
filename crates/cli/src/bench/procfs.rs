//! Process figures from `/proc`: resident memory and CPU time of the server under test and of the
//! generator itself, so every result says which side was busy.

use serde_json::{Value, json};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}/{file}: {source}")]
    Read {
        pid: String,
        file: &'static str,
        source: std::io::Error,
    },
    #[error("unexpected format of /proc/{pid}/{file}")]
    Format { pid: String, file: &'static str },
}

/// `pid` as a `/proc` entry name: a number, or `self`.
#[derive(Debug, Clone)]
pub struct Pid(pub String);

impl Pid {
    pub fn this() -> Self {
        Self("self".into())
    }

    fn read(&self, file: &'static str) -> Result<String, ProcError> {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.0)).map_err(|source| {
            ProcError::Read {
                pid: self.0.clone(),
                file,
                source,
            }
        })
    }

    /// Resident set size in bytes (`VmRSS`).
    pub fn rss_bytes(&self) -> Result<u64, ProcError> {
        let status = self.read("status")?;
        vm_rss_kib(&status)
            .map(|kib| kib * 1024)
            .ok_or_else(|| ProcError::Format {
                pid: self.0.clone(),
                file: "status",
            })
    }

    /// User plus system CPU time in seconds.
    pub fn cpu_seconds(&self) -> Result<f64, ProcError> {
        let stat = self.read("stat")?;
        cpu_ticks(&stat)
            // USER_HZ, the unit of these fields, is 100 on every Linux ABI.
            .map(|ticks| ticks as f64 / 100.0)
            .ok_or_else(|| ProcError::Format {
                pid: self.0.clone(),
                file: "stat",
            })
    }
}

/// The soft limit on open files of this process (`Max open files` of `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Fails early, with the remedy, when `connections` sockets cannot be open at once.
pub fn check_open_files(connections: usize) -> Result<(), String> {
    // Sockets plus the runtime's own descriptors and some slack.
    let needed = connections as u64 + 64;
    match open_files_limit() {
        Some(limit) if limit < needed => Err(format!(
            "{connections} connections need about {needed} open files but the limit is {limit}; \
             raise it with `ulimit -n` (the server needs as many)"
        )),
        _ => Ok(()),
    }
}

/// The `VmRSS:` line of `/proc/<pid>/status`, in KiB.
fn vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `utime + stime` of `/proc/<pid>/stat`, in clock ticks. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU used by the server (when its pid is known) and by the generator over an interval.
pub struct CpuMeter {
    server: Option<(Pid, f64)>,
    generator: (Pid, f64),
    started: Instant,
}

impl CpuMeter {
    pub fn start(server: Option<&Pid>) -> Self {
        let this = Pid::this();
        let own = this.cpu_seconds().unwrap_or(0.0);
        Self {
            server: server.and_then(|p| Some((p.clone(), p.cpu_seconds().ok()?))),
            generator: (this, own),
            started: Instant::now(),
        }
    }

    /// `{"server_cores", "generator_cores"}`: average cores busy since `start`; with `ops`, also
    /// `{"server_cpu_us_per_op", "generator_cpu_us_per_op"}`, which stay comparable when other
    /// processes take CPU away from the run (throughput does not).
    pub fn finish(&self, ops: Option<u64>) -> Value {
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        let used = |(pid, before): &(Pid, f64)| pid.cpu_seconds().ok().map(|after| after - before);
        let (server, generator) = (self.server.as_ref().and_then(used), used(&self.generator));
        let cores = |s: Option<f64>| s.map(|s| (s / wall * 100.0).round() / 100.0);
        let per_op = |s: Option<f64>| {
            let ops = ops.filter(|&n| n > 0)?;
            s.map(|s| (s * 1e6 / ops as f64 * 1000.0).round() / 1000.0)
        };
        let mut reading = json!({
            "server_cores": cores(server),
            "generator_cores": cores(generator),
        });
        if ops.is_some() {
            reading["server_cpu_us_per_op"] = json!(per_op(server));
            reading["generator_cpu_us_per_op"] = json!(per_op(generator));
        }
        reading
    }
}

/// The 1-minute load average: how busy the machine was besides this run.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tiii-stream\nVmPeak:\t  9000 kB\nVmRSS:\t    4242 kB\nThreads: 3\n";
        assert_eq!(vm_rss_kib(status), Some(4242));
        assert_eq!(vm_rss_kib("Name: x\n"), None);
        let stat = "77 (a) b (c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3";
        assert_eq!(cpu_ticks(stat), Some(300));
        assert_eq!(cpu_ticks("77 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = Pid::this();
        assert!(me.rss_bytes().unwrap() > 0);
        assert!(me.cpu_seconds().unwrap() >= 0.0);
        assert!(open_files_limit().unwrap() > 0);
        assert!(check_open_files(usize::MAX / 2).is_err());
    }
}
