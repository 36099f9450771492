//! Client records: validated fields, the email check a case manager does by eye ("verify the
//! client email address, correction might be needed"), ages from dates of birth, and who may
//! see which client.

use jiff::civil::Date;
use serde::Serialize;

use crate::api_error::{ApiError, Code};
use crate::domain::{Account, AccountKind, Email, HIDDEN_IN_NAME, Role, has_hidden_characters};
use crate::ports::{Db, StorageError};

/// The most characters a name may have.
pub const NAME_MAX: usize = 100;

/// A first, middle or last name: trimmed, 1 to 100 characters (middle may be empty), no
/// control characters.
pub fn parse_name(field: &str, raw: &str, required: bool) -> Result<String, ApiError> {
    let s = raw.trim();
    if s.is_empty() && required {
        return Err(ApiError::invalid(
            field,
            format!("Enter the {}.", field.replace('_', " ")),
        ));
    }
    if s.chars().count() > NAME_MAX {
        return Err(ApiError::invalid(
            field,
            format!("Use at most {NAME_MAX} characters."),
        ));
    }
    // Spaces around a name are trimmed; a control character (a tab, a line break) anywhere,
    // even at an end, is refused, as the API contract says.
    if has_hidden_characters(s) || raw.chars().any(char::is_control) {
        return Err(ApiError::invalid(field, HIDDEN_IN_NAME));
    }
    Ok(s.to_string())
}

/// A date of birth: `YYYY-MM-DD`, not in the future, not before 1900.
pub fn parse_dob(raw: &str, today: Date) -> Result<Date, ApiError> {
    let invalid = |m: &str| ApiError::invalid("dob", m.to_string());
    let bytes = raw.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(invalid(
            "Enter the date of birth as YYYY-MM-DD, for example 2013-02-19.",
        ));
    }
    let date: Date = raw
        .parse()
        .map_err(|_| invalid("This date does not exist; check the month and day."))?;
    if date > today {
        return Err(invalid("The date of birth cannot be in the future."));
    }
    if date.year() < 1900 {
        return Err(invalid("Enter a date of birth after 1900."));
    }
    Ok(date)
}

/// A phone number: digits with spaces, dashes, dots, parentheses and a leading +; 7 to 15
/// digits.
pub fn parse_phone(raw: &str) -> Result<Option<String>, ApiError> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let allowed = s.chars().enumerate().all(|(i, c)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')') || (c == '+' && i == 0)
    });
    if !allowed || !(7..=15).contains(&digits) {
        return Err(ApiError::invalid(
            "phone",
            "Enter a phone number of 7 to 15 digits, such as 555-555-5555.",
        ));
    }
    Ok(Some(s.to_string()))
}

/// An optional email address.
pub fn parse_optional_email(raw: &str) -> Result<Option<Email>, ApiError> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    Email::parse(raw)
        .map(Some)
        .map_err(|m| ApiError::invalid("email", m))
}

/// Age in whole years on `today`. Someone born on 29 February turns a year older on
/// 1 March in years without one.
pub fn age(dob: Date, today: Date) -> i16 {
    let before_birthday = (today.month(), today.day()) < (dob.month(), dob.day());
    today.year() - dob.year() - i16::from(before_birthday)
}

/// What the email check found.
#[derive(Debug, Serialize, PartialEq)]
pub struct EmailCheck {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The top-level domains that exist (ICANN's, from the Public Suffix List).
const TOP_LEVEL_DOMAINS: &str = include_str!("../data/tlds.txt");

/// Whether `tld` (lowercase, ASCII or `xn--`) is a top-level domain.
fn is_top_level_domain(tld: &str) -> bool {
    TOP_LEVEL_DOMAINS
        .lines()
        .any(|line| line == tld && !line.starts_with('#'))
}

/// Mail domains common among clients; a near miss of one is probably a typo.
const COMMON_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "bellsouth.net",
    "charter.net",
    "cox.net",
    "protonmail.com",
    "proton.me",
    "ymail.com",
    "rocketmail.com",
    "hotmail.co.uk",
    "yahoo.co.uk",
    "gmx.com",
    "mail.com",
    "zoho.com",
    "fastmail.com",
];

/// Checks an address the way a careful case manager would: shape, a top-level domain that
/// exists, and likely typos of common mail domains.
pub fn check_email(raw: Option<&str>) -> EmailCheck {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return EmailCheck {
            ok: false,
            suggestion: None,
            reason: Some(
                "No email address is on file; the client cannot get a temporary password by email."
                    .into(),
            ),
        };
    };
    let email = match Email::parse(raw) {
        Ok(e) => e,
        Err(m) => {
            return EmailCheck {
                ok: false,
                suggestion: None,
                reason: Some(m),
            };
        }
    };
    let (local, domain) = email.as_ref().rsplit_once('@').unwrap_or_default();
    let suggestion = closest_common_domain(domain).map(|d| format!("{local}@{d}"));
    let tld = domain.rsplit('.').next().unwrap_or(domain);
    if !is_top_level_domain(tld) {
        let mut reason =
            format!("The domain {domain} cannot receive mail: .{tld} is not a top-level domain.");
        if let Some(s) = &suggestion {
            reason.push_str(&format!(
                " Did you mean {}?",
                s.rsplit_once('@').map_or("", |(_, d)| d)
            ));
        }
        return EmailCheck {
            ok: false,
            suggestion,
            reason: Some(reason),
        };
    }
    if let Some(s) = suggestion {
        let d = s.rsplit_once('@').map_or("", |(_, d)| d).to_string();
        return EmailCheck {
            ok: false,
            reason: Some(format!(
                "{domain} looks like a typing mistake. Did you mean {d}?"
            )),
            suggestion: Some(s),
        };
    }
    EmailCheck {
        ok: true,
        suggestion: None,
        reason: None,
    }
}

/// A common domain one or two edits away (transpositions count once), if `domain` is not
/// itself common.
fn closest_common_domain(domain: &str) -> Option<&'static str> {
    if COMMON_DOMAINS.contains(&domain) {
        return None;
    }
    COMMON_DOMAINS
        .iter()
        .map(|d| (strsim::osa_distance(domain, d), *d))
        .filter(|(dist, _)| *dist > 0 && *dist <= 2)
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, d)| d)
}

/// The signed-in staff member and their role, or why not.
pub fn staff_role(db: &dyn Db, account: Account) -> Result<Role, ApiError> {
    let forbidden = || ApiError::new(Code::Forbidden, "This part of Caseport is for staff.");
    if account.kind != AccountKind::Staff {
        return Err(forbidden());
    }
    db.execute(
        "SELECT role FROM staff WHERE clinic_id = ?1 AND id = ? AND status = 'active'",
        &[account.id.into()],
    )?
    .first()
    .and_then(|r| r.text(0).and_then(Role::from_db))
    .ok_or_else(forbidden)
}

/// Whether `staff` may see client `client`: administrators see every client, case managers
/// the clients on their caseload. The answer for "not yours" and "does not exist" is the same.
pub fn may_see(db: &dyn Db, staff: Account, role: Role, client: i64) -> Result<bool, StorageError> {
    let sql = match role {
        Role::Admin => "SELECT 1 FROM clients WHERE clinic_id = ?1 AND id = ?",
        Role::CaseManager => {
            "SELECT 1 FROM caseload_assignments WHERE clinic_id = ?1 AND client_id = ? AND staff_id = ?"
        }
    };
    let params = match role {
        Role::Admin => vec![client.into()],
        Role::CaseManager => vec![client.into(), staff.id.into()],
    };
    Ok(db.execute(sql, &params)?.first().is_some())
}

/// A staff member on a client's caseload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseManager {
    pub staff_id: i64,
    pub display_name: String,
    pub role: &'static str,
    pub role_label: &'static str,
    pub date_assigned: String,
}

/// A caseload role and its words, as the help page writes them.
pub fn case_role(s: Option<&str>) -> Option<(&'static str, &'static str)> {
    match s? {
        "primary_case_manager" => Some(("primary_case_manager", "Primary Case Manager")),
        "support_primary_staff" => Some(("support_primary_staff", "Support Primary Staff")),
        _ => None,
    }
}

/// The staff on each of `clients`' caseloads: primary case managers first, then by name.
pub fn case_managers(
    db: &dyn Db,
    clients: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<CaseManager>>, StorageError> {
    let mut out: std::collections::HashMap<i64, Vec<CaseManager>> = Default::default();
    if clients.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; clients.len()].join(", ");
    let ids: Vec<crate::ports::Value> = clients.iter().map(|&id| id.into()).collect();
    let rows = db.execute(
        &format!(
            "SELECT a.client_id, s.id, s.display_name, a.role, a.date_assigned
             FROM caseload_assignments a JOIN staff s ON s.id = a.staff_id
             WHERE a.clinic_id = ?1 AND a.client_id IN ({marks})
             ORDER BY a.client_id, a.role, s.display_name COLLATE NOCASE, s.id"
        ),
        &ids,
    )?;
    for r in rows.iter() {
        let (Some(client), Some(staff_id), Some((role, role_label))) =
            (r.int(0), r.int(1), case_role(r.text(3)))
        else {
            continue;
        };
        out.entry(client).or_default().push(CaseManager {
            staff_id,
            display_name: r.string(2)?,
            role,
            role_label,
            date_assigned: r.string(4)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn age_turns_on_the_birthday() {
        assert_eq!(age(d("2013-02-19"), d("2026-02-18")), 12);
        assert_eq!(age(d("2013-02-19"), d("2026-02-19")), 13);
        assert_eq!(age(d("1985-02-12"), d("2026-11-25")), 41);
    }

    #[test]
    fn a_leap_day_birthday_turns_on_the_first_of_march_in_common_years() {
        assert_eq!(age(d("2012-02-29"), d("2025-02-28")), 12);
        assert_eq!(age(d("2012-02-29"), d("2025-03-01")), 13);
        assert_eq!(age(d("2012-02-29"), d("2028-02-29")), 16);
    }

    #[test]
    fn dates_of_birth_are_checked() {
        let today = d("2026-11-25");
        assert_eq!(parse_dob("2013-02-19", today).unwrap(), d("2013-02-19"));
        for bad in [
            "02/19/2013",
            "2013-2-19",
            "2013-02-30",
            "2027-01-01",
            "1850-01-01",
            "",
            "2013-02-19T00:00",
        ] {
            assert_eq!(
                parse_dob(bad, today).unwrap_err().field.as_deref(),
                Some("dob"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_and_phones_are_checked() {
        assert_eq!(parse_name("first_name", "  Jane ", true).unwrap(), "Jane");
        assert!(parse_name("first_name", " ", true).is_err());
        assert_eq!(parse_name("middle_name", "", false).unwrap(), "");
        assert!(parse_name("last_name", &"x".repeat(101), true).is_err());
        // A control character at an end is not trimmed away but refused.
        for raw in ["\rÉva", "Éva\n", "\tÉva"] {
            assert!(parse_name("middle_name", raw, false).is_err(), "{raw:?}");
        }
        assert_eq!(
            parse_phone("555-555-5555").unwrap().as_deref(),
            Some("555-555-5555")
        );
        assert_eq!(
            parse_phone("+1 (402) 433-5567").unwrap().as_deref(),
            Some("+1 (402) 433-5567")
        );
        assert_eq!(parse_phone("").unwrap(), None);
        for bad in ["12345", "call me", "555-555-5555 ext 4", "1+555"] {
            assert!(parse_phone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn janes_mistyped_address_is_caught_with_a_suggestion() {
        let c = check_email(Some("jdoe123@hotmail1.cmo"));
        assert!(!c.ok);
        assert_eq!(c.suggestion.as_deref(), Some("jdoe123@hotmail.com"));
        let reason = c.reason.unwrap();
        assert!(
            reason.contains(".cmo is not a top-level domain"),
            "{reason}"
        );
        assert!(reason.contains("Did you mean hotmail.com?"), "{reason}");
    }

    #[test]
    fn near_misses_of_common_domains_are_flagged() {
        for (typo, fixed) in [
            ("gmial.com", "gmail.com"),
            ("yaho.com", "yahoo.com"),
            ("hotmial.com", "hotmail.com"),
            ("outlok.com", "outlook.com"),
        ] {
            let c = check_email(Some(&format!("a.parent@{typo}")));
            assert!(!c.ok, "{typo}");
            assert_eq!(c.suggestion, Some(format!("a.parent@{fixed}")), "{typo}");
        }
    }

    #[test]
    fn good_addresses_pass() {
        for ok in [
            "aappletop@hotmail.org",
            "parent@gmail.com",
            "someone@clinic.example.org",
            "x@mail.co.uk",
        ] {
            let c = check_email(Some(ok));
            assert!(c.ok, "{ok}: {c:?}");
        }
    }

    #[test]
    fn missing_and_malformed_addresses_say_why() {
        assert!(
            check_email(None)
                .reason
                .unwrap()
                .contains("No email address")
        );
        assert!(!check_email(Some("jdoe")).ok);
    }
}
