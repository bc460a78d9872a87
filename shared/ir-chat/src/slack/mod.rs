//! Slack: Block Kit rendering ([`blocks`]), the Web API and incoming-webhook client
//! ([`client`]), verification of requests from Slack ([`verify`](mod@verify)) and interaction payloads
//! ([`interaction`]).

pub mod blocks;
pub mod client;
pub mod interaction;
pub mod verify;

pub use blocks::{
    ApprovalRef, ApprovalRefError, ApprovalRequest, Decision, SlackMessage, Who, approval_decided,
    approval_request, incident_update,
};
pub use client::{MessageRef, Posted, SLACK_API_BASE, SlackClient, SlackError};
pub use interaction::{Action, ApprovalChoice, BlockActions, PayloadError, parse_interaction};
pub use verify::{Verified, VerifyError, verify, verify_headers};
