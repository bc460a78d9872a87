//! Verification of requests from Slack (the interactions endpoint), by Slack's signing-secret
//! scheme `v0`:
//!
//! `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:{X-Slack-Request-Timestamp}:{raw body}")>`
//!
//! The raw body is what was received, byte for byte, before any form decoding. A request whose
//! timestamp is more than [`MAX_SKEW`] from now, either way, is refused as stale.
//!
//! The signature proves the request came from Slack within the window, not that it came once: a
//! captured request can be replayed within the window. [`Verified::replay_key`] identifies it;
//! the caller must record the key with a conditional write (e.g. a DynamoDB `PutItem` with
//! `attribute_not_exists`, expiring at [`Verified::replay_key_expires_at`]) and refuse a
//! request whose key is already recorded. This crate holds no state.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::secret::Secret;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// The header carrying the request's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// The signature scheme version Slack uses.
pub const VERSION: &str = "v0";
/// How far a request's timestamp may be from now, either way.
pub const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

type HmacSha256 = Hmac<Sha256>;

/// Why a request is refused. Says nothing of the secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No signing secret configured: nothing can be verified.
    #[error("no Slack signing secret is configured")]
    NoSigningSecret,
    #[error("the request has no {0} header")]
    MissingHeader(&'static str),
    #[error("the request's {0} header is malformed")]
    MalformedHeader(&'static str),
    /// The timestamp is more than [`MAX_SKEW`] from now; `skew_seconds` = now − timestamp.
    #[error("the request is stale: its timestamp is {skew_seconds}s from now")]
    StaleRequest { skew_seconds: i64 },
    #[error("the request's signature does not match")]
    InvalidSignature,
}

impl VerifyError {
    /// A stable name, for logs, metrics and error payloads.
    pub fn name(&self) -> &'static str {
        match self {
            VerifyError::NoSigningSecret => "InvalidConfig",
            VerifyError::MissingHeader(_) => "MissingHeader",
            VerifyError::MalformedHeader(_) => "MalformedHeader",
            VerifyError::StaleRequest { .. } => "StaleRequest",
            VerifyError::InvalidSignature => "InvalidSignature",
        }
    }
}

/// A request that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Hex SHA-256 of `v0:{timestamp}:{signature}`: the same for a replayed request, different
    /// for any other. Record it once (conditional write); refuse the request if it was already
    /// recorded.
    pub replay_key: String,
    /// The request's timestamp.
    pub request_time: OffsetDateTime,
    /// After this the request is stale anyway, so its replay key need not be kept (a TTL).
    pub replay_key_expires_at: OffsetDateTime,
}

/// `v0=<hex>`: the signature Slack sends for `body` at `timestamp` (seconds, as the header
/// writes it).
pub fn signature(signing_secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    format!(
        "{VERSION}={}",
        hex::encode(mac(signing_secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(signing_secret: &Secret, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length, so this cannot fail; the fallback keeps it total.
    let mut mac = HmacSha256::new_from_slice(signing_secret.expose().as_bytes())
        .unwrap_or_else(|_| <HmacSha256 as hmac::digest::KeyInit>::new(&Default::default()));
    mac.update(VERSION.as_bytes());
    mac.update(b":");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Verifies one request: the two headers' values (`None` when absent), the raw body, and the
/// time now. On success, record [`Verified::replay_key`] before acting on the request.
pub fn verify(
    signing_secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Verified, VerifyError> {
    if signing_secret.is_empty() {
        return Err(VerifyError::NoSigningSecret);
    }
    let timestamp = timestamp
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(VerifyError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingHeader(SIGNATURE_HEADER))?;

    if timestamp.len() > 12 || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedHeader(TIMESTAMP_HEADER));
    }
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER))?;
    let request_time = OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| VerifyError::MalformedHeader(TIMESTAMP_HEADER))?;
    let skew_seconds = now.unix_timestamp().saturating_sub(seconds);
    let max = i64::try_from(MAX_SKEW.as_secs()).unwrap_or(i64::MAX);
    if skew_seconds.unsigned_abs() > max.unsigned_abs() {
        return Err(VerifyError::StaleRequest { skew_seconds });
    }

    let hex_sig = signature
        .strip_prefix("v0=")
        .ok_or(VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    if hex_sig.len() != 64 {
        return Err(VerifyError::MalformedHeader(SIGNATURE_HEADER));
    }
    let given = hex::decode(hex_sig).map_err(|_| VerifyError::MalformedHeader(SIGNATURE_HEADER))?;
    // `verify_slice` compares in constant time.
    mac(signing_secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| VerifyError::InvalidSignature)?;

    let replay_key = hex::encode(Sha256::digest(
        format!("{VERSION}:{timestamp}:{}", hex_sig.to_ascii_lowercase()).as_bytes(),
    ));
    Ok(Verified {
        replay_key,
        request_time,
        replay_key_expires_at: request_time + MAX_SKEW,
    })
}

/// [`verify`] with the headers as name/value pairs, names matched case-insensitively (as API
/// Gateway and Lambda function URLs hand them over, usually lowercased). A header given twice
/// is refused as malformed.
pub fn verify_headers<'a, I>(
    signing_secret: &Secret,
    headers: I,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<Verified, VerifyError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut timestamp = None;
    let mut signature = None;
    for (name, value) in headers {
        let slot = if name.eq_ignore_ascii_case(TIMESTAMP_HEADER) {
            (&mut timestamp, TIMESTAMP_HEADER)
        } else if name.eq_ignore_ascii_case(SIGNATURE_HEADER) {
            (&mut signature, SIGNATURE_HEADER)
        } else {
            continue;
        };
        if slot.0.replace(value).is_some() {
            return Err(VerifyError::MalformedHeader(slot.1));
        }
    }
    verify(signing_secret, timestamp, signature, body, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slack's documented example: secret, timestamp, body and signature.
    #[test]
    fn slack_documented_example_verifies() {
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let ts = "1531420618";
        assert_eq!(
            signature(&secret, ts, body),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
        let now = OffsetDateTime::from_unix_timestamp(1_531_420_618 + 60)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let ok = verify(
            &secret,
            Some(ts),
            Some("v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"),
            body,
            now,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}
