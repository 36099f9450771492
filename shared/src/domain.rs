//! Domain types: each parsed once at the edge, valid from then on.

use std::fmt;

use zeroize::Zeroizing;

use crate::api_error::ApiError;

/// Whether `text` has characters that change how it displays without showing themselves, so
/// that it could pass for another: control characters, bidirectional controls (which reorder
/// what follows), and zero-width or invisible ones. The zero-width joiner and non-joiner are
/// allowed between two letters outside ASCII, where scripts such as Persian and the Indic
/// ones need them.
pub fn has_hidden_characters(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| match c {
        '\u{200C}' | '\u{200D}' => {
            let letter = |j: Option<usize>| {
                j.and_then(|j| chars.get(j))
                    .is_some_and(|c| c.is_alphabetic() && !c.is_ascii())
            };
            !(letter(i.checked_sub(1)) && letter(Some(i + 1)))
        }
        c => {
            c.is_control()
                || matches!(c,
                    '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}'
                    | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{200B}' | '\u{200E}' | '\u{200F}'
                    | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
                    | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{1D173}'..='\u{1D17A}'
                    | '\u{E0000}'..='\u{E0FFF}')
        }
    })
}

/// An email address, trimmed and lowercased. The only constructor is [`Email::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Checks the shape of an address (not whether it exists).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim().to_lowercase();
        if s.is_empty() {
            return Err("Enter an email address.".into());
        }
        if s.chars().count() > 254 {
            return Err("An email address has at most 254 characters.".into());
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err("An email address needs an @, as in name@example.com.".into());
        };
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err("The part before the @ is not valid.".into());
        }
        if has_hidden_characters(&s) {
            return Err(
                "An email address cannot contain invisible or direction-changing characters."
                    .into(),
            );
        }
        if s.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '"' | '[' | ']'
                )
        }) {
            return Err(
                "An email address cannot contain spaces or any of < > ( ) , ; : \\ \" [ ].".into(),
            );
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(
                "The part before the @ cannot start or end with a dot, or have two dots in a row."
                    .into(),
            );
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.len() > 63
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        {
            return Err("The part after the @ must be a domain such as example.com.".into());
        }
        Ok(Self(s))
    }

    /// The part before the `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password as typed: never printed, zeroised when dropped.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password; any string is accepted here, the policy judges it later.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The password itself, for hashing and checking only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A secret token (session, change or reset): never printed, zeroised when dropped.
pub struct Token(Zeroizing<String>);

impl Token {
    /// Wraps a token received from or made for a client.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The token itself, to hand to the client or hash for lookup.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Why a name with hidden characters is refused.
pub const HIDDEN_IN_NAME: &str = "A name cannot contain control, invisible or direction-changing characters: it could then look like someone else's.";

/// A person's name as staff see it: 1 to 100 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses the API's `display_name` field.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::invalid(
                "display_name",
                "Enter a name of 1 to 100 characters.",
            ));
        }
        if has_hidden_characters(name) {
            return Err(ApiError::invalid("display_name", HIDDEN_IN_NAME));
        }
        Ok(Self(name.to_string()))
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Who may sign in where: staff to the console, clients to the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    Staff,
    Portal,
}

impl Realm {
    /// Parses the API's `realm` field.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s {
            "staff" => Ok(Self::Staff),
            "portal" => Ok(Self::Portal),
            _ => Err(ApiError::invalid(
                "realm",
                "Choose the realm \"staff\" or \"portal\".",
            )),
        }
    }

    /// The kind of account that signs in to this realm.
    pub fn kind(self) -> AccountKind {
        match self {
            Self::Staff => AccountKind::Staff,
            Self::Portal => AccountKind::Client,
        }
    }
}

/// The two kinds of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    Staff,
    Client,
}

impl AccountKind {
    /// As stored in `credentials.owner_kind` and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staff => "staff",
            Self::Client => "client",
        }
    }

    /// Parses the stored form.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "staff" => Some(Self::Staff),
            "client" => Some(Self::Client),
            _ => None,
        }
    }
}

/// A staff member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    CaseManager,
    Admin,
}

impl Role {
    /// As stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaseManager => "case_manager",
            Self::Admin => "admin",
        }
    }

    /// Parses the stored form.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "case_manager" => Some(Self::CaseManager),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

/// An account: which kind and which row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub kind: AccountKind,
    pub id: i64,
}

impl Account {
    /// `staff:3` or `client:7`, as the audit log names actors and subjects.
    pub fn label(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_and_lowercased() {
        assert_eq!(
            Email::parse("  JDoe123@Hotmail.com ").unwrap().as_ref(),
            "jdoe123@hotmail.com"
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "",
            "   ",
            "jdoe",
            "@hotmail.com",
            "jdoe@",
            "jdoe@hotmail",
            "j doe@x.com",
            "jdoe@x..com",
            "jdoe@-x.com",
            "a@b@c.com",
            ".j@x.com",
            "j..d@x.com",
            "jdoe@x_y.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_overlong_address_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn names_and_addresses_that_could_pass_for_others_are_refused() {
        for hidden in [
            "Jane\u{200B}Doe",
            "Jane \u{202E}eoD",
            "\u{2066}Jane\u{2069}",
            "Ja\u{00AD}ne",
            "Jane\u{FEFF}",
            "Jane\u{200D}Doe",
            "line\nbreak",
        ] {
            assert!(has_hidden_characters(hidden), "{hidden:?}");
            assert!(DisplayName::parse(hidden).is_err(), "{hidden:?}");
        }
        for fine in [
            "Zoë Ñúñez",
            "O'Brien-Smith",
            "\u{0645}\u{06CC}\u{200C}\u{0631}\u{0648}\u{062F}",
            "李 小龍",
        ] {
            assert!(!has_hidden_characters(fine), "{fine:?}");
        }
        assert!(Email::parse("jdoe\u{200B}123@hotmail.com").is_err());
        assert!(Email::parse("jdoe\u{202E}321@hotmail.com").is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let p = Password::new("hunter2-hunter2".into());
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        let t = Token::new("abc".into());
        assert!(!format!("{t:?}").contains("abc"));
    }
}
