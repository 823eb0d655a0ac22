//! The value syntaxes the brief promises, durations and sizes: their parsers, and beside
//! them the formatters that write them (exactly, for settings; shortened, for columns),
//! round-trip tested. `DURATION_HELP` and `SIZE_HELP` say what the parsers accept, so a
//! refusal can name the variable or option, the value and the syntax in one line.

use std::time::Duration;

pub const DURATION_HELP: &str = "a duration such as 250ms, 5s, 2m, or a number of seconds";
pub const SIZE_HELP: &str = "a size such as 512m, 4g, 100k, or a number of bytes (0 = no cap)";

/// `250ms`, `5s`, `2m`, `1h`, `1d`, a bare (possibly fractional) number of seconds, or
/// units combined largest first, as `status` shows ages: `2m05s`, `3h02m`, `4d07h`.
pub fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let is_number = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let ms = if text.is_empty() {
        return None;
    } else if is_number(text) {
        text.parse::<f64>().ok()? * 1_000.0
    } else {
        let (mut rest, mut ms, mut previous) = (text, 0.0, f64::INFINITY);
        while !rest.is_empty() {
            let split = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(split);
            let tail = tail.trim_start();
            let split = tail
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(tail.len());
            let (unit, tail) = tail.split_at(split);
            let scale = match unit {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                "d" => 86_400_000.0,
                _ => return None,
            };
            // Each unit once, largest first: `1s2m` is more likely a typo than a sum.
            if !is_number(number) || scale >= previous {
                return None;
            }
            ms += number.parse::<f64>().ok()? * scale;
            previous = scale;
            rest = tail.trim_start();
        }
        ms
    };
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

/// `0.3s`, `42s`, `2m05s`, `3h02m`, `4d07h`: an age short enough for a column, to a
/// tenth of a second under 10 s, then to the second, minute, hour. `duration` reads it.
pub fn duration_short(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..10 => format!("{}.{}s", s, ms % 1000 / 100),
        10..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Bytes as `812K`, `48.1M`, `2.35G` (powers of 1024, as ps and top do). `size` reads it.
pub fn size_short(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    match bytes {
        0..MIB => format!("{}K", bytes / 1024),
        MIB..0x4000_0000 => format!("{:.1}M", bytes as f64 / MIB as f64),
        _ => format!("{:.2}G", bytes as f64 / (1u64 << 30) as f64),
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

pub use crate::config::signal_names::name as signal_name;

/// `ADDR:PORT` for `MCPINIT_METRICS` / `--metrics`: an IPv4 or bracketed IPv6 address
/// and a port (`0.0.0.0:9464`, `127.0.0.1:9464`, `[::]:9464`), or `:PORT` for every
/// IPv4 address. No host names: resolving one would need DNS before anything runs.
pub fn parse_address(value: &str) -> Option<std::net::SocketAddr> {
    let value = value.trim();
    match value.strip_prefix(':') {
        Some(port) => Some(std::net::SocketAddr::from((
            [0, 0, 0, 0],
            port.parse::<u16>().ok()?,
        ))),
        None => value.parse().ok(),
    }
}

pub const ADDRESS_HELP: &str =
    "ADDR:PORT such as 0.0.0.0:9464, 127.0.0.1:9464, [::]:9464, or :9464";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("127.0.0.1:9464"),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            parse_address(":9464"),
            Some("0.0.0.0:9464".parse().unwrap())
        );
        assert_eq!(
            parse_address("[::]:9464"),
            Some("[::]:9464".parse().unwrap())
        );
        for bad in [
            "",
            "9464",
            "localhost:9464",
            "1.2.3.4",
            "1.2.3.4:70000",
            ":x",
            "::9464",
        ] {
            assert_eq!(parse_address(bad), None, "{bad}");
        }
    }

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
            ("1d", 86_400_000),
            ("2m05s", 125_000),
            ("1m 30s", 90_000),
            ("3h02m", 10_920_000),
            ("4d07h", 370_800_000),
            ("1s500ms", 1_500),
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
            "1s2m",
            "1m1m",
            "5s3",
            "m5s",
            "1m-5s",
            "1mx",
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

    #[test]
    fn column_texts_read_back_to_their_precision() {
        for ms in [
            0, 99, 300, 9_999, 10_000, 42_400, 125_000, 3_599_999, 10_920_000,
        ]
        .into_iter()
        .chain([370_800_000, 86_400_000 * 400, u64::MAX / 1_000_000])
        {
            let text = duration_short(ms);
            let precision = match ms / 1000 {
                0..10 => 100,
                10..60 => 1_000,
                60..3600 => 1_000,
                3600..86_400 => 60_000,
                _ => 3_600_000,
            };
            let Some(back) = duration(&text) else {
                assert!(ms > 315_360_000_000, "{text} unread");
                continue;
            };
            let back = back.as_millis() as u64;
            assert!(
                back <= ms && ms - back < precision,
                "{ms} -> {text} -> {back}"
            );
        }
        assert_eq!(duration_short(125_000), "2m05s");
        for bytes in [
            0,
            1023,
            1024,
            812 << 10,
            (48 << 20) + (1 << 17),
            1 << 30,
            5 << 40,
        ] {
            let text = size_short(bytes);
            let back = size(&text).unwrap_or_else(|| panic!("{text} unread"));
            let precision = match bytes {
                0..0x10_0000 => 1024,
                0x10_0000..0x4000_0000 => 1 << 20 >> 4, // one decimal of a MiB, rounded
                _ => 1 << 30 >> 6,                      // two decimals of a GiB, rounded
            };
            assert!(
                back.abs_diff(bytes) < precision,
                "{bytes} -> {text} -> {back}"
            );
        }
        assert_eq!(size_short((48 << 20) + (1 << 17)), "48.1M");
    }
}
