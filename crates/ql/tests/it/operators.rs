//! Operators of reference §5.4: each one, precedence and associativity, literals and field
//! references. Shapes are written out by hand in prefix form (see `support::sexpr`).

use crate::support::{filter_expr, parse_err, shape};

#[test]
fn arithmetic_precedence_and_associativity() {
    let cases = [
        ("a + b * c", "(+ a (* b c))"),
        ("a * b + c", "(+ (* a b) c)"),
        ("a - b - c", "(- (- a b) c)"),
        ("a - (b - c)", "(- a (- b c))"),
        ("a / b / c", "(/ (/ a b) c)"),
        ("a % b * c", "(* (% a b) c)"),
        ("a + b % c", "(+ a (% b c))"),
        ("2 ^ 3 ^ 2", "(^ 2 (^ 3 2))"),
        ("a * b ^ c", "(* a (^ b c))"),
        ("-a ^ 2", "(neg (^ a 2))"),
        ("(-a) ^ 2", "(^ (neg a) 2)"),
        ("2 ^ -1", "(^ 2 (neg 1))"),
        ("-a * b", "(* (neg a) b)"),
        ("a - -b", "(- a (neg b))"),
        ("- -a", "(neg (neg a))"),
        ("(a + b) * c", "(* (+ a b) c)"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn comparison_and_boolean_precedence() {
    let cases = [
        ("a = 1", "(= a 1)"),
        ("a != 1", "(!= a 1)"),
        ("a < 1", "(< a 1)"),
        ("a <= 1", "(<= a 1)"),
        ("a > 1", "(> a 1)"),
        ("a >= 1", "(>= a 1)"),
        ("a + 1 > b * 2", "(> (+ a 1) (* b 2))"),
        (
            "a = 1 or b = 2 and c = 3",
            "(or (= a 1) (and (= b 2) (= c 3)))",
        ),
        (
            "(a = 1 or b = 2) and c = 3",
            "(and (or (= a 1) (= b 2)) (= c 3))",
        ),
        ("a or b or c", "(or (or a b) c)"),
        ("not a = 1", "(not (= a 1))"),
        ("not a and b", "(and (not a) b)"),
        ("not not a", "(not (not a))"),
        ("a and not b or c", "(or (and a (not b)) c)"),
        ("NOT a AND b OR c", "(or (and (not a) b) c)"),
        ("(a = b) = c", "(= (= a b) c)"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn membership_and_matching() {
    let cases = [
        ("a in [1, \"x\", 2.5]", "(in a [1 \"x\" 2.5])"),
        ("a not in [1]", "(not-in a [1])"),
        ("not a in [1]", "(not (in a [1]))"),
        ("a + 1 in [2, 3]", "(in (+ a 1) [2 3])"),
        ("f1 like \"Exception\"", "(like f1 \"Exception\")"),
        ("f1 like 'Exception'", "(like f1 \"Exception\")"),
        ("f1 like /Exception/", "(like f1 /Exception/)"),
        (
            "@message not like /Exception/",
            "(not-like @message /Exception/)",
        ),
        ("f1 =~ /^(?i)Exception$/", "(=~ f1 /^(?i)Exception$/)"),
        ("f1 =~ \"sub\"", "(=~ f1 \"sub\")"),
        ("statusCode like /2\\d\\d/", "(like statusCode /2\\d\\d/)"),
        ("a like /x\\/y/ and b = 1", "(and (like a /x\\/y/) (= b 1))"),
        ("a / b like /c/", "(like (/ a b) /c/)"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn literals_and_field_references() {
    let cases = [
        ("x = 42", "(= x 42)"),
        ("x = 1.5", "(= x 1.5)"),
        ("x = 2e3", "(= x 2000.0)"),
        ("x = 99999999999999999999", "(= x 1e20)"),
        ("x = 'it\\'s'", "(= x \"it's\")"),
        ("x = \"tab\\there\"", "(= x \"tab\\there\")"),
        ("x = true or y = FALSE", "(or (= x true) (= y false))"),
        ("@timestamp > 5m", "(> @timestamp 5m)"),
        (
            "d = 100ms or d = 30s or d = 1h or d = 1d or d = 2w",
            "(or (or (or (or (= d 100ms) (= d 30s)) (= d 1h)) (= d 1d)) (= d 2w))",
        ),
        ("kubernetes.pod_name = 'p'", "(= kubernetes.pod_name \"p\")"),
        ("a.0.b = 1", "(= a.0.b 1)"),
        ("`foo-bar` = 1", "(= `foo-bar` 1)"),
        ("foo-bar = 1", "(= (- foo bar) 1)"),
        ("kubernetes.`odd.key` = 1", "(= kubernetes.`odd.key` 1)"),
        ("x[0] = 1", "(= (index x 0) 1)"),
        ("x[0][i + 1] = 1", "(= (index (index x 0) (+ i 1)) 1)"),
        ("@@field = 1", "(= @@field 1)"),
        ("`desc` = 1", "(= `desc` 1)"),
    ];
    for (src, want) in cases {
        assert_eq!(shape(src), want, "{src}");
    }
}

#[test]
fn system_fields_are_plain_field_references() {
    for f in kinsight_ql::system_fields::ALL {
        let e = filter_expr(&format!("ispresent({f})"));
        assert_eq!(crate::support::sexpr(&e), format!("(ispresent {f})"));
        assert!(e.field_refs()[0].is_system());
    }
}

#[test]
fn chained_comparisons_are_refused() {
    let e = parse_err("filter a < b < c");
    assert_eq!((e.line, e.column), (1, 14));
    assert!(e.message.contains("cannot be chained"), "{}", e.message);
}

#[test]
fn operator_tree_snapshot() {
    insta::assert_yaml_snapshot!(filter_expr(
        "not (a + -b * c ^ 2 >= 10 % 3) and x.y[0] not in [1, 'a'] or m like /(?i)err/"
    ));
}
