//! Property-based fuzzing of the whole API with Schemathesis (from PyPI, pinned with hashes in
//! `tests/fuzz/requirements.txt`), run from a virtual environment this harness makes under
//! `target/`. Every operation of docs/openapi.yaml, as each role, with Schemathesis' checks
//! (no 5xx, answers that match the schema, valid data accepted, invalid data refused) and
//! ours (`tests/fuzz/hooks.py`: no request changes Caseport's records and then fails).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, bail};

use crate::{Server, packages, root};

/// A role to fuzz as: who signs in, to which realm; `None` fuzzes without a session.
#[derive(Clone, Copy)]
pub struct Role {
    pub name: &'static str,
    pub sign_in: Option<(&'static str, &'static str, &'static str)>,
}

/// The roles, in the order they run: an administrator last, since it may disable others.
pub const ROLES: &[Role] = &[
    Role {
        name: "anonymous",
        sign_in: None,
    },
    Role {
        name: "portal client",
        sign_in: Some(("portal", "jdoe123@hotmail1.cmo", CLIENT_PASSWORD)),
    },
    Role {
        name: "case manager",
        sign_in: Some((
            "staff",
            "casey.manager@example.org",
            "caseport-demo-manager",
        )),
    },
    Role {
        name: "administrator",
        sign_in: Some(("staff", "admin@example.org", "caseport-demo-admin")),
    },
];

/// The password the harness gives Jane's portal account before fuzzing as her.
pub const CLIENT_PASSWORD: &str = "fuzzing portal client passphrase";

/// What one run found.
#[derive(Debug)]
pub struct Run {
    pub role: &'static str,
    /// Requests Schemathesis generated and sent.
    pub generated: u64,
    /// Failures it found (of any check).
    pub failures: u64,
    pub output: String,
}

/// The Schemathesis executable, installed (once per test run) from the pinned requirements
/// into the harness's virtual environment.
pub fn schemathesis() -> Result<PathBuf> {
    static MADE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    MADE.get_or_init(|| {
        let venv = packages::venv("tests/fuzz/requirements.txt").map_err(|e| format!("{e:#}"))?;
        Ok(venv.join("bin/schemathesis"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Fuzzes `server` (demo data, the local mailbox) as each role with `examples` test cases per
/// operation, one after the other; answers each role's run.
pub fn fuzz(server: &Server, examples: u32) -> Result<Vec<Run>> {
    // One run at a time: the record check fingerprints the database between requests.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let exe = schemathesis()?;
    give_jane_a_password(server)?;
    ROLES
        .iter()
        .map(|role| run(&exe, server, role, examples))
        .collect()
}

fn give_jane_a_password(server: &Server) -> Result<()> {
    let admin = crate::Staff::sign_in(server, crate::demo::ADMIN);
    let jane = server.client_id("Jane");
    let set = admin.send(
        "PUT",
        &format!("/api/clients/{jane}/portal-password"),
        &serde_json::json!({ "password": CLIENT_PASSWORD, "password_confirm": CLIENT_PASSWORD, "reset_required": false }),
    );
    if set.status != 200 {
        bail!("could not give Jane a password: {}", set.body);
    }
    Ok(())
}

fn run(exe: &Path, server: &Server, role: &Role, examples: u32) -> Result<Run> {
    let base = server.url("");
    // Schemathesis keeps a cache in its working directory: under target/, not in the sources.
    let work = root().join("target/fuzz-work");
    std::fs::create_dir_all(&work)?;
    let mut c = Command::new(exe);
    c.arg("--config-file")
        .arg(root().join("tests/fuzz/schemathesis.toml"))
        .arg("run")
        .arg(format!("{base}/api/openapi.yaml"))
        .args(["--url", &base])
        .args(["--checks", "all", "--workers", "1", "--no-color"])
        .args(["--max-examples", &examples.to_string()])
        // Signing out would end the session the rest of the run uses.
        .args(["--exclude-path", "/api/auth/logout"])
        .current_dir(&work)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", root().join("tests/fuzz"))
        .env("CASEPORT_FUZZ_DB", server.state.join("sqlite_db.db"))
        .env("CASEPORT_FUZZ_PROVIDER", "postmark");
    if let Some((realm, username, password)) = role.sign_in {
        let cookie = server.sign_in(realm, username, password);
        c.args(["-H", &format!("Cookie: {cookie}")]);
    }
    let out = c.output().context("cannot run schemathesis")?;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (generated, failures) = counts(&output)
        .with_context(|| format!("no summary in the output of schemathesis:\n{output}"))?;
    Ok(Run {
        role: role.name,
        generated,
        failures,
        output,
    })
}

/// "1951 generated, 1951 passed" or "1148 generated, 7 found 7 unique failures".
fn counts(output: &str) -> Option<(u64, u64)> {
    let line = output.lines().rev().find(|l| l.contains(" generated, "))?;
    let mut words = line.split_whitespace();
    let generated = words.next()?.parse().ok()?;
    let rest: Vec<&str> = words.collect();
    let failures = match rest.as_slice() {
        ["generated,", _, "passed", ..] => 0,
        ["generated,", n, "found", ..] => n.parse().ok()?,
        _ => return None,
    };
    Some((generated, failures))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_summary_is_read() {
        assert_eq!(
            super::counts("x\n  1951 generated, 1951 passed\n"),
            Some((1951, 0))
        );
        assert_eq!(
            super::counts("  1148 generated, 7 found 7 unique failures"),
            Some((1148, 7))
        );
        assert_eq!(super::counts("nothing"), None);
    }
}
