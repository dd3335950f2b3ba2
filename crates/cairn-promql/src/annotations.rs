//! Warning and info annotations with Prometheus's texts
//! (`util/annotations/annotations.go`), and source positions for them.

use crate::Annotations;

/// Annotations collected during evaluation, deduplicated as Prometheus's
/// `annotations.Annotations` map is.
#[derive(Debug, Default)]
pub(crate) struct AnnotationSet {
    warnings: Vec<String>,
    infos: Vec<String>,
}

impl AnnotationSet {
    pub fn warn(&mut self, text: String) {
        let full = format!("PromQL warning: {text}");
        if !self.warnings.contains(&full) {
            self.warnings.push(full);
        }
    }

    pub fn info(&mut self, text: String) {
        let full = format!("PromQL info: {text}");
        if !self.infos.contains(&full) {
            self.infos.push(full);
        }
    }

    pub fn into_annotations(self) -> Annotations {
        Annotations {
            warnings: self.warnings,
            infos: self.infos,
        }
    }
}

/// The position suffix ` (line:col)` of a sub-expression, found by looking
/// for its printed form in the query text (the parser keeps no positions).
pub(crate) fn position(query: &str, e: &promql_parser::parser::Expr) -> String {
    let printed = e.to_string();
    match query.find(&printed) {
        Some(offset) => {
            let (line, col) = line_col(query, offset);
            format!(" ({line}:{col})")
        }
        None => String::new(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(query: &str, offset: usize) -> (usize, usize) {
    let before = &query[..offset.min(query.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}
