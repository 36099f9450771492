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
const MAIL_SENDERS: &[&str] = &["login", "caseload", "client-info", "reset-and-send"];

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
fn every_component_is_built_without_its_function_names() {
    // A package that sets its own `opt-level` in a profile is built with
    // `strip = "debuginfo"` unless it says `strip` as well: `login` once carried 97 KB of
    // function names that way (Cargo.toml, docs/BENCHMARKS.md).
    caseport_tests::caseport_binary();
    for (name, component) in manifest()["component"].as_table().unwrap() {
        let path = root().join(component["source"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (mut modules, mut names) = (0, 0);
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            match payload.unwrap_or_else(|e| panic!("{name}: {e}")) {
                wasmparser::Payload::ModuleSection { .. } => modules += 1,
                wasmparser::Payload::CustomSection(section) if section.name() == "name" => {
                    names += 1;
                }
                _ => {}
            }
        }
        assert!(modules > 0, "{name}: no core module read");
        assert_eq!(names, 0, "{name} keeps a `name` section: strip it");
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

/// The string literals of Rust source `text`, in order (char literals such as `'"'` skipped).
fn string_literals(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            continue;
        }
        if c == '\'' && chars.get(i + 1) == Some(&'\\') && chars.get(i + 3) == Some(&'\'') {
            i += 4;
            continue;
        }
        if c != '"' {
            i += 1;
            continue;
        }
        let mut s = String::new();
        i += 1;
        while i < chars.len() && chars[i] != '"' {
            if chars[i] == '\\' {
                i += 1;
            }
            if let Some(&ch) = chars.get(i) {
                s.push(ch);
            }
            i += 1;
        }
        out.push(s);
        i += 1;
    }
    out
}

/// Statements in `shared/src` that are the deployment's, not one clinic's, each with why.
const DEPLOYMENT_STATEMENTS: &[(&str, &str)] = &[
    // Checking every clinic's audit chain names each clinic in turn.
    ("audit.rs", "SELECT id FROM clinics"),
    // A provider's delivery webhook may be about any clinic's email (one provider account).
    ("deliveries.rs", "FROM mail_deliveries WHERE provider = ?"),
    ("reset.rs", "webhook_events"),
    // The demo creates its clinics and host names, then fills each through its scope.
    ("demo.rs", "SELECT 1 FROM staff LIMIT 1"),
    ("demo.rs", "INSERT INTO clinics"),
    ("demo.rs", "INSERT INTO clinic_hosts"),
    // The caseload page's statement is assembled: its filter starts `WHERE c.clinic_id = ?1`.
    ("caseload.rs", "{from} {filter}"),
    // The operator works on the clinics themselves and across them (each clinic's own rows
    // through its scope): the clinics, their host names and counters, and the usage of all.
    ("operator.rs", "FROM clinics k"),
    ("operator.rs", "INSERT INTO clinics"),
    ("operator.rs", "UPDATE clinics SET"),
    ("operator.rs", "DELETE FROM clinics WHERE id = ?"),
    ("operator.rs", "FROM clinic_hosts WHERE host = ?"),
    ("operator.rs", "SELECT k.name, k.id FROM clinics k"),
    (
        "operator.rs",
        "DELETE FROM clinic_hosts WHERE clinic_id = ?",
    ),
    ("operator.rs", "INSERT INTO clinic_hosts"),
    ("operator.rs", "FROM usage_events u LEFT JOIN clinics k"),
    // The operators' own staff are the demo's too.
    ("demo.rs", "INSERT INTO clinics"),
];

#[test]
fn every_statement_of_the_rules_names_its_clinic() {
    // The scoped database refuses a statement without `?1` when it runs; this finds one
    // before it ever runs, including on paths no other test takes.
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    let mut statements = 0;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // The schema and the storage adapters are below the scope; `clinics` is the scope.
        if [
            "schema.rs",
            "native.rs",
            "testing.rs",
            "clinics.rs",
            "tests.rs",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or_default();
        for literal in string_literals(code) {
            let flat = literal.split_whitespace().collect::<Vec<_>>().join(" ");
            let is_sql = ["SELECT ", "INSERT INTO ", "UPDATE ", "DELETE FROM "]
                .iter()
                .any(|k| flat.starts_with(k))
                && flat.contains(['?', ' ']);
            if !is_sql || flat.contains("?1") {
                statements += usize::from(is_sql);
                continue;
            }
            assert!(
                DEPLOYMENT_STATEMENTS
                    .iter()
                    .any(|(file, part)| *file == name && flat.contains(part)),
                "{}: a statement that does not bind its clinic as ?1: {flat}",
                f.display()
            );
        }
    }
    assert!(
        statements > 80,
        "only {statements} statements found: is the scan still reading them?"
    );
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

/// The top-level module of `shared/src` a file belongs to (`mail/wire.rs` is `mail`).
fn shared_module(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("shared/src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Module → the modules it names as `crate::name`.
fn shared_dependencies() -> Graph {
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    let mut graph = Graph::new();
    for f in files {
        let module = shared_module(&f);
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
        // `use crate::{a, b}` groups.
        for (i, _) in text.match_indices("use crate::{") {
            let group = &text[i + 12..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for name in group.split(',') {
                let name = name
                    .trim()
                    .split("::")
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

type Graph = std::collections::BTreeMap<String, std::collections::BTreeSet<String>>;

/// A cycle of `graph`, as the path around it, if it has one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if done.contains(node) {
            return None;
        }
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn shared_has_no_module_cycle() {
    let planted: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .iter()
        .map(|(from, to)| (from.to_string(), [to.to_string()].into()))
        .collect();
    assert!(
        find_cycle(&planted).is_some(),
        "the check finds a planted cycle"
    );
    let graph = shared_dependencies();
    assert!(graph.len() > 20, "{:?}", graph.keys());
    assert!(graph["auth"].contains("credentials"), "the scan reads uses");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle in shared/: {}", cycle.join(" -> "));
    }
}

#[test]
fn api_components_enter_through_one_edge() {
    // The Origin check, then storage, then the session: an order that is a security rule,
    // kept in `caseport_edge::{api_request, staff_request}` alone.
    // The routes of the components that hash are crates of their own
    // (functions/login/src/lib.rs says why).
    for (routes, entry) in [
        ("login/routes", "api_request("),
        ("caseload/routes", "staff_request("),
        ("client-info", "staff_request("),
        ("reset-and-send/routes", "staff_request("),
        ("operator/routes", "operator_request("),
    ] {
        let text = read(&format!("functions/{routes}/src/lib.rs"));
        assert!(text.contains(entry), "{routes} does not use {entry}");
    }
    let mut files = Vec::new();
    rust_files(&root().join("functions"), &mut files);
    for f in files
        .iter()
        .filter(|f| !f.starts_with(root().join("functions/edge")))
    {
        let text = std::fs::read_to_string(f).unwrap();
        for step in [
            "check_origin",
            "require_staff",
            "require_session",
            "Env::open",
        ] {
            assert!(!text.contains(step), "{} calls {step} itself", f.display());
        }
    }
}

#[test]
fn the_error_codes_of_the_code_and_of_openapi_are_the_same_set() {
    use std::collections::BTreeSet;
    let mut code: BTreeSet<String> = caseport_shared::api_error::Code::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect();
    // The runtime's own answers.
    let mut files = Vec::new();
    rust_files(&root().join("host/src"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, _) in text.match_indices("error_response(") {
            let args = &text[i..text.len().min(i + 120)];
            if let Some(name) = args.split('"').nth(1) {
                code.insert(name.to_string());
            }
        }
    }
    let doc: serde_json::Value = {
        let yaml = read("docs/openapi.yaml");
        let line = yaml
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("Error:"))
            .find(|l| l.trim_start().starts_with("enum: ["))
            .expect("the Error schema's code enum");
        let list = line.trim().trim_start_matches("enum: ");
        serde_json::Value::Array(
            list.trim_matches(['[', ']'])
                .split(',')
                .map(|c| serde_json::Value::String(c.trim().to_string()))
                .collect(),
        )
    };
    let documented: BTreeSet<String> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert!(code.contains("bad_host") && code.contains("not_found"));
    assert_eq!(
        documented.difference(&code).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "documented but not in the code"
    );
    assert_eq!(
        code.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the code but not in docs/openapi.yaml"
    );
}

#[test]
fn the_code_map_names_every_module_and_only_real_ones() {
    let map = read("ARCHITECTURE.md");
    let mut files = Vec::new();
    rust_files(&root().join("shared/src"), &mut files);
    for f in &files {
        let module = shared_module(f);
        if module == "lib" {
            continue;
        }
        assert!(
            map.contains(&format!("`{module}`")),
            "ARCHITECTURE.md does not name shared's `{module}`"
        );
    }
    for dir in [
        "host/src",
        "tests/support",
        "tests/e2e",
        "functions/edge/src",
    ] {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if ["main.rs", "lib.rs"].contains(&name.as_str()) {
                continue;
            }
            let named = map.contains(&format!("`{name}`")) || map.contains(&format!("/{name}`"));
            assert!(named, "ARCHITECTURE.md does not name {dir}/{name}");
        }
    }
    // Every file the map names exists.
    let mut all = Vec::new();
    for dir in ["shared", "host", "tests", "functions", "xtask"] {
        rust_files(&root().join(dir), &mut all);
    }
    for (i, _) in map.match_indices(".rs`") {
        let start = map[..i].rfind('`').unwrap() + 1;
        let name = &map[start..i + 3];
        let name = name.rsplit('/').next().unwrap();
        assert!(
            all.iter().any(|f| f.file_name().is_some_and(|n| n == name)),
            "ARCHITECTURE.md names {name}, which does not exist"
        );
    }
}

#[test]
fn the_repository_cites_nothing_outside_it() {
    let out = std::process::Command::new("git")
        .args(["ls-files"])
        .current_dir(root())
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for path in listed.lines() {
        if !["md", "rs", "toml", "yaml", "js", "html", "css"]
            .iter()
            .any(|e| path.ends_with(&format!(".{e}")))
            || path.ends_with("Cargo.toml")
            || path == "tests/e2e/architecture.rs"
        {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(root().join(path)) else {
            continue;
        };
        checked += 1;
        for outside in ["DESIGN.md", "API.md", "STYLE.md", "../shared/", "seeds/"] {
            assert!(!text.contains(outside), "{path} cites {outside}");
        }
    }
    assert!(checked > 50, "{checked}");
}
