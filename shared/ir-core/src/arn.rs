//! Amazon Resource Names: the one parser.
//!
//! `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`. The first five fields never contain `:`; the
//! resource is everything after the fifth `:` and may contain more (`stateMachine:NAME`,
//! `execution:MACHINE:NAME`). Partition and service are required; region and account may be
//! empty (IAM and S3 ARNs). The header fields are ASCII letters, digits and `-` (an account is
//! 12 digits, or `aws` for AWS-managed IAM policies); the resource is any non-empty text, split by
//! the helpers below for the kinds the suite reads.

use std::fmt;

/// A parsed ARN, borrowing from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: &'a str,
    /// `iam`, `sts`, `states`, `guardduty`, …
    pub service: &'a str,
    /// Empty for global services (IAM, STS's global endpoint, S3 buckets).
    pub region: &'a str,
    /// The account id; empty for S3 buckets.
    pub account: &'a str,
    /// Everything after the fifth `:`.
    pub resource: &'a str,
}

/// An IAM resource with a path: `KIND/PATH/NAME` (`role/teams/SecurityLead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathName<'a> {
    /// The path between the kind and the name, without its outer slashes (`teams`, or empty).
    pub path: &'a str,
    /// The last segment; never empty.
    pub name: &'a str,
}

/// An STS assumed-role session: `assumed-role/ROLE/SESSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssumedRole<'a> {
    /// The role's name (the session ARN does not carry the role's path); never empty.
    pub role: &'a str,
    /// The session name; never empty.
    pub session: &'a str,
}

/// A Step Functions execution: `execution:MACHINE:NAME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Execution<'a> {
    /// The state machine's name; never empty.
    pub state_machine: &'a str,
    /// The execution's name; never empty.
    pub name: &'a str,
}

fn header_field(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl<'a> Arn<'a> {
    /// Parses `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`; `None` when `text` is not an ARN.
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        let header_ok = !partition.is_empty()
            && !service.is_empty()
            && [partition, service, region, account]
                .iter()
                .all(|f| header_field(f));
        (header_ok && !resource.is_empty()).then_some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// Whether the account is an AWS account id (12 digits).
    pub fn has_account_id(&self) -> bool {
        self.account.len() == 12 && self.account.bytes().all(|b| b.is_ascii_digit())
    }

    /// `KIND/PATH/NAME` of an IAM ARN (`kind` is `role`, `user`, `instance-profile`, …): the
    /// path and the last segment, which must not be empty.
    pub fn iam_path_name(&self, kind: &str) -> Option<PathName<'a>> {
        if self.service != "iam" {
            return None;
        }
        let rest = self.resource.strip_prefix(kind)?.strip_prefix('/')?;
        let (path, name) = rest.rsplit_once('/').unwrap_or(("", rest));
        (!name.is_empty()).then_some(PathName { path, name })
    }

    /// An IAM role: `arn:P:iam::A:role/PATH/NAME`.
    pub fn role(&self) -> Option<PathName<'a>> {
        self.iam_path_name("role")
    }

    /// An IAM user: `arn:P:iam::A:user/PATH/NAME`.
    pub fn user(&self) -> Option<PathName<'a>> {
        self.iam_path_name("user")
    }

    /// An instance profile: `arn:P:iam::A:instance-profile/PATH/NAME`.
    pub fn instance_profile(&self) -> Option<PathName<'a>> {
        self.iam_path_name("instance-profile")
    }

    /// An assumed-role session: `arn:P:sts::A:assumed-role/ROLE/SESSION`, exactly three
    /// segments, none empty.
    pub fn assumed_role(&self) -> Option<AssumedRole<'a>> {
        if self.service != "sts" {
            return None;
        }
        let mut r = self.resource.split('/');
        match (r.next(), r.next(), r.next(), r.next()) {
            (Some("assumed-role"), Some(role), Some(session), None)
                if !role.is_empty() && !session.is_empty() =>
            {
                Some(AssumedRole { role, session })
            }
            _ => None,
        }
    }

    /// A state machine's name: resource `stateMachine:NAME`, the name non-empty and without `:`.
    pub fn state_machine(&self) -> Option<&'a str> {
        let name = self.resource.strip_prefix("stateMachine:")?;
        (!name.is_empty() && !name.contains(':')).then_some(name)
    }

    /// An execution: resource `execution:MACHINE:NAME`, both non-empty.
    pub fn execution(&self) -> Option<Execution<'a>> {
        let rest = self.resource.strip_prefix("execution:")?;
        let (state_machine, name) = rest.split_once(':')?;
        (!state_machine.is_empty() && !name.is_empty() && !name.contains(':')).then_some(
            Execution {
                state_machine,
                name,
            },
        )
    }

    /// The same ARN with another resource.
    pub fn with_resource<'b>(&self, resource: &'b str) -> Arn<'b>
    where
        'a: 'b,
    {
        Arn { resource, ..*self }
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arn(partition: &str, service: &str, region: &str, account: &str, resource: &str) -> String {
        format!("arn:{partition}:{service}:{region}:{account}:{resource}")
    }

    #[test]
    fn the_grammar() {
        // (text, expected fields or None)
        let cases: &[(&str, Option<[&str; 5]>)] = &[
            (
                "arn:aws:iam::111122223333:role/teams/SecurityLead",
                Some(["aws", "iam", "", "111122223333", "role/teams/SecurityLead"]),
            ),
            (
                "arn:aws-cn:sts::111122223333:assumed-role/R/s",
                Some(["aws-cn", "sts", "", "111122223333", "assumed-role/R/s"]),
            ),
            (
                "arn:aws-us-gov:states:us-gov-west-1:111122223333:execution:sm:run",
                Some([
                    "aws-us-gov",
                    "states",
                    "us-gov-west-1",
                    "111122223333",
                    "execution:sm:run",
                ]),
            ),
            (
                "arn:aws:s3:::bucket/key:with:colons",
                Some(["aws", "s3", "", "", "bucket/key:with:colons"]),
            ),
            (
                "arn:aws:iam::aws:policy/AdministratorAccess",
                Some(["aws", "iam", "", "aws", "policy/AdministratorAccess"]),
            ),
            // Extra colons belong to the resource.
            (
                "arn:aws:iam::111122223333:role/x:y:z",
                Some(["aws", "iam", "", "111122223333", "role/x:y:z"]),
            ),
            // Non-ASCII in the resource is the resource's business.
            (
                "arn:aws:iam::111122223333:user/ålice",
                Some(["aws", "iam", "", "111122223333", "user/ålice"]),
            ),
            ("", None),
            ("arn", None),
            ("arn:", None),
            ("arn:::::", None),
            ("arn:aws:iam::111122223333", None),
            ("arn:aws:iam::111122223333:", None),
            ("arn::iam::111122223333:role/x", None),
            ("arn:aws:::111122223333:role/x", None),
            ("ARN:aws:iam::111122223333:role/x", None),
            ("urn:aws:iam::111122223333:role/x", None),
            (" arn:aws:iam::111122223333:role/x", None),
            ("arn:aws :iam::111122223333:role/x", None),
            ("arn:aws:iam:: 111122223333:role/x", None),
            ("arn:awś:iam::111122223333:role/x", None),
            ("arn:aws:iam:ü:111122223333:role/x", None),
            ("arn:aws:iam::１１１１22223333:role/x", None),
            ("arn:aws:iam::111122223333\n:role/x", None),
            ("arn:aws/x:iam::111122223333:role/x", None),
            ("SecurityLead", None),
        ];
        for (text, want) in cases {
            let got =
                Arn::parse(text).map(|a| [a.partition, a.service, a.region, a.account, a.resource]);
            assert_eq!(got, *want, "{text:?}");
            if let Some(a) = Arn::parse(text) {
                assert_eq!(a.to_string(), *text, "round trip of {text:?}");
            }
        }
    }

    #[test]
    fn very_long_input() {
        let long = "x".repeat(100_000);
        let a = arn("aws", "iam", "", "111122223333", &format!("role/{long}"));
        assert_eq!(
            Arn::parse(&a).and_then(|a| a.role()).map(|r| r.name),
            Some(long.as_str())
        );
        let colons = ":".repeat(100_000);
        assert_eq!(Arn::parse(&colons), None);
        let a = format!("arn:{long}:iam::111122223333:role/x");
        assert_eq!(Arn::parse(&a).map(|a| a.partition.len()), Some(100_000));
        let a = format!("arn:aws:iam::111122223333:{colons}");
        assert_eq!(Arn::parse(&a).map(|a| a.resource.len()), Some(100_000));
        assert_eq!(Arn::parse(&a).and_then(|a| a.role()), None);
    }

    #[test]
    fn account_ids() {
        for (account, ok) in [
            ("111122223333", true),
            ("11112222333", false),
            ("1111222233334", false),
            ("aws", false),
            ("", false),
            ("11112222333a", false),
        ] {
            let text = arn("aws", "iam", "", account, "role/x");
            assert_eq!(
                Arn::parse(&text).map(|a| a.has_account_id()),
                Some(ok),
                "{text}"
            );
        }
    }

    #[test]
    fn iam_paths_and_names() {
        type Case<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>);
        let cases: &[Case<'_>] = &[
            ("arn:aws:iam::1:role/R", "role", Some(("", "R"))),
            (
                "arn:aws:iam::1:role/teams/SecurityLead",
                "role",
                Some(("teams", "SecurityLead")),
            ),
            ("arn:aws:iam::1:role/a/b/c/R", "role", Some(("a/b/c", "R"))),
            ("arn:aws:iam::1:role//R", "role", Some(("", "R"))),
            ("arn:aws:iam::1:user/alice", "user", Some(("", "alice"))),
            (
                "arn:aws:iam::1:instance-profile/a/b/web",
                "instance-profile",
                Some(("a/b", "web")),
            ),
            ("arn:aws:iam::1:role/", "role", None),
            ("arn:aws:iam::1:role/a/", "role", None),
            ("arn:aws:iam::1:role", "role", None),
            ("arn:aws:iam::1:roleX/R", "role", None),
            ("arn:aws:iam::1:user/alice", "role", None),
            ("arn:aws:iam::1:root", "user", None),
            ("arn:aws:sts::1:role/R", "role", None),
            ("arn:aws:iam::1:group/g", "user", None),
        ];
        for (text, kind, want) in cases {
            let got = Arn::parse(text)
                .and_then(|a| a.iam_path_name(kind))
                .map(|p| (p.path, p.name));
            assert_eq!(got, *want, "{text} as {kind}");
        }
        let a = Arn::parse("arn:aws:iam::1:role/p/R");
        assert_eq!(a.and_then(|a| a.role()).map(|p| p.name), Some("R"));
        assert_eq!(a.and_then(|a| a.user()), None);
        let a = Arn::parse("arn:aws:iam::1:user/p/U");
        assert_eq!(a.and_then(|a| a.user()).map(|p| p.name), Some("U"));
        assert_eq!(a.and_then(|a| a.instance_profile()), None);
    }

    #[test]
    fn assumed_role_sessions() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            (
                "arn:aws:sts::1:assumed-role/SecurityLead/bob@example.com",
                Some(("SecurityLead", "bob@example.com")),
            ),
            ("arn:aws:sts::1:assumed-role/R/s:x", Some(("R", "s:x"))),
            ("arn:aws:sts::1:assumed-role/R", None),
            ("arn:aws:sts::1:assumed-role/R/", None),
            ("arn:aws:sts::1:assumed-role//s", None),
            ("arn:aws:sts::1:assumed-role/R/s/x", None),
            ("arn:aws:sts::1:federated-user/alice", None),
            ("arn:aws:iam::1:assumed-role/R/s", None),
        ];
        for (text, want) in cases {
            let got = Arn::parse(text)
                .and_then(|a| a.assumed_role())
                .map(|s| (s.role, s.session));
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn step_functions_resources() {
        let machines: &[(&str, Option<&str>)] = &[
            (
                "arn:aws:states:r:1:stateMachine:ir-triage",
                Some("ir-triage"),
            ),
            ("arn:aws:states:r:1:stateMachine:", None),
            ("arn:aws:states:r:1:stateMachine:a:b", None),
            ("arn:aws:states:r:1:execution:a:b", None),
            ("arn:aws:lambda:r:1:function:x", None),
        ];
        for (text, want) in machines {
            assert_eq!(
                Arn::parse(text).and_then(|a| a.state_machine()),
                *want,
                "{text}"
            );
        }
        let executions: &[(&str, Option<(&str, &str)>)] = &[
            (
                "arn:aws:states:r:1:execution:sm:run-1",
                Some(("sm", "run-1")),
            ),
            ("arn:aws:states:r:1:execution:sm:", None),
            ("arn:aws:states:r:1:execution::run", None),
            ("arn:aws:states:r:1:execution:sm", None),
            ("arn:aws:states:r:1:execution:sm:a:b", None),
            ("arn:aws:states:r:1:stateMachine:sm", None),
        ];
        for (text, want) in executions {
            let got = Arn::parse(text)
                .and_then(|a| a.execution())
                .map(|e| (e.state_machine, e.name));
            assert_eq!(got, *want, "{text}");
        }
        let sm = Arn::parse("arn:aws:states:us-east-1:111122223333:stateMachine:m");
        let resource = "execution:m:n".to_owned();
        assert_eq!(
            sm.map(|a| a.with_resource(&resource).to_string())
                .as_deref(),
            Some("arn:aws:states:us-east-1:111122223333:execution:m:n")
        );
    }
}
