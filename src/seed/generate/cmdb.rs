//! One CMDB export row: the CSV line a raw import record holds, a pure function of its
//! import's key and its row number, so any row can be produced on its own.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::vocabulary::{
    APPLICATIONS, CMDB_COLUMNS, FIRST_NAMES, LAST_NAMES, LOCATIONS, OPERATING_SYSTEMS, ROLES,
};
use super::{pick, random_uuid};

/// One CSV row of an import, a pure function of the import's key and the row number.
pub(super) struct CmdbRow {
    pub(super) record_id: Uuid,
    pub(super) asset_id: Uuid,
    pub(super) ci_number: String,
    /// In [`CMDB_COLUMNS`] order, as text, the way the CSV had them.
    pub(super) values: [String; 13],
}

impl CmdbRow {
    /// `raw_data`: `{header: value}` in the file's column order.
    pub(super) fn raw_data_json(&self) -> String {
        let mut out = String::with_capacity(400);
        out.push('{');
        for (index, ((header, _), value)) in CMDB_COLUMNS.iter().zip(&self.values).enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_json_string(&mut out, header);
            out.push(':');
            push_json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

pub(super) fn row_rng(import_key: &[u8; 32], row: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(*import_key);
    rng.set_stream(u64::from(row));
    rng
}

/// The asset name of a row: the first draws of the row's stream, so that other rows can name
/// it as a dependency without producing it whole.
pub(super) fn asset_name(rng: &mut ChaCha8Rng, row: u32) -> (String, &'static str) {
    let app = *pick(rng, APPLICATIONS);
    let (role, _) = *pick(rng, ROLES);
    (format!("{}-{role}-{row:05}", app.to_lowercase()), role)
}

pub(super) fn cmdb_row(import_key: &[u8; 32], row: u32) -> CmdbRow {
    let mut rng = row_rng(import_key, row);
    let (name, role) = asset_name(&mut rng, row);
    let asset_type = ROLES
        .iter()
        .find(|(candidate, _)| *candidate == role)
        .map(|(_, kind)| *kind)
        .unwrap_or("Server");
    let record_id = random_uuid(&mut rng);
    let asset_id = random_uuid(&mut rng);
    let ci_number = format!("CI{:07}", rng.gen_range(0..10_000_000));
    let environment = *pick(
        &mut rng,
        &["Production", "Staging", "Development", "Test", "DR"],
    );
    let owner = format!(
        "{} {}",
        pick(&mut rng, FIRST_NAMES),
        pick(&mut rng, LAST_NAMES)
    );
    let criticality = *pick(&mut rng, &["Low", "Medium", "High", "Critical"]);
    let os = *pick(&mut rng, OPERATING_SYSTEMS);
    let cpu = *pick(&mut rng, &[2, 4, 8, 16, 32, 64]);
    let memory = *pick(&mut rng, &[4, 8, 16, 32, 64, 128, 256]);
    let storage = rng.gen_range(20..4_000) * 5;
    let location = *pick(&mut rng, LOCATIONS);
    let dependency_count = if row > 1 { rng.gen_range(0..3) } else { 0 };
    let mut dependencies = Vec::with_capacity(dependency_count);
    for _ in 0..dependency_count {
        let other = rng.gen_range(1..row);
        dependencies.push(asset_name(&mut row_rng(import_key, other), other).0);
    }
    let hostname = format!("{name}.{}.corp.example.com", location_code(location));
    // A few rows come without an IP, as real exports do.
    let ip = if rng.gen_bool(0.02) {
        String::new()
    } else {
        format!(
            "10.{}.{}.{}",
            rng.gen_range(0..=255_u8),
            rng.gen_range(0..=255_u8),
            rng.gen_range(1..=254_u8)
        )
    };
    CmdbRow {
        record_id,
        asset_id,
        ci_number,
        values: [
            name,
            asset_type.to_owned(),
            environment.to_owned(),
            owner,
            criticality.to_owned(),
            os.to_owned(),
            cpu.to_string(),
            memory.to_string(),
            storage.to_string(),
            location.to_owned(),
            dependencies.join("; "),
            hostname,
            ip,
        ],
    }
}

pub(super) fn location_code(location: &str) -> String {
    location
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect::<String>()
        .to_lowercase()
}

pub(super) fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    pub(super) fn a_cmdb_row_depends_only_on_its_import_and_number() {
        let key = [7u8; 32];
        let first = cmdb_row(&key, 12);
        let again = cmdb_row(&key, 12);
        assert_eq!(first.values, again.values);
        assert_eq!(first.record_id, again.record_id);
        assert_ne!(first.record_id, cmdb_row(&key, 13).record_id);
        assert_eq!(first.record_id.get_version_num(), 4);
    }

    #[test]
    pub(super) fn raw_data_is_json_keyed_by_the_cmdb_header() {
        let row = cmdb_row(&[1u8; 32], 5);
        let parsed: serde_json::Map<String, Value> =
            serde_json::from_str(&row.raw_data_json()).expect("valid json");
        assert_eq!(parsed.len(), CMDB_COLUMNS.len());
        assert_eq!(parsed["Asset Name"], Value::String(row.values[0].clone()));
    }
}
