//! The password policy, after NIST SP 800-63B-4: a minimum length (a variable, default 15),
//! no composition rules, a blocklist of common passwords, repetitive and sequential patterns
//! and the account's own name and email, and never the temporary password again.

use std::sync::OnceLock;

use crate::api_error::{ApiError, Code};

/// The longest password accepted (NIST asks for at least 64).
pub const MAX_LENGTH: usize = 256;

/// `data/common-passwords.txt`'s entries, sorted and one a line, deflated by build.rs (a third
/// of the size in every component that checks passwords); inflated by the first check an
/// instance makes.
static COMMON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/common-passwords.deflate"));

/// The blocklist's sorted lines, or `None` if they could not be inflated (then every new
/// password is refused: the check fails closed).
fn common() -> Option<&'static str> {
    static TEXT: OnceLock<Option<String>> = OnceLock::new();
    TEXT.get_or_init(|| {
        miniz_oxide::inflate::decompress_to_vec(COMMON)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    })
    .as_deref()
}

/// Whether `word` is a line of `sorted` (lines in byte order): a binary search over the text,
/// with no index built.
fn listed(sorted: &str, word: &str) -> bool {
    let bytes = sorted.as_bytes();
    let (mut lo, mut hi) = (0, bytes.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = bytes[lo..mid]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(lo, |p| lo + p + 1);
        let end = bytes[mid..hi]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(hi, |p| mid + p);
        match sorted[start..end].cmp(word) {
            std::cmp::Ordering::Equal => return true,
            std::cmp::Ordering::Less => lo = (end + 1).min(hi),
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    false
}

/// How many entries the blocklist holds.
pub fn blocklist_len() -> usize {
    common().map_or(0, |text| text.lines().count())
}

/// Why a new password was refused; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness(pub String);

/// Words of an account's own, which its password may not contain: the words of its names,
/// and its addresses whole and before the `@`. Lowercase.
#[derive(Debug, Clone, Default)]
pub struct OwnWords(Vec<String>);

impl OwnWords {
    /// From names (split into words) and addresses.
    pub fn of(names: &[&str], addresses: &[&str]) -> Self {
        let mut words: Vec<String> = names
            .iter()
            .flat_map(|n| n.split_whitespace())
            .map(str::to_lowercase)
            .collect();
        for address in addresses.iter().map(|a| a.trim().to_lowercase()) {
            if let Some((local, _)) = address.split_once('@') {
                words.push(local.to_string());
            }
            if !address.is_empty() {
                words.push(address);
            }
        }
        Self(words)
    }

    /// Whether `word` is one of them.
    pub fn contains(&self, word: &str) -> bool {
        self.0.iter().any(|w| w == word)
    }
}

/// What the policy knows about the account.
pub struct Context<'a> {
    pub own_words: &'a OwnWords,
    /// Whether the new password matches the temporary one it replaces.
    pub equals_temporary: bool,
}

impl<'a> Context<'a> {
    /// A password someone chose (not in place of a temporary one).
    pub fn chosen(own_words: &'a OwnWords) -> Self {
        Self {
            own_words,
            equals_temporary: false,
        }
    }
}

/// Checks a new password; a refusal is `weak_password` naming `field`, with what to do.
pub fn require(
    password: &str,
    min_length: usize,
    ctx: &Context<'_>,
    field: &str,
) -> Result<(), ApiError> {
    check(password, min_length, ctx).map_err(|w| ApiError::new(Code::WeakPassword, w.0).at(field))
}

/// Checks a new password.
pub fn check(password: &str, min_length: usize, ctx: &Context<'_>) -> Result<(), Weakness> {
    let length = password.chars().count();
    if length < min_length {
        return Err(Weakness(format!(
            "Use at least {min_length} characters; this one has {length}. A few unrelated words make a long password easy to remember."
        )));
    }
    if length > MAX_LENGTH {
        return Err(Weakness(format!("Use at most {MAX_LENGTH} characters.")));
    }
    if password.chars().any(char::is_control) {
        return Err(Weakness(
            "A password cannot contain control characters.".into(),
        ));
    }
    if ctx.equals_temporary {
        return Err(Weakness(
            "Choose a new password: it cannot be the temporary password you were sent.".into(),
        ));
    }
    let lower = password.to_lowercase();
    let Some(common) = common() else {
        return Err(Weakness(
            "Caseport could not read its list of common passwords, so it cannot accept a new password now. Tell your operator.".into(),
        ));
    };
    if listed(common, &lower) || listed(common, strip_decoration(&lower)) {
        return Err(Weakness(
            "This password is on a list of commonly used passwords; choose another.".into(),
        ));
    }
    if is_repetitive(&lower) || is_sequential(&lower) {
        return Err(Weakness(
            "This password is a repeated or sequential pattern; choose another.".into(),
        ));
    }
    for word in &ctx.own_words.0 {
        if word.chars().count() >= 3 && lower.contains(word.as_str()) {
            return Err(Weakness(
                "Do not use your name or email address in your password.".into(),
            ));
        }
    }
    Ok(())
}

/// A common password with digits or symbols around it is still a common password.
fn strip_decoration(s: &str) -> &str {
    s.trim_matches(|c: char| !c.is_alphabetic())
}

/// The whole password is one short unit repeated (`aaaa…`, `abcabc…`, `passwordpassword`).
fn is_repetitive(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    (1..=n / 2)
        .any(|unit| n.is_multiple_of(unit) && chars.chunks(unit).all(|c| c == &chars[..unit]))
}

/// The whole password steps by one (`123456789012345`, `abcdefghijklmno`, `987654…`).
fn is_sequential(s: &str) -> bool {
    let chars: Vec<u32> = s.chars().map(u32::from).collect();
    if chars.len() < 4 {
        return false;
    }
    let step = |d: i64| {
        chars.windows(2).all(|w| {
            let diff = i64::from(w[1]) - i64::from(w[0]);
            diff == d
                || (w[0] == u32::from('9') && w[1] == u32::from('0') && d == 1)
                || (w[0] == u32::from('0') && w[1] == u32::from('9') && d == -1)
        })
    };
    step(1) || step(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        static WORDS: OnceLock<OwnWords> = OnceLock::new();
        Context {
            own_words: WORDS.get_or_init(|| OwnWords::of(&["Jane Doe"], &["jdoe123@hotmail.com"])),
            equals_temporary: false,
        }
    }

    #[test]
    fn a_long_unrelated_passphrase_is_accepted() {
        assert_eq!(check("violet tractor sings quietly", 15, &ctx()), Ok(()));
        assert_eq!(check("ünïcødé pässwörd 🌻 ok", 15, &ctx()), Ok(()));
    }

    #[test]
    fn too_short_passwords_are_refused_with_the_count() {
        let err = check("shortpass", 15, &ctx()).unwrap_err();
        assert!(
            err.0.contains("at least 15 characters; this one has 9"),
            "{}",
            err.0
        );
        assert!(check("shortpass", 8, &ctx()).is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert!(check("ééééééé", 8, &ctx()).is_err());
    }

    #[test]
    fn every_entry_of_the_list_is_found_and_nothing_else() {
        let text = common().unwrap_or_default();
        let source = include_str!("../data/common-passwords.txt");
        let entries: Vec<&str> = source
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        for entry in &entries {
            assert!(listed(text, entry), "{entry}");
            // Strings next to an entry in the order are not entries unless listed themselves.
            for near in [format!("{entry}\u{1}"), format!("{entry}~~~~")] {
                assert_eq!(
                    listed(text, &near),
                    entries.contains(&near.as_str()),
                    "{near}"
                );
            }
        }
        assert!(!listed(text, ""));
        assert!(!listed(text, "violet tractor sings quietly"));
        assert!(!listed("", "password"));
        assert!(listed("a\nb\nc", "a") && listed("a\nb\nc", "c") && !listed("a\nb\nc", "bb"));
    }

    #[test]
    fn blocklisted_passwords_are_refused() {
        assert!(blocklist_len() >= 10_000);
        let err = check("password", 8, &ctx()).unwrap_err();
        assert!(err.0.contains("commonly used"));
        assert!(
            check("qwertyuiop12345!", 15, &ctx())
                .unwrap_err()
                .0
                .contains("commonly used")
        );
        assert!(
            check("!!Password123456", 15, &ctx())
                .unwrap_err()
                .0
                .contains("commonly used")
        );
    }

    #[test]
    fn repeated_and_sequential_patterns_are_refused() {
        for p in [
            "aaaaaaaaaaaaaaa",
            "abcabcabcabcabc",
            "123456789012345",
            "abcdefghijklmnop",
            "987654321098765",
        ] {
            assert!(
                check(p, 15, &ctx()).unwrap_err().0.contains("pattern"),
                "{p}"
            );
        }
    }

    #[test]
    fn the_accounts_own_name_and_email_are_refused() {
        for p in [
            "my name is jane and i sign",
            "jdoe123 likes long walks",
            "DOEfamily-portal-2024",
        ] {
            assert!(
                check(p, 15, &ctx())
                    .unwrap_err()
                    .0
                    .contains("name or email"),
                "{p}"
            );
        }
    }

    #[test]
    fn the_temporary_password_cannot_be_kept() {
        let none = OwnWords::default();
        let c = Context {
            own_words: &none,
            equals_temporary: true,
        };
        assert!(
            check("ABC234-DEF567-GHJ89K", 15, &c)
                .unwrap_err()
                .0
                .contains("temporary")
        );
    }

    #[test]
    fn a_refusal_names_the_field() {
        let e = require("short", 15, &ctx(), "new_password").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::WeakPassword, Some("new_password"))
        );
    }

    #[test]
    fn overlong_and_control_characters_are_refused() {
        assert!(check(&"x".repeat(257), 15, &ctx()).is_err());
        assert!(check("line one\nline two here", 15, &ctx()).is_err());
    }
}
