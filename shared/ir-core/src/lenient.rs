//! Lenient deserializers for the untidy fields of real findings.
//!
//! Public sample findings and real deliveries disagree on types: severity is `8` or `8.0` (or
//! `"8"`), `organization.asn` is a number or a string, `launchTime` is epoch milliseconds or
//! ISO-8601, `additionalInfo.sample` is `true` or `"true"`. These wrappers accept every form seen
//! and reject what cannot be understood, with a message naming the expected form.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A number given as a JSON number or as a numeric string. Non-finite values are rejected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LenientF64(pub f64);

impl<'de> Deserialize<'de> for LenientF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientF64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LenientF64, E> {
                if v.is_finite() {
                    Ok(LenientF64(v))
                } else {
                    Err(E::custom("number is not finite"))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LenientF64, E> {
                #[allow(clippy::cast_precision_loss)]
                Ok(LenientF64(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LenientF64, E> {
                #[allow(clippy::cast_precision_loss)]
                Ok(LenientF64(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LenientF64, E> {
                match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(LenientF64(n)),
                    _ => Err(E::custom(format_args!("`{v}` is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A count given as a non-negative integer, an integral float or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenientU64(pub u64);

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let LenientF64(v) = LenientF64::deserialize(d)?;
        if v < 0.0 || v.fract() != 0.0 || v > 9.0e15 {
            return Err(de::Error::custom(format_args!(
                "`{v}` is not a whole non-negative number"
            )));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(LenientU64(v as u64))
    }
}

/// A value given as a number or a string, kept as text (e.g. `organization.asn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumOrString(pub String);

impl<'de> Deserialize<'de> for NumOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumOrString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<NumOrString, E> {
                Ok(NumOrString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<NumOrString, E> {
                Ok(NumOrString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<NumOrString, E> {
                Ok(NumOrString(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NumOrString, E> {
                Ok(NumOrString(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean given as `true`/`false` or as the strings `"true"`/`"false"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LenientBool(pub bool);

impl<'de> Deserialize<'de> for LenientBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LenientBool, E> {
                Ok(LenientBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LenientBool, E> {
                match v.trim() {
                    s if s.eq_ignore_ascii_case("true") => Ok(LenientBool(true)),
                    s if s.eq_ignore_ascii_case("false") => Ok(LenientBool(false)),
                    _ => Err(E::custom(format_args!("`{v}` is not a boolean"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A point in time given as RFC 3339 / ISO-8601 text, or as a number of epoch milliseconds
/// (numbers at or above 10^11 are milliseconds; smaller ones are seconds). Only a time RFC 3339
/// can write (years 0000 to 9999) is accepted: the suite writes every time it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LenientTime(pub OffsetDateTime);

const EPOCH_MS_FLOOR: f64 = 1.0e11;

impl LenientTime {
    /// Parses RFC 3339 text, as found in `createdAt`, `updatedAt`, `eventFirstSeen`, ASFF times.
    pub fn parse_text(s: &str) -> Result<OffsetDateTime, String> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map_err(|e| format!("`{s}` is not an ISO-8601 time: {e}"))
    }

    fn from_epoch(v: f64) -> Result<OffsetDateTime, String> {
        if !v.is_finite() {
            return Err(format!("`{v}` is not an epoch time"));
        }
        let nanos = if v.abs() >= EPOCH_MS_FLOOR {
            v * 1.0e6
        } else {
            v * 1.0e9
        };
        #[allow(clippy::cast_possible_truncation)]
        let t = OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
            .map_err(|e| format!("`{v}` is not an epoch time: {e}"))?;
        // `time` reaches year -9999; RFC 3339, in which the suite writes it back, does not.
        if !(0..=9999).contains(&t.year()) {
            return Err(format!(
                "`{v}` is an epoch time in year {}, outside RFC 3339's 0000 to 9999",
                t.year()
            ));
        }
        Ok(t)
    }
}

impl<'de> Deserialize<'de> for LenientTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LenientTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ISO-8601 time or epoch milliseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LenientTime, E> {
                #[allow(clippy::cast_precision_loss)]
                LenientTime::from_epoch(v as f64)
                    .map(LenientTime)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LenientTime, E> {
                #[allow(clippy::cast_precision_loss)]
                LenientTime::from_epoch(v as f64)
                    .map(LenientTime)
                    .map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LenientTime, E> {
                LenientTime::from_epoch(v)
                    .map(LenientTime)
                    .map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LenientTime, E> {
                if let Ok(n) = v.trim().parse::<f64>() {
                    return LenientTime::from_epoch(n)
                        .map(LenientTime)
                        .map_err(E::custom);
                }
                LenientTime::parse_text(v)
                    .map(LenientTime)
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_accept_every_real_form() {
        for (text, want) in [
            ("8", 8.0),
            ("8.0", 8.0),
            ("\"8\"", 8.0),
            ("\" 7.5 \"", 7.5),
            ("2", 2.0),
        ] {
            let got: LenientF64 = serde_json::from_str(text).unwrap();
            assert_eq!(got.0, want, "{text}");
        }
        for bad in ["\"high\"", "true", "null", "\"\""] {
            assert!(serde_json::from_str::<LenientF64>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_must_be_whole() {
        assert_eq!(serde_json::from_str::<LenientU64>("5").unwrap().0, 5);
        assert_eq!(serde_json::from_str::<LenientU64>("5.0").unwrap().0, 5);
        assert!(serde_json::from_str::<LenientU64>("5.5").is_err());
        assert!(serde_json::from_str::<LenientU64>("-1").is_err());
    }

    #[test]
    fn asn_is_number_or_string() {
        assert_eq!(
            serde_json::from_str::<NumOrString>("64500").unwrap().0,
            "64500"
        );
        assert_eq!(
            serde_json::from_str::<NumOrString>("\"64500\"").unwrap().0,
            "64500"
        );
    }

    #[test]
    fn times_accept_iso_and_epoch_millis() {
        let iso: LenientTime = serde_json::from_str("\"2026-11-20T10:00:00.000Z\"").unwrap();
        let ms: LenientTime = serde_json::from_str("1795168800000").unwrap();
        let ms_text: LenientTime = serde_json::from_str("\"1795168800000\"").unwrap();
        assert_eq!(iso.0, ms.0);
        assert_eq!(ms.0, ms_text.0);
        assert!(serde_json::from_str::<LenientTime>("\"yesterday\"").is_err());
    }

    /// Found by ir-fuzz (fuzz/crashers/guardduty.s1.i37000.case): a `launchTime` of
    /// -62167219201 seconds is year -1, which `time` holds but RFC 3339 cannot write, so the
    /// ingest output carrying it did not serialize. And "NaN" read as the epoch itself.
    #[test]
    fn epoch_times_rfc3339_cannot_write_are_refused() {
        for bad in [
            "-62167219201",
            "\"-62167219201\"",
            "-62167219201000",
            "\"NaN\"",
            "\"inf\"",
        ] {
            let got = serde_json::from_str::<LenientTime>(bad);
            assert!(got.is_err(), "{bad}: {got:?}");
        }
        let first: LenientTime = serde_json::from_str("-62167219200").unwrap();
        assert_eq!(first.0.year(), 0);
        let t = first.0.format(&Rfc3339).unwrap();
        assert_eq!(t, "0000-01-01T00:00:00Z");
        let last: LenientTime = serde_json::from_str("253402300799999").unwrap();
        assert_eq!(last.0.year(), 9999);
    }

    #[test]
    fn booleans_accept_strings() {
        assert!(serde_json::from_str::<LenientBool>("true").unwrap().0);
        assert!(serde_json::from_str::<LenientBool>("\"TRUE\"").unwrap().0);
        assert!(!serde_json::from_str::<LenientBool>("\"false\"").unwrap().0);
        assert!(serde_json::from_str::<LenientBool>("\"yes\"").is_err());
    }
}
