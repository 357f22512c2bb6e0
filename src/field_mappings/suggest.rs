//! Suggested mappings for a new file: each column gets a snake_case target, a confidence
//! and up to five sample values. Known CMDB headers map to the platform's attribute names
//! with high confidence; anything else maps to its own snake_case form with low confidence.

use serde_json::Value;

/// Sample values kept per column.
pub const SAMPLE_VALUES: usize = 5;

/// What the suggester proposes for one column.
#[derive(Debug, Clone, PartialEq)]
pub struct SuggestedMapping {
    pub source_field: String,
    pub target_field: String,
    pub confidence: f64,
    pub sample_values: Vec<String>,
}

/// Platform attributes and the header spellings (already snake_cased) that name them.
const KNOWN_ATTRIBUTES: &[(&str, &[&str])] = &[
    (
        "asset_name",
        &["asset_name", "name", "asset", "server_name", "ci_name"],
    ),
    ("asset_type", &["asset_type", "type", "ci_type", "class"]),
    ("environment", &["environment", "env"]),
    ("owner", &["owner", "business_owner", "app_owner"]),
    (
        "criticality",
        &["criticality", "business_criticality", "priority"],
    ),
    ("operating_system", &["operating_system", "os", "os_name"]),
    ("cpu_cores", &["cpu_cores", "cpu", "cpus", "cores", "vcpu"]),
    (
        "memory_gb",
        &["memory_gb", "memory", "ram", "ram_gb", "memory_g_b"],
    ),
    (
        "storage_gb",
        &["storage_gb", "storage", "disk", "disk_gb", "storage_g_b"],
    ),
    (
        "location",
        &["location", "datacenter", "data_center", "site"],
    ),
    (
        "dependencies",
        &["dependencies", "depends_on", "dependency"],
    ),
    ("hostname", &["hostname", "host_name", "host", "fqdn"]),
    (
        "ip_address",
        &["ip_address", "ip", "ip_addr", "i_p_address"],
    ),
];

/// One suggestion per column, in header order.
pub fn suggest_mappings(
    headers: &[String],
    rows: &[serde_json::Map<String, Value>],
) -> Vec<SuggestedMapping> {
    let mut sampler = SampleCollector::new(headers);
    for row in rows {
        if !sampler.wants_more() {
            break;
        }
        for (column, header) in headers.iter().enumerate() {
            sampler.observe_json(column, row.get(header));
        }
    }
    sampler.suggestions()
}

/// Suggestions built one row at a time, so a file of any size is summarised in bounded
/// memory: per column, the first [`SAMPLE_VALUES`] distinct non-empty values in row order
/// (strings trimmed, other JSON values in their JSON text).
#[derive(Debug, Clone)]
pub struct SampleCollector {
    headers: Vec<String>,
    samples: Vec<Vec<String>>,
    /// Columns that still have fewer than [`SAMPLE_VALUES`] samples.
    open_columns: usize,
}

impl SampleCollector {
    pub fn new(headers: &[String]) -> Self {
        Self {
            headers: headers.to_vec(),
            samples: vec![Vec::with_capacity(SAMPLE_VALUES); headers.len()],
            open_columns: headers.len(),
        }
    }

    /// Whether any column could still take a sample (once none can, rows need not be shown).
    pub fn wants_more(&self) -> bool {
        self.open_columns > 0
    }

    /// A text value of `column` (a CSV field); trimmed, empty and repeated values add nothing.
    pub fn observe_text(&mut self, column: usize, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        if let Some(found) = self.samples.get(column) {
            if found.len() < SAMPLE_VALUES && !found.iter().any(|seen| seen == text) {
                self.push(column, text.to_owned());
            }
        }
    }

    /// A JSON value of `column` (`None` when the row lacks the key); null adds nothing.
    pub fn observe_json(&mut self, column: usize, value: Option<&Value>) {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) => self.observe_text(column, text),
            Some(other) => {
                let full = self
                    .samples
                    .get(column)
                    .is_none_or(|found| found.len() == SAMPLE_VALUES);
                if full {
                    return;
                }
                let text = other.to_string();
                if !text.is_empty() && !self.samples[column].contains(&text) {
                    self.push(column, text);
                }
            }
        }
    }

    fn push(&mut self, column: usize, text: String) {
        // Samples are for display, and PostgreSQL's JSON text cannot hold a NUL character
        // (the row itself keeps it: `raw_data` is stored as given).
        let text = if text.contains('\0') {
            text.replace('\0', "\u{FFFD}")
        } else {
            text
        };
        let found = &mut self.samples[column];
        found.push(text);
        if found.len() == SAMPLE_VALUES {
            self.open_columns -= 1;
        }
    }

    /// One suggestion per column, in header order.
    pub fn suggestions(self) -> Vec<SuggestedMapping> {
        self.headers
            .into_iter()
            .zip(self.samples)
            .enumerate()
            .map(|(index, (header, sample_values))| {
                let (target_field, confidence) = target_for(index, &header);
                SuggestedMapping {
                    source_field: header,
                    target_field,
                    confidence,
                    sample_values,
                }
            })
            .collect()
    }
}

/// Longest suggested target: `import_field_mappings.target_field` is `varchar(255)`. A
/// snake_case name can be longer than its header (`"HTTPServer"` → `http_server`); the
/// suggestion keeps what fits.
const MAX_TARGET_CHARS: usize = 255;

/// The attribute a header names and how sure the suggester is.
fn target_for(index: usize, header: &str) -> (String, f64) {
    let own: String = snake_case(header).chars().take(MAX_TARGET_CHARS).collect();
    let own = if own.is_empty() {
        format!("column_{}", index + 1)
    } else {
        own
    };
    match KNOWN_ATTRIBUTES
        .iter()
        .find(|(_, spellings)| spellings.contains(&own.as_str()))
    {
        Some((attribute, _)) if *attribute == own => ((*attribute).to_owned(), 0.95),
        Some((attribute, _)) => ((*attribute).to_owned(), 0.8),
        None => (own, 0.5),
    }
}

/// `"CPU Cores"` → `cpu_cores`, `"memoryGB"` → `memory_gb`, `"IP-Address"` → `ip_address`.
pub fn snake_case(header: &str) -> String {
    let mut out = String::with_capacity(header.len() + 4);
    let chars: Vec<char> = header.trim().chars().collect();
    for (index, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() {
            let previous = index.checked_sub(1).map(|i| chars[i]);
            let next = chars.get(index + 1);
            let starts_word = c.is_uppercase()
                && previous.is_some_and(|p| {
                    p.is_lowercase()
                        || p.is_ascii_digit()
                        || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
                });
            if starts_word && !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file's headers and rows, as the import side holds them.
    struct Rows {
        headers: Vec<String>,
        rows: Vec<serde_json::Map<String, Value>>,
    }

    #[test]
    fn headers_become_snake_case() {
        assert_eq!(snake_case("CPU Cores"), "cpu_cores");
        assert_eq!(snake_case("memoryGB"), "memory_gb");
        assert_eq!(snake_case("IP-Address"), "ip_address");
        assert_eq!(snake_case("  Asset Name (primary) "), "asset_name_primary");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("---"), "");
    }

    #[test]
    fn known_headers_get_platform_names_and_samples() {
        let mut rows = Rows {
            headers: vec!["Server Name".into(), "OS".into(), "Weird Thing".into()],
            rows: Vec::new(),
        };
        for n in 0..8 {
            let mut row = serde_json::Map::new();
            row.insert("Server Name".into(), Value::String(format!("srv{n}")));
            row.insert("OS".into(), Value::String("linux".into()));
            row.insert("Weird Thing".into(), Value::from(n));
            rows.rows.push(row);
        }
        let suggested = suggest_mappings(&rows.headers, &rows.rows);
        assert_eq!(suggested[0].target_field, "asset_name");
        assert_eq!(suggested[0].sample_values.len(), SAMPLE_VALUES);
        assert_eq!(suggested[1].target_field, "operating_system");
        assert_eq!(suggested[1].sample_values, vec!["linux"]);
        assert_eq!(suggested[2].target_field, "weird_thing");
        assert!(suggested[2].confidence < suggested[1].confidence);
    }

    /// Today's (pre-streaming) sampler, kept as the oracle: whole rows in memory, one column
    /// at a time.
    fn reference_samples(rows: &Rows, header: &str) -> Vec<String> {
        let mut found: Vec<String> = Vec::with_capacity(SAMPLE_VALUES);
        for row in &rows.rows {
            if found.len() == SAMPLE_VALUES {
                break;
            }
            let text = match row.get(header) {
                None | Some(Value::Null) => continue,
                Some(Value::String(text)) => text.trim().to_owned(),
                Some(other) => other.to_string(),
            };
            if !text.is_empty() && !found.contains(&text) {
                found.push(text);
            }
        }
        found
    }

    #[test]
    fn row_by_row_samples_equal_the_whole_file_sampler() {
        let headers: Vec<String> = vec!["a".into(), "b".into(), "c".into(), "missing".into()];
        let mut rows = Rows {
            headers: headers.clone(),
            rows: Vec::new(),
        };
        let values = [
            Value::String(" x ".into()),
            Value::String("x".into()),
            Value::Null,
            Value::from(3),
            Value::from(3.5),
            Value::Bool(true),
            Value::String(String::new()),
            Value::String("  ".into()),
            Value::from(vec![1, 2]),
        ];
        for n in 0..40usize {
            let mut row = serde_json::Map::new();
            row.insert("a".into(), values[n % values.len()].clone());
            row.insert("b".into(), values[(n * 7 + 3) % values.len()].clone());
            row.insert("c".into(), Value::String(format!("v{}", n % 6)));
            rows.rows.push(row);
        }
        let suggested = suggest_mappings(&rows.headers, &rows.rows);
        for (suggestion, header) in suggested.iter().zip(&headers) {
            assert_eq!(
                suggestion.sample_values,
                reference_samples(&rows, header),
                "{header}"
            );
        }
        assert_eq!(suggested[2].sample_values.len(), SAMPLE_VALUES);
        assert!(suggested[3].sample_values.is_empty());
    }

    #[test]
    fn samples_never_hold_a_nul() {
        let mut sampler = SampleCollector::new(&["name".to_owned()]);
        sampler.observe_text(0, "a\0b");
        let suggestions = sampler.suggestions();
        assert_eq!(suggestions[0].sample_values, vec!["a\u{FFFD}b".to_owned()]);
    }
}
