//! `label_replace` and `label_join`, as Prometheus's `evalLabelReplace` and
//! `evalLabelJoin`: they change series identity, not values.

use cairn_model::METRIC_NAME;
use promql_parser::parser::Call;
use regex::Regex;

use super::{arg, is_valid_label_name, string_arg};
use crate::binary::merge_same_labels;
use crate::eval::Evaluator;
use crate::value::Val;
use crate::QueryError;

pub(super) fn eval(ev: &Evaluator, call: &Call, name: &str) -> Result<Option<Val>, QueryError> {
    match name {
        "label_replace" => {
            let dst = string_arg(ev, arg(call, 1)?)?;
            let repl = string_arg(ev, arg(call, 2)?)?;
            let src = string_arg(ev, arg(call, 3)?)?;
            let regex_str = string_arg(ev, arg(call, 4)?)?;
            let regex = Regex::new(&format!("^(?s:{regex_str})$")).map_err(|_| {
                QueryError::Execution(format!(
                    "invalid regular expression in label_replace(): {regex_str}"
                ))
            })?;
            if !is_valid_label_name(ev, &dst) {
                return Err(QueryError::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            let mut series = ev.eval_vector(arg(call, 0)?)?;
            for s in series.iter_mut() {
                let src_val = s.labels.get(&src).unwrap_or("");
                if let Some(caps) = regex.captures(src_val) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    let mut b = s.labels.builder();
                    b.set(&dst, &res);
                    s.labels = b.build();
                    if dst == METRIC_NAME {
                        s.drop_name = false;
                    }
                }
            }
            Ok(Some(Val::Vector(merge_same_labels(series)?)))
        }
        "label_join" => {
            let dst = string_arg(ev, arg(call, 1)?)?;
            let sep = string_arg(ev, arg(call, 2)?)?;
            let mut srcs = Vec::new();
            for a in call.args.args.iter().skip(3) {
                let src = string_arg(ev, a)?;
                if !is_valid_label_name(ev, &src) {
                    return Err(QueryError::Execution(format!(
                        "invalid source label name in label_join(): {src}"
                    )));
                }
                srcs.push(src);
            }
            if !is_valid_label_name(ev, &dst) {
                return Err(QueryError::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            let mut series = ev.eval_vector(arg(call, 0)?)?;
            for s in series.iter_mut() {
                let joined = srcs
                    .iter()
                    .map(|n| s.labels.get(n).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(&sep);
                let mut b = s.labels.builder();
                b.set(&dst, &joined);
                s.labels = b.build();
                if dst == METRIC_NAME {
                    s.drop_name = false;
                }
            }
            Ok(Some(Val::Vector(merge_same_labels(series)?)))
        }
        _ => Ok(None),
    }
}
