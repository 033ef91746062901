//! The window of query results to return (RFC 8620 §5.5: `position`,
//! `anchor`, `anchorOffset`, `limit`).

use std::ops::Range;

use crate::error::{MethodError, MethodErrorKind};

/// Which part of the full result list a `/query` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryWindow {
    /// The index of the first result returned (the response's `position`);
    /// it may be at or past `total`, in which case nothing is returned.
    pub position: usize,
    /// The indices returned, within `0..total`.
    pub range: Range<usize>,
    /// The number of results in the full list.
    pub total: usize,
    /// The limit the server imposed, when it set or lowered the client's
    /// (the response's `limit`, returned only in that case).
    pub limit: Option<u64>,
}

impl QueryWindow {
    /// The returned part of the full list.
    pub fn slice<'a, T>(&self, all: &'a [T]) -> &'a [T] {
        all.get(self.range.clone()).unwrap_or(&[])
    }
}

fn clamp_index(i: i128) -> usize {
    if i < 0 {
        0
    } else {
        usize::try_from(i).unwrap_or(usize::MAX)
    }
}

/// Computes the window of `ids` (the full filtered and sorted result) that a
/// `/query` asks for (RFC 8620 §5.5):
///
/// * With an `anchor`, `position` is ignored: the start is the anchor's
///   index plus `anchor_offset`, clamped to 0; `anchorNotFound` if the
///   anchor is not in `ids`.
/// * Otherwise a negative `position` is added to the total and clamped to 0.
/// * A start at or past the end gives an empty window (not an error).
/// * `max_limit` caps `limit`; a missing `limit` becomes `max_limit`. In both
///   cases the limit used is reported so the client knows.
pub fn query_window<T: PartialEq>(
    ids: &[T],
    position: i64,
    anchor: Option<&T>,
    anchor_offset: i64,
    limit: Option<u64>,
    max_limit: Option<u64>,
) -> Result<QueryWindow, MethodError> {
    let total = ids.len();
    let start = match anchor {
        Some(anchor) => {
            let index = ids.iter().position(|id| id == anchor).ok_or_else(|| {
                MethodError::with_description(
                    MethodErrorKind::AnchorNotFound,
                    "the anchor is not in the query results",
                )
            })?;
            clamp_index(i128::try_from(index).unwrap_or(i128::MAX) + i128::from(anchor_offset))
        }
        None if position >= 0 => clamp_index(i128::from(position)),
        None => clamp_index(i128::try_from(total).unwrap_or(i128::MAX) + i128::from(position)),
    };
    let (applied, reported) = match (limit, max_limit) {
        (Some(l), Some(max)) if l > max => (Some(max), Some(max)),
        (None, Some(max)) => (Some(max), Some(max)),
        (l, _) => (l, None),
    };
    let begin = start.min(total);
    let end = match applied {
        Some(l) => begin
            .saturating_add(usize::try_from(l).unwrap_or(usize::MAX))
            .min(total),
        None => total,
    };
    Ok(QueryWindow {
        position: start,
        range: begin..end,
        total,
        limit: reported,
    })
}
