//! Structural mutation: JSON trees (drop, duplicate, retype, swap, extreme numbers, long,
//! unicode and control strings, nesting, foreign subtrees, renamed keys), then text (lines,
//! tokens) and bytes (truncation, flips, insertions). Every choice comes from the case's
//! [`Rng`], so a case is reproducible from (target, seed, index).

use crate::rng::Rng;
use crate::tree::J;

/// No case is larger than this: a little over EventBridge's 256 KiB, so the size limits of
/// the parsers are crossed, and small enough that no parser can spend long on one input.
pub const MAX_INPUT_BYTES: usize = 300 * 1024;

/// How deep a mutation nests a value: serde_json and serde_yaml_ng stop at 128 levels with an
/// error, and a few cases go past that to check they still do.
const MAX_NEST: usize = 140;

/// Numbers at the edges of every integer and float type, and literals that are not JSON.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "0.5",
    "1.0",
    "1.0000001",
    "8.9",
    "10",
    "100",
    "101",
    "255",
    "256",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "123456789012345678901234567890",
    "1e308",
    "1.7976931348623157e308",
    "1e309",
    "-1e309",
    "5e-324",
    "1e-400",
    "1E2",
    "-0.0",
    "3.4028236e38",
    "1e10",
    "1700000000000",
    "253402300800",
    "-62167219201",
    // Not JSON: the parser must refuse, not fall over.
    "NaN",
    "Infinity",
    "-",
    "01",
    "1.",
    ".5",
    "0x10",
];

/// Strings that have broken parsers before: empty, blank, control, bidi, astral, long, and the
/// shapes the suite reads (times, ARNs, ids, addresses, severities, modes).
pub const STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "\n",
    "\r\n",
    "\t",
    "\u{7f}",
    "\u{85}",
    "\u{200b}",
    "\u{202e}",
    "\u{feff}",
    "é",
    "e\u{301}",
    "İ",
    "ß",
    "𝔘𝔫𝔦",
    "🙂",
    "\u{10ffff}",
    "::::::",
    "/",
    "//",
    "*",
    "%",
    "%00",
    "%zz",
    "+",
    "&",
    "=",
    "\\",
    "\"",
    "#",
    "${x}",
    "arn:",
    "arn:aws",
    "arn:aws:iam::",
    "arn:aws:iam::111122223333:role/",
    "arn:aws:iam::111122223333:role/web-prod-instance-role",
    "arn:aws:iam::111122223333:user/ci-deployer",
    "arn:aws:sts::111122223333:assumed-role/responder/ana",
    "arn:aws:sts::111122223333:assumed-role/",
    "arn:aws:lambda:us-east-1:111122223333:function:ir-ingest:$LATEST",
    "arn:aws:events:us-east-1:111122223333:rule/ir-findings",
    "arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f60001",
    "arn:aws:s3:::acme-customer-exports",
    "arn:aws:securityhub:us-east-1::product/aws/guardduty",
    "i-",
    "i-0a1b2c3d4e5f60001",
    "inc-",
    "inc-0123456789abcdef0123",
    "inc-0123456789ABCDEF0123",
    "inc-0123456789abcdef0123-r1",
    "111122223333",
    "us-east-1",
    "1970-01-01T00:00:00Z",
    "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.123456789+14:00",
    "2026-11-20T10:00:00.1234567891234Z",
    "2026-11-20T10:00:00-23:59",
    "2026-11-20T10:00:60Z",
    "2026-02-30T00:00:00Z",
    "2026-11-20T10:00:00",
    "2026-11-20",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "+275760-09-13T00:00:00Z",
    "-000001-01-01T00:00:00Z",
    "1700000000000",
    "99999999999999999999",
    "-1",
    "1e400",
    "NaN",
    "inf",
    "0.0.0.0",
    "255.255.255.255",
    "256.256.256.256",
    "::",
    "::ffff:1.2.3.4",
    "fe80::1%eth0",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "::/129",
    "198.51.100.23",
    "2600:1f18:abcd:1200::15",
    "example..com",
    ".",
    "-a.example",
    "xmr.pool.example.net.",
    "LOW",
    "MEDIUM",
    "HIGH",
    "CRITICAL",
    "INFORMATIONAL",
    "low",
    "critical",
    "dry-run",
    "enforce",
    "approve",
    "reject",
    "continue",
    "stop",
    "ACTIVE",
    "ARCHIVED",
    "NEW",
    "NOTIFIED",
    "RESOLVED",
    "SUPPRESSED",
    "block_actions",
    "payload=",
    "v0=",
    "aws.guardduty",
    "aws.securityhub",
    "GuardDuty Finding",
    "Security Hub Findings - Imported",
    "Findings Imported V2",
    "triaged",
    "step-result",
    "claim-slot",
    "isolate-instance",
    "cloud:terminate_instance",
    "Ec2Instance",
    "Instance",
    "AccessKey",
    "S3Bucket",
    "AwsEc2Instance",
    "AwsIamRole",
    "AwsS3Bucket",
    "Other",
];

/// Object keys to add: the suite's field names in several spellings, and junk.
const KEYS: &[&str] = &[
    "",
    "id",
    "Id",
    "ID",
    "type",
    "Type",
    "kind",
    "severity",
    "Severity",
    "resource",
    "Resources",
    "detail",
    "findings",
    "source",
    "detail-type",
    "time",
    "account",
    "region",
    "raw",
    "__proto__",
    "\u{0}",
    "🙂",
];

/// Mutates a tree `rounds` times (at least once).
pub fn mutate_tree(rng: &mut Rng, tree: &mut J, dict: &Dictionary, others: &[&J]) {
    let rounds = match rng.below(10) {
        0..=5 => 1,
        6..=8 => rng.range(2, 4),
        _ => rng.range(5, 16),
    };
    for _ in 0..rounds {
        mutate_once(rng, tree, dict, others);
    }
}

/// The keys and strings of a target's seeds.
#[derive(Debug, Clone, Default)]
pub struct Dictionary {
    pub keys: Vec<String>,
    pub strings: Vec<String>,
}

impl Dictionary {
    pub fn of(trees: &[&J]) -> Dictionary {
        let mut d = Dictionary::default();
        for t in trees {
            t.words(&mut d.keys, &mut d.strings);
        }
        d.keys.sort();
        d.keys.dedup();
        d.strings.sort();
        d.strings.dedup();
        d
    }
}

/// Past this many nodes a tree only shrinks (duplications compound).
const MAX_NODES: usize = 20_000;

fn mutate_once(rng: &mut Rng, tree: &mut J, dict: &Dictionary, others: &[&J]) {
    let size = tree.count();
    let at = rng.below(size);
    let op = if size > MAX_NODES { 2 } else { rng.below(12) };
    match op {
        // Retype: another kind of value, often derived from the one there.
        0 | 1 => {
            if let Some(node) = tree.nth_mut(at) {
                *node = retyped(rng, node, dict);
            }
        }
        // Drop a field or an element.
        2 | 3 => {
            if let Some(node) = tree.nth_mut(at) {
                match node {
                    J::Obj(o) if !o.is_empty() => {
                        o.remove(rng.below(o.len()));
                    }
                    J::Arr(a) if !a.is_empty() => {
                        a.remove(rng.below(a.len()));
                    }
                    _ => *node = J::Null,
                }
            }
        }
        // Duplicate a field (same key twice) or an element (up to many times).
        4 => {
            if let Some(node) = tree.nth_mut(at) {
                let times = if rng.chance(1, 8) {
                    rng.range(2, 60)
                } else {
                    1
                };
                match node {
                    J::Obj(o) if !o.is_empty() => {
                        let i = rng.below(o.len());
                        if let Some(e) = o.get(i).cloned() {
                            for _ in 0..times {
                                o.insert(i, e.clone());
                            }
                        }
                    }
                    J::Arr(a) if !a.is_empty() => {
                        let i = rng.below(a.len());
                        if let Some(e) = a.get(i).cloned() {
                            for _ in 0..times {
                                a.insert(i, e.clone());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        // Swap the values of two nodes.
        5 => {
            let other = rng.below(size);
            let (a, b) = (tree.nth(at).cloned(), tree.nth(other).cloned());
            if let (Some(a), Some(b)) = (a, b) {
                if let Some(n) = tree.nth_mut(at) {
                    *n = b;
                }
                if let Some(n) = tree.nth_mut(other) {
                    *n = a;
                }
            }
        }
        // An extreme number.
        6 => {
            if let Some(node) = tree.nth_mut(at) {
                *node = number(rng);
            }
        }
        // A string changed in place, or replaced.
        7 | 8 => {
            if let Some(node) = tree.nth_mut(at) {
                let base = match node {
                    J::Str(s) => s.clone(),
                    J::Raw(r) => r.clone(),
                    _ => dict_string(rng, dict),
                };
                *node = J::Str(mutate_string(rng, &base, dict));
            }
        }
        // Add a field (a known key or junk) or an element.
        9 => {
            if let Some(node) = tree.nth_mut(at) {
                let value = leaf(rng, dict);
                match node {
                    J::Obj(o) => {
                        let key = if rng.chance(2, 3) {
                            rng.pick(&dict.keys).cloned().unwrap_or_default()
                        } else {
                            rng.pick(KEYS).map(|k| (*k).to_owned()).unwrap_or_default()
                        };
                        let i = rng.below(o.len() + 1);
                        o.insert(i, (key, value));
                    }
                    J::Arr(a) => {
                        let i = rng.below(a.len() + 1);
                        a.insert(i, value);
                    }
                    _ => {}
                }
            }
        }
        // Nest: wrap a value in arrays or objects.
        10 => {
            if let Some(node) = tree.nth_mut(at) {
                let depth = if rng.chance(1, 10) {
                    rng.range(100, MAX_NEST)
                } else {
                    rng.range(1, 20)
                };
                let mut v = std::mem::replace(node, J::Null);
                for _ in 0..depth {
                    v = if rng.chance(1, 2) {
                        J::Arr(vec![v])
                    } else {
                        J::Obj(vec![(rng.pick(&dict.keys).cloned().unwrap_or_default(), v)])
                    };
                }
                *node = v;
            }
        }
        // A subtree of another seed, or a renamed key.
        _ => {
            if rng.chance(1, 2) {
                if let Some(other) = rng.pick(others) {
                    let n = rng.below(other.count());
                    if let (Some(sub), Some(node)) = (other.nth(n).cloned(), tree.nth_mut(at)) {
                        *node = sub;
                    }
                }
            } else if let Some(J::Obj(o)) = tree.nth_mut(at)
                && !o.is_empty()
            {
                let i = rng.below(o.len());
                if let Some((k, _)) = o.get_mut(i) {
                    *k = match rng.below(4) {
                        0 => k.to_ascii_uppercase(),
                        1 => k.to_ascii_lowercase(),
                        2 => rng.pick(&dict.keys).cloned().unwrap_or_default(),
                        _ => mutate_string(rng, k, dict),
                    };
                }
            }
        }
    }
}

fn number(rng: &mut Rng) -> J {
    match rng.below(4) {
        0 => J::Raw(rng.next_u64().to_string()),
        1 => J::Raw(format!("-{}", rng.below(1_000_000))),
        _ => J::Raw(rng.pick(NUMBERS).copied().unwrap_or("0").to_owned()),
    }
}

fn dict_string(rng: &mut Rng, dict: &Dictionary) -> String {
    if rng.chance(1, 2) {
        rng.pick(&dict.strings).cloned().unwrap_or_default()
    } else {
        rng.pick(STRINGS).copied().unwrap_or_default().to_owned()
    }
}

/// A scalar (often) or a small container.
fn leaf(rng: &mut Rng, dict: &Dictionary) -> J {
    match rng.below(8) {
        0 => J::Null,
        1 => J::Bool(rng.chance(1, 2)),
        2 => number(rng),
        3 => J::Arr(Vec::new()),
        4 => J::Obj(Vec::new()),
        _ => J::Str(dict_string(rng, dict)),
    }
}

/// Another type of value, often made from the old one (8 → "8", "8" → 8, x → [x]).
fn retyped(rng: &mut Rng, node: &J, dict: &Dictionary) -> J {
    match (node, rng.below(4)) {
        (J::Raw(r), 0) => J::Str(r.clone()),
        (J::Str(s), 0) => J::Raw(if s.is_empty() { "0".into() } else { s.clone() }),
        (J::Bool(b), 0) => J::Str(b.to_string()),
        (J::Obj(o), 0) => J::Arr(o.iter().map(|(_, v)| v.clone()).collect()),
        (J::Arr(a), 0) => J::Obj(
            a.iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v.clone()))
                .collect(),
        ),
        (J::Str(s), 1) => J::Str(s.to_string()).wrap_list(),
        (other, 1) => other.clone().wrap_list(),
        _ => leaf(rng, dict),
    }
}

impl J {
    fn wrap_list(self) -> J {
        J::Arr(vec![self])
    }
}

/// A string edited: cut, grown, repeated, case-changed, spliced, or one of [`STRINGS`].
pub fn mutate_string(rng: &mut Rng, s: &str, dict: &Dictionary) -> String {
    let chars: Vec<char> = s.chars().collect();
    let at = rng.below(chars.len() + 1);
    match rng.below(10) {
        0 => chars.iter().take(at).collect(),
        1 => {
            let mut out: String = chars.iter().take(at).collect();
            out.push_str(rng.pick(STRINGS).copied().unwrap_or_default());
            out.extend(chars.iter().skip(at));
            out
        }
        2 => {
            let times = if rng.chance(1, 4) {
                rng.range(1_000, 20_000)
            } else {
                rng.range(2, 64)
            };
            let unit = if s.is_empty() { "a" } else { s };
            unit.repeat(times.min(MAX_INPUT_BYTES / unit.len().max(1)))
        }
        3 => s.to_ascii_uppercase(),
        4 => {
            let mut out: String = chars.iter().take(at).collect();
            out.push(char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('\u{fffd}'));
            out.extend(chars.iter().skip(at));
            out
        }
        5 => {
            // Splice: this string's head, another string's tail.
            let other = dict_string(rng, dict);
            let tail: Vec<char> = other.chars().collect();
            let from = rng.below(tail.len() + 1);
            chars
                .iter()
                .take(at)
                .chain(tail.iter().skip(from))
                .collect()
        }
        6 => {
            let mut out = s.to_owned();
            out.push(char::from_u32(rng.below(0x20) as u32).unwrap_or('\0'));
            out
        }
        7 => format!(" {s} "),
        _ => dict_string(rng, dict),
    }
}

/// Line-level mutation of a text: delete, duplicate, swap, indent, dedent, insert.
pub fn mutate_lines(rng: &mut Rng, text: &str, extra: &[&str]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let rounds = rng.range(1, 4);
    for _ in 0..rounds {
        let n = lines.len();
        let at = rng.below(n.max(1));
        match rng.below(8) {
            0 if n > 0 => {
                lines.remove(at);
            }
            1 if n > 0 => {
                let times = if rng.chance(1, 8) {
                    rng.range(2, 200)
                } else {
                    1
                };
                if let Some(l) = lines.get(at).cloned() {
                    for _ in 0..times {
                        lines.insert(at, l.clone());
                    }
                }
            }
            2 if n > 1 => {
                let other = rng.below(n);
                lines.swap(at, other);
            }
            3 if n > 0 => {
                if let Some(l) = lines.get_mut(at) {
                    let pad = rng.pick(&["  ", " ", "\t", "    "]).copied().unwrap_or(" ");
                    l.insert_str(0, pad);
                }
            }
            4 if n > 0 => {
                if let Some(l) = lines.get_mut(at) {
                    *l = l.trim_start().to_owned();
                }
            }
            5 if n > 0 => {
                // Edit one token of a line.
                if let Some(l) = lines.get_mut(at) {
                    let tokens: Vec<&str> = l.split(' ').collect();
                    let t = rng.below(tokens.len());
                    let mut out: Vec<String> = tokens.iter().map(|s| (*s).to_owned()).collect();
                    if let Some(tok) = out.get_mut(t) {
                        *tok = mutate_string(rng, tok, &Dictionary::default());
                    }
                    *l = out.join(" ");
                }
            }
            _ => {
                let line = match rng.pick(extra) {
                    Some(l) if rng.chance(2, 3) => (*l).to_owned(),
                    _ => rng.pick(STRINGS).copied().unwrap_or_default().to_owned(),
                };
                lines.insert(rng.below(n + 1), line);
            }
        }
    }
    let mut out = lines.join(if rng.chance(1, 16) { "\r\n" } else { "\n" });
    if rng.chance(3, 4) {
        out.push('\n');
    }
    out
}

/// Byte-level mutation: flips, insertions, deletions, truncation, interesting bytes.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const INTERESTING: &[u8] =
        b"\0\t\n\r \"#%&'*+,-./:;<=>?@[\\]^_`{|}~\x7f\x80\xbf\xc0\xe2\xf0\xff";
    let rounds = rng.range(1, 6);
    for _ in 0..rounds {
        let n = bytes.len();
        let at = rng.below(n + 1);
        match rng.below(6) {
            0 if n > 0 => {
                if let Some(b) = bytes.get_mut(at.min(n - 1)) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => bytes.insert(
                at,
                INTERESTING
                    .get(rng.below(INTERESTING.len()))
                    .copied()
                    .unwrap_or(0),
            ),
            2 if n > 0 => {
                let len = rng.range(1, 16).min(n - at.min(n));
                bytes.drain(at..at + len);
            }
            3 => bytes.truncate(at),
            4 if n > 0 => {
                if let Some(b) = bytes.get_mut(at.min(n - 1)) {
                    *b = INTERESTING
                        .get(rng.below(INTERESTING.len()))
                        .copied()
                        .unwrap_or(0);
                }
            }
            _ if n > 0 => {
                // Copy a chunk elsewhere.
                let from = rng.below(n);
                let len = rng.range(1, 64).min(n - from);
                let chunk: Vec<u8> = bytes
                    .get(from..from + len)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                let to = rng.below(n + 1);
                bytes.splice(to..to, chunk);
            }
            _ => {}
        }
    }
}

/// Cuts an input to [`MAX_INPUT_BYTES`].
pub fn bounded(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(MAX_INPUT_BYTES);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_reproducible_and_changes_something() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,"x",{"b":null}],"c":"2026-11-20T10:00:00Z"}"#).unwrap();
        let seed = J::from_value(&v);
        let dict = Dictionary::of(&[&seed]);
        let mut changed = 0;
        for i in 0..200 {
            let run = |i| {
                let mut rng = Rng::for_case("t", 7, i);
                let mut t = seed.clone();
                mutate_tree(&mut rng, &mut t, &dict, &[&seed]);
                t.to_text(false)
            };
            assert_eq!(run(i), run(i));
            if run(i) != seed.to_text(false) {
                changed += 1;
            }
        }
        assert!(changed > 150, "{changed}");
    }

    #[test]
    fn text_and_bytes_mutations_stay_bounded() {
        let mut rng = Rng::for_case("t", 1, 1);
        for _ in 0..500 {
            let t = mutate_lines(&mut rng, "a: 1\nb:\n  - c\n", &["- x"]);
            let mut b = t.into_bytes();
            mutate_bytes(&mut rng, &mut b);
            assert!(bounded(b).len() <= MAX_INPUT_BYTES);
        }
    }
}
