//! Joining application stack traces into one event (reference §3.4, complaint #9), opt-in per
//! namespace/pod/container (config `kinsight.logs.multiline`) or pod annotation
//! `kinsight.io/multiline: java|python|go|node|auto`.
//!
//! Runs after CRI/Docker partial joining, on whole lines of one container file (one stream at a
//! time: a stderr line never continues a stdout record). A record is held until a line that
//! does not continue it arrives or `flush_after` passes with nothing new.

/// Stack trace dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Java,
    Python,
    Go,
    Node,
    /// Any of the above.
    Auto,
}

impl Language {
    pub fn parse(s: &str) -> Option<Language> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "java" => Language::Java,
            "python" => Language::Python,
            "go" | "golang" => Language::Go,
            "node" | "nodejs" | "javascript" => Language::Node,
            "auto" | "true" => Language::Auto,
            _ => return None,
        })
    }
}

/// A record being assembled; `M` is what the caller keeps of its first line.
#[derive(Debug)]
pub struct Pending<M> {
    pub meta: M,
    pub text: String,
    pub lines: usize,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Plain,
    /// Inside a Python traceback; `closed` once the exception line arrived.
    Python {
        closed: bool,
    },
    GoPanic,
}

fn indented(l: &str) -> bool {
    l.starts_with([' ', '\t'])
}

fn java_cont(l: &str) -> bool {
    let t = l.trim_start();
    (indented(l) && (t.starts_with("at ") || t.starts_with("... ")))
        || t.starts_with("Caused by: ")
        || (indented(l) && t.starts_with("Suppressed: "))
}

fn node_cont(l: &str) -> bool {
    indented(l) && l.trim_start().starts_with("at ")
}

fn go_frame(l: &str) -> bool {
    // `main.main()`, `main.(*T).f(0x1, 0x2)`, `created by main.init in goroutine 1`
    l.starts_with("goroutine ")
        || l.starts_with("created by ")
        || l.starts_with("[signal ")
        || (l.ends_with(')') && l.find('(').is_some_and(|i| i > 0 && !l[..i].contains(' ')))
}

fn starts_state(lang: Language, l: &str) -> State {
    let py = matches!(lang, Language::Python | Language::Auto);
    let go = matches!(lang, Language::Go | Language::Auto);
    if py && l.starts_with("Traceback (most recent call last):") {
        State::Python { closed: false }
    } else if go
        && (l.starts_with("panic: ")
            || l.starts_with("fatal error: ")
            || l.starts_with("goroutine "))
    {
        State::GoPanic
    } else {
        State::Plain
    }
}

/// Whether `l` continues a record in `state`; may move the state on.
fn continues(lang: Language, state: &mut State, l: &str) -> bool {
    match *state {
        State::Python { closed: false } => {
            if indented(l) {
                return true;
            }
            // The exception line (`ValueError: bad`) ends the traceback.
            *state = State::Python { closed: true };
            true
        }
        State::Python { closed: true } => false,
        State::GoPanic => l.is_empty() || indented(l) || go_frame(l),
        State::Plain => match lang {
            Language::Java => java_cont(l),
            Language::Node => node_cont(l),
            Language::Python => false,
            Language::Go => false,
            Language::Auto => java_cont(l) || node_cont(l),
        },
    }
}

/// Assembles records of one file.
#[derive(Debug)]
pub struct Joiner<M> {
    lang: Language,
    max_bytes: usize,
    pending: Option<Pending<M>>,
}

impl<M> Joiner<M> {
    pub fn new(lang: Language, max_bytes: usize) -> Joiner<M> {
        Joiner {
            lang,
            max_bytes,
            pending: None,
        }
    }

    pub fn pending(&self) -> Option<&Pending<M>> {
        self.pending.as_ref()
    }

    /// Adds a line. Returns the previous record when this line starts a new one.
    pub fn push(&mut self, meta: M, line: &str) -> Option<Pending<M>> {
        if let Some(p) = self.pending.as_mut()
            && p.text.len() + line.len() < self.max_bytes
            && continues(self.lang, &mut p.state, line)
        {
            p.text.push('\n');
            p.text.push_str(line);
            p.lines += 1;
            return None;
        }
        let prev = self.pending.take();
        // A Python state that started on this very line is not "continued" by it.
        self.pending = Some(Pending {
            meta,
            text: line.to_string(),
            lines: 1,
            state: starts_state(self.lang, line),
        });
        prev
    }

    /// Takes the record being assembled.
    pub fn take(&mut self) -> Option<Pending<M>> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(lang: Language, text: &str) -> Vec<String> {
        let mut j = Joiner::new(lang, 1 << 20);
        let mut out = Vec::new();
        for l in text.lines() {
            if let Some(p) = j.push((), l) {
                out.push(p.text);
            }
        }
        out.extend(j.take().map(|p| p.text));
        out
    }

    const JAVA: &str = "12:00:00 INFO starting\nException in thread \"main\" java.lang.IllegalStateException: boom\n\tat com.example.App.run(App.java:42)\n\tat com.example.App.main(App.java:10)\nCaused by: java.io.IOException: disk\n\tat com.example.Io.read(Io.java:7)\n\t... 2 more\n12:00:01 INFO next";

    #[test]
    fn java_stack_trace_is_one_record() {
        let r = join(Language::Java, JAVA);
        assert_eq!(r.len(), 3, "{r:#?}");
        assert!(r[1].starts_with("Exception in thread") && r[1].ends_with("... 2 more"));
        assert_eq!(r[1].lines().count(), 6);
    }

    #[test]
    fn python_traceback_ends_at_the_exception_line() {
        let t = "before\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\n  File \"app.py\", line 2, in main\n    raise ValueError(\"bad\")\nValueError: bad\nafter";
        let r = join(Language::Python, t);
        assert_eq!(r.len(), 3, "{r:#?}");
        assert!(r[1].ends_with("ValueError: bad"));
        assert_eq!(r[2], "after");
    }

    #[test]
    fn go_panic_and_node_error() {
        let g = "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:8 +0x1d\nexit after";
        let r = join(Language::Go, g);
        assert_eq!(r.len(), 2, "{r:#?}");
        assert!(r[0].contains("main.go:8"));
        let n = "TypeError: x is not a function\n    at Object.<anonymous> (/app/index.js:3:1)\n    at node:internal/main:1:1\nok";
        assert_eq!(join(Language::Node, n).len(), 2);
        assert_eq!(join(Language::Auto, JAVA).len(), 3);
    }

    #[test]
    fn size_cap_starts_a_new_record() {
        let mut j = Joiner::new(Language::Java, 20);
        assert!(j.push(1, "Exception: x").is_none());
        assert!(j.push(2, "\tat a.b(C.java:1)").is_some());
    }

    proptest! {
        #[test]
        fn no_line_is_lost(lines in proptest::collection::vec("[ \\tA-Za-z:.()]{0,30}", 0..40), lang in 0usize..5) {
            let lang = [Language::Java, Language::Python, Language::Go, Language::Node, Language::Auto][lang];
            let mut j = Joiner::new(lang, 200);
            let mut out = Vec::new();
            for l in &lines {
                if let Some(p) = j.push((), l) { out.push(p.text); }
            }
            out.extend(j.take().map(|p| p.text));
            let rejoined: Vec<String> = out.iter().flat_map(|r| r.split('\n').map(str::to_string)).collect();
            prop_assert_eq!(rejoined, lines);
        }
    }
}
