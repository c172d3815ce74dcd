//! Policy text → a small located YAML tree.
//!
//! Drives yaml-rust2's event parser and builds [`Node`]s that remember their
//! 1-based line and column. Owns the document-level rules that are about YAML
//! rather than about the policy: syntax errors, a single document, no
//! anchors or aliases (so no alias expansion and no billion-laughs), no
//! duplicate or non-scalar mapping keys, no tags beyond `!!str`, `!!seq` and
//! `!!map`, and a nesting limit. Building is iterative, so deep nesting
//! cannot overflow the stack.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{PathSeg, PolicyError, Pos, render_path};

/// Deepest nesting accepted; a valid policy needs 8 levels.
pub(crate) const MAX_DEPTH: usize = 32;

/// A node of the located tree.
#[derive(Debug)]
pub(crate) struct Node {
    /// Where the node starts (for a block mapping: its first key).
    pub pos: Pos,
    pub kind: Kind,
}

/// What a node holds.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A scalar's text; `null` for a plain `~`, `null` or empty value.
    Scalar {
        text: String,
        null: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
    /// A node already reported as an error (an alias); validation skips it.
    Invalid,
}

/// A mapping entry with a scalar key.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// The tree of the one document (absent when the text is empty or a fatal
/// error stopped parsing) and every problem found on the way.
pub(crate) struct Document {
    pub root: Option<Node>,
    pub errors: Vec<PolicyError>,
}

/// What a mapping frame expects next.
enum Pending {
    /// A key.
    Key,
    /// The value for this key.
    Value(String, Pos),
    /// A value to drop (its key was a duplicate or not a scalar).
    Skip,
}

enum Frame {
    Seq {
        pos: Pos,
        items: Vec<Node>,
    },
    Map {
        pos: Pos,
        entries: Vec<Entry>,
        pending: Pending,
        /// Key index, built once the mapping has more than a few keys.
        seen: Option<HashMap<String, Pos>>,
    },
}

impl Frame {
    /// The path step of the node this collection is waiting for; `None`
    /// while a mapping waits for a key.
    fn child_seg(&self) -> Option<PathSeg<'_>> {
        match self {
            Frame::Seq { items, .. } => Some(PathSeg::Index(items.len())),
            Frame::Map { pending, .. } => match pending {
                Pending::Value(k, _) => Some(PathSeg::Key(k)),
                Pending::Key | Pending::Skip => None,
            },
        }
    }
}

/// Keys are compared linearly below this many entries.
const LINEAR_KEYS: usize = 8;

struct Builder {
    frames: Vec<Frame>,
    root: Option<Node>,
    errors: Vec<PolicyError>,
}

fn pos(mark: &Marker) -> Pos {
    Pos {
        line: mark.line(),
        column: mark.col() + 1,
    }
}

fn tag_name(tag: &Tag) -> String {
    if tag.handle == "tag:yaml.org,2002:" {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn is_core_tag(tag: &Tag, suffix: &str) -> bool {
    (tag.handle == "tag:yaml.org,2002:" || tag.handle == "!!") && tag.suffix == suffix
}

/// Parses `text` (one YAML document) into a located tree.
pub(crate) fn parse(text: &str) -> Document {
    let mut b = Builder {
        frames: Vec::new(),
        root: None,
        errors: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0usize;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(e) => {
                let at = pos(e.marker());
                b.errors.push(PolicyError::new(
                    at,
                    String::new(),
                    format!("invalid YAML: {}", e.info()),
                ));
                return Document {
                    root: None,
                    errors: b.errors,
                };
            }
        };
        let at = pos(&mark);
        match event {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => {}
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    b.error_here(
                        at,
                        "multiple YAML documents are not supported; put every rule in one document",
                    );
                    break;
                }
            }
            Event::Alias(_) => {
                b.error_child(at, "YAML aliases are not supported; write the value out");
                b.add(Node {
                    pos: at,
                    kind: Kind::Invalid,
                });
            }
            Event::Scalar(text, style, anchor, tag) => {
                b.check_anchor(at, anchor);
                let mut null = false;
                match &tag {
                    Some(t) if !is_core_tag(t, "str") => b.unsupported_tag(at, t),
                    Some(_) => {}
                    None => {
                        null = style == TScalarStyle::Plain
                            && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL");
                    }
                }
                b.add(Node {
                    pos: at,
                    kind: Kind::Scalar { text, null },
                });
            }
            Event::SequenceStart(anchor, tag) => {
                b.check_anchor(at, anchor);
                if let Some(t) = tag.as_ref().filter(|t| !is_core_tag(t, "seq")) {
                    b.unsupported_tag(at, t);
                }
                if !b.push(at, false) {
                    break;
                }
            }
            Event::MappingStart(anchor, tag) => {
                b.check_anchor(at, anchor);
                if let Some(t) = tag.as_ref().filter(|t| !is_core_tag(t, "map")) {
                    b.unsupported_tag(at, t);
                }
                if !b.push(at, true) {
                    break;
                }
            }
            Event::SequenceEnd | Event::MappingEnd => b.pop(),
        }
    }
    if b.root.is_none() && b.errors.is_empty() {
        b.errors.push(PolicyError::new(
            Pos::START,
            String::new(),
            "policy is empty; expected a mapping with a \"rules\" list",
        ));
    }
    Document {
        root: b.root,
        errors: b.errors,
    }
}

impl Builder {
    /// The path of the innermost open collection: each open collection's
    /// step towards the next one (its pending key, or its next index). Only
    /// errors need it, so it is worked out then rather than kept.
    fn segs(&self) -> impl Iterator<Item = PathSeg<'_>> {
        let open = self.frames.len().saturating_sub(1);
        self.frames[..open].iter().filter_map(Frame::child_seg)
    }

    /// Path of the innermost open collection.
    fn path(&self) -> String {
        render_path(self.segs())
    }

    /// Path step of the next node added to the top frame; `None` for a
    /// mapping key or the root.
    fn child_seg(&self) -> Option<PathSeg<'_>> {
        self.frames.last()?.child_seg()
    }

    fn error_here(&mut self, at: Pos, message: &str) {
        let path = self.path();
        self.errors.push(PolicyError::new(at, path, message));
    }

    /// Reports an error about the node about to be added.
    fn error_child(&mut self, at: Pos, message: &str) {
        let path = render_path(self.segs().chain(self.child_seg()));
        self.errors.push(PolicyError::new(at, path, message));
    }

    fn check_anchor(&mut self, at: Pos, anchor: usize) {
        if anchor != 0 {
            self.error_child(at, "YAML anchors are not supported; write the value out");
        }
    }

    fn unsupported_tag(&mut self, at: Pos, tag: &Tag) {
        let msg = format!("YAML tag {:?} is not supported", tag_name(tag));
        self.error_child(at, &msg);
    }

    /// Opens a collection; false (after reporting) when nesting is too deep.
    fn push(&mut self, at: Pos, map: bool) -> bool {
        if self.frames.len() >= MAX_DEPTH {
            let msg = format!("nesting is deeper than {MAX_DEPTH} levels");
            self.error_child(at, &msg);
            self.root = None;
            return false;
        }
        self.frames.push(if map {
            Frame::Map {
                pos: at,
                entries: Vec::new(),
                pending: Pending::Key,
                seen: None,
            }
        } else {
            Frame::Seq {
                pos: at,
                items: Vec::new(),
            }
        });
        true
    }

    /// Closes the innermost collection.
    fn pop(&mut self) {
        let node = match self.frames.pop() {
            Some(Frame::Seq { pos, items, .. }) => Node {
                pos,
                kind: Kind::Seq(items),
            },
            Some(Frame::Map { pos, entries, .. }) => Node {
                pos,
                kind: Kind::Map(entries),
            },
            None => return,
        };
        self.add(node);
    }

    /// Attaches a finished node to the innermost collection (or makes it the root).
    fn add(&mut self, node: Node) {
        let Some(top) = self.frames.last_mut() else {
            self.root = Some(node);
            return;
        };
        match top {
            Frame::Seq { items, .. } => items.push(node),
            Frame::Map {
                pos,
                entries,
                pending,
                seen,
                ..
            } => match std::mem::replace(pending, Pending::Key) {
                Pending::Value(key, key_pos) => {
                    let mut value = node;
                    // An empty value is marked where the next token starts,
                    // often on a later line; its key is the better place.
                    if matches!(&value.kind, Kind::Scalar { text, null: true } if text.is_empty()) {
                        value.pos = key_pos;
                    }
                    entries.push(Entry {
                        key,
                        key_pos,
                        value,
                    });
                }
                Pending::Skip => {}
                Pending::Key => {
                    // A block mapping's start mark is at the first ':', so the
                    // first key gives the better position.
                    if node.pos < *pos {
                        *pos = node.pos;
                    }
                    match node.kind {
                        Kind::Scalar { text, .. } => {
                            let first = match seen {
                                Some(map) => map.get(&text).copied(),
                                None => entries.iter().find(|e| e.key == text).map(|e| e.key_pos),
                            };
                            if let Some(first) = first {
                                *pending = Pending::Skip;
                                let msg = format!(
                                    "duplicate key {text:?} (first at line {})",
                                    first.line
                                );
                                self.error_here(node.pos, &msg);
                            } else {
                                if let Some(map) = seen.as_mut() {
                                    map.insert(text.clone(), node.pos);
                                } else if entries.len() + 1 >= LINEAR_KEYS {
                                    let mut map: HashMap<String, Pos> = entries
                                        .iter()
                                        .map(|e| (e.key.clone(), e.key_pos))
                                        .collect();
                                    map.insert(text.clone(), node.pos);
                                    *seen = Some(map);
                                }
                                *pending = Pending::Value(text, node.pos);
                            }
                        }
                        Kind::Invalid => *pending = Pending::Skip,
                        Kind::Seq(_) | Kind::Map(_) => {
                            *pending = Pending::Skip;
                            self.error_here(node.pos, "mapping keys must be strings");
                        }
                    }
                }
            },
        }
    }
}
