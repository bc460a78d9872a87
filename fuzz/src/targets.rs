//! The targets: every parser of the suite that reads input from outside, each with where its
//! seeds come from, how a case is made from them, and what the case must hold.
//!
//! A target is one row of [`TARGETS`]. A new parser of finding envelopes (OCSF, say) whose
//! samples are files under `events/` is one line:
//!
//! ```text
//! Target { name: "ocsf", share: 10, seeds: Seeds::Files("events/securityhub-ocsf-", Kind::Json), generate: make::json, run: run::normalize },
//! ```
//!
//! (the samples starting with that prefix are its seeds; [`run::normalize`] holds any envelope
//! `ir_core::normalize` reads to the normalizer's properties). Another kind of input needs its
//! run function (input bytes → accepted or refused, or `Err` naming the property broken) and
//! that one line.

use std::sync::OnceLock;

use crate::corpus::{self, Payloads, Seed};
use crate::mutate::Dictionary;
use crate::tree::J;

/// How a file seed is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Json,
    Yaml,
    Text,
}

/// Where a target's seeds come from.
#[derive(Debug, Clone, Copy)]
pub enum Seeds {
    /// The embedded files whose path starts with this prefix.
    Files(&'static str, Kind),
    /// Made by code (payloads from the samples through the suite's own pipeline).
    Built(fn() -> Vec<Seed>),
}

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// Its share of the cases (a slow parser gets fewer).
    pub share: u32,
    pub seeds: Seeds,
    /// One case's input from the seeds.
    pub generate: fn(&mut crate::rng::Rng, &Pool) -> Vec<u8>,
    /// The parser on one input: whether it accepted or refused it, or the property its result
    /// broke. A panic is caught by the runner.
    pub run: fn(&[u8]) -> run::Out,
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "guardduty",
        share: 12,
        seeds: Seeds::Files("events/guardduty-", Kind::Json),
        generate: make::json,
        run: run::normalize,
    },
    Target {
        name: "asff",
        share: 12,
        seeds: Seeds::Files("events/securityhub-", Kind::Json),
        generate: make::json,
        run: run::normalize,
    },
    Target {
        name: "ocsf",
        share: 10,
        seeds: Seeds::Files("events/securityhub-ocsf-", Kind::Json),
        generate: make::json,
        run: run::normalize,
    },
    Target {
        name: "ingest-payload",
        share: 8,
        seeds: Seeds::Files("events/", Kind::Json),
        generate: make::json,
        run: run::ingest,
    },
    Target {
        name: "config",
        share: 1,
        seeds: Seeds::Built(seeds::config),
        generate: make::config,
        run: run::config,
    },
    Target {
        name: "assets",
        share: 6,
        seeds: Seeds::Files("config/assets.yaml", Kind::Yaml),
        generate: make::yaml,
        run: run::assets,
    },
    Target {
        name: "intel",
        share: 6,
        seeds: Seeds::Files("config/threat-intel.txt", Kind::Text),
        generate: make::text,
        run: run::intel,
    },
    Target {
        name: "enrich-payload",
        share: 6,
        seeds: Seeds::Built(seeds::enrich),
        generate: make::json,
        run: run::enrich,
    },
    Target {
        name: "score-payload",
        share: 6,
        seeds: Seeds::Built(seeds::score),
        generate: make::json,
        run: run::score,
    },
    Target {
        name: "record-payload",
        share: 6,
        seeds: Seeds::Built(seeds::record),
        generate: make::json,
        run: run::record,
    },
    Target {
        name: "approval-payload",
        share: 6,
        seeds: Seeds::Built(seeds::approval),
        generate: make::json,
        run: run::approval,
    },
    Target {
        name: "containment-payload",
        share: 6,
        seeds: Seeds::Built(seeds::containment),
        generate: make::json,
        run: run::containment,
    },
    Target {
        name: "evidence-payload",
        share: 6,
        seeds: Seeds::Built(seeds::evidence),
        generate: make::json,
        run: run::evidence,
    },
    Target {
        name: "notify-payload",
        share: 6,
        seeds: Seeds::Built(seeds::notify),
        generate: make::json,
        run: run::notify,
    },
    Target {
        name: "dead-letter",
        share: 8,
        seeds: Seeds::Built(seeds::dead_letters),
        generate: make::dead_letter,
        run: run::dead_letter,
    },
    Target {
        name: "slack-interaction",
        share: 8,
        seeds: Seeds::Built(seeds::slack),
        generate: make::slack_form,
        run: run::slack_interaction,
    },
    Target {
        name: "slack-verify",
        share: 8,
        seeds: Seeds::Built(seeds::slack),
        generate: make::slack_signed,
        run: run::slack_verify,
    },
];

/// The target of this name.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A target's seeds, ready for mutation.
#[derive(Debug)]
pub struct Pool {
    pub seeds: Vec<Seed>,
    pub dict: Dictionary,
}

impl Pool {
    pub fn of(target: &Target) -> Pool {
        let seeds = match target.seeds {
            Seeds::Files(prefix, kind) => corpus::files(prefix)
                .filter_map(|(path, bytes)| match kind {
                    Kind::Json => serde_json::from_slice::<serde_json::Value>(bytes)
                        .ok()
                        .map(|v| Seed::json(path, &v)),
                    Kind::Yaml => Some(Seed::yaml(path, bytes)),
                    Kind::Text => Some(Seed::text(path, bytes.to_vec())),
                })
                .collect(),
            Seeds::Built(build) => build(),
        };
        let trees: Vec<&J> = seeds.iter().filter_map(|s| s.tree.as_ref()).collect();
        let dict = Dictionary::of(&trees);
        Pool { seeds, dict }
    }

    /// Every seed's tree (for crossover).
    pub fn trees(&self) -> Vec<&J> {
        self.seeds.iter().filter_map(|s| s.tree.as_ref()).collect()
    }
}

/// The payload seeds, made once.
fn payloads() -> &'static Payloads {
    static P: OnceLock<Payloads> = OnceLock::new();
    P.get_or_init(Payloads::build)
}

/// The triage engine on the embedded config, registry and intel list, made once.
fn engine() -> Option<&'static ir_core::Engine> {
    static E: OnceLock<Option<ir_core::Engine>> = OnceLock::new();
    E.get_or_init(|| ir_core::Engine::embedded().ok()).as_ref()
}

pub mod seeds {
    //! Seeds made by code.

    use serde_json::Value;

    use super::payloads;
    use crate::corpus::{self, Seed};
    use crate::parts;

    pub fn enrich() -> Vec<Seed> {
        payloads().enrich.clone()
    }
    pub fn score() -> Vec<Seed> {
        payloads().score.clone()
    }
    pub fn record() -> Vec<Seed> {
        payloads().record.clone()
    }
    pub fn approval() -> Vec<Seed> {
        payloads().approval.clone()
    }
    pub fn containment() -> Vec<Seed> {
        payloads().containment.clone()
    }
    pub fn evidence() -> Vec<Seed> {
        payloads().evidence.clone()
    }
    pub fn notify() -> Vec<Seed> {
        payloads().notify.clone()
    }

    /// The config files: (YAML, no overlay). The overlay variables are drawn by the generator.
    pub fn config() -> Vec<Seed> {
        corpus::files("config/")
            .filter(|(p, _)| p.ends_with(".yaml") && p.contains("incident-response"))
            .map(|(p, b)| Seed::yaml(p, b))
            .collect()
    }

    /// (body, attributes) framed; the tree is the body's.
    pub fn dead_letters() -> Vec<Seed> {
        corpus::dead_letters()
            .into_iter()
            .map(|(body, attrs)| {
                let mut s = Seed::json("dead letter", &body);
                s.bytes = parts::encode(&[&s.bytes, &parts::join_pairs(&attrs)]);
                s
            })
            .collect()
    }

    pub fn slack() -> Vec<Seed> {
        corpus::slack_payloads()
            .iter()
            .map(|v: &Value| Seed::json("block_actions", v))
            .collect()
    }
}

pub mod make {
    //! How a case is made from a target's seeds.

    use serde_json::Value;

    use super::Pool;
    use crate::corpus::Seed;
    use crate::mutate::{self, bounded, mutate_bytes, mutate_lines, mutate_tree};
    use crate::parts;
    use crate::rng::Rng;

    /// YAML lines a line mutation inserts: YAML's sharp edges (anchors, aliases and an alias
    /// bomb, tags, merge keys, block scalars, documents, flow collections).
    const YAML_LINES: &[&str] = &[
        "- ",
        "-",
        "key: value",
        "  - resource_id: i-0a1b2c3d4e5f60001",
        "- resource_id: i-0a1b2c3d4e5f60001",
        "  criticality: nonsense",
        "a: &x [1, *x]",
        "b: *undefined",
        "<<: *x",
        "? complex",
        "x: !!binary aGk=",
        "x: !!float .nan",
        "x: .inf",
        "x: !custom 3",
        "x: 0o777",
        "x: ~",
        "x: 2001-12-14t21:59:43.10-05:00",
        "x: yes",
        "---",
        "...",
        "%YAML 1.2",
        "k: |",
        "k: >-",
        "{",
        "[",
        "'unterminated",
        "\"esc \\x\"",
        "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]",
        "weights: {severity: 0.5, criticality: 0.5, threat: 0.0, history: 0.0}",
        "mode: enforce",
        "requires_approval: false",
        "allow_unapproved_destructive: true",
        "trigger: severity >= low",
        "trigger: severity >= ",
        "timeout: 0s",
        "timeout: 99999999999999h",
        "timeout: 1.5m",
        "max_concurrent_playbooks: 0",
        "max_concurrent_playbooks: 18446744073709551616",
    ];

    /// Intel lines: indicators and scores at the edges.
    const INTEL_LINES: &[&str] = &[
        "198.51.100.0/24 0.9",
        "::/0",
        "0.0.0.0/0 1",
        "0/0",
        "1.2.3.4/",
        "/8",
        "256.0.0.0/8",
        "fe80::/10 0.1",
        "fe80::1%eth0",
        "::ffff:198.51.100.23 0.5",
        "example.com 1.5",
        "example.com -0",
        "example.com NaN",
        "example.com inf",
        "example.com 1e-400",
        "example.com 0.99999999999999999999",
        "# comment",
        "1.2.3.4 0.5 extra",
        "xn--bcher-kva.example",
        "a..b",
        "localhost",
        "*.example.com",
        ".",
        "-.example",
        "EXAMPLE.NET.",
    ];

    fn pick<'p>(rng: &mut Rng, pool: &'p Pool) -> Option<&'p Seed> {
        rng.pick(&pool.seeds)
    }

    /// A JSON seed, mutated as a tree (often), then as bytes (sometimes); now and then the
    /// seed itself.
    pub fn json(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        match pick(rng, pool) {
            Some(seed) => json_of(rng, pool, seed),
            None => Vec::new(),
        }
    }

    fn json_of(rng: &mut Rng, pool: &Pool, seed: &Seed) -> Vec<u8> {
        let Some(tree) = &seed.tree else {
            let mut b = seed.bytes.clone();
            mutate_bytes(rng, &mut b);
            return bounded(b);
        };
        if rng.chance(1, 64) {
            return tree.to_text(false).into_bytes();
        }
        let mut t = tree.clone();
        mutate_tree(rng, &mut t, &pool.dict, &pool.trees());
        let mut out = t.to_text(rng.chance(1, 4)).into_bytes();
        if rng.chance(1, 10) {
            mutate_bytes(rng, &mut out);
        }
        bounded(out)
    }

    /// A YAML seed: mutated as data (written back as JSON, which YAML reads, or as YAML),
    /// by lines, or by bytes.
    pub fn yaml(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        match pick(rng, pool) {
            Some(seed) => yaml_of(rng, pool, seed),
            None => Vec::new(),
        }
    }

    fn yaml_of(rng: &mut Rng, pool: &Pool, seed: &Seed) -> Vec<u8> {
        let text = String::from_utf8_lossy(&seed.bytes);
        match (rng.below(10), &seed.tree) {
            (0..=4, Some(tree)) => {
                let mut t = tree.clone();
                mutate_tree(rng, &mut t, &pool.dict, &pool.trees());
                let json = t.to_text(rng.chance(1, 2));
                if rng.chance(1, 2)
                    && let Ok(v) = serde_json::from_str::<Value>(&json)
                    && let Ok(y) = serde_yaml_ng::to_string(&v)
                {
                    return bounded(y.into_bytes());
                }
                bounded(json.into_bytes())
            }
            (0..=7, _) => bounded(mutate_lines(rng, &text, YAML_LINES).into_bytes()),
            _ => {
                let mut b = if rng.chance(1, 2) {
                    mutate_lines(rng, &text, YAML_LINES).into_bytes()
                } else {
                    seed.bytes.clone()
                };
                mutate_bytes(rng, &mut b);
                bounded(b)
            }
        }
    }

    /// A text seed (the intel list): by lines and tokens, or by bytes.
    pub fn text(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        let Some(seed) = pick(rng, pool) else {
            return Vec::new();
        };
        let text = String::from_utf8_lossy(&seed.bytes);
        let mut b = mutate_lines(rng, &text, INTEL_LINES).into_bytes();
        if rng.chance(1, 3) {
            mutate_bytes(rng, &mut b);
        }
        bounded(b)
    }

    /// The config (YAML) and, one case in four, overlay variables naming its roles and
    /// playbooks (or not), framed as two parts.
    pub fn config(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        let Some(seed) = pick(rng, pool) else {
            return Vec::new();
        };
        let yaml = if rng.chance(1, 32) {
            seed.bytes.clone()
        } else {
            yaml_of(rng, pool, seed)
        };
        let mut vars = Vec::new();
        if rng.chance(1, 4) {
            let roles = [
                "security_engineer",
                "security_lead",
                "SECURITY-LEAD",
                "nobody",
                "",
            ];
            let playbooks = [
                "immediate-isolation",
                "queue-for-review",
                "IMMEDIATE_ISOLATION",
                "x",
            ];
            for _ in 0..rng.range(1, 3) {
                let (name, value) = if rng.chance(1, 2) {
                    let role = rng.pick(&roles).copied().unwrap_or_default();
                    let arns = [
                        "arn:aws:iam::111122223333:role/Lead",
                        "arn:aws:iam::111122223333:user/ana, arn:aws:sts::111122223333:assumed-role/r/s",
                        "arn:aws:iam::111122223333:group/x",
                        ",,",
                        "not an arn",
                    ];
                    (
                        ir_env::source::approvers_variable(role),
                        rng.pick(&arns).copied().unwrap_or_default().to_owned(),
                    )
                } else {
                    let id = rng.pick(&playbooks).copied().unwrap_or_default();
                    let modes = ["enforce", "dry-run", "Enforce", " ", "on"];
                    (
                        ir_env::source::playbook_mode_variable(id),
                        rng.pick(&modes).copied().unwrap_or_default().to_owned(),
                    )
                };
                let value = if rng.chance(1, 4) {
                    mutate::mutate_string(rng, &value, &pool.dict)
                } else {
                    value
                };
                vars.push((name, value.replace('\n', " ")));
            }
        }
        parts::encode(&[&yaml, &parts::join_pairs(&vars)])
    }

    /// A dead letter: its body mutated as JSON, its attributes dropped, changed or added.
    pub fn dead_letter(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        let Some(seed) = pick(rng, pool) else {
            return Vec::new();
        };
        let Some(framed) = parts::decode(&seed.bytes) else {
            return Vec::new();
        };
        let body_seed = Seed {
            name: seed.name.clone(),
            bytes: framed.first().map(|b| b.to_vec()).unwrap_or_default(),
            tree: seed.tree.clone(),
        };
        let body = if rng.chance(3, 4) {
            json_of(rng, pool, &body_seed)
        } else {
            body_seed.bytes.clone()
        };
        let mut attrs = parts::pairs(framed.get(1).copied().unwrap_or_default());
        if rng.chance(1, 3) {
            for _ in 0..rng.range(1, 3) {
                let n = attrs.len();
                match rng.below(4) {
                    0 if n > 0 => {
                        attrs.remove(rng.below(n));
                    }
                    1 => {
                        let names = [
                            "RULE_ARN",
                            "TARGET_ARN",
                            "ERROR_CODE",
                            "ERROR_MESSAGE",
                            "EXHAUSTED_RETRY_CONDITION",
                            "RETRY_ATTEMPTS",
                        ];
                        let name = rng.pick(&names).copied().unwrap_or_default().to_owned();
                        let value = mutate::mutate_string(rng, "", &pool.dict);
                        attrs.push((name, value));
                    }
                    _ if n > 0 => {
                        let i = rng.below(n);
                        if let Some((_, v)) = attrs.get_mut(i) {
                            *v = mutate::mutate_string(rng, v, &pool.dict);
                        }
                    }
                    _ => {}
                }
            }
            for (_, v) in attrs.iter_mut() {
                *v = v.replace('\n', " ");
            }
        }
        parts::encode(&[&body, &parts::join_pairs(&attrs)])
    }

    /// An interactions request body: the payload JSON (mutated, often) form-encoded, with
    /// extra, repeated or missing fields now and then, and bytes mutated sometimes.
    pub fn slack_form(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        let Some(seed) = pick(rng, pool) else {
            return Vec::new();
        };
        let json = if rng.chance(3, 4) {
            json_of(rng, pool, seed)
        } else {
            seed.bytes.clone()
        };
        let json = String::from_utf8_lossy(&json);
        let mut form = form_urlencoded::Serializer::new(String::new());
        match rng.below(10) {
            0 => {
                form.append_pair("token", "x").append_pair("payload", &json);
            }
            1 => {
                form.append_pair("payload", &json)
                    .append_pair("payload", "{}");
            }
            2 => {
                form.append_pair("Payload", &json);
            }
            _ => {
                form.append_pair("payload", &json);
            }
        }
        let mut body = form.finish().into_bytes();
        if rng.chance(1, 8) {
            mutate_bytes(rng, &mut body);
        }
        bounded(body)
    }

    /// The secret Slack's documentation signs its example with.
    pub const SIGNING_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    /// The clock of the signed requests (2026-04-20 14:32 UTC).
    pub const NOW: i64 = 1_776_695_520;

    /// A signed interactions request (secret, clock, body, headers), then one thing changed —
    /// or nothing: the body, the timestamp, the signature, the headers, the clock, the secret.
    pub fn slack_signed(rng: &mut Rng, pool: &Pool) -> Vec<u8> {
        let mut body = slack_form(rng, pool);
        let mut secret = SIGNING_SECRET.to_owned();
        let skew = match rng.below(4) {
            0 => rng.range(0, 600) as i64 - 300,
            1 => rng.range(0, 2000) as i64 - 1000,
            _ => rng.range(0, 10) as i64,
        };
        let mut now = NOW + skew;
        let mut ts = NOW.to_string();
        let signature =
            ir_chat::slack::verify::signature(&ir_chat::Secret::new(secret.as_str()), &ts, &body);
        let mut headers = vec![
            ("X-Slack-Request-Timestamp".to_owned(), ts.clone()),
            ("X-Slack-Signature".to_owned(), signature),
            (
                "Content-Type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            ),
        ];
        match rng.below(9) {
            0 | 1 => {}
            2 => mutate_bytes(rng, &mut body),
            3 => {
                ts = match rng.below(5) {
                    0 => format!(" {ts} "),
                    1 => format!("{ts}0"),
                    2 => (NOW + rng.range(0, 1000) as i64 - 500).to_string(),
                    3 => rng
                        .pick(mutate::NUMBERS)
                        .copied()
                        .unwrap_or_default()
                        .to_owned(),
                    _ => mutate::mutate_string(rng, &ts, &pool.dict),
                };
                if let Some(h) = headers.get_mut(0) {
                    h.1 = ts.clone();
                }
            }
            4 => {
                if let Some(h) = headers.get_mut(1) {
                    h.1 = match rng.below(5) {
                        0 => h.1.to_ascii_uppercase(),
                        1 => h.1.replacen("v0=", "v1=", 1),
                        2 => h.1.chars().take(rng.below(h.1.len() + 1)).collect(),
                        3 => format!("{}0", h.1),
                        _ => mutate::mutate_string(rng, &h.1, &pool.dict),
                    };
                }
            }
            5 => {
                let n = headers.len();
                let i = rng.below(n);
                match rng.below(4) {
                    0 => {
                        headers.remove(i);
                    }
                    1 => {
                        if let Some(h) = headers.get(i).cloned() {
                            headers.push(h);
                        }
                    }
                    2 => {
                        if let Some(h) = headers.get_mut(i) {
                            h.0 = h.0.to_ascii_lowercase();
                        }
                    }
                    _ => {
                        if let Some(h) = headers.get_mut(i) {
                            h.0 = mutate::mutate_string(rng, &h.0, &pool.dict);
                        }
                    }
                }
            }
            6 => {
                now = match rng.below(3) {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    _ => NOW + rng.range(0, 1_000_000) as i64 - 500_000,
                };
            }
            7 => secret = String::new(),
            _ => secret = mutate::mutate_string(rng, &secret, &pool.dict),
        }
        let headers: Vec<u8> = headers
            .iter()
            .map(|(k, v)| format!("{}: {}", k.replace(['\n', ':'], ""), v.replace('\n', "")))
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes();
        parts::encode(&[
            secret.as_bytes(),
            now.to_string().as_bytes(),
            &body,
            &headers,
        ])
    }
}

pub mod run {
    //! Each parser on one input, and the properties its result must hold.

    use std::collections::BTreeMap;

    use aws_lambda_events::eventbridge::EventBridgeEvent;
    use ir_core::correlate::{incident_id, is_incident_id};
    use ir_core::orchestration::{ApprovalRequest, NotifyRequest, PlaybookInput, RecordRequest};
    use ir_core::{EnrichInput, IngestOutput, ScoreInput};
    use ir_lambda::payload::Checked;
    use serde::de::{DeserializeOwned, IgnoredAny};
    use serde_json::Value;
    use serde_json::value::RawValue;
    use time::OffsetDateTime;

    use super::engine;
    use crate::parts;

    /// What a parser made of an input (a broken property is the `Err`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Parsed {
        /// Read, and what follows it in the suite ran on the result.
        Accepted,
        /// Refused with a typed error (or not a case for this parser: a torn frame).
        Refused,
    }
    use Parsed::{Accepted, Refused};

    /// A run's result.
    pub type Out = Result<Parsed, String>;

    /// The stable codes of `ir_core::InputError`.
    const INPUT_ERROR_CODES: &[&str] = &[
        "not-json",
        "not-an-envelope",
        "too-large",
        "unsupported-source",
        "unsupported-detail-type",
        "empty-findings",
        "invalid-finding",
    ];

    fn known(name: &str, names: &[&str], what: &str) -> Out {
        if names.contains(&name) {
            Ok(Refused)
        } else {
            Err(format!("{what} `{name}` is not one of the stable names"))
        }
    }

    /// JSON as RFC 8259 has it: UTF-8 text of one value (serde_json skips an ignored string's
    /// bytes unchecked, so the UTF-8 check is separate).
    fn is_json(bytes: &[u8]) -> bool {
        std::str::from_utf8(bytes).is_ok() && serde_json::from_slice::<IgnoredAny>(bytes).is_ok()
    }

    /// A finding envelope through `ir_core::normalize`: a refusal has a stable code; every
    /// event has an incident id, and its raw finding, alone in an envelope of its own,
    /// normalizes to the same finding key; the ingest output reads back as the next state's
    /// input.
    pub fn normalize(bytes: &[u8]) -> Out {
        let n = match ir_core::normalize(bytes) {
            Ok(n) => n,
            Err(e) => return known(e.code(), INPUT_ERROR_CODES, "InputError code"),
        };
        let envelope: Top<'_> = serde_json::from_slice(bytes).map_err(|e| {
            format!("normalize accepted an envelope whose fields do not read again: {e}")
        })?;
        for e in &n.events {
            let id = incident_id(&e.finding_key);
            if !is_incident_id(&id) {
                return Err(format!("incident id `{id}` has not the shape of one"));
            }
            let again = ir_core::normalize(&alone(&envelope, e.raw.get()).into_bytes())
                .map_err(|why| format!("finding {} alone is refused: {why}", e.finding_id))?;
            let keys: Vec<&str> = again
                .events
                .iter()
                .map(|a| a.finding_key.as_str())
                .collect();
            if keys != [e.finding_key.as_str()] {
                return Err(format!(
                    "finding {} alone normalizes to keys {keys:?}, not [{}]",
                    e.finding_id, e.finding_key
                ));
            }
            sequence_bounds(e)?;
        }
        next_state(IngestOutput::from_normalized(n, OffsetDateTime::UNIX_EPOCH))
    }

    /// What an attack sequence's event may hold: its caps, each resource once and never the
    /// event's own, never its own key among its signals, identifiers of a bounded length.
    fn sequence_bounds(e: &ir_core::SecurityEvent) -> Result<(), String> {
        use ir_core::sequence::{MAX_RESOURCES, MAX_SIGNAL_KEYS};
        if e.related_resources.len() >= MAX_RESOURCES || e.signal_keys.len() > MAX_SIGNAL_KEYS {
            return Err(format!(
                "finding {}: {} related resources and {} signal keys, over the caps",
                e.finding_id,
                e.related_resources.len(),
                e.signal_keys.len()
            ));
        }
        let mut keys = std::collections::BTreeSet::from([e.resource_key()]);
        for r in &e.related_resources {
            if r.resource.id().len() > 256 || !keys.insert(r.key()) {
                return Err(format!(
                    "finding {}: related resource {} repeated or too long",
                    e.finding_id,
                    r.key()
                ));
            }
        }
        let signals: std::collections::BTreeSet<&String> = e.signal_keys.iter().collect();
        if signals.len() != e.signal_keys.len() || signals.contains(&e.finding_key) {
            return Err(format!(
                "finding {}: signal keys repeated or naming the finding itself",
                e.finding_id
            ));
        }
        Ok(())
    }

    /// The envelope fields `normalize` reads, verbatim.
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        source: Option<&'a RawValue>,
        #[serde(rename = "detail-type", borrow, default)]
        detail_type: Option<&'a RawValue>,
        #[serde(borrow, default)]
        account: Option<&'a RawValue>,
        #[serde(borrow, default)]
        region: Option<&'a RawValue>,
        #[serde(borrow, default)]
        time: Option<&'a RawValue>,
    }

    /// The envelope of `envelope` with `raw` as its only finding.
    fn alone(envelope: &Top<'_>, raw: &str) -> String {
        let field = |k: &str, v: Option<&RawValue>| {
            v.map(|v| format!(",\"{k}\":{}", v.get()))
                .unwrap_or_default()
        };
        let securityhub = envelope
            .source
            .and_then(|s| serde_json::from_str::<&str>(s.get()).ok())
            == Some("aws.securityhub");
        let detail = if securityhub {
            format!("{{\"findings\":[{raw}]}}")
        } else {
            raw.to_owned()
        };
        format!(
            "{{\"detail\":{detail}{}{}{}{}{}}}",
            field("source", envelope.source),
            field("detail-type", envelope.detail_type),
            field("account", envelope.account),
            field("region", envelope.region),
            field("time", envelope.time)
        )
    }

    /// The incidents of an ingest output, verbatim.
    #[derive(serde::Deserialize)]
    struct Incidents {
        incidents: Vec<Box<RawValue>>,
    }

    /// The ingest output as the triage state machine passes it on: every incident reads back
    /// as the enrich function's input.
    fn next_state(output: IngestOutput) -> Out {
        let text = serde_json::to_string(&output)
            .map_err(|e| format!("the ingest output does not serialize: {e}"))?;
        let back: Incidents = serde_json::from_str(&text)
            .map_err(|e| format!("the ingest output does not read back: {e}"))?;
        for incident in &back.incidents {
            serde_json::from_str::<EnrichInput>(incident.get())
                .map_err(|e| format!("an ingested incident is no enrich input: {e}"))?;
        }
        Ok(Accepted)
    }

    /// A payload as the Lambda runtime hands it to a function (serde_path_to_error over a
    /// slice deserializer, into `Checked<T>`): any JSON gives a `Checked` (a payload that
    /// does not parse is the function's own error, never the runtime's).
    fn checked<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<Checked<T>>, String> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize::<_, Checked<T>>(&mut de) {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_json(bytes) => Err(format!(
                "the runtime's own error for a JSON payload (Checked must take any JSON): {e}"
            )),
            Err(_) => Ok(None),
        }
    }

    /// `ir-ingest`: `Checked<EventBridgeEvent<Box<RawValue>>>`, then what its handler's pure
    /// part does (size, envelope time, `normalize_detail`, grouping), then the next state.
    pub fn ingest(bytes: &[u8]) -> Out {
        let Some(incoming) = checked::<EventBridgeEvent<Box<RawValue>>>(bytes)? else {
            return Ok(Refused);
        };
        if incoming.raw.get().len() > ir_core::normalize::MAX_EVENT_BYTES {
            return Ok(Refused);
        }
        let Ok(envelope) = incoming.value else {
            return Ok(Refused);
        };
        let time = match envelope.time {
            Some(t) => match t
                .timestamp_nanos_opt()
                .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(i128::from(n)).ok())
            {
                Some(t) => Some(t),
                None => return Ok(Refused),
            },
            None => None,
        };
        let meta = ir_core::EnvelopeMeta {
            source: &envelope.source,
            detail_type: &envelope.detail_type,
            account: envelope.account.as_deref(),
            region: envelope.region.as_deref(),
            time,
        };
        match ir_core::normalize_detail(&meta, &envelope.detail) {
            Ok(n) => next_state(IngestOutput::from_normalized(n, OffsetDateTime::UNIX_EPOCH)),
            Err(e) => known(e.code(), INPUT_ERROR_CODES, "InputError code"),
        }
    }

    /// The config through `ir_env::config_from_text` (an SSM or S3 config: overlay, schema,
    /// meaning, deployed state machines); a refusal names the origin.
    pub fn config(bytes: &[u8]) -> Out {
        let Some(p) = parts::decode(bytes) else {
            return Ok(Refused);
        };
        let text = String::from_utf8_lossy(p.first().copied().unwrap_or_default());
        let vars = parts::pairs(p.get(1).copied().unwrap_or_default());
        let overlay = match ir_env::Overlay::from_vars(vars) {
            Ok(o) => o,
            Err(e) => {
                return if e.to_string().contains("IR_") {
                    Ok(Refused)
                } else {
                    Err(format!("an overlay refusal names no variable: {e}"))
                };
            }
        };
        match ir_env::config_from_text(&text, "ssm:/ir/fuzz", &overlay) {
            Ok(config) => {
                // What every function does next with a config it loaded.
                let _ = ir_core::asl::render(&config);
                Ok(Accepted)
            }
            Err(e) if e.to_string().contains("ssm:/ir/fuzz") || e.to_string().contains("IR_") => {
                Ok(Refused)
            }
            Err(e) => Err(format!(
                "a config refusal names neither origin nor variable: {e}"
            )),
        }
    }

    /// The asset registry; one that parses enriches every sample incident.
    pub fn assets(bytes: &[u8]) -> Out {
        let text = String::from_utf8_lossy(bytes);
        let Ok(registry) = ir_core::enrich::AssetRegistry::from_yaml(&text) else {
            return Ok(Refused);
        };
        let Some(e) = engine() else {
            return Ok(Refused);
        };
        for events in sample_events() {
            let _ =
                ir_core::enrich::enrich(events, &registry, &e.intel, &e.config.triage.defaults, 0);
        }
        Ok(Accepted)
    }

    /// The intel list; one that parses is looked up with every token of the input and the
    /// sample indicators, and scores stay in [0, 1].
    pub fn intel(bytes: &[u8]) -> Out {
        let text = String::from_utf8_lossy(bytes);
        let intel = match ir_core::enrich::ThreatIntel::parse(&text) {
            Ok(i) => i,
            Err(e) => {
                return match e {
                    ir_core::enrich::EnrichmentDataError::Intel { line, .. }
                        if line >= 1 && line <= text.lines().count() =>
                    {
                        Ok(Refused)
                    }
                    other => Err(format!(
                        "an intel refusal names no line of the list: {other}"
                    )),
                };
            }
        };
        let mut indicators: Vec<ir_core::event::Indicator> = Vec::new();
        for token in text.split_whitespace().take(64) {
            for kind in [
                ir_core::event::IndicatorKind::Ip,
                ir_core::event::IndicatorKind::Domain,
            ] {
                indicators.push(ir_core::event::Indicator {
                    kind,
                    value: token.to_owned(),
                    asn: None,
                });
            }
        }
        for events in sample_events() {
            for e in events {
                indicators.extend(e.indicators.iter().cloned());
            }
        }
        for i in &indicators {
            if let Some((_, score)) = intel.lookup(i)
                && !(0.0..=1.0).contains(&score)
            {
                return Err(format!("intel scored {} {score}, outside [0, 1]", i.value));
            }
        }
        Ok(Accepted)
    }

    /// The events of every sample, normalized once.
    fn sample_events() -> &'static [Vec<ir_core::SecurityEvent>] {
        static E: std::sync::OnceLock<Vec<Vec<ir_core::SecurityEvent>>> =
            std::sync::OnceLock::new();
        E.get_or_init(|| {
            crate::corpus::files("events/")
                .filter_map(|(_, b)| ir_core::normalize(b).ok().map(|n| n.events))
                .filter(|e| !e.is_empty())
                .collect()
        })
    }

    /// `ir-enrich`: the payload, the incident id check, and the enrichment.
    pub fn enrich(bytes: &[u8]) -> Out {
        let Some(Ok(input)) = checked::<EnrichInput>(bytes)?.map(|c| c.value) else {
            return Ok(Refused);
        };
        if !is_incident_id(&input.incident_id) || input.events.is_empty() {
            return Ok(Refused);
        }
        let Some(e) = engine() else {
            return Ok(Refused);
        };
        let out = e.enrich(&input.events, input.history_count);
        serde_json::to_string(&out)
            .map(|_| Accepted)
            .map_err(|e| format!("an enrichment does not serialize: {e}"))
    }

    /// `ir-score`: the payload, the incident id check, the decision; a decision reads back
    /// (the recorder stores it) and makes a playbook input.
    pub fn score(bytes: &[u8]) -> Out {
        let Some(Ok(input)) = checked::<ScoreInput>(bytes)?.map(|c| c.value) else {
            return Ok(Refused);
        };
        if !is_incident_id(&input.incident_id) {
            return Ok(Refused);
        }
        let Some(e) = engine() else {
            return Ok(Refused);
        };
        let Ok(decision) = e.decide(
            &input.incident_id,
            &input.events,
            &input.enrichment,
            input.detected_at,
        ) else {
            return Ok(Refused);
        };
        let text = serde_json::to_string(&decision)
            .map_err(|e| format!("a decision does not serialize: {e}"))?;
        let back: ir_core::Decision = serde_json::from_str(&text)
            .map_err(|e| format!("a decision does not read back: {e}"))?;
        if back.incident_id != decision.incident_id || back.severity != decision.severity {
            return Err("a decision reads back different".to_owned());
        }
        let _ = PlaybookInput::new(&input.events, decision, input.detected_at);
        Ok(Accepted)
    }

    /// `ir-record`: the payload; a triage decision makes its playbook input.
    pub fn record(bytes: &[u8]) -> Out {
        let Some(Ok(request)) = checked::<RecordRequest>(bytes)?.map(|c| c.value) else {
            return Ok(Refused);
        };
        if let RecordRequest::Triaged {
            events,
            decision,
            detected_at,
            ..
        } = &request
        {
            let _ = PlaybookInput::new(events, decision.clone(), *detected_at);
        }
        serde_json::to_string(&request)
            .map(|_| Accepted)
            .map_err(|e| format!("a record request does not serialize: {e}"))
    }

    /// `ir-request-approval`: the payload and its plan's hash.
    pub fn approval(bytes: &[u8]) -> Out {
        let Some(Ok(request)) = checked::<ApprovalRequest>(bytes)?.map(|c| c.value) else {
            return Ok(Refused);
        };
        let hash = ir_core::action::plan_hash(&request.plan.changes);
        if hash.len() != 64 {
            return Err(format!("plan hash `{hash}` is not a SHA-256"));
        }
        // The task token is a bearer secret: its Debug leaves it out.
        let token = request.task_token.as_str();
        let elsewhere = request.incident_id.contains(token)
            || request.step_id.contains(token)
            || request.level.to_string().contains(token)
            || "ApprovalRequest { task_token: \"(redacted)\", incident_id, step_id, level, .. }"
                .contains(token);
        if token.len() >= 4 && !elsewhere && format!("{request:?}").contains(token) {
            return Err("the task token shows in Debug".to_owned());
        }
        Ok(Accepted)
    }

    /// The action functions' payloads (`ir_lambda::perform`: the payload, the incident id).
    fn action<T: DeserializeOwned + ir_core::action::ActionInput + serde::Serialize>(
        bytes: &[u8],
    ) -> Out {
        let Some(Ok(request)) = checked::<T>(bytes)?.map(|c| c.value) else {
            return Ok(Refused);
        };
        let _ = is_incident_id(request.incident_id());
        serde_json::to_string(&request)
            .map(|_| Accepted)
            .map_err(|e| format!("an action request does not serialize: {e}"))
    }

    pub fn containment(bytes: &[u8]) -> Out {
        action::<ir_core::action::ContainmentRequest>(bytes)
    }

    pub fn evidence(bytes: &[u8]) -> Out {
        action::<ir_core::action::EvidenceRequest>(bytes)
    }

    pub fn notify(bytes: &[u8]) -> Out {
        action::<NotifyRequest>(bytes)
    }

    /// The dead-letter reader: a dead letter's event is a JSON object, and it serializes.
    pub fn dead_letter(bytes: &[u8]) -> Out {
        let Some(p) = parts::decode(bytes) else {
            return Ok(Refused);
        };
        let body = String::from_utf8_lossy(p.first().copied().unwrap_or_default());
        let attrs: BTreeMap<String, String> = parts::pairs(p.get(1).copied().unwrap_or_default())
            .into_iter()
            .collect();
        match ir_core::dead_letter::parse(&body, &attrs) {
            Ok(dl) => {
                serde_json::from_str::<serde_json::Map<String, Value>>(dl.event.get())
                    .map_err(|e| format!("a dead letter's event is no JSON object: {e}"))?;
                let _ = dl.origin.name();
                serde_json::to_string(&dl)
                    .map(|_| Accepted)
                    .map_err(|e| format!("a dead letter does not serialize: {e}"))
            }
            Err(u) if u.reason.is_empty() => Err("an unrecognized message without a reason".into()),
            Err(_) => Ok(Refused),
        }
    }

    const PAYLOAD_ERRORS: &[&str] = &["PayloadTooLarge", "MalformedPayload", "UnsupportedPayload"];

    /// Slack's interactions body: stable error names; an approval button's reference is
    /// checked (non-empty parts without control characters).
    pub fn slack_interaction(bytes: &[u8]) -> Out {
        let click = match ir_chat::slack::parse_interaction(bytes) {
            Ok(c) => c,
            Err(e) => return known(e.name(), PAYLOAD_ERRORS, "PayloadError name"),
        };
        match click.approval() {
            Ok((_, r)) => {
                for part in [r.incident_id(), r.step_id(), r.plan_hash()] {
                    if part.trim().is_empty() || part.chars().any(char::is_control) {
                        return Err(format!("an approval reference part `{part:?}` passed"));
                    }
                }
                Ok(Accepted)
            }
            Err(e) => known(e.name(), PAYLOAD_ERRORS, "PayloadError name"),
        }
    }

    const VERIFY_ERRORS: &[&str] = &[
        "InvalidConfig",
        "MissingHeader",
        "MalformedHeader",
        "StaleRequest",
        "InvalidSignature",
    ];

    /// Slack's signature check, held to an oracle: it passes exactly when the secret is set,
    /// each header is given once, the timestamp is within five minutes, and the signature is
    /// the HMAC of the request.
    pub fn slack_verify(bytes: &[u8]) -> Out {
        let Some(p) = parts::decode(bytes) else {
            return Ok(Refused);
        };
        let secret = String::from_utf8_lossy(p.first().copied().unwrap_or_default()).into_owned();
        let now: i64 = String::from_utf8_lossy(p.get(1).copied().unwrap_or_default())
            .parse()
            .unwrap_or(0);
        let Ok(now) = OffsetDateTime::from_unix_timestamp(now) else {
            return Ok(Refused);
        };
        let body = p.get(2).copied().unwrap_or_default();
        let header_text =
            String::from_utf8_lossy(p.get(3).copied().unwrap_or_default()).into_owned();
        let headers: Vec<(&str, &str)> = header_text
            .split('\n')
            .filter_map(|l| l.split_once(": "))
            .collect();
        let secret = ir_chat::Secret::new(secret);
        let result = ir_chat::slack::verify_headers(&secret, headers.iter().copied(), body, now);
        if let Err(e) = &result {
            known(e.name(), VERIFY_ERRORS, "VerifyError name")?;
        }
        let named = |n: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| *v)
                .collect()
        };
        let (ts, sig) = (
            named("X-Slack-Request-Timestamp"),
            named("X-Slack-Signature"),
        );
        let expected = match ts.as_slice() {
            [t] => Some(ir_chat::slack::verify::signature(&secret, t.trim(), body)),
            _ => None,
        };
        let in_window = ts.as_slice().first().is_some_and(|t| {
            let t = t.trim();
            t.len() <= 12
                && !t.is_empty()
                && t.bytes().all(|b| b.is_ascii_digit())
                && t.parse::<i64>()
                    .is_ok_and(|s| (now.unix_timestamp().saturating_sub(s)).unsigned_abs() <= 300)
        });
        let matches = match (sig.as_slice(), &expected) {
            // The scheme's prefix as Slack writes it, the hex digits in either case.
            ([s], Some(x)) => match (s.trim().strip_prefix("v0="), x.strip_prefix("v0=")) {
                (Some(given), Some(want)) => given.eq_ignore_ascii_case(want),
                _ => false,
            },
            _ => false,
        };
        let should_pass =
            !secret.is_empty() && ts.len() == 1 && sig.len() == 1 && in_window && matches;
        match (&result, should_pass) {
            (Ok(v), true) if v.replay_key.len() == 64 => Ok(Accepted),
            (Ok(_), true) => Err("a replay key is not a SHA-256".to_owned()),
            (Ok(_), false) => Err("a request passed that the oracle refuses".to_owned()),
            (Err(e), true) => Err(format!("a request the oracle passes was refused: {e}")),
            (Err(_), false) => Ok(Refused),
        }
    }
}
