//! JSON text (RFC 8259) for what scanban writes as JSON: ban events, `list --json`, `status
//! --json`. Objects of strings, unsigned numbers, nulls and arrays of strings are all it needs,
//! so it is written here rather than pulled in as a dependency. Separators are `", "` and
//! `": "`, as the files have always had.

use std::fmt::Write;

/// One JSON object, written key by key.
pub struct Object {
    out: String,
    empty: bool,
}

impl Default for Object {
    fn default() -> Self {
        Object::new()
    }
}

impl Object {
    pub fn new() -> Self {
        Object {
            out: String::from("{"),
            empty: true,
        }
    }

    fn key(&mut self, key: &str) -> &mut String {
        if !self.empty {
            self.out.push_str(", ");
        }
        self.empty = false;
        push_string(&mut self.out, key);
        self.out.push_str(": ");
        &mut self.out
    }

    /// A string member; anything `Display` (an address, the evidence) is written as its text.
    pub fn str(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let text = value.to_string();
        push_string(self.key(key), &text);
        self
    }

    pub fn num(mut self, key: &str, value: u64) -> Self {
        let _ = write!(self.key(key), "{value}");
        self
    }

    /// A number, or `null` for a value there is none of.
    pub fn num_or_null(mut self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(v) => return self.num(key, v),
            None => self.key(key).push_str("null"),
        }
        self
    }

    /// An array of strings.
    pub fn strs<T: std::fmt::Display>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = T>,
    ) -> Self {
        let texts: Vec<String> = values.into_iter().map(|v| v.to_string()).collect();
        let out = self.key(key);
        out.push('[');
        for (i, t) in texts.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            push_string(out, t);
        }
        out.push(']');
        self
    }

    pub fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// `[a, b, ...]` from values already written as JSON.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().collect();
    format!("[{}]", items.join(", "))
}

/// Appends `s` as a JSON string: quotes, backslash and control characters escaped.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
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
    fn strings_are_escaped_as_rfc_8259_asks() {
        let mut out = String::new();
        push_string(&mut out, "a \"quoted\" C:\\path\nnext\ttab\u{1}\u{1f}é");
        assert_eq!(out, r#""a \"quoted\" C:\\path\nnext\ttab\u0001\u001fé""#);
    }

    #[test]
    fn objects_and_arrays_keep_the_files_separators() {
        let o = Object::new()
            .num("time", 7)
            .str("source", "192.0.2.1")
            .num_or_null("p50", None)
            .strs("ports", ["tcp/22", "udp/\"53\""])
            .finish();
        assert_eq!(
            o,
            r#"{"time": 7, "source": "192.0.2.1", "p50": null, "ports": ["tcp/22", "udp/\"53\""]}"#
        );
        assert_eq!(Object::new().finish(), "{}");
        assert_eq!(array([o.clone(), "{}".into()]), format!("[{o}, {{}}]"));
        assert_eq!(array(Vec::new()), "[]");
    }
}
