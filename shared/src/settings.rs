//! The operator's settings, read from Spin variables and checked once per request.

use crate::domain::Password;
use crate::zones::Zone;

/// Every tunable of the rules, with its default.
#[derive(Debug)]
pub struct Settings {
    /// `password_min_length` (default 15, at least 8).
    pub password_min_length: usize,
    /// `temp_password_ttl_hours` (default 72).
    pub temp_password_ttl_hours: i64,
    /// `session_idle_minutes` (default 30).
    pub session_idle_minutes: i64,
    /// `session_absolute_hours` (default 12).
    pub session_absolute_hours: i64,
    /// `demo_data = "true"` loads the demo caseload into an empty database.
    pub demo_data: bool,
    /// `setup_token`: the secret that allows creating the first administrator; empty
    /// disables setup.
    pub setup_token: Option<Password>,
    /// `clinic_timezone` (IANA name, default UTC): "today" for ages and assignment dates,
    /// and the times emails give. Its rules are read when first used ([`Zone::rules`]).
    pub clinic_timezone: Zone,
    /// `mail_timeout_seconds` (default 10): how long one attempt to hand an email to the
    /// provider may wait for its answer.
    pub mail_timeout_seconds: i64,
    /// `trusted_proxies`: the proxies (addresses or CIDR ranges, comma-separated) whose
    /// `X-Forwarded-For` names the client; empty trusts none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `operator_host`: a host name that reaches the operators' clinic before (or besides)
    /// any mapped to it; empty for none.
    pub operator_host: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            password_min_length: 15,
            temp_password_ttl_hours: 72,
            session_idle_minutes: 30,
            session_absolute_hours: 12,
            demo_data: false,
            setup_token: None,
            clinic_timezone: Zone::default(),
            mail_timeout_seconds: 10,
            trusted_proxies: Vec::new(),
            operator_host: None,
        }
    }
}

/// A Spin variable whose value cannot be used: which one, and what is wrong with it, for the
/// operator's log (never a secret's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub variable: &'static str,
    pub problem: String,
}

impl SettingError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "variable {} {}", self.variable, self.problem)
    }
}

fn number(
    name: &'static str,
    raw: Option<String>,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, SettingError> {
    match raw.as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(SettingError::new(
                name,
                format!("= {s:?} must be a whole number from {min} to {max}"),
            )),
        },
    }
}

impl Settings {
    /// Reads the settings through `get` (a Spin variable lookup); a malformed value is an
    /// error naming the variable, never silently replaced.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        let d = Self::default();
        Ok(Self {
            password_min_length: number(
                "password_min_length",
                get("password_min_length"),
                d.password_min_length as i64,
                8,
                64,
            )? as usize,
            temp_password_ttl_hours: number(
                "temp_password_ttl_hours",
                get("temp_password_ttl_hours"),
                d.temp_password_ttl_hours,
                1,
                24 * 30,
            )?,
            session_idle_minutes: number(
                "session_idle_minutes",
                get("session_idle_minutes"),
                d.session_idle_minutes,
                1,
                24 * 60,
            )?,
            session_absolute_hours: number(
                "session_absolute_hours",
                get("session_absolute_hours"),
                d.session_absolute_hours,
                1,
                24 * 30,
            )?,
            mail_timeout_seconds: number(
                "mail_timeout_seconds",
                get("mail_timeout_seconds"),
                d.mail_timeout_seconds,
                1,
                60,
            )?,
            trusted_proxies: get("trusted_proxies")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            SettingError::new(
                                "trusted_proxies",
                                format!("has {p:?}, which is not an address or a range such as 10.0.0.0/8"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
            demo_data: get("demo_data").is_some_and(|v| v.trim() == "true"),
            operator_host: get("operator_host")
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
            setup_token: get("setup_token")
                .filter(|t| !t.trim().is_empty())
                .map(Password::new),
            clinic_timezone: match get("clinic_timezone").map(|t| t.trim().to_string()) {
                None => Zone::default(),
                Some(t) if t.is_empty() => Zone::default(),
                Some(t) => Zone::named(&t).ok_or_else(|| {
                    SettingError::new(
                        "clinic_timezone",
                        format!("= {t:?} is not a time zone name such as America/Chicago"),
                    )
                })?,
            },
        })
    }

    /// Session lifetimes in seconds.
    pub fn session_limits(&self) -> crate::tokens::SessionLimits {
        crate::tokens::SessionLimits {
            idle: self.session_idle_minutes * 60,
            absolute: self.session_absolute_hours * 3600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let s = Settings::from_variables(|_| None).unwrap();
        assert_eq!(
            (
                s.password_min_length,
                s.temp_password_ttl_hours,
                s.session_idle_minutes,
                s.session_absolute_hours
            ),
            (15, 72, 30, 12)
        );
        assert!(!s.demo_data && s.setup_token.is_none());
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let err = Settings::from_variables(|n| (n == "password_min_length").then(|| "six".into()))
            .unwrap_err();
        assert_eq!(err.variable, "password_min_length");
        assert!(err.to_string().contains("password_min_length"), "{err}");
        assert!(
            Settings::from_variables(|n| (n == "password_min_length").then(|| "4".into())).is_err()
        );
    }
}
