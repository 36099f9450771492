//! Reading `spin.toml` (manifest version 2): the subset Caseport's runtime supports.
//!
//! Anything Spin would accept but this runtime cannot honour is refused with one line naming
//! the file, the field and what to do, rather than silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::router::Route;

/// The parsed application: what `caseport up` serves.
#[derive(Debug)]
pub struct Manifest {
    /// The file it was read from.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub variables: BTreeMap<String, VariableDecl>,
    pub triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, ComponentDecl>,
    /// `[application.tool.caseport] status_route`: a route `caseport up` asks at start for
    /// the deployment's status, and whose warnings it prints.
    pub status_route: Option<String>,
    /// `[application.tool.caseport] own_url_variable`: the variable holding the address people
    /// reach the application at (for links in emails); unless it is given a value, `caseport
    /// up` sets it to the address it listens on.
    pub own_url_variable: Option<String>,
}

/// `[application.tool.caseport]`: this runtime's own settings. Spin ignores tool tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseportTool {
    #[serde(default)]
    status_route: Option<String>,
    #[serde(default)]
    own_url_variable: Option<String>,
}

/// An application variable from `[variables]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    /// Accepted as Spin does; this runtime never prints any variable's value.
    #[serde(default)]
    #[allow(dead_code)]
    pub secret: bool,
    #[serde(default)]
    #[allow(dead_code)]
    pub description: Option<String>,
}

/// One `[[trigger.http]]`.
#[derive(Debug)]
pub struct HttpTrigger {
    pub route: Option<Route>,
    pub component: String,
}

/// One `[component.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<BuildDecl>,
    /// Settings for tools and plugins; Spin ignores them, and so does this runtime.
    #[serde(default)]
    #[allow(dead_code)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// `[component.NAME.build]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildDecl {
    pub command: String,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    trigger: Option<toml::Table>,
    /// Settings for tools and plugins; Spin ignores them. `caseport` is this runtime's.
    #[serde(default)]
    tool: BTreeMap<String, toml::Table>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: RawRoute,
    component: toml::Value,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    executor: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

impl Manifest {
    /// Finds and reads the manifest: `from` is a `spin.toml` file or a directory holding one.
    pub fn load(from: &Path) -> Result<Self> {
        let path = if from.is_dir() {
            from.join("spin.toml")
        } else {
            from.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}: pass the application's directory or manifest with --from",
                path.display()
            )
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &path, dir)
    }

    /// Parses manifest text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, dir: PathBuf) -> Result<Self> {
        let file = path.display();
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].lines().count().max(1);
                    format!(" (line {line})")
                })
                .unwrap_or_default();
            anyhow::anyhow!("{file}{at}: {msg}; fix the manifest (Spin manifest version 2)")
        })?;

        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!(
                "{file}: spin_manifest_version must be 2 (found {:?}); this runtime reads manifest version 2 only",
                raw.spin_manifest_version
            );
        }
        if let Some(t) = &raw.application.trigger
            && let Some(base) = t.get("http").and_then(|h| h.get("base"))
            && base.as_str() != Some("/")
        {
            bail!(
                "{file}: application.trigger.http.base = {base:?} is not supported; remove it (routes are served from /)"
            );
        }
        let tool = match raw.application.tool.get("caseport") {
            None => CaseportTool::default(),
            Some(table) => CaseportTool::deserialize(table.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "{file}: application.tool.caseport: {}; the settings are status_route and own_url_variable",
                    e.message().trim()
                )
            })?,
        };
        let status_route = match tool.status_route {
            Some(r) if !r.starts_with('/') => bail!(
                "{file}: application.tool.caseport.status_route = {r:?} must be a path starting with /"
            ),
            r => r,
        };
        if let Some(name) = &tool.own_url_variable
            && !raw.variables.contains_key(name)
        {
            bail!(
                "{file}: application.tool.caseport.own_url_variable = {name:?} names no variable; declare it under [variables]"
            );
        }
        let own_url_variable = tool.own_url_variable;
        let _ = (&raw.application.description, &raw.application.authors);

        for (name, decl) in &raw.variables {
            check_variable_name(name).with_context(|| format!("{file}: variables.{name}"))?;
            // As Spin: exactly one of the two.
            if decl.required == decl.default.is_some() {
                bail!(
                    "{file}: variables.{name}: must be `required` OR have a `default`{}",
                    if decl.required {
                        " (not both); remove one"
                    } else {
                        "; add default = \"…\" or required = true"
                    }
                );
            }
        }

        let mut triggers = Vec::new();
        for (i, t) in raw.trigger.http.into_iter().enumerate() {
            let field = format!("trigger.http[{i}]");
            let component = match t.component {
                toml::Value::String(s) => s,
                _ => bail!(
                    "{file}: {field}.component: inline components are not supported; declare [component.NAME] and set component = \"NAME\""
                ),
            };
            if t.executor.is_some() {
                bail!(
                    "{file}: {field}.executor is not supported; remove it (components export wasi:http/incoming-handler)"
                );
            }
            let _ = t.id;
            if !raw.component.contains_key(&component) {
                bail!(
                    "{file}: {field}.component = \"{component}\" names no [component.{component}]; add it or fix the name"
                );
            }
            let route = match t.route {
                RawRoute::Path(p) => {
                    Some(Route::parse(&p).with_context(|| format!("{file}: {field}.route"))?)
                }
                RawRoute::Private { private: true } => None,
                RawRoute::Private { private: false } => bail!(
                    "{file}: {field}.route = {{ private = false }} is not valid; use a path or {{ private = true }}"
                ),
            };
            if let Some(r) = &route
                && let Some(other) = triggers
                    .iter()
                    .filter_map(|t: &HttpTrigger| t.route.as_ref())
                    .find(|o| o.text() == r.text())
            {
                bail!(
                    "{file}: {field}.route \"{}\" is declared twice; each route may appear once",
                    other.text()
                );
            }
            triggers.push(HttpTrigger { route, component });
        }
        if triggers.is_empty() {
            bail!("{file}: no [[trigger.http]]; add at least one route");
        }

        for (name, c) in &raw.component {
            let at = format!("{file}: component.{name}");
            check_component_id(name).with_context(|| at.clone())?;
            if c.source.trim().is_empty() {
                bail!("{at}.source is empty; set it to the component's .wasm file");
            }
            for var in c.variables.keys() {
                check_variable_name(var).with_context(|| format!("{at}.variables.{var}"))?;
            }
            let _ = (&c.description, c.build.as_ref().map(|b| &b.watch));
        }

        Ok(Self {
            path: path.to_path_buf(),
            dir,
            name: raw.application.name,
            version: raw.application.version,
            variables: raw.variables,
            triggers,
            components: raw.component,
            status_route,
            own_url_variable,
        })
    }

    /// The absolute path of a component's wasm file.
    pub fn source_path(&self, component: &ComponentDecl) -> PathBuf {
        self.dir.join(&component.source)
    }
}

/// Spin's rule for variable names: lowercase ASCII letters, digits and underscores, starting
/// with a letter.
pub fn check_variable_name(name: &str) -> Result<()> {
    check_id(name, '_', true)
        .map_err(|why| anyhow::anyhow!("invalid variable name \"{name}\": {why}"))
}

/// A component id as Spin's manifest accepts it: words of ASCII letters and digits, each
/// starting with a letter and all lowercase or all UPPERCASE, separated by `-`.
pub fn check_component_id(id: &str) -> Result<()> {
    check_id(id, '-', false).map_err(|why| anyhow::anyhow!("invalid component id \"{id}\": {why}"))
}

/// Spin's identifier rules (its `Id` type), with its messages: `delimiter`-separated
/// non-empty words of ASCII letters and digits, each starting with a letter and all one case
/// (all lowercase when `lower`).
fn check_id(id: &str, delimiter: char, lower: bool) -> Result<(), String> {
    let other = if delimiter == '-' { '_' } else { '-' };
    if id.is_empty() {
        return Err("empty".into());
    }
    if id.contains(other) {
        return Err(format!(
            "words must be separated with '{delimiter}', not '{other}'"
        ));
    }
    for word in id.split(delimiter) {
        let Some(first) = word.chars().next() else {
            return Err(format!("'{delimiter}'-separated words must not be empty"));
        };
        if !first.is_ascii_alphabetic() {
            return Err(format!(
                "'{delimiter}'-separated words must start with an ASCII letter; got '{first}'"
            ));
        }
        if let Some(bad) = word.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(format!(
                "'{delimiter}'-separated words may only contain alphanumeric ASCII; got '{bad}'"
            ));
        }
        let upper = word.chars().any(|c| c.is_ascii_uppercase());
        let lowercase = word.chars().any(|c| c.is_ascii_lowercase());
        if upper && lowercase {
            return Err(format!(
                "'{delimiter}'-separated words must be all lowercase or all UPPERCASE; got \"{word}\""
            ));
        }
        if lower && upper {
            return Err(format!(
                "Lower-case identifiers must be all lowercase; got \"{id}\""
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("spin.toml"), PathBuf::from("."))
    }

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "t"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
"#;

    #[test]
    fn a_minimal_manifest_is_read() -> Result<()> {
        let m = parse(MINIMAL)?;
        assert_eq!(m.name, "t");
        assert_eq!(m.triggers.len(), 1);
        assert_eq!(m.triggers[0].component, "web");
        Ok(())
    }

    #[test]
    fn manifest_version_1_is_refused() {
        let err = parse(&MINIMAL.replace("= 2", "= 1"))
            .err()
            .map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("spin_manifest_version must be 2")),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_component_fields_are_named() {
        let text = MINIMAL.replace("source = \"web.wasm\"", "source = \"web.wasm\"\nfiles = []");
        let err = parse(&text)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("files"), "{err}");
        assert!(err.starts_with("spin.toml (line"), "{err}");
    }

    #[test]
    fn a_trigger_naming_a_missing_component_is_refused() {
        let text = MINIMAL.replace("component = \"web\"", "component = \"nope\"");
        let err = parse(&text)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("trigger.http[0].component"), "{err}");
        assert!(err.contains("[component.nope]"), "{err}");
    }

    #[test]
    fn variable_names_follow_spin_rules() {
        assert!(check_variable_name("mail_api_url").is_ok());
        assert!(check_variable_name("Mail").is_err());
        assert!(check_variable_name("1mail").is_err());
        assert!(check_variable_name("mail-url").is_err());
        assert!(check_variable_name("").is_err());
        assert!(check_variable_name("api_v2").is_ok());
        for (bad, why) in [
            ("a__b", "must not be empty"),
            ("a_", "must not be empty"),
            ("a_1", "must start with an ASCII letter; got '1'"),
            ("FOO", "Lower-case identifiers must be all lowercase"),
            ("a-b", "separated with '_', not '-'"),
        ] {
            let e = check_variable_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
        for ok in ["web", "api-v2", "WEB", "my-API"] {
            assert!(check_component_id(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("api-2", "must start with an ASCII letter"),
            ("bad_id", "separated with '-', not '_'"),
            ("Web", "all lowercase or all UPPERCASE"),
            ("a--b", "must not be empty"),
            ("web.x", "got '.'"),
        ] {
            let e = check_component_id(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn tool_tables_are_accepted_and_caseports_own_is_read() -> Result<()> {
        let text = MINIMAL.replace(
            "name = \"t\"",
            "name = \"t\"\n[application.tool.lint]\nstrict = true\n[application.tool.caseport]\nstatus_route = \"/api/status\"",
        ) + "[component.web.tool.clean]\nkeep = 1\n";
        assert_eq!(parse(&text)?.status_route.as_deref(), Some("/api/status"));
        let typo = text.replace("status_route", "status_path");
        let err = parse(&typo)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("application.tool.caseport"), "{err}");
        Ok(())
    }

    #[test]
    fn the_own_url_variable_must_be_declared() -> Result<()> {
        let with = |name: &str| {
            MINIMAL.replace(
                "name = \"t\"",
                &format!("name = \"t\"\n[application.tool.caseport]\nown_url_variable = \"{name}\"\n[variables]\nportal_url = {{ default = \"x\" }}"),
            )
        };
        assert_eq!(
            parse(&with("portal_url"))?.own_url_variable.as_deref(),
            Some("portal_url")
        );
        let err = parse(&with("portal_uri"))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            err.contains("own_url_variable = \"portal_uri\" names no variable"),
            "{err}"
        );
        Ok(())
    }
}
