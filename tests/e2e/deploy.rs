//! The deployment files of `deploy/` agree with spin.toml: every variable bound, every secret
//! from a Kubernetes Secret, no secret value in a file, the runtime config addressing the
//! services that are deployed, and `caseport up` accepting that runtime config.

use std::collections::{BTreeMap, BTreeSet};

use caseport_tests::{Up, root};
use serde::Deserialize;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The YAML documents of a file.
fn documents(path: &str) -> Vec<serde_yaml_ng::Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

fn of_kind(docs: &[serde_yaml_ng::Value], kind: &str) -> Vec<serde_yaml_ng::Value> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .cloned()
        .collect()
}

/// The fields of SpinKube's `SpinApp` (core.spinkube.dev/v1alpha1) this repository uses; an
/// unknown field is a mistake the operator would only see in the cluster.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinApp {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: SpinAppSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinAppSpec {
    image: String,
    executor: String,
    replicas: u32,
    #[serde(default)]
    pod_labels: BTreeMap<String, String>,
    runtime_config: RuntimeConfig,
    checks: Checks,
    resources: serde_yaml_ng::Value,
    variables: Vec<SpinVar>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuntimeConfig {
    load_from_secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Checks {
    readiness: Probe,
    liveness: Probe,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Probe {
    http_get: HttpGet,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpGet {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SpinVar {
    name: String,
    value: Option<String>,
    value_from: Option<ValueFrom>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ValueFrom {
    config_map_key_ref: Option<KeyRef>,
    secret_key_ref: Option<KeyRef>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    name: String,
    key: String,
    #[serde(default)]
    optional: bool,
}

/// spin.toml's variables: name → whether it is secret.
fn manifest_variables() -> BTreeMap<String, bool> {
    let manifest: toml::Table = read("spin.toml").parse().unwrap();
    manifest["variables"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            (
                name.clone(),
                v.get("secret").and_then(toml::Value::as_bool) == Some(true),
            )
        })
        .collect()
}

fn spin_app() -> (SpinApp, BTreeMap<String, String>) {
    let docs = documents("deploy/spinkube/caseport.yaml");
    let apps = of_kind(&docs, "SpinApp");
    assert_eq!(apps.len(), 1);
    let app: SpinApp = serde_yaml_ng::from_value(apps[0].clone())
        .unwrap_or_else(|e| panic!("the SpinApp has a field SpinKube does not know: {e}"));
    let maps = of_kind(&docs, "ConfigMap");
    assert_eq!(maps.len(), 1);
    let settings: BTreeMap<String, String> =
        serde_yaml_ng::from_value(maps[0]["data"].clone()).unwrap();
    (app, settings)
}

#[test]
fn the_spinapp_binds_every_variable_and_takes_each_secret_from_a_secret() {
    let variables = manifest_variables();
    let (app, settings) = spin_app();
    assert_eq!(app.api_version, "core.spinkube.dev/v1alpha1");
    assert_eq!(app.kind, "SpinApp");
    assert_eq!(app.metadata.name, "caseport");
    assert_eq!(app.spec.executor, "containerd-shim-spin");
    assert!(
        app.spec.replicas >= 2,
        "replicas share state: run at least two"
    );
    assert!(!app.spec.runtime_config.load_from_secret.is_empty());
    assert!(app.spec.resources.is_mapping());

    let mut bound = BTreeSet::new();
    for var in &app.spec.variables {
        assert!(
            bound.insert(var.name.clone()),
            "{} is bound twice",
            var.name
        );
        let secret = *variables
            .get(&var.name)
            .unwrap_or_else(|| panic!("{} is not a variable of spin.toml", var.name));
        assert!(
            var.value.is_none(),
            "{}: values come from a ConfigMap or a Secret",
            var.name
        );
        let from = var.value_from.as_ref().unwrap();
        if secret {
            let r = from
                .secret_key_ref
                .as_ref()
                .unwrap_or_else(|| panic!("{} is secret: it must come from a Secret", var.name));
            assert_eq!(
                (r.name.as_str(), r.key.as_str()),
                ("caseport-secrets", var.name.as_str())
            );
            assert!(from.config_map_key_ref.is_none());
            assert!(
                !settings.contains_key(&var.name),
                "{} is secret but in the ConfigMap",
                var.name
            );
        } else {
            let r = from.config_map_key_ref.as_ref().unwrap_or_else(|| {
                panic!("{} is not secret: it comes from the ConfigMap", var.name)
            });
            assert_eq!(
                (r.name.as_str(), r.key.as_str()),
                ("caseport-settings", var.name.as_str())
            );
            assert!(!r.optional);
            assert!(from.secret_key_ref.is_none());
            assert!(
                settings.contains_key(&var.name),
                "{} is missing from the ConfigMap",
                var.name
            );
        }
    }
    let declared: BTreeSet<String> = variables.keys().cloned().collect();
    assert_eq!(bound, declared, "every variable of spin.toml is bound");
    let in_map: BTreeSet<String> = settings.keys().cloned().collect();
    assert!(in_map.is_subset(&declared), "{in_map:?}");

    // A production deployment: nothing that belongs to a local run.
    assert_eq!(settings["demo_data"], "false");
    assert!(
        !["", "dev-mailbox"].contains(&settings["mail_provider"].as_str()),
        "{}",
        settings["mail_provider"]
    );
    assert!(settings["portal_url"].starts_with("https://"));
}

#[test]
fn the_image_and_probes_match_the_application() {
    let manifest: toml::Table = read("spin.toml").parse().unwrap();
    let version = manifest["application"]["version"].as_str().unwrap();
    let (app, _) = spin_app();
    assert!(
        app.spec.image.ends_with(&format!("/caseport:{version}")),
        "{} is not version {version}",
        app.spec.image
    );
    let status_route = manifest["application"]["tool"]["caseport"]["status_route"]
        .as_str()
        .unwrap();
    assert_eq!(app.spec.checks.readiness.http_get.path, status_route);
    assert_eq!(app.spec.checks.liveness.http_get.path, "/");
    // The README tells how to push that image.
    let readme = read("README.md");
    assert!(
        readme.contains(&format!(
            "spin registry push ghcr.io/your-org/caseport:{version}"
        )),
        "README: the push command for {version}"
    );
}

#[test]
fn the_runtime_config_addresses_the_deployed_services_and_holds_no_secret() {
    let config: toml::Table = read("deploy/runtime-config.toml").parse().unwrap();
    let state = documents("deploy/spinkube/state.yaml");
    let services: BTreeSet<String> = of_kind(&state, "Service")
        .iter()
        .flat_map(|s| {
            let name = s["metadata"]["name"].as_str().unwrap().to_string();
            s["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(move |p| format!("{name}:{}", p["port"].as_u64().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    let kv = &config["key_value_store"]["default"];
    assert_eq!(kv["type"].as_str(), Some("redis"));
    let redis = kv["url"].as_str().unwrap().trim_start_matches("redis://");
    assert!(
        services.contains(redis),
        "{redis} is not among {services:?}"
    );
    let db = &config["sqlite_database"]["default"];
    assert_eq!(db["type"].as_str(), Some("libsql"));
    let libsql = db["url"].as_str().unwrap().trim_start_matches("http://");
    assert!(
        services.contains(libsql),
        "{libsql} is not among {services:?}"
    );
    assert_eq!(
        db["token"].as_str(),
        Some(""),
        "a token goes in the Secret only"
    );

    // Only Caseport's pods may reach the state: the policy admits the SpinApp's label.
    let (app, _) = spin_app();
    let policies = of_kind(&state, "NetworkPolicy");
    assert_eq!(policies.len(), 1);
    let admitted = &policies[0]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"];
    for (k, v) in &app.spec.pod_labels {
        assert_eq!(admitted[k.as_str()].as_str(), Some(v.as_str()));
    }

    // No file of deploy/ carries a Secret's values.
    for path in [
        "deploy/spinkube/caseport.yaml",
        "deploy/spinkube/state.yaml",
    ] {
        assert!(of_kind(&documents(path), "Secret").is_empty(), "{path}");
    }
}

#[test]
fn caseport_up_accepts_the_deploy_runtime_config() {
    // The servers it names are not here; it starts (it connects on first use) and says
    // where its state lives.
    let app = Up::caseport()
        .runtime_config(&root().join("deploy/runtime-config.toml"))
        .start()
        .unwrap();
    for line in [
        "Storing default key-value data to Redis at caseport-redis:6379.",
        "Storing default SQLite data to libSQL at http://caseport-libsql:8080.",
    ] {
        assert!(app.wait_for_output(line), "{line}");
    }
}
