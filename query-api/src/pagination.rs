//! Keyset pagination: lists are in a stable key order; a page ends with an opaque cursor
//! naming the last key, and the next page starts after it. Unlike offsets, a cursor
//! neither skips nor repeats rows while new rows arrive.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use service_kit::problem::ApiError;
use utoipa::{IntoParams, ToSchema};

pub const DEFAULT_LIMIT: u32 = 50;
/// The most rows one page holds; larger limits are capped to it.
pub const MAX_LIMIT: u32 = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows per page: 1 to 500 (larger values are capped), default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageParams {
    pub fn limit(&self) -> Result<u32, ApiError> {
        self.limit_or(DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// The limit for a list whose pages are `default` rows long and at most `max`.
    pub fn limit_or(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.limit {
            Some(0) => Err(ApiError::validation("limit", "out_of_range", "at least 1")),
            Some(limit) => Ok(limit.min(max)),
            None => Ok(default),
        }
    }

    /// The key the page starts after, if a cursor was given.
    pub fn after<K: CursorKey>(&self) -> Result<Option<K>, ApiError> {
        let Some(cursor) = &self.cursor else {
            return Ok(None);
        };
        URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| K::parse(&text))
            .map(Some)
            .ok_or_else(|| {
                ApiError::validation(
                    "cursor",
                    "invalid_cursor",
                    "not a cursor this list gave out",
                )
            })
    }
}

/// A list key a cursor can carry.
pub trait CursorKey: Sized {
    fn parse(text: &str) -> Option<Self>;
    fn render(&self) -> String;
}

impl CursorKey for i64 {
    fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }

    fn render(&self) -> String {
        self.to_string()
    }
}

impl CursorKey for (i64, i64) {
    fn parse(text: &str) -> Option<Self> {
        let (first, second) = text.split_once(':')?;
        Some((first.parse().ok()?, second.parse().ok()?))
    }

    fn render(&self) -> String {
        format!("{}:{}", self.0, self.1)
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows fetched in key order: the extra row
    /// only tells that there is a next page.
    pub fn from_rows<K: CursorKey>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last()
                .map(|row| URL_SAFE_NO_PAD.encode(key(row).render()))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The order of an `id`-keyed list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first (catalog lists).
    Ascending,
    /// Newest first (logs).
    Descending,
}

/// Appends the keyset condition and order for an `id`-keyed list and fetches a page.
pub async fn page_by_id<T>(
    pool: &sqlx::PgPool,
    mut query: sqlx::QueryBuilder<'static, sqlx::Postgres>,
    page: &PageParams,
    order: Order,
    id: fn(&T) -> i64,
) -> Result<Page<T>, ApiError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let limit = page.limit()?;
    let (after, direction) = match order {
        Order::Ascending => (" AND id > ", " ORDER BY id LIMIT "),
        Order::Descending => (" AND id < ", " ORDER BY id DESC LIMIT "),
    };
    if let Some(cursor) = page.after::<i64>()? {
        query.push(after).push_bind(cursor);
    }
    query.push(direction).push_bind(i64::from(limit) + 1);
    let rows = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, id))
}

/// `text` as a case-insensitive `LIKE` pattern matching it anywhere.
pub fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for character in text.chars() {
        if matches!(character, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_page_points_after_its_last_row_and_the_cursor_reads_back() {
        let page = Page::from_rows((1..=4_i64).collect(), 3, |row| *row);
        assert_eq!(page.items, [1, 2, 3]);
        let params = PageParams {
            limit: None,
            cursor: page.next_cursor,
        };
        assert_eq!(params.after::<i64>().unwrap(), Some(3));

        let last = Page::from_rows(vec![(1_i64, 2_i64)], 3, |row| *row);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn foreign_cursors_and_zero_limits_are_refused_and_big_limits_capped() {
        let params = PageParams {
            limit: Some(0),
            cursor: Some("not base64 at all!".into()),
        };
        assert!(params.limit().is_err());
        assert!(params.after::<i64>().is_err());
        let pair = PageParams {
            limit: Some(10_000),
            cursor: Some(URL_SAFE_NO_PAD.encode("12")),
        };
        assert!(pair.after::<(i64, i64)>().is_err(), "an id is not a pair");
        assert_eq!(pair.limit().unwrap(), MAX_LIMIT);
    }

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
