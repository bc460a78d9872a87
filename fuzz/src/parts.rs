//! Inputs of several parts (a dead letter's body and attributes; a Slack request's secret,
//! clock, body and headers; a config and its overlay) framed in one byte string, so that every
//! case, and every crasher file, is one input: a first line `ir-fuzz-parts <len> <len> …`, then
//! the parts' bytes back to back.

const MAGIC: &str = "ir-fuzz-parts";

pub fn encode(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = String::from(MAGIC);
    for p in parts {
        out.push(' ');
        out.push_str(&p.len().to_string());
    }
    out.push('\n');
    let mut bytes = out.into_bytes();
    for p in parts {
        bytes.extend_from_slice(p);
    }
    bytes
}

/// The parts of a framed input; `None` when it is not one (a hand-made file, cut short).
pub fn decode(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let newline = bytes.iter().position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(bytes.get(..newline)?).ok()?;
    let mut words = header.split(' ');
    if words.next()? != MAGIC {
        return None;
    }
    let mut rest = bytes.get(newline + 1..)?;
    let mut parts = Vec::new();
    for w in words {
        let len: usize = w.parse().ok()?;
        let (head, tail) = rest.split_at_checked(len)?;
        parts.push(head);
        rest = tail;
    }
    Some(parts)
}

/// `name=value` lines (a value may hold `=`; a line without one is a name with an empty value).
pub fn pairs(bytes: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(bytes)
        .split('\n')
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

pub fn join_pairs(pairs: &[(String, String)]) -> Vec<u8> {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let framed = encode(&[b"a\nb", b"", b"\xff"]);
        assert_eq!(
            decode(&framed).unwrap(),
            vec![&b"a\nb"[..], &b""[..], &b"\xff"[..]]
        );
        assert!(decode(b"ir-fuzz-parts 9\nabc").is_none());
        assert!(decode(b"other").is_none());
        let p = vec![("A".to_owned(), "x=y".to_owned())];
        assert_eq!(pairs(&join_pairs(&p)), p);
    }
}
