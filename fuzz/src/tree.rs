//! A JSON document as the mutator sees it: objects are lists of (key, value) so a key can be
//! duplicated, and a leaf can be raw text (an extreme number, an invalid literal, a lone
//! surrogate escape) that `serde_json::Value` could not hold.

use serde_json::Value;

/// One JSON node.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    /// Raw text emitted verbatim: a number as written, or anything else.
    Raw(String),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    pub fn from_value(v: &Value) -> J {
        match v {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => J::Raw(n.to_string()),
            Value::String(s) => J::Str(s.clone()),
            Value::Array(a) => J::Arr(a.iter().map(J::from_value).collect()),
            Value::Object(o) => J::Obj(
                o.iter()
                    .map(|(k, v)| (k.clone(), J::from_value(v)))
                    .collect(),
            ),
        }
    }

    /// The number of nodes, this one included.
    pub fn count(&self) -> usize {
        1 + match self {
            J::Arr(a) => a.iter().map(J::count).sum(),
            J::Obj(o) => o.iter().map(|(_, v)| v.count()).sum(),
            _ => 0,
        }
    }

    /// The `n`-th node in depth-first order (0 is this one).
    pub fn nth_mut(&mut self, n: usize) -> Option<&mut J> {
        let mut left = n;
        self.walk_mut(&mut left)
    }

    fn walk_mut(&mut self, left: &mut usize) -> Option<&mut J> {
        if *left == 0 {
            return Some(self);
        }
        *left -= 1;
        match self {
            J::Arr(a) => {
                for c in a.iter_mut() {
                    let size = c.count();
                    if *left < size {
                        return c.walk_mut(left);
                    }
                    *left -= size;
                }
                None
            }
            J::Obj(o) => {
                for (_, c) in o.iter_mut() {
                    let size = c.count();
                    if *left < size {
                        return c.walk_mut(left);
                    }
                    *left -= size;
                }
                None
            }
            _ => None,
        }
    }

    /// The `n`-th node, read only.
    pub fn nth(&self, n: usize) -> Option<&J> {
        let mut left = n;
        self.walk(&mut left)
    }

    fn walk(&self, left: &mut usize) -> Option<&J> {
        if *left == 0 {
            return Some(self);
        }
        *left -= 1;
        let children: Box<dyn Iterator<Item = &J>> = match self {
            J::Arr(a) => Box::new(a.iter()),
            J::Obj(o) => Box::new(o.iter().map(|(_, v)| v)),
            _ => return None,
        };
        for c in children {
            let size = c.count();
            if *left < size {
                return c.walk(left);
            }
            *left -= size;
        }
        None
    }

    /// Every key and every string of the document (the dictionary mutations draw from).
    pub fn words(&self, keys: &mut Vec<String>, strings: &mut Vec<String>) {
        match self {
            J::Str(s) => strings.push(s.clone()),
            J::Arr(a) => a.iter().for_each(|c| c.words(keys, strings)),
            J::Obj(o) => {
                for (k, v) in o {
                    keys.push(k.clone());
                    v.words(keys, strings);
                }
            }
            _ => {}
        }
    }

    /// JSON text; `pretty` adds line breaks and indentation (so line-level mutation has lines).
    pub fn emit(&self, out: &mut String, pretty: bool, depth: usize) {
        let nl = |out: &mut String, d: usize| {
            if pretty {
                out.push('\n');
                for _ in 0..d.min(64) {
                    out.push_str("  ");
                }
            }
        };
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Raw(r) => out.push_str(r),
            J::Str(s) => escape(s, out),
            J::Arr(a) => {
                out.push('[');
                for (i, c) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    c.emit(out, pretty, depth + 1);
                }
                if !a.is_empty() {
                    nl(out, depth);
                }
                out.push(']');
            }
            J::Obj(o) => {
                out.push('{');
                for (i, (k, v)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    nl(out, depth + 1);
                    escape(k, out);
                    out.push(':');
                    if pretty {
                        out.push(' ');
                    }
                    v.emit(out, pretty, depth + 1);
                }
                if !o.is_empty() {
                    nl(out, depth);
                }
                out.push('}');
            }
        }
    }

    pub fn to_text(&self, pretty: bool) -> String {
        let mut out = String::new();
        self.emit(&mut out, pretty, 0);
        out
    }
}

/// A JSON string literal.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_what_it_read_and_indexes_every_node() {
        let v: Value =
            serde_json::from_str(r#"{"a":[1,"x\n\u0001",{"b":null}],"c":true}"#).unwrap();
        let j = J::from_value(&v);
        for pretty in [false, true] {
            let back: Value = serde_json::from_str(&j.to_text(pretty)).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(j.count(), 7);
        assert!(j.nth(6).is_some());
        assert!(j.nth(7).is_none());
        let mut m = j.clone();
        *m.nth_mut(5).unwrap() = J::Str("y".into());
        assert_eq!(m.nth(5), Some(&J::Str("y".into())));
    }
}
