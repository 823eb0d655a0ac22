//! The value syntaxes the brief promises, durations and sizes: parsers, and formatters
//! beside them, round-trip tested. Each parser returns a short description of what it accepts on failure, so the caller can
//! name the variable or option and the value in one line.

use std::time::Duration;

pub const DURATION_HELP: &str = "a duration such as 250ms, 5s, 2m, or a number of seconds";
pub const SIZE_HELP: &str = "a size such as 512m, 4g, 100k, or a number of bytes (0 = no cap)";

/// `250ms`, `5s`, `2m`, `1h`, or a bare (possibly fractional) number of seconds.
pub fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale_ms = match unit.trim() {
        "ms" => 1.0,
        "" | "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let ms = value * scale_ms;
    // Ten years is far beyond any sensible grace; it also keeps Instant arithmetic safe.
    (0.0..=315_360_000_000.0)
        .contains(&ms)
        .then(|| Duration::from_micros((ms * 1_000.0).round() as u64))
}

/// A duration in the syntax `duration` reads, in its largest whole unit: `0`,
/// `250ms`, `5s`, `2m`, `1h`.
pub fn duration_text(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0".into(),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{ms}ms"),
    }
}

/// A size in the syntax `size` reads, in its largest whole unit: `0`, `100k`, `512m`, `4g`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [(u32, &str); 4] = [(40, "t"), (30, "g"), (20, "m"), (10, "k")];
    match UNITS
        .iter()
        .find(|(shift, _)| bytes != 0 && bytes % (1u64 << shift) == 0)
    {
        Some((shift, unit)) => format!("{}{unit}", bytes >> shift),
        None => bytes.to_string(),
    }
}

/// `512m`, `4g`, `100k`, `1.5g`, optional `b`/`ib` suffix, any case; bare number = bytes.
pub fn size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, shift) = match stripped.chars().last()? {
        'k' => (&stripped[..stripped.len() - 1], 10),
        'm' => (&stripped[..stripped.len() - 1], 20),
        'g' => (&stripped[..stripped.len() - 1], 30),
        't' => (&stripped[..stripped.len() - 1], 40),
        _ => (stripped, 0),
    };
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let bytes = number.parse::<f64>().ok()? * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

// Signal names live with the signals (signals.rs); this name stays while the
// supervisor is split (helper arch), whose files still import it from here.
pub use crate::signals::name as signal_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("8", 8_000),
            ("0", 0),
            ("0.5", 500),
            ("1.5s", 1_500),
            (" 3s ", 3_000),
        ];
        for (text, ms) in ok {
            assert_eq!(duration(text), Some(Duration::from_millis(ms)), "{text}");
        }
        for bad in [
            "",
            "s",
            "-1",
            "5x",
            "5 ms ms",
            "1e3",
            "ms5",
            "abc",
            "1..2s",
            "99999999999h",
        ] {
            assert_eq!(duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        let ok = [
            ("0", 0),
            ("1024", 1024),
            ("100k", 100 << 10),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("512MiB", 512 << 20),
            ("512mb", 512 << 20),
            ("4g", 4 << 30),
            ("1.5g", 3 << 29),
            ("1t", 1 << 40),
        ];
        for (text, bytes) in ok {
            assert_eq!(size(text), Some(bytes), "{text}");
        }
        for bad in ["", "m", "-1m", "5x", "12q", "1e9", "g4", "lots", "4 g b"] {
            assert_eq!(size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn setting_texts_read_back_exactly() {
        for ms in [
            0, 1, 250, 1_000, 1_500, 5_000, 60_000, 90_000, 120_000, 3_600_000, 7_200_000,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(duration(&duration_text(d)), Some(d), "{ms}");
        }
        assert_eq!(duration_text(Duration::from_secs(600)), "10m");
        for bytes in [
            0,
            1,
            1023,
            1024,
            100 << 10,
            512 << 20,
            4 << 30,
            1 << 40,
            (1 << 20) + 1,
        ] {
            assert_eq!(size(&size_text(bytes)), Some(bytes), "{bytes}");
        }
        assert_eq!(size_text(512 << 20), "512m");
    }
}
