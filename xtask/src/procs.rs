//! Processes as Linux's `/proc` shows them: the CPU time a server used, its child processes,
//! their threads. One parser of `/proc/<pid>/stat` for every bench.

use std::time::Duration;

use anyhow::{Context, Result};

/// One line of `/proc/<pid>/stat`, the fields the benches read.
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    /// User and system time, in clock ticks.
    pub cpu_ticks: u64,
}

impl Process {
    /// Parses `pid (name) state ppid …`, split after the name, which may hold anything.
    fn parse(stat: &str) -> Option<Self> {
        let (head, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        Some(Self {
            pid: head.split_whitespace().next()?.parse().ok()?,
            parent: fields.get(1)?.parse().ok()?,
            // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
            cpu_ticks: number(11).unwrap_or(0) + number(12).unwrap_or(0),
        })
    }

    /// Process `pid` as it is now.
    pub fn read(pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(&stat).with_context(|| format!("cannot read /proc/{pid}/stat"))
    }
}

/// Every process running now.
pub fn processes() -> Result<Vec<Process>> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        // Not a process, or one that has just ended.
        if let Ok(stat) = std::fs::read_to_string(entry?.path().join("stat"))
            && let Some(process) = Process::parse(&stat)
        {
            all.push(process);
        }
    }
    Ok(all)
}

/// `ticks` clock ticks of CPU time.
pub fn ticks(ticks: u64) -> Result<Duration> {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
        .context("the clock tick is unknown")?;
    Ok(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    Ok(ticks(Process::read(pid)?.cpu_ticks)?.as_secs_f64())
}

/// The CPU time (user and system) that process `pid` and its child processes have used so
/// far: nginx answers in its worker processes.
pub fn cpu_time_with_children(pid: u32) -> Result<Duration> {
    ticks(
        processes()?
            .iter()
            .filter(|p| p.pid == pid || p.parent == pid)
            .map(|p| p.cpu_ticks)
            .sum(),
    )
}

/// The threads of processes `pids` and of their child processes.
pub fn threads_of(pids: &[u32]) -> Result<Vec<i32>> {
    let mut threads = Vec::new();
    for process in processes()? {
        if !pids.contains(&process.pid) && !pids.contains(&process.parent) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", process.pid)) else {
            continue;
        };
        for task in tasks.flatten() {
            if let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) {
                threads.push(tid);
            }
        }
    }
    Ok(threads)
}
