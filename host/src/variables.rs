//! Spin variables: `[variables]` defaults and `required`, `{{ name }}` templates in component
//! variables and `allowed_outbound_hosts`, values from `--variable` and `SPIN_VARIABLE_<NAME>`,
//! and the guest-facing `fermyon:spin/variables` interface.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, bail};

use crate::bindings::fermyon::spin::variables;
use crate::manifest::{Manifest, check_variable_name};

/// The application variables, resolved once at start-up.
#[derive(Default)]
pub struct Resolver {
    values: BTreeMap<String, String>,
    /// The variables given a value by `--variable` or the environment (not a default).
    given: std::collections::BTreeSet<String>,
}

/// Names only: values may be secrets.
impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Resolver {
    /// Resolves every application variable: `--variable` beats `SPIN_VARIABLE_*` beats default.
    /// A required variable with no value, or a `--variable` naming no declared variable, fails.
    pub fn new(
        manifest: &Manifest,
        cli: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let file = manifest.path.display();
        for (name, _) in cli {
            if !manifest.variables.contains_key(name) {
                let known: Vec<&str> = manifest.variables.keys().map(String::as_str).collect();
                bail!(
                    "--variable {name}: {file} declares no variable \"{name}\"; declared: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
            }
        }
        let mut values = BTreeMap::new();
        let mut given = std::collections::BTreeSet::new();
        for (name, decl) in &manifest.variables {
            let from_cli = cli
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            let explicit = from_cli.or_else(|| env(&env_name));
            if explicit.is_some() {
                given.insert(name.clone());
            }
            let value = explicit.or_else(|| decl.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None if decl.required => bail!(
                    "{file}: variables.{name} is required and has no value; set it with --variable {name}=VALUE or {env_name}"
                ),
                None => {}
            }
        }
        Ok(Self { values, given })
    }

    /// Sets `name` to `value` unless `--variable` or the environment gave it one: answers
    /// whether it did.
    pub fn default_to(&mut self, name: &str, value: String) -> bool {
        if self.given.contains(name) {
            return false;
        }
        self.values.insert(name.to_string(), value);
        true
    }

    /// Expands `{{ name }}` references to application variables.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("\"{template}\": `{{{{` without a closing `}}}}`"))?;
            let name = after[..end].trim();
            check_variable_name(name).with_context(|| format!("\"{template}\""))?;
            let value = self.values.get(name).with_context(|| {
                format!(
                    "\"{template}\" refers to application variable \"{name}\", which is not declared in [variables] or has no value"
                )
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Resolves a component's `variables` table into the values its guest may read.
    pub fn component_values(
        &self,
        component: &str,
        file: &str,
        templates: &BTreeMap<String, String>,
    ) -> Result<HashMap<String, String>> {
        templates
            .iter()
            .map(|(name, template)| {
                let value = self
                    .expand(template)
                    .with_context(|| format!("{file}: component.{component}.variables.{name}"))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

/// What `fermyon:spin/variables.get` answers for one component.
pub fn lookup(values: &HashMap<String, String>, name: &str) -> Result<String, variables::Error> {
    if check_variable_name(name).is_err() {
        return Err(variables::Error::InvalidName(format!(
            "invalid variable name \"{name}\""
        )));
    }
    values
        .get(name)
        .cloned()
        .ok_or_else(|| variables::Error::Undefined(format!("no variable for \"{name}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn manifest(vars: &str) -> Manifest {
        let text = format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n[variables]\n{vars}\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n"
        );
        Manifest::parse(&text, Path::new("spin.toml"), PathBuf::from(".")).unwrap()
    }

    #[test]
    fn cli_beats_environment_beats_default() {
        let m =
            manifest("a = { default = \"d\" }\nb = { default = \"d\" }\nc = { default = \"d\" }");
        let env =
            |n: &str| (n == "SPIN_VARIABLE_B" || n == "SPIN_VARIABLE_C").then(|| "env".into());
        let r = Resolver::new(&m, &[("c".into(), "cli".into())], env).unwrap();
        assert_eq!(r.expand("{{a}}-{{ b }}-{{c}}").unwrap(), "d-env-cli");
    }

    #[test]
    fn the_own_address_replaces_only_a_default() {
        let m =
            manifest("a = { default = \"d\" }\nb = { default = \"d\" }\nc = { default = \"d\" }");
        let env = |n: &str| (n == "SPIN_VARIABLE_B").then(|| "env".into());
        let mut r = Resolver::new(&m, &[("c".into(), "cli".into())], env).unwrap();
        assert!(r.default_to("a", "http://127.0.0.1:4321".into()));
        assert!(!r.default_to("b", "x".into()));
        assert!(!r.default_to("c", "x".into()));
        assert_eq!(
            r.expand("{{a}} {{b}} {{c}}").unwrap(),
            "http://127.0.0.1:4321 env cli"
        );
    }

    #[test]
    fn a_missing_required_variable_names_the_fix() {
        let m = manifest("setup_token = { required = true, secret = true }");
        let err = Resolver::new(&m, &[], |_| None).unwrap_err().to_string();
        assert!(err.contains("variables.setup_token is required"), "{err}");
        assert!(err.contains("SPIN_VARIABLE_SETUP_TOKEN"), "{err}");
    }

    #[test]
    fn an_unknown_cli_variable_is_refused() {
        let m = manifest("a = { default = \"d\" }");
        let err = Resolver::new(&m, &[("nope".into(), "x".into())], |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("declares no variable \"nope\""), "{err}");
    }

    #[test]
    fn templates_must_name_declared_variables() {
        let m = manifest("a = { default = \"d\" }");
        let r = Resolver::new(&m, &[], |_| None).unwrap();
        assert!(r.expand("{{ missing }}").is_err());
        assert!(r.expand("{{ a").is_err());
        assert_eq!(
            r.expand("https://{{a}}.example").unwrap(),
            "https://d.example"
        );
    }

    #[test]
    fn guest_lookups_distinguish_invalid_and_undefined() {
        let values = HashMap::from([("ok".to_string(), "v".to_string())]);
        assert_eq!(lookup(&values, "ok").unwrap(), "v");
        assert!(matches!(
            lookup(&values, "Bad"),
            Err(variables::Error::InvalidName(_))
        ));
        assert!(matches!(
            lookup(&values, "missing"),
            Err(variables::Error::Undefined(_))
        ));
    }
}
