//! Drain (He, Zhu, Zheng, Lyu: "Drain: An Online Log Parsing Approach with Fixed Depth
//! Tree", ICWS 2017), as Drain3 implements it, over message shapes (`shape.rs`):
//!
//! - a fixed-depth tree routes a shape by its number of tokens, then by its first
//!   `depth - 3` tokens, never its last (a token holding a digit or a masked value, or one
//!   that would give a node more than `max_children` children, goes down the `<*>` branch);
//! - the leaf holds clusters; a shape joins the cluster whose template it resembles most —
//!   the share of positions where the template's token is literal and equal — if that share
//!   is at least `similarity` (ties: the template with more variable positions), else it
//!   starts a cluster;
//! - joining makes every position where the shape differs from the template variable.
//!
//! One refinement: a variable position keeps the prefix and suffix its values share up to a
//! punctuation mark (`status=<*>`, `<*>.example.com`), where Drain would make the whole
//! token variable.
//!
//! Drain's result depends on the order it sees messages in; [`cluster`] is given the shapes
//! in one canonical order (sorted by key), so the same data always gives the same patterns,
//! whatever order the store's segments were read in.
//!
//! Bounds: at most `max_clusters` clusters and `max_leaf_clusters` per leaf; past either, a
//! shape that matches nothing joins the most similar cluster of its leaf (whatever the
//! similarity), or, in a leaf without clusters, [`Clusters::overflow`].

use std::collections::HashMap;

use super::shape::{GLUE, KeyToken, PLACEHOLDER, read_key};

/// The tree branch of variable tokens (no key token can be this: a placeholder is always
/// followed by a type letter).
const WILD_BRANCH: &str = "\u{1}*";

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Levels of the tree, root, length level and leaves included: `depth - 3` tokens route
    /// a shape.
    pub depth: usize,
    /// Least share of equal tokens for a shape to join a cluster.
    pub similarity: f64,
    pub max_children: usize,
    pub max_clusters: usize,
    pub max_leaf_clusters: usize,
}

/// One position of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    /// The same token in every member.
    Lit(&'a str),
    /// Tokens that differ; every member's token starts with `prefix` and ends with `suffix`
    /// (not overlapping).
    Wild { prefix: &'a str, suffix: &'a str },
}

#[derive(Debug, Clone)]
pub struct Cluster<'a> {
    pub template: Vec<Slot<'a>>,
    /// Whether each token follows the previous one without whitespace (as in the first
    /// member).
    pub glued: Vec<bool>,
    /// Indexes of the member shapes, ascending.
    pub members: Vec<usize>,
}

#[derive(Debug, Default)]
pub struct Clusters<'a> {
    pub clusters: Vec<Cluster<'a>>,
    /// Shapes that found no cluster once the caps were reached.
    pub overflow: Vec<usize>,
}

#[derive(Debug, Default)]
struct Node<'a> {
    children: HashMap<&'a str, usize>,
    clusters: Vec<usize>,
}

struct Tree<'a> {
    params: Params,
    nodes: Vec<Node<'a>>,
    /// First level: the node of each token count.
    by_length: HashMap<usize, usize>,
}

fn is_variable(token: &str) -> bool {
    token.bytes().any(|b| b.is_ascii_digit()) || token.contains(PLACEHOLDER)
}

impl<'a> Tree<'a> {
    fn new(params: Params) -> Self {
        Tree {
            params,
            nodes: Vec::new(),
            by_length: HashMap::new(),
        }
    }

    fn node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    /// Token levels below the length level: `depth - 3` (the root, the length level and the
    /// leaves are the other three), never a shape's last token.
    fn token_levels(&self, len: usize) -> usize {
        self.params
            .depth
            .saturating_sub(3)
            .min(len.saturating_sub(1))
    }

    /// The leaf a shape would be looked up in, if its path exists.
    fn search(&self, tokens: &[KeyToken<'a>]) -> Option<usize> {
        let mut at = *self.by_length.get(&tokens.len())?;
        for t in &tokens[..self.token_levels(tokens.len())] {
            let children = &self.nodes[at].children;
            at = match children.get(t.text).or_else(|| children.get(WILD_BRANCH)) {
                Some(&c) => c,
                None => return None,
            };
        }
        Some(at)
    }

    /// The leaf of a shape, its path made where missing (Drain3's `add_seq_to_prefix_tree`).
    fn leaf(&mut self, tokens: &[KeyToken<'a>]) -> usize {
        let len = tokens.len();
        let mut at = match self.by_length.get(&len) {
            Some(&n) => n,
            None => {
                let n = self.node();
                self.by_length.insert(len, n);
                n
            }
        };
        for t in &tokens[..self.token_levels(len)] {
            let max = self.params.max_children;
            let node = &self.nodes[at];
            let key = if node.children.contains_key(t.text) {
                t.text
            } else if is_variable(t.text) {
                WILD_BRANCH
            } else {
                let has_wild = node.children.contains_key(WILD_BRANCH);
                let n = node.children.len();
                if (has_wild && n < max) || (!has_wild && n + 1 < max) {
                    t.text
                } else {
                    WILD_BRANCH
                }
            };
            at = match self.nodes[at].children.get(key) {
                Some(&c) => c,
                None => {
                    let c = self.node();
                    self.nodes[at].children.insert(key, c);
                    c
                }
            };
        }
        at
    }
}

/// (share of literal positions equal to the shape, variable positions).
fn similarity(template: &[Slot<'_>], tokens: &[KeyToken<'_>]) -> (f64, usize) {
    if template.is_empty() {
        return (1.0, 0);
    }
    let mut same = 0;
    let mut wild = 0;
    for (slot, t) in template.iter().zip(tokens) {
        match slot {
            Slot::Wild { .. } => wild += 1,
            Slot::Lit(s) if *s == t.text => same += 1,
            Slot::Lit(_) => {}
        }
    }
    (same as f64 / template.len() as f64, wild)
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_punctuation()
}

/// The longest common prefix of `a` and `b` that ends with a punctuation mark (or is empty).
fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let cut = a.as_bytes()[..n]
        .iter()
        .rposition(|&c| is_delimiter(c))
        .map_or(0, |i| i + 1);
    &a[..cut]
}

/// The longest common suffix of `a` and `b` that starts with a punctuation mark (or is
/// empty).
fn common_suffix<'a>(a: &'a str, b: &str) -> &'a str {
    let n = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let tail = &a.as_bytes()[a.len() - n..];
    let cut = tail
        .iter()
        .position(|&c| is_delimiter(c))
        .map_or(a.len(), |i| a.len() - n + i);
    &a[cut..]
}

/// A template position after a member with `token` joins.
fn merge<'a>(slot: Slot<'a>, token: &'a str) -> Slot<'a> {
    let (prefix, suffix, shortest) = match slot {
        Slot::Lit(s) if s == token => return slot,
        Slot::Lit(s) => (
            common_prefix(s, token),
            common_suffix(s, token),
            s.len().min(token.len()),
        ),
        Slot::Wild { prefix, suffix } => {
            if token.len() >= prefix.len() + suffix.len()
                && token.starts_with(prefix)
                && token.ends_with(suffix)
            {
                return slot;
            }
            (
                common_prefix(prefix, token),
                common_suffix(suffix, token),
                token.len(),
            )
        }
    };
    let suffix = if prefix.len() + suffix.len() > shortest {
        ""
    } else {
        suffix
    };
    Slot::Wild { prefix, suffix }
}

/// The part of a member's token a variable position stands for.
pub fn variable_part<'a>(slot: &Slot<'_>, token: &'a str) -> &'a str {
    match slot {
        Slot::Lit(_) => token,
        Slot::Wild { prefix, suffix } => token
            .strip_prefix(prefix)
            .and_then(|t| t.strip_suffix(suffix))
            .unwrap_or(token),
    }
}

/// Clusters the shapes of `keys`, taken in the order given. Member `i` of a cluster is
/// `keys[i]`; the templates borrow from the keys.
pub fn cluster<'a>(keys: &[&'a str], params: Params) -> Clusters<'a> {
    let mut tree = Tree::new(params);
    let mut out = Clusters::default();
    for (index, key) in keys.iter().enumerate() {
        let tokens = &read_key(key).1;
        let leaf = tree.search(tokens);
        let candidates: &[usize] = leaf.map_or(&[], |l| &tree.nodes[l].clusters);
        let mut best: Option<(usize, f64, usize)> = None;
        for &c in candidates {
            let (sim, wild) = similarity(&out.clusters[c].template, tokens);
            if best.is_none_or(|(_, s, w)| sim > s || (sim == s && wild > w)) {
                best = Some((c, sim, wild));
            }
        }
        let full = out.clusters.len() >= params.max_clusters
            || candidates.len() >= params.max_leaf_clusters;
        let chosen = match best {
            Some((c, sim, _)) if sim >= params.similarity || full => Some(c),
            _ if full && out.clusters.len() >= params.max_clusters => None,
            _ => {
                let leaf = tree.leaf(tokens);
                let c = out.clusters.len();
                out.clusters.push(Cluster {
                    template: tokens.iter().map(|t| Slot::Lit(t.text)).collect(),
                    glued: tokens.iter().map(|t| t.glued).collect(),
                    members: Vec::new(),
                });
                tree.nodes[leaf].clusters.push(c);
                Some(c)
            }
        };
        match chosen {
            Some(c) => {
                let cl = &mut out.clusters[c];
                for (slot, t) in cl.template.iter_mut().zip(tokens) {
                    *slot = merge(*slot, t.text);
                }
                cl.members.push(index);
            }
            None => out.overflow.push(index),
        }
    }
    out
}

/// A template as text: `<*>` for each variable part and masked value.
pub fn render(template: &[Slot<'_>], glued: &[bool]) -> String {
    let mut out = String::new();
    for (i, slot) in template.iter().enumerate() {
        if i > 0 && !glued.get(i).copied().unwrap_or(false) {
            out.push(' ');
        }
        match slot {
            Slot::Lit(s) => super::shape::render(s, &mut out),
            Slot::Wild { prefix, suffix } => {
                super::shape::render(prefix, &mut out);
                out.push_str("<*>");
                super::shape::render(suffix, &mut out);
            }
        }
    }
    debug_assert!(!out.contains(GLUE));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::shape::Masker;

    const PARAMS: Params = Params {
        depth: 4,
        similarity: 0.5,
        max_children: 100,
        max_clusters: 1000,
        max_leaf_clusters: 100,
    };

    fn patterns(lines: &[&str], params: Params) -> Vec<(String, Vec<usize>)> {
        let m = Masker::new();
        let keys: Vec<String> = lines.iter().map(|l| m.key(l)).collect();
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let out = cluster(&keys, params);
        let mut v: Vec<(String, Vec<usize>)> = out
            .clusters
            .iter()
            .map(|c| (render(&c.template, &c.glued), c.members.clone()))
            .collect();
        if !out.overflow.is_empty() {
            v.push(("<overflow>".into(), out.overflow));
        }
        v
    }

    #[test]
    fn varying_words_become_variable() {
        let got = patterns(
            &[
                "user alice logged in from 10.0.0.1",
                "user bob logged in from 10.0.0.2",
                "user carol logged out",
                "status=200 path=/a",
                "status=500 path=/b",
            ],
            PARAMS,
        );
        assert_eq!(
            got,
            [
                ("user <*> logged in from <*>".to_string(), vec![0, 1]),
                ("user carol logged out".to_string(), vec![2]),
                ("status=<*> path=/<*>".to_string(), vec![3, 4]),
            ]
        );
    }

    #[test]
    fn prefixes_and_suffixes_stop_at_punctuation() {
        assert_eq!(common_prefix("user=alice", "user=alfred"), "user=");
        assert_eq!(common_prefix("abc", "abd"), "");
        assert_eq!(
            common_suffix("db.example.com", "web.example.com"),
            ".example.com"
        );
        assert_eq!(common_suffix("12ms", "3s"), "");
        assert_eq!(
            merge(Slot::Lit("id=1,"), "id=,"),
            Slot::Wild {
                prefix: "id=",
                suffix: ","
            }
        );
        assert_eq!(
            merge(Slot::Lit("a.x.b"), "a.yy.b"),
            Slot::Wild {
                prefix: "a.",
                suffix: ".b"
            }
        );
        // Overlap: "a." and ".b" would overlap in "a.b"; the suffix goes.
        assert_eq!(
            merge(Slot::Lit("a.b"), "a.b.b"),
            Slot::Wild {
                prefix: "a.",
                suffix: ""
            }
        );
        assert_eq!(
            merge(Slot::Lit("a."), "a.b."),
            Slot::Wild {
                prefix: "a.",
                suffix: ""
            }
        );
        let w = merge(Slot::Lit("k=v1"), "k=v2");
        assert_eq!(variable_part(&w, "k=v1"), "v1");
        assert_eq!(merge(w, "k=v3"), w);
        assert_eq!(
            merge(w, "x"),
            Slot::Wild {
                prefix: "",
                suffix: ""
            }
        );
    }

    #[test]
    fn caps_bound_the_clusters() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("w{} x{} y{}", letters(i), letters(i + 1), letters(i + 2)))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let params = Params {
            max_clusters: 10,
            max_leaf_clusters: 4,
            ..PARAMS
        };
        let got = patterns(&refs, params);
        let clusters = got.iter().filter(|(p, _)| p != "<overflow>").count();
        assert!(clusters <= 10, "{got:?}");
        let members: usize = got.iter().map(|(_, m)| m.len()).sum();
        assert_eq!(members, 50, "every shape is counted once");
    }

    fn letters(mut i: usize) -> String {
        let mut s = String::new();
        for _ in 0..3 {
            s.push((b'a' + (i % 26) as u8) as char);
            i /= 26;
        }
        s
    }
}
