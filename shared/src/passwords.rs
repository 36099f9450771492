//! Password hashing (argon2id, OWASP parameters, PHC strings, upgraded on sign-in) and
//! temporary passwords from the OS random source.

use argon2::password_hash::SaltString;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};

use crate::domain::Password;
use crate::ports::{StorageError, random_bytes};

/// OWASP's argon2id recommendation: 19 MiB, two passes, one lane.
pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

/// A hash of a random password nobody knows, with the current parameters: checked when the
/// account does not exist, so an unknown user takes as long as a wrong password.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$GsNzPMVyQ0vK3FLpk1FIaA$H+FSoC2/TaSMCWqMfNc+PhUFxpNUXfNOVDGqxP7KW1U";

fn hasher() -> Result<Argon2<'static>, StorageError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .map_err(|e| StorageError::new(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// A PHC string for `password` with a fresh random salt.
pub fn hash(password: &str) -> Result<String, StorageError> {
    let salt_bytes = random_bytes::<16>()?;
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| StorageError::new(format!("salt: {e}")))?;
    Ok(hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| StorageError::new(format!("argon2: {e}")))?
        .to_string())
}

/// What checking a password found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Right; `rehash` when the stored hash uses other parameters than today's.
    Right {
        rehash: bool,
    },
    Wrong,
}

/// Checks `password` against a stored PHC string. A malformed stored hash never matches.
pub fn verify(phc: &str, password: &Password) -> Result<Check, StorageError> {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Ok(Check::Wrong);
    };
    if hasher()?
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_err()
    {
        return Ok(Check::Wrong);
    }
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == MEMORY_KIB && p.t_cost() == ITERATIONS && p.p_cost() == LANES
        });
    Ok(Check::Right { rehash: !current })
}

/// Spends the time of a real check, for accounts that do not exist.
pub fn verify_nobody(password: &Password) -> Result<(), StorageError> {
    verify(DUMMY_PHC, password).map(drop)
}

/// Letters and digits that cannot be mistaken for one another (no 0/O, 1/I/L).
const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Characters of a temporary password: 18 × log2(31) ≈ 89 bits.
const TEMP_LENGTH: usize = 18;

/// A new temporary password, shown as three groups of six (`ABC234-DEF567-GHJ89K`).
pub fn temporary() -> Result<Password, StorageError> {
    let mut out = String::with_capacity(TEMP_LENGTH + 2);
    let mut taken = 0;
    while taken < TEMP_LENGTH {
        for b in random_bytes::<32>()? {
            // Rejection sampling keeps every symbol equally likely.
            if usize::from(b) >= 248 || taken == TEMP_LENGTH {
                continue;
            }
            if taken > 0 && taken.is_multiple_of(6) {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            taken += 1;
        }
    }
    Ok(Password::new(out))
}

/// A new temporary password and its hash, taken of its canonical form (so that it matches
/// however it is typed).
pub fn new_temporary() -> Result<(Password, String), StorageError> {
    let temporary = temporary()?;
    let phc = hash(&temporary_canonical(temporary.expose()))?;
    Ok((temporary, phc))
}

/// The form a temporary password is hashed and checked in: its letters and digits,
/// uppercased, so a typed `abc234 def567 ghj89k` still matches.
pub fn temporary_canonical(typed: &str) -> String {
    typed
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_password() {
        let phc = hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            verify(&phc, &Password::new("correct horse battery staple".into())).unwrap(),
            Check::Right { rehash: false }
        );
        assert_eq!(
            verify(&phc, &Password::new("correct horse battery stapl".into())).unwrap(),
            Check::Wrong
        );
    }

    #[test]
    fn old_parameters_ask_for_a_rehash() {
        let params = Params::new(4096, 1, 1, None).unwrap();
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let phc = weak
            .hash_password(b"an old password here", &salt)
            .unwrap()
            .to_string();
        assert_eq!(
            verify(&phc, &Password::new("an old password here".into())).unwrap(),
            Check::Right { rehash: true }
        );
    }

    #[test]
    fn the_dummy_hash_uses_todays_parameters() {
        let parsed = PasswordHash::new(DUMMY_PHC).unwrap();
        let p = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (p.m_cost(), p.t_cost(), p.p_cost()),
            (MEMORY_KIB, ITERATIONS, LANES)
        );
        assert_eq!(
            verify(DUMMY_PHC, &Password::new("guess".into())).unwrap(),
            Check::Wrong
        );
    }

    #[test]
    fn a_malformed_stored_hash_never_matches() {
        assert_eq!(
            verify("not a phc", &Password::new("x".into())).unwrap(),
            Check::Wrong
        );
    }

    #[test]
    fn temporary_passwords_are_long_unambiguous_and_different() {
        let a = temporary().unwrap();
        let b = temporary().unwrap();
        assert_ne!(a.expose(), b.expose());
        let groups: Vec<&str> = a.expose().split('-').collect();
        assert_eq!(groups.len(), 3);
        assert!(groups.iter().all(|g| g.len() == 6));
        assert!(
            a.expose()
                .chars()
                .all(|c| c == '-' || ALPHABET.contains(&(c as u8)))
        );
        for c in ['0', 'O', '1', 'I', 'L'] {
            assert!(!ALPHABET.contains(&(c as u8)));
        }
        // At least 80 bits.
        assert!((TEMP_LENGTH as f64) * (ALPHABET.len() as f64).log2() >= 80.0);
    }

    #[test]
    fn typed_temporary_passwords_are_canonicalised() {
        assert_eq!(
            temporary_canonical(" abc234-def567 ghj89k "),
            "ABC234DEF567GHJ89K"
        );
    }
}
