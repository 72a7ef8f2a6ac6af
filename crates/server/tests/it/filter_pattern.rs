//! Property tests of FilterLogEvents' filter patterns (issue 15, "Fuzzing"): any text parses or
//! is refused without panicking; every pattern prints to text that parses back to the same
//! pattern; space-delimited matching agrees with a brute-force model that tries every
//! alignment; `*` wildcards agree with the equivalent regular expression.

use kinsight_server::cwlogs::filter_pattern::{MAX_PATTERN_CHARS, glob_match, parse};
use proptest::prelude::*;
use proptest::strategy::Union;

/// Pieces of all three forms, joined at random.
const ATOMS: &[&str] = &[
    "{", "}", "[", "]", "(", ")", "$", ".", "$.a", "$.b.c", "[0]", "=", "!=", "<", "<=", ">", ">=",
    "&&", "||", ",", "...", "IS", "NOT", "NULL", "TRUE", "EXISTS", "\"", "\"x y\"", "%", "%a+%",
    "*", "a*", "?", "-", "ERROR", "1", "-2.5", "1e9", "\\", "é", " ", "\t",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(ATOMS), 0..24).prop_map(|v| v.concat())
}

/// Checks the round trip of one parsed pattern.
fn round_trips(src: &str) -> Result<(), TestCaseError> {
    let Ok(p) = parse(src) else {
        return Ok(());
    };
    let printed = p.to_string();
    // Printing normalises spacing and may spell a number longer than it was written; only
    // what fits the length limit can be parsed again.
    if printed.chars().count() <= MAX_PATTERN_CHARS {
        let again = parse(&printed)
            .map_err(|e| TestCaseError::fail(format!("{src:?} printed as {printed:?}: {e}")))?;
        prop_assert_eq!(&again, &p, "{:?} printed as {:?}", src, printed);
        prop_assert_eq!(again.to_string(), printed);
    }
    Ok(())
}

// ---- patterns written by a grammar ------------------------------------------------------

fn text_value() -> impl Strategy<Value = String> {
    // Anything a user may put between quotes, quotes and backslashes included.
    "[a-z \"\\\\*%,\\]})&|é0-9.-]{0,8}"
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn literal() -> impl Strategy<Value = String> {
    Union::new(vec![
        text_value().prop_map(|s| quoted(&s)).boxed(),
        "[a-z][a-z0-9*]{0,5}".boxed(),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| format!("{f:e}"))
            .boxed(),
        (-1000i64..1000).prop_map(|n| n.to_string()).boxed(),
        "%[a-z]{1,3}[+*]?%".boxed(),
    ])
}

fn check() -> impl Strategy<Value = String> {
    Union::new(vec![
        (prop::sample::select(vec!["=", "!="]), literal())
            .prop_map(|(op, l)| format!("{op} {l}"))
            .boxed(),
        (
            prop::sample::select(vec!["<", "<=", ">", ">="]),
            (-50i64..50).prop_map(|n| n.to_string()),
        )
            .prop_map(|(op, n)| format!("{op} {n}"))
            .boxed(),
        prop::sample::select(vec![
            "IS NULL",
            "IS TRUE",
            "IS FALSE",
            "IS NOT NULL",
            "IS NOT TRUE",
            "NOT EXISTS",
            "EXISTS",
        ])
        .prop_map(String::from)
        .boxed(),
    ])
}

fn selector() -> impl Strategy<Value = String> {
    prop::collection::vec(
        Union::new(vec![
            "[a-zA-Z_@-][a-zA-Z0-9_]{0,4}"
                .prop_map(|k| format!(".{k}"))
                .boxed(),
            (0usize..20).prop_map(|i| format!("[{i}]")).boxed(),
        ]),
        1..4,
    )
    .prop_map(|steps| format!("$.k{}", steps.concat()))
}

/// A condition tree over `leaf`, with parentheses where the grammar needs them and sometimes
/// where it does not.
fn cond(leaf: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    leaf.prop_recursive(4, 16, 2, |inner| {
        (
            inner.clone(),
            prop::sample::select(vec!["&&", "||"]),
            inner,
            any::<bool>(),
        )
            .prop_map(|(a, op, b, paren)| {
                if paren {
                    format!("({a}) {op} ({b})")
                } else {
                    format!("{a} {op} ({b})")
                }
            })
    })
}

fn json_pattern() -> impl Strategy<Value = String> {
    cond(
        (selector(), check())
            .prop_map(|(s, c)| format!("{s} {c}"))
            .boxed(),
    )
    .prop_map(|c| format!("{{ {c} }}"))
}

fn term() -> impl Strategy<Value = String> {
    let body = Union::new(vec![
        "[A-Za-z0-9_:./]{1,8}".boxed(),
        text_value().prop_map(|s| quoted(&s)).boxed(),
        "%[a-z]{1,3}%".boxed(),
    ]);
    (prop::sample::select(vec!["", "?", "-"]), body).prop_map(|(p, b)| format!("{p}{b}"))
}

fn terms_pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(term(), 1..6).prop_map(|t| t.join(" "))
}

fn delimited_pattern() -> impl Strategy<Value = String> {
    let field = Union::new(vec![
        Just("...".to_string()).boxed(),
        "[a-z]{1,3}".boxed(),
        (
            "[a-z]{1,3}",
            check(),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["&&", "||"]),
                    "[a-z]{1,3}",
                    check(),
                ),
                0..3,
            ),
        )
            .prop_map(|(name, c, more)| {
                let mut s = format!("{name} {c}");
                for (op, other, c) in more {
                    s.push_str(&format!(" {op} {other} {c}"));
                }
                s
            })
            .boxed(),
    ]);
    prop::collection::vec(field, 1..6).prop_map(|f| format!("[{}]", f.join(", ")))
}

// ---- a model of space-delimited matching -----------------------------------------------

/// One comparison of the model: `name = value`, `name != value` (exact text) or
/// `name > number`.
#[derive(Debug, Clone)]
enum ModelCmp {
    Eq(&'static str, &'static str),
    Ne(&'static str, &'static str),
    Gt(&'static str, i64),
}

#[derive(Debug, Clone)]
enum ModelField {
    Ellipsis,
    /// A name and its condition: alternatives (`||`) of conjunctions (`&&`), the first
    /// comparison on the field's own name.
    Named(&'static str, Vec<Vec<ModelCmp>>),
}

const NAMES: &[&str] = &["a", "b", "c"];
const WORDS: &[&str] = &["x", "y", "1", "2", "3"];

fn model_cmp(own: Option<&'static str>) -> impl Strategy<Value = ModelCmp> {
    let name = match own {
        Some(n) => Just(n).boxed(),
        None => prop::sample::select(NAMES).boxed(),
    };
    (name, 0..3u8, prop::sample::select(WORDS), 0i64..4).prop_map(|(n, kind, w, k)| match kind {
        0 => ModelCmp::Eq(n, w),
        1 => ModelCmp::Ne(n, w),
        _ => ModelCmp::Gt(n, k),
    })
}

fn model_field() -> impl Strategy<Value = ModelField> {
    Union::new(vec![
        Just(ModelField::Ellipsis).boxed(),
        prop::sample::select(NAMES)
            .prop_flat_map(|name| {
                (
                    Just(name),
                    prop::option::of((
                        model_cmp(Some(name)),
                        prop::collection::vec((any::<bool>(), model_cmp(None)), 0..3),
                    )),
                )
            })
            .prop_map(|(name, cond)| {
                // Fold `first (op cmp)*` into alternatives of conjunctions, as the
                // precedence of && over || reads it.
                let mut alternatives: Vec<Vec<ModelCmp>> = Vec::new();
                if let Some((first, rest)) = cond {
                    alternatives.push(vec![first]);
                    for (and, c) in rest {
                        if and {
                            alternatives.last_mut().unwrap().push(c);
                        } else {
                            alternatives.push(vec![c]);
                        }
                    }
                }
                ModelField::Named(name, alternatives)
            })
            .boxed(),
    ])
}

fn pattern_text(fields: &[ModelField]) -> String {
    let cmp = |c: &ModelCmp| match c {
        ModelCmp::Eq(n, w) => format!("{n} = \"{w}\""),
        ModelCmp::Ne(n, w) => format!("{n} != \"{w}\""),
        ModelCmp::Gt(n, k) => format!("{n} > {k}"),
    };
    let f: Vec<String> = fields
        .iter()
        .map(|f| match f {
            ModelField::Ellipsis => "...".to_string(),
            ModelField::Named(n, alts) if alts.is_empty() => n.to_string(),
            ModelField::Named(_, alts) => alts
                .iter()
                .map(|all| all.iter().map(cmp).collect::<Vec<_>>().join(" && "))
                .collect::<Vec<_>>()
                .join(" || "),
        })
        .collect();
    format!("[{}]", f.join(", "))
}

/// Tries every alignment of the fields with the tokens; a name reads the token of the first
/// field so named, and a comparison on a name no field has is false.
fn model_matches(fields: &[ModelField], tokens: &[&str]) -> bool {
    fn align(
        fields: &[ModelField],
        tokens: &[&str],
        i: usize,
        j: usize,
        at: &mut Vec<Option<usize>>,
    ) -> bool {
        if i == fields.len() {
            return j == tokens.len() && holds(fields, tokens, at);
        }
        match &fields[i] {
            ModelField::Ellipsis => (j..=tokens.len()).any(|k| {
                at.push(None);
                let ok = align(fields, tokens, i + 1, k, at);
                at.pop();
                ok
            }),
            ModelField::Named(..) => {
                if j == tokens.len() {
                    return false;
                }
                at.push(Some(j));
                let ok = align(fields, tokens, i + 1, j + 1, at);
                at.pop();
                ok
            }
        }
    }
    fn holds(fields: &[ModelField], tokens: &[&str], at: &[Option<usize>]) -> bool {
        let value = |name: &str| {
            fields
                .iter()
                .position(|f| matches!(f, ModelField::Named(n, _) if *n == name))
                .and_then(|i| at[i])
                .map(|j| tokens[j])
        };
        let cmp = |c: &ModelCmp| match c {
            ModelCmp::Eq(n, w) => value(n) == Some(*w),
            ModelCmp::Ne(n, w) => value(n).is_some_and(|v| v != *w),
            ModelCmp::Gt(n, k) => value(n)
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > *k as f64),
        };
        fields.iter().all(|f| match f {
            ModelField::Named(_, alts) if !alts.is_empty() => {
                alts.iter().any(|all| all.iter().all(cmp))
            }
            _ => true,
        })
    }
    align(fields, tokens, 0, 0, &mut Vec::new())
}

/// Whether some condition reads two different fields (first fields of two names).
fn reads_two_fields(fields: &[ModelField]) -> bool {
    fields.iter().any(|f| {
        let ModelField::Named(_, alts) = f else {
            return false;
        };
        let mut names: Vec<&str> = alts
            .iter()
            .flatten()
            .map(|c| match c {
                ModelCmp::Eq(n, _) | ModelCmp::Ne(n, _) | ModelCmp::Gt(n, _) => *n,
            })
            .filter(|n| {
                fields
                    .iter()
                    .any(|f| matches!(f, ModelField::Named(m, _) if m == n))
            })
            .collect();
        names.sort();
        names.dedup();
        names.len() > 1
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_text_parses_or_is_refused_and_round_trips(src in soup()) {
        round_trips(&src)?;
    }

    #[test]
    fn any_unicode_text_parses_or_is_refused(src in "(?s).{0,60}") {
        round_trips(&src)?;
    }

    #[test]
    fn json_patterns_print_back_to_themselves(src in json_pattern()) {
        prop_assert!(parse(&src).is_ok(), "{src}: {:?}", parse(&src).err());
        round_trips(&src)?;
    }

    #[test]
    fn terms_print_back_to_themselves(src in terms_pattern()) {
        prop_assert!(parse(&src).is_ok(), "{src}: {:?}", parse(&src).err());
        round_trips(&src)?;
    }

    #[test]
    fn delimited_patterns_print_back_to_themselves(src in delimited_pattern()) {
        // Conditions on two fields with two `...` are refused; everything else parses.
        if let Err(e) = parse(&src) {
            prop_assert!(e.0.contains("compares two fields"), "{src}: {e}");
        }
        round_trips(&src)?;
    }

    #[test]
    fn delimited_matching_agrees_with_trying_every_alignment(
        fields in prop::collection::vec(model_field(), 1..6),
        tokens in prop::collection::vec(prop::sample::select(WORDS), 0..7),
    ) {
        let text = pattern_text(&fields);
        let ellipses = fields.iter().filter(|f| matches!(f, ModelField::Ellipsis)).count();
        match parse(&text) {
            Err(e) => {
                prop_assert!(ellipses > 1 && reads_two_fields(&fields), "{text}: {e}");
            }
            Ok(p) => {
                let message = tokens.join(" ");
                prop_assert_eq!(
                    p.matches(&message),
                    model_matches(&fields, &tokens),
                    "{} on {:?}", text, message
                );
            }
        }
    }

    #[test]
    fn wildcards_agree_with_the_equivalent_regex(
        pieces in prop::collection::vec("[ab]{0,3}", 1..5),
        text in "[ab*]{0,12}",
    ) {
        let glob = pieces.join("*");
        let re = format!(
            "(?s)^{}$",
            pieces.iter().map(|p| regex::escape(p)).collect::<Vec<_>>().join(".*")
        );
        let re = regex::Regex::new(&re).unwrap();
        prop_assert_eq!(glob_match(&glob, &text), re.is_match(&text), "{} on {:?}", glob, text);
    }

    #[test]
    fn a_json_equality_matches_its_own_document(
        key in "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        value in "[^*%]{0,20}",
    ) {
        let doc = serde_json::json!({ key.clone(): value.clone() }).to_string();
        let p = parse(&format!("{{ $.{key} = {} }}", quoted(&value))).unwrap();
        prop_assert!(p.matches(&doc), "{doc}");
        let other = serde_json::json!({ key.clone(): format!("{value}!") }).to_string();
        prop_assert!(!p.matches(&other), "{other}");
    }
}
