//! Who decided, as AWS authenticated it: a signed STS `GetCallerIdentity` request, bound to one
//! decision, that the decision function sends to STS itself.
//!
//! A Lambda payload is whatever its invoker wrote (a "Function URL event" naming any approver
//! can be handed to a plain `Invoke`), so the decision function never takes an identity from
//! one. Instead the approver's own credentials sign a `GetCallerIdentity` request carrying the
//! header [`BINDING_HEADER`] = the SHA-256 of the decision (incident, step, verdict, plan hash,
//! reason: `ir_core::approval::decision_binding`); the approver sends the signed headers
//! ([`IdentityProof`]) with the decision, and the function sends that request to STS with the
//! binding it computes from the decision it received. STS answers with the signer's ARN only
//! when the signature holds, so the caller is the person whose credentials signed *this*
//! decision: a proof made for another decision, or a decision edited after signing, fails the
//! signature (`SignatureDoesNotMatch`). A signature is valid for 15 minutes; replaying it makes
//! the same decision again, which the approvals table answers as already decided.
//!
//! The request goes to the function's own STS endpoint (the standard configuration chain), never
//! to an address from the payload, and only the headers SigV4 signs are taken from the proof.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{Clients, SdkFailure};

/// The signed header that binds a proof to one decision.
pub const BINDING_HEADER: &str = "x-ir-decision";

/// The headers a proof may carry: what the SDK signs on a `GetCallerIdentity` request. `host`
/// is the verifier's own endpoint and [`BINDING_HEADER`] the verifier's own computation, never
/// the proof's.
const PROOF_HEADERS: [&str; 9] = [
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amz-user-agent",
    "amz-sdk-invocation-id",
    "amz-sdk-request",
    "content-type",
    "content-length",
];

const GET_CALLER_IDENTITY: &str = "sts:GetCallerIdentity";

/// A signed `GetCallerIdentity` request's headers. They authenticate one decision for 15
/// minutes, so `Debug` does not show them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityProof {
    /// Header name (lowercase) → value, as signed.
    pub headers: BTreeMap<String, String>,
}

impl fmt::Debug for IdentityProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityProof")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a proof did not authenticate anyone.
#[derive(Debug, Error)]
pub enum ProofError {
    /// The proof is not a signed request of the expected shape.
    #[error("the identity proof is malformed: {0}")]
    Malformed(String),
    /// STS refused the signature (wrong decision, edited, expired, unknown key).
    #[error("STS did not authenticate the identity proof ({code}): {message}")]
    Refused { code: String, message: String },
    /// STS could not be asked (throttling, network): try again.
    #[error(transparent)]
    Sts(SdkFailure),
}

/// The STS error codes that mean "this signature does not authenticate anyone".
const REFUSALS: [&str; 7] = [
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "ExpiredToken",
    "RequestExpired",
    "AccessDenied",
    "MissingAuthenticationToken",
];

/// The names SigV4 signed, from an `Authorization` header (`…, SignedHeaders=a;b;c, …`).
pub fn signed_headers(authorization: &str) -> Option<Vec<String>> {
    let list = authorization
        .split(',')
        .map(str::trim)
        .flat_map(|part| part.split(' '))
        .find_map(|part| part.strip_prefix("SignedHeaders="))?;
    Some(list.split(';').map(str::to_ascii_lowercase).collect())
}

/// Signs `binding` with `clients`' credentials: a real `GetCallerIdentity` (so the caller's ARN
/// comes back too) whose signed headers are the proof.
///
/// # Errors
/// STS refused the credentials or could not be reached.
pub async fn prove(
    clients: &Clients,
    binding: &str,
) -> Result<(IdentityProof, String), SdkFailure> {
    let captured = Arc::new(Mutex::new(BTreeMap::new()));
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(clients.sdk_config())
            .interceptor(clients.calls().clone())
            .interceptor(Sign {
                binding: binding.to_owned(),
                captured: captured.clone(),
            })
            .build(),
    );
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| SdkFailure::new(GET_CALLER_IDENTITY, &e))?;
    let headers = captured.lock().map(|h| h.clone()).unwrap_or_default();
    Ok((
        IdentityProof { headers },
        out.arn().unwrap_or_default().to_owned(),
    ))
}

/// Sends the proof's signed request, bound to `binding`, to STS: the ARN STS authenticated.
///
/// # Errors
/// [`ProofError::Malformed`] before any call (no `x-ir-decision` or `host` among the signed
/// headers, a header a `GetCallerIdentity` signature never covers); [`ProofError::Refused`]
/// when STS refuses the signature; [`ProofError::Sts`] when STS could not be asked.
pub async fn verify(
    clients: &Clients,
    proof: &IdentityProof,
    binding: &str,
) -> Result<String, ProofError> {
    check(proof)?;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(clients.sdk_config())
            .interceptor(clients.calls().clone())
            .interceptor(Present {
                binding: binding.to_owned(),
                proof: proof.clone(),
            })
            .build(),
    );
    match sts.get_caller_identity().send().await {
        Ok(out) => out
            .arn()
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ProofError::Malformed("STS answered without an ARN".to_owned())),
        Err(e) => {
            let code = e.code().unwrap_or_default().to_owned();
            if REFUSALS.contains(&code.as_str()) {
                Err(ProofError::Refused {
                    message: e.message().unwrap_or_default().to_owned(),
                    code,
                })
            } else {
                Err(ProofError::Sts(SdkFailure::new(GET_CALLER_IDENTITY, &e)))
            }
        }
    }
}

/// The proof holds together: an `Authorization` whose signed headers include the host and the
/// binding, and no header outside [`PROOF_HEADERS`].
fn check(proof: &IdentityProof) -> Result<(), ProofError> {
    let auth = proof
        .headers
        .get("authorization")
        .ok_or_else(|| ProofError::Malformed("no authorization header".to_owned()))?;
    let signed = signed_headers(auth).ok_or_else(|| {
        ProofError::Malformed("the authorization names no signed headers".to_owned())
    })?;
    for needed in ["host", BINDING_HEADER, "x-amz-date"] {
        if !signed.iter().any(|h| h == needed) {
            return Err(ProofError::Malformed(format!(
                "`{needed}` is not among the signed headers"
            )));
        }
    }
    if let Some(extra) = proof
        .headers
        .keys()
        .find(|k| !PROOF_HEADERS.contains(&k.as_str()))
    {
        return Err(ProofError::Malformed(format!(
            "header `{extra}` is not part of a GetCallerIdentity proof"
        )));
    }
    Ok(())
}

/// Adds the binding before signing and keeps the signed headers as they are sent.
#[derive(Debug)]
struct Sign {
    binding: String,
    captured: Arc<Mutex<BTreeMap<String, String>>>,
}

impl Intercept for Sign {
    fn name(&self) -> &'static str {
        "IdentityProofSign"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(BINDING_HEADER, self.binding.clone());
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request().headers();
        let mut kept = BTreeMap::new();
        for (name, value) in headers.iter() {
            let name = name.to_ascii_lowercase();
            if PROOF_HEADERS.contains(&name.as_str()) {
                kept.insert(name, value.to_owned());
            }
        }
        if let Ok(mut c) = self.captured.lock() {
            *c = kept;
        }
        Ok(())
    }
}

/// Puts the proof's signed headers and the verifier's own binding on the outgoing request, in
/// place of what this client signed.
#[derive(Debug)]
struct Present {
    binding: String,
    proof: IdentityProof,
}

impl Intercept for Present {
    fn name(&self) -> &'static str {
        "IdentityProofPresent"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context.request_mut().headers_mut();
        for name in PROOF_HEADERS {
            headers.remove(name);
        }
        for (name, value) in &self.proof.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(BINDING_HEADER, self.binding.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIA/20261204/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-ir-decision, Signature=abc";

    fn proof(headers: &[(&str, &str)]) -> IdentityProof {
        IdentityProof {
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_signed_headers_are_read_from_the_authorization() {
        assert_eq!(
            signed_headers(AUTH).unwrap(),
            ["content-type", "host", "x-amz-date", "x-ir-decision"]
        );
        assert_eq!(signed_headers("Bearer x"), None);
    }

    #[test]
    fn a_proof_must_sign_the_binding_and_carry_nothing_else() {
        assert!(
            check(&proof(&[
                ("authorization", AUTH),
                ("x-amz-date", "20261204T000000Z")
            ]))
            .is_ok()
        );
        let unbound = AUTH.replace(";x-ir-decision", "");
        assert!(matches!(
            check(&proof(&[("authorization", &unbound)])),
            Err(ProofError::Malformed(m)) if m.contains("x-ir-decision")
        ));
        assert!(matches!(
            check(&proof(&[("authorization", AUTH), ("host", "evil.example")])),
            Err(ProofError::Malformed(m)) if m.contains("host")
        ));
        assert!(matches!(check(&proof(&[])), Err(ProofError::Malformed(_))));
    }

    #[test]
    fn a_proof_does_not_show_its_signature_in_debug() {
        let shown = format!("{:?}", proof(&[("authorization", AUTH)]));
        assert!(!shown.contains("Signature"), "{shown}");
    }
}
