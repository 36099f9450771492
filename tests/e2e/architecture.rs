//! The architecture invariants of ARCHITECTURE.md that a test can check.

use std::path::Path;

use caseport_tests::root;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn manifest() -> toml::Table {
    read("spin.toml").parse().unwrap()
}

/// The components that send mail, and so may have an outbound grant.
const MAIL_SENDERS: &[&str] = &["login", "caseload", "reset-and-send"];

#[test]
fn shared_knows_nothing_of_spin_or_http() {
    let cargo: toml::Table = read("shared/Cargo.toml").parse().unwrap();
    let deps = cargo["dependencies"].as_table().unwrap();
    for forbidden in ["spin-sdk", "http", "hyper", "wasmtime", "wit-bindgen"] {
        assert!(
            !deps.contains_key(forbidden),
            "shared/ depends on {forbidden}"
        );
    }
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("spin_sdk"), "{} uses spin_sdk", f.display());
    }
}

#[test]
fn only_mail_senders_have_an_outbound_grant() {
    let m = manifest();
    for (name, component) in m["component"].as_table().unwrap() {
        let hosts = component
            .get("allowed_outbound_hosts")
            .and_then(|h| h.as_array())
            .map(Vec::len)
            .unwrap_or(0);
        if hosts > 0 {
            assert!(
                MAIL_SENDERS.contains(&name.as_str()),
                "{name} may send outbound HTTP"
            );
        }
    }
}

#[test]
fn the_web_component_holds_no_data_grant() {
    let m = manifest();
    let web = m["component"]["web"].as_table().unwrap();
    for grant in [
        "key_value_stores",
        "sqlite_databases",
        "allowed_outbound_hosts",
    ] {
        assert!(!web.contains_key(grant), "web has {grant}");
    }
}

#[test]
fn every_component_has_a_route_and_a_build() {
    let m = manifest();
    let routed: Vec<&str> = m["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["component"].as_str())
        .collect();
    for (name, component) in m["component"].as_table().unwrap() {
        assert!(routed.contains(&name.as_str()), "{name} has no trigger");
        assert!(
            component.get("build").is_some(),
            "{name} has no build command"
        );
        let source = component["source"].as_str().unwrap();
        assert!(
            source.starts_with("target/wasm32-wasip2/wasm/"),
            "{name}: {source}"
        );
    }
}

#[test]
fn components_hold_no_sql() {
    let mut files = Vec::new();
    rust_files(&root().join("functions"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for keyword in ["SELECT ", "INSERT ", "UPDATE ", "DELETE FROM"] {
            assert!(
                !text.contains(keyword),
                "{} holds SQL ({keyword})",
                f.display()
            );
        }
    }
}

#[test]
fn the_code_is_formatted() {
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["fmt", "--all", "--", "--check"])
            .current_dir(root())
            .status()
            .unwrap();
    assert!(status.success(), "run `cargo fmt --all`");
}
