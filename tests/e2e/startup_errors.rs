//! What `caseport up` says when it cannot start: one clear line naming the file, the field
//! and the fix.

use std::path::Path;

use caseport_tests::{Up, probe_manifest};

fn manifest_in(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn error_line(output: &str) -> &str {
    output
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in:\n{output}"))
}

#[test]
fn a_malformed_manifest_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest_in(
        dir.path(),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \n",
    );
    let up = Up {
        manifest: Some(path.clone()),
        ..Up::default()
    };
    let (status, output) = up.fail("127.0.0.1:0").unwrap();
    assert!(!status.success());
    let line = error_line(&output);
    assert!(
        line.contains(&format!("{} (line 6)", path.display())),
        "{line}"
    );
}

#[test]
fn an_unsupported_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest_in(
        dir.path(),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\nfiles = [\"static/**\"]\n",
    );
    let up = Up {
        manifest: Some(path),
        ..Up::default()
    };
    let (_, output) = up.fail("127.0.0.1:0").unwrap();
    assert!(
        error_line(&output).contains("unknown field `files`"),
        "{output}"
    );
}

#[test]
fn a_missing_wasm_file_names_the_component_and_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let path = manifest_in(
        dir.path(),
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"missing/web.wasm\"\n[component.web.build]\ncommand = \"make web\"\n",
    );
    let up = Up {
        manifest: Some(path),
        ..Up::default()
    };
    let (_, output) = up.fail("127.0.0.1:0").unwrap();
    let line = error_line(&output);
    assert!(
        line.contains("component.web.source = \"missing/web.wasm\""),
        "{line}"
    );
    assert!(line.contains("caseport up --build"), "{line}");
    assert!(line.contains("does not exist"), "{line}");
}

#[test]
fn a_component_that_is_not_wasm_is_refused_before_serving() {
    // Only the component for `/` is compiled before serving; every other one is still read
    // and checked first, so a broken file stops the start, not a later request.
    let dir = tempfile::tempdir().unwrap();
    let web = std::fs::canonicalize(
        caseport_tests::root().join("target/wasm32-wasip2/wasm/caseport_web.wasm"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.wasm"),
        b"\0asm\x0d\0\x01\0 and then garbage",
    )
    .unwrap();
    let path = manifest_in(
        dir.path(),
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[[trigger.http]]\nroute = \"/api/...\"\ncomponent = \"api\"\n[component.web]\nsource = {:?}\n[component.api]\nsource = \"broken.wasm\"\n",
            web.display().to_string()
        ),
    );
    let up = Up {
        manifest: Some(path),
        ..Up::default()
    };
    let (status, output) = up.fail("127.0.0.1:0").unwrap();
    assert!(!status.success());
    let line = error_line(&output);
    assert!(
        line.contains("component.api.source = \"broken.wasm\""),
        "{line}"
    );
    assert!(line.contains("not a valid wasm component"), "{line}");
}

#[test]
fn an_unknown_variable_is_refused() {
    let (status, output) = Up::probe()
        .variable("no_such_thing", "1")
        .fail("127.0.0.1:0")
        .unwrap();
    assert!(!status.success());
    let line = error_line(&output);
    assert!(line.contains("--variable no_such_thing"), "{line}");
    assert!(
        line.contains(&probe_manifest().display().to_string()),
        "{line}"
    );
}

#[test]
fn a_port_in_use_says_so_and_how_to_choose_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, output) = Up::probe().fail(&addr).unwrap();
    assert!(!status.success());
    let line = error_line(&output);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(line.contains("already in use"), "{line}");
    assert!(line.contains("--listen"), "{line}");
}

#[test]
fn a_template_naming_an_undeclared_variable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = caseport_tests::root().join("target/wasm32-wasip2/wasm/caseport_probe.wasm");
    caseport_tests::caseport_binary();
    let path = manifest_in(
        dir.path(),
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\nvariables = {{ v = \"{{{{ nope }}}}\" }}\n",
            wasm.display().to_string()
        ),
    );
    let up = Up {
        manifest: Some(path),
        ..Up::default()
    };
    let (_, output) = up.fail("127.0.0.1:0").unwrap();
    let line = error_line(&output);
    assert!(line.contains("component.c.variables.v"), "{line}");
    assert!(line.contains("\"nope\""), "{line}");
}

#[test]
fn a_store_no_runtime_config_defines_is_refused_until_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = probe_manifest()
        .parent()
        .unwrap()
        .join("../../../target/wasm32-wasip2/wasm/caseport_probe.wasm");
    let path = manifest_in(
        dir.path(),
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\nkey_value_stores = [\"cache\"]\nsqlite_databases = [\"reports\"]\n",
            wasm.display().to_string()
        ),
    );
    let up = Up {
        manifest: Some(path),
        ..Up::default()
    };
    let (status, output) = up.clone().fail("127.0.0.1:0").unwrap();
    assert!(!status.success());
    let line = error_line(&output);
    assert!(
        line.contains("component.c.key_value_stores: no store \"cache\"")
            && line.contains("[key_value_store.cache]"),
        "{line}"
    );
    // Defined in a runtime config (as local files), the same manifest starts.
    let config = dir.path().join("runtime-config.toml");
    std::fs::write(
        &config,
        format!(
            "[key_value_store.cache]\ntype = \"spin\"\npath = {:?}\n\n[sqlite_database.reports]\ntype = \"spin\"\npath = {:?}\n",
            dir.path().join("cache.db").display().to_string(),
            dir.path().join("reports.db").display().to_string(),
        ),
    )
    .unwrap();
    let app = up.runtime_config(&config).start().unwrap();
    assert!(app.wait_for_output("Serving x"));
}

#[test]
fn identifiers_and_variables_follow_spins_rules() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |variables: &str, id: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[variables]\n{variables}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"{id}\"\n[component.{id}]\nsource = \"c.wasm\"\n"
        )
    };
    for (variables, id, expected) in [
        (
            "api_key = { default = \"k\" }",
            "bad_id",
            "invalid component id \"bad_id\": words must be separated with '-', not '_'",
        ),
        (
            "api_key = { default = \"k\" }",
            "api-2",
            "'-'-separated words must start with an ASCII letter; got '2'",
        ),
        (
            "a__b = { default = \"k\" }",
            "web",
            "'_'-separated words must not be empty",
        ),
        ("key_1 = { default = \"k\" }", "web", "got '1'"),
        (
            "api_key = {}",
            "web",
            "must be `required` OR have a `default`",
        ),
    ] {
        let up = Up {
            manifest: Some(manifest_in(dir.path(), &manifest(variables, id))),
            ..Up::default()
        };
        let (status, output) = up.fail("127.0.0.1:0").unwrap();
        assert!(!status.success());
        let line = error_line(&output);
        assert!(line.contains(expected), "{variables} / {id}: {line}");
    }
}
