//! Arcade's offset pagination: `{items, total_count, offset, limit, page_count}`. A
//! `limit` out of range is clamped, never rejected (`arcade connect` sends 1000).

use serde::Serialize;

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// Lenient: a missing, negative or non-numeric value gets the default.
    pub fn from_query(limit: Option<&str>, offset: Option<&str>) -> Self {
        let limit = limit
            .and_then(|l| l.trim().parse::<i64>().ok())
            .map(|l| l.clamp(1, MAX_LIMIT as i64) as usize)
            .unwrap_or(DEFAULT_LIMIT);
        let offset = offset
            .and_then(|o| o.trim().parse::<i64>().ok())
            .map(|o| o.max(0) as usize)
            .unwrap_or(0);
        Self { offset, limit }
    }

    pub fn apply<T: Serialize>(self, all: Vec<T>) -> OffsetPage<T> {
        let total_count = all.len();
        let items: Vec<T> = all.into_iter().skip(self.offset).take(self.limit).collect();
        OffsetPage {
            items,
            total_count,
            offset: self.offset,
            limit: self.limit,
            page_count: total_count.div_ceil(self.limit),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct OffsetPage<T: Serialize> {
    pub items: Vec<T>,
    pub total_count: usize,
    pub offset: usize,
    pub limit: usize,
    pub page_count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_clamped_not_rejected() {
        assert_eq!(Page::from_query(Some("1000"), None).limit, MAX_LIMIT);
        assert_eq!(Page::from_query(Some("0"), None).limit, 1);
        assert_eq!(
            Page::from_query(Some("abc"), Some("-3")).limit,
            DEFAULT_LIMIT
        );
        let page = Page::from_query(Some("2"), Some("1")).apply(vec![1, 2, 3, 4, 5]);
        assert_eq!(
            (page.items, page.total_count, page.page_count),
            (vec![2, 3], 5, 3)
        );
    }
}
