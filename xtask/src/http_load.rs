//! A small keep-alive HTTP/1.1 load client for the benchmarks: each connection sends one GET
//! after another and reads each answer whole (`Content-Length` or chunked), so the figures
//! measure the server rather than a general-purpose client library. The same client measures
//! `caseport up` and nginx.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a run measured.
pub struct Run {
    pub requests: usize,
    pub errors: usize,
    pub latencies: Vec<Duration>,
    pub seconds: f64,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    /// The latency at quantile `q`, in microseconds.
    pub fn micros(&mut self, q: f64) -> f64 {
        self.latencies.sort();
        self.latencies
            .get(((self.latencies.len().saturating_sub(1)) as f64 * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    }
}

/// One keep-alive connection.
struct Connection {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
}

impl Connection {
    fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        Ok(Self {
            reader: BufReader::with_capacity(64 * 1024, stream),
            request: request.into_bytes(),
        })
    }

    /// Sends the request and reads the answer; answers its status.
    fn exchange(&mut self) -> Result<u16> {
        self.reader.get_mut().write_all(&self.request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no status line")?;
        let mut length = None;
        let mut chunked = false;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the connection closed");
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                } else if k.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = v.trim().eq_ignore_ascii_case("chunked");
                }
            }
        }
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim(), 16).context("chunk size")?;
                self.skip(size + 2)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            self.skip(length.unwrap_or(0))?;
        }
        Ok(status)
    }

    fn skip(&mut self, mut n: usize) -> Result<()> {
        let mut buf = [0u8; 16 * 1024];
        while n > 0 {
            let take = n.min(buf.len());
            self.reader.read_exact(&mut buf[..take])?;
            n -= take;
        }
        Ok(())
    }
}

/// `connections` clients GETting `path` from `addrs` (spread evenly) for `seconds`.
pub fn run(
    addrs: &[SocketAddr],
    path: &str,
    headers: &[(&str, &str)],
    connections: usize,
    seconds: f64,
) -> Result<Run> {
    let barrier = Arc::new(Barrier::new(connections));
    let workers: Vec<_> = (0..connections)
        .map(|n| {
            let addr = addrs[n % addrs.len()];
            let path = path.to_string();
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let barrier = barrier.clone();
            thread::spawn(move || -> (Vec<Duration>, usize) {
                let pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut conn = Connection::open(addr, &path, &pairs).ok();
                let mut latencies = Vec::new();
                let mut errors = 0;
                barrier.wait();
                let end = Instant::now() + Duration::from_secs_f64(seconds);
                while Instant::now() < end {
                    let Some(c) = conn.as_mut() else {
                        errors += 1;
                        conn = Connection::open(addr, &path, &pairs).ok();
                        continue;
                    };
                    let started = Instant::now();
                    match c.exchange() {
                        Ok(200) => latencies.push(started.elapsed()),
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            conn = Connection::open(addr, &path, &pairs).ok();
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w
            .join()
            .map_err(|_| anyhow::anyhow!("a load thread failed"))?;
        latencies.extend(l);
        errors += e;
    }
    Ok(Run {
        requests: latencies.len(),
        errors,
        latencies,
        seconds,
    })
}
