//! Dollar-quoted bodies (`$$ … $$`, `$tag$ … $tag$`) in PostgreSQL scripts read line by line:
//! inside one, a `;` ends no statement and a line is no statement to annotate. Shared by the
//! statement splitter (`offline`) and the squawk annotator (`lint`).

/// Whether a script read line by line is inside a dollar-quoted body (`$$ … $$`,
/// `$tag$ … $tag$`), where a `;` ends no statement. Inside a body only its own tag closes
/// it: another tag there is text (`$body$ … $$ … $body$`).
#[derive(Default)]
pub(crate) struct DollarQuotes {
    open: Option<String>,
}

impl DollarQuotes {
    /// Reads the next line of the script.
    pub(crate) fn read(&mut self, line: &str) {
        for tag in dollar_tags(line) {
            match &self.open {
                None => self.open = Some(tag),
                Some(open) if *open == tag => self.open = None,
                Some(_) => {}
            }
        }
    }

    /// Whether the lines read so far end inside a body.
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }
}

/// The dollar-quote tags (`$$`, `$body$`) on a line, in order.
fn dollar_tags(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut tags = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' {
            let mut end = index + 1;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let tag_is_identifier = end == index + 1 || !bytes[index + 1].is_ascii_digit();
            if end < bytes.len() && bytes[end] == b'$' && tag_is_identifier {
                tags.push(line[index..=end].to_owned());
                index = end + 1;
                continue;
            }
        }
        index += 1;
    }
    tags
}
