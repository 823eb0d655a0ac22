//! Just enough JSON reading for `status` / `health` to read the state file back (no
//! serde, same reason as `json`: one static binary under 1 MiB).
//!
//! Strict on purpose: a file that is cut short, has trailing bytes, or bends the
//! grammar is refused with the byte offset, so a corrupt state file is reported as
//! such instead of being half-believed. Numbers keep their literal text, so a 64-bit
//! counter reads back exactly instead of through an f64.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's literal text, already checked against the grammar.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in document order.
    Object(Vec<(String, Value)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

/// Nesting deeper than this is refused rather than risking the stack on hostile input;
/// the state file nests three levels.
const MAX_DEPTH: usize = 64;

/// Parse one JSON document; surrounding whitespace is allowed, anything else is not.
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value(0)?;
    parser.skip_space();
    if parser.at < parser.bytes.len() {
        return Err(parser.error("trailing characters after the document"));
    }
    Ok(value)
}

impl Value {
    /// A member of an object (the first one, should a name repeat).
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        *self == Value::Null
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> Error {
        Error {
            offset: self.at,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consume `byte` (after whitespace) or fail with `what`.
    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), Error> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// A cut-short document is the usual corruption; say so plainly.
    fn unexpected(&self, what: &'static str) -> Error {
        if self.at >= self.bytes.len() {
            self.error("unexpected end of input")
        } else {
            self.error(what)
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_space();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            _ => Err(self.unexpected("expected a value")),
        }
    }

    fn word(&mut self, word: &'static str, value: Value) -> Result<Value, Error> {
        let rest = &self.bytes[self.at..];
        if rest.starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else if word.as_bytes().starts_with(rest) {
            // `tr` at the very end: cut short, not misspelt.
            self.at = self.bytes.len();
            Err(self.error("unexpected end of input"))
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        self.at += 1; // '{'
        let mut members = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_space();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected("expected a member name"));
            }
            let name = self.string()?;
            self.expect(b':', "expected ':'")?;
            members.push((name, self.value(depth + 1)?));
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.unexpected("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        self.at += 1; // '['
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.unexpected("expected ',' or ']'")),
            }
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<Value, Error> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.required_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.required_digits()?;
        }
        // The slice is ASCII digits and signs only, so it is valid UTF-8.
        let text = String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned();
        Ok(Value::Number(text))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn required_digits(&mut self) -> Result<(), Error> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.unexpected("expected a digit"));
        }
        self.digits();
        Ok(())
    }

    fn string(&mut self) -> Result<String, Error> {
        self.at += 1; // '"'
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unexpected end of input")),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = self.escape()?;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                Some(0..0x20) => return Err(self.error("control character in a string")),
                Some(byte) => {
                    out.push(byte);
                    self.at += 1;
                }
            }
        }
        // The input is a &str, and escapes add whole characters, so this cannot fail;
        // stay total anyway.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in a string"))
    }

    /// After a backslash: one escape, including a `\uD83D\uDE00` surrogate pair.
    fn escape(&mut self) -> Result<char, Error> {
        let byte = self
            .peek()
            .ok_or_else(|| self.error("unexpected end of input"))?;
        self.at += 1;
        let c = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => return self.unicode_escape(),
            _ => return Err(self.error("invalid escape")),
        };
        Ok(c)
    }

    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.unexpected("unpaired surrogate"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("unpaired surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("unpaired surrogate")),
            other => other,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("unexpected end of input"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("invalid \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("invalid \\u escape"));
        }
        let code = u32::from_str_radix(text, 16).map_err(|_| self.error("invalid \\u escape"))?;
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_json_writes() {
        let mut text = String::new();
        crate::json::Object::new(&mut text)
            .str("msg", "a \"b\"\n\\c\u{1}é")
            .num("big", u64::MAX)
            .num("neg", -42)
            .bool("ok", true)
            .opt_num("none", None::<u32>)
            .raw("list", "[1, 2.5e3, [], {}]")
            .end();
        let doc = parse(&text).unwrap();
        assert_eq!(doc.get("msg").unwrap().as_str(), Some("a \"b\"\n\\c\u{1}é"));
        assert_eq!(doc.get("big").unwrap().as_u64(), Some(u64::MAX));
        assert_eq!(doc.get("neg").unwrap().as_i64(), Some(-42));
        assert_eq!(doc.get("neg").unwrap().as_u64(), None);
        assert_eq!(doc.get("ok").unwrap().as_bool(), Some(true));
        assert!(doc.get("none").unwrap().is_null());
        let list = doc.get("list").unwrap().as_array().unwrap();
        assert_eq!(list[1].as_f64(), Some(2500.0));
        assert_eq!(list[2], Value::Array(vec![]));
        assert_eq!(list[3], Value::Object(vec![]));
        assert!(doc.get("missing").is_none());
    }

    #[test]
    fn escapes_and_surrogate_pairs() {
        let doc = parse(r#" "\u00e9\/\b\f\t\ud83d\ude00" "#).unwrap();
        assert_eq!(doc.as_str(), Some("é/\u{8}\u{c}\t😀"));
    }

    #[test]
    fn every_prefix_of_a_document_is_refused() {
        // What a reader would see of a file written in place (not our rename) at any moment.
        let text = r#"{"pid":1,"list":[{"a":"x\"y"},null,true,-1.5e-3],"z":{}}"#;
        assert!(parse(text).is_ok());
        for cut in 0..text.len() {
            let err = parse(&text[..cut]).unwrap_err();
            assert_eq!(err.what, "unexpected end of input", "prefix {cut}: {err}");
        }
    }

    #[test]
    fn bends_of_the_grammar_are_refused() {
        let bad = [
            ("{\"a\":1,}", "expected a member name"),
            ("[1,]", "expected a value"),
            ("{\"a\":1} x", "trailing characters after the document"),
            ("{a:1}", "expected a member name"),
            ("01", "trailing characters after the document"),
            ("1.x", "expected a digit"),
            ("-", "unexpected end of input"),
            ("1e+", "unexpected end of input"),
            ("\"tab\there\"", "control character in a string"),
            ("\"\\x\"", "invalid escape"),
            ("\"\\u12g4\"", "invalid \\u escape"),
            ("\"\\udc00\"", "unpaired surrogate"),
            ("\"\\ud800x\"", "unpaired surrogate"),
            ("tru", "unexpected end of input"),
            ("nul!", "expected true, false or null"),
            ("{\"a\" 1}", "expected ':'"),
            ("[1 2]", "expected ',' or ']'"),
            ("", "unexpected end of input"),
            ("\u{0}", "expected a value"),
        ];
        for (text, what) in bad {
            assert_eq!(parse(text).unwrap_err().what, what, "{text:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let text = "[".repeat(100_000);
        assert_eq!(parse(&text).unwrap_err().what, "nesting too deep");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
