//! Jira Cloud: the REST v3 client ([`client`]) and Atlassian Document Format descriptions
//! ([`adf`]).

pub mod adf;
pub mod client;

pub use adf::{AdfDoc, incident_description};
pub use client::{
    CreatedIssue, IssueRef, JiraClient, JiraError, NewIssue, marker_label, sanitize_label,
};
