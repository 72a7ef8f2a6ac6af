//! Byte sizes as operators write them in flags and variables: `1048576`, `64KiB`, `512 MiB`,
//! `4GiB`, `1TiB` (powers of 1024), `64KB`, `512MB`, `4GB` (powers of 1000). A size that is
//! negative, fractional, unitless garbage or over `u64::MAX` is an error naming it.

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a size: {reason} (write bytes, or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
)]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses a size in bytes.
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return Err(err(if s.starts_with('-') {
            "a size cannot be negative"
        } else {
            "it does not start with a number"
        }));
    }
    let n: u64 = number.parse().map_err(|_| err("the number is too large"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" | "m" => 1 << 20,
        "GiB" | "G" | "g" => 1 << 30,
        "TiB" | "T" | "t" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u if u.starts_with('.') => return Err(err("write a whole number of a smaller unit")),
        _ => return Err(err("unknown unit")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| err("the size is too large"))
}

/// A size for people: `512 B`, `1.5 KiB`, `256.0 MiB` (powers of 1024).
pub fn format_size(bytes: u128) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatted() {
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(256 << 20), "256.0 MiB");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size(" 512 MiB "), Ok(512 << 20));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        for bad in [
            "",
            "-1",
            "-5MiB",
            "MiB",
            "1.5GiB",
            "12XB",
            "99999999999999999999",
            "17179869184TiB",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.to_string().contains("is not a size"), "{bad}: {e}");
        }
    }
}
