//! Cursor pagination shared by every list: an opaque cursor names the last row a client saw,
//! and the next page starts strictly after it (keyset, so pages stay stable while rows are
//! added and no page costs an OFFSET scan).

use uuid::Uuid;

/// Rows on a page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most rows a client may ask for on one page.
pub const MAX_LIMIT: u32 = 500;

/// Why a client's paging parameters were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("cursor is not one this server issued")]
    BadCursor,
    #[error("limit must be between 1 and {MAX_LIMIT}, got {0}")]
    LimitOutOfRange(u64),
}

/// Where a list resumes: after the row with this sort rank (a row number, or 0 for lists
/// ordered by id only) and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub rank: i64,
    pub id: Uuid,
}

/// Every cursor this server issues, and every one it accepts, matches this pattern (the
/// OpenAPI document says so): any text of this form is a valid place to resume from, so a
/// client's well-formed cursor is never refused.
pub const CURSOR_PATTERN: &str =
    "^-?[0-9]{1,18}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

impl Cursor {
    /// The text form given to clients: `RANK_UUID` (opaque to them; see [`CURSOR_PATTERN`]).
    pub fn encode(&self) -> String {
        format!("{}_{}", self.rank, self.id.hyphenated())
    }

    /// Parses exactly [`CURSOR_PATTERN`]; also the hex form of earlier releases, so a client
    /// paging across an upgrade is not refused.
    pub fn decode(text: &str) -> Result<Self, PagingError> {
        if let Some((rank, id)) = text.split_once('_') {
            let digits = rank.strip_prefix('-').unwrap_or(rank);
            let canonical_id = id.len() == 36
                && id
                    .chars()
                    .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c));
            if digits.is_empty()
                || digits.len() > 18
                || !digits.chars().all(|c| c.is_ascii_digit())
                || !canonical_id
            {
                return Err(PagingError::BadCursor);
            }
            return Ok(Self {
                rank: rank.parse().map_err(|_| PagingError::BadCursor)?,
                id: Uuid::try_parse(id).map_err(|_| PagingError::BadCursor)?,
            });
        }
        let bytes = hex::decode(text).map_err(|_| PagingError::BadCursor)?;
        let plain = String::from_utf8(bytes).map_err(|_| PagingError::BadCursor)?;
        let (rank, id) = plain.split_once(':').ok_or(PagingError::BadCursor)?;
        Ok(Self {
            rank: rank.parse().map_err(|_| PagingError::BadCursor)?,
            id: Uuid::try_parse(id).map_err(|_| PagingError::BadCursor)?,
        })
    }
}

/// One page asked for: resume after `after` (from the start when `None`), at most `limit`
/// rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl PageRequest {
    /// Parses the `cursor` and `limit` query parameters as a client sent them.
    pub fn parse(cursor: Option<&str>, limit: Option<u64>) -> Result<Self, PagingError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(value) if (1..=u64::from(MAX_LIMIT)).contains(&value) => value as u32,
            Some(value) => return Err(PagingError::LimitOutOfRange(value)),
        };
        let after = match cursor {
            None => None,
            Some("") => None,
            Some(text) => Some(Cursor::decode(text)?),
        };
        Ok(Self { after, limit })
    }

    /// Rows to fetch: one more than the page, to learn whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// The rank and id to bind for "strictly after the cursor"; the start of the list sorts
    /// before every row.
    pub fn after_key(&self) -> (i64, Uuid) {
        self.after
            .map(|cursor| (cursor.rank, cursor.id))
            .unwrap_or((i64::MIN, Uuid::nil()))
    }
}

/// One page of a list and the cursor of the next, if there is one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts the `limit + 1` rows a store fetched into a page; `key` gives a row's cursor.
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest, key: impl Fn(&T) -> Cursor) -> Self {
        let limit = request.limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|row| key(row).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let cursor = Cursor {
            rank: 42,
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        assert_eq!(Cursor::decode("zz"), Err(PagingError::BadCursor));
        let earlier = hex::encode(format!("{}:{}", cursor.rank, cursor.id.hyphenated()));
        assert_eq!(
            Cursor::decode(&earlier),
            Ok(cursor),
            "an earlier release's cursor"
        );
        for bad in [
            "_",
            "1_",
            "x_00000000-0000-0000-0000-000000000000",
            "1234567890123456789_00000000-0000-0000-0000-000000000000",
            "1_00000000-0000-0000-0000-00000000000G",
        ] {
            assert_eq!(Cursor::decode(bad), Err(PagingError::BadCursor), "{bad}");
        }
        assert_eq!(
            Cursor::decode(&hex::encode("x:y")),
            Err(PagingError::BadCursor)
        );
    }

    #[test]
    fn limit_is_bounded() {
        assert!(PageRequest::parse(None, Some(0)).is_err());
        assert!(PageRequest::parse(None, Some(u64::from(MAX_LIMIT) + 1)).is_err());
        assert_eq!(
            PageRequest::parse(None, None).map(|p| p.limit),
            Ok(DEFAULT_LIMIT)
        );
    }

    #[test]
    fn page_cuts_the_extra_row() {
        let request = PageRequest {
            after: None,
            limit: 2,
        };
        let key = |n: &i64| Cursor {
            rank: *n,
            id: Uuid::nil(),
        };
        let page = Page::from_rows(vec![1, 2, 3], &request, key);
        assert_eq!(page.items, vec![1, 2]);
        assert!(page.next_cursor.is_some());
        let last = Page::from_rows(vec![1, 2], &request, key);
        assert!(last.next_cursor.is_none());
    }
}
