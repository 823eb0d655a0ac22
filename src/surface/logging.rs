//! Log lines on stdout (or stderr, `MCPINIT_LOG_TARGET`) for `docker logs`: text by default, one JSON object per line
//! with `MCPINIT_LOG_FORMAT=json`. Structured fields travel as `log` key-values, so both
//! formats carry the same fields: `info!(event = "terminate", pgid = 42; "…")`.

use crate::config::LogTarget;
use log::kv::{Key, Value, VisitSource};
use serde::ser::{SerializeMap, Serializer};
use std::fmt::Write as _;
use std::io::Write;

pub fn init(filter: &str, json: bool, target: LogTarget) {
    let mut builder = env_logger::Builder::new();
    builder
        .parse_filters(filter)
        .target(match target {
            LogTarget::Stdout => env_logger::Target::Stdout,
            LogTarget::Stderr => env_logger::Target::Stderr,
        })
        .format(move |buf, record| {
            if json {
                buf.write_all(&json_line(record))
            } else {
                buf.write_all(text_line(record).as_bytes())
            }
        });
    // Only fails if a logger is already set, which would be ours.
    let _ = builder.try_init();
}

fn text_line(record: &log::Record) -> String {
    let mut line = String::with_capacity(128);
    let _ = write!(
        line,
        "{} mcpinit {:<5} {}",
        timestamp(),
        record.level(),
        crate::sys::output::printable(&record.args().to_string())
    );
    struct Fields<'a>(&'a mut String);
    impl<'kvs> VisitSource<'kvs> for Fields<'_> {
        fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
            if key.as_str() == "event" {
                return Ok(());
            }
            let text = value.to_string();
            if text.is_empty() {
                return Ok(()); // e.g. no launcher key: nothing to read in a text line
            }
            if text.contains([' ', '"', '=']) || text.chars().any(char::is_control) {
                let quoted = serde_json::to_string(&text).unwrap_or_default();
                let _ = write!(self.0, " {key}={quoted}");
            } else {
                let _ = write!(self.0, " {key}={text}");
            }
            Ok(())
        }
    }
    let _ = record.key_values().visit(&mut Fields(&mut line));
    line.push('\n');
    line
}

/// One JSON object and a newline. serde_json writes into memory, which cannot fail; a
/// key-value that cannot be written ends the line early rather than losing it.
fn json_line(record: &log::Record) -> Vec<u8> {
    let mut line = Vec::with_capacity(160);
    let mut serializer = serde_json::Serializer::new(&mut line);
    if let Ok(mut map) = serializer.serialize_map(None) {
        let event = record
            .key_values()
            .get(Key::from_str("event"))
            .map_or_else(|| "log".to_string(), |v| v.to_string());
        let _ = map.serialize_entry("time", &timestamp());
        let _ = map.serialize_entry("level", &record.level().as_str().to_ascii_lowercase());
        let _ = map.serialize_entry("event", &event);
        let _ = map.serialize_entry("msg", &record.args().to_string());
        let _ = record.key_values().visit(&mut Fields(&mut map));
        let _ = map.end();
    }
    line.push(b'\n');
    line
}

/// The record's key-values as JSON fields: numbers and booleans as such, the rest as
/// strings.
struct Fields<'a, M>(&'a mut M);

impl<'kvs, M: SerializeMap> VisitSource<'kvs> for Fields<'_, M> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let key = key.as_str();
        if matches!(key, "event" | "time" | "level" | "msg") {
            return Ok(());
        }
        let written = if let Some(n) = value.to_i64() {
            self.0.serialize_entry(key, &n)
        } else if let Some(n) = value.to_u64() {
            self.0.serialize_entry(key, &n)
        } else if let Some(b) = value.to_bool() {
            self.0.serialize_entry(key, &b)
        } else {
            self.0.serialize_entry(key, &value.to_string())
        };
        written.map_err(|_| log::kv::Error::msg("cannot write a JSON field"))
    }
}

/// RFC 3339 UTC with milliseconds, without a date library.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_utc(now.as_millis() as u64)
}

pub fn format_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(format_utc(1_795_262_400_000), "2026-11-21T12:00:00.000Z");
    }

    #[test]
    fn both_formats_carry_the_fields() {
        let kvs: &[(&str, Value)] = &[
            ("event", Value::from("terminate")),
            ("pgid", Value::from(42)),
            ("key", Value::from("npm exec @x/a")),
        ];
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .args(format_args!("terminating unit"))
            .key_values(&kvs)
            .build();
        let text = text_line(&record);
        assert!(
            text.contains("WARN  terminating unit pgid=42 key=\"npm exec @x/a\""),
            "{text}"
        );
        let json = String::from_utf8(json_line(&record)).unwrap();
        assert!(json.contains(r#""level":"warn","event":"terminate","msg":"terminating unit","pgid":42,"key":"npm exec @x/a"}"#), "{json}");
    }
}
