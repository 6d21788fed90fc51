//! Turns lexed entries into records, applying `$ORIGIN`, `$TTL`,
//! `$INCLUDE`, inherited owners and TTLs (RFC 1035 section 5, RFC 2308).
//! The data of the common types in their plain forms is read here
//! directly; anything else, and anything that does not read plainly, is
//! parsed by hickory, one entry at a time, so every error keeps its file
//! and line (and hickory's words) and parsing goes on after it.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
};

use hickory_proto::{
    rr::{
        Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, MX, NS, PTR, SRV, TXT},
    },
    serialize::txt::{Parser, parse_ttl},
};

use super::{
    ZoneError,
    lexer::{self, Entry, Token},
};
use crate::config::Location;

/// `$INCLUDE` may nest this deep.
const MAX_INCLUDE_DEPTH: usize = 8;

/// A record and where it was written (the file shared by its records).
#[derive(Debug, Clone)]
pub struct SourceRecord {
    pub record: Record,
    pub file: std::sync::Arc<Path>,
    pub line: usize,
}

/// The state that carries from one entry to the next.
struct Cursor {
    /// Read the common types directly (off only to compare the two ways).
    direct: bool,
    origin: Name,
    default_ttl: Option<u32>,
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

/// Parses the zone file at `path` (whose text is `text`) with `origin` as
/// the starting `$ORIGIN`. Records go to `out`, problems to `errors`.
pub fn parse_text(
    path: &Path,
    text: &str,
    origin: &Name,
    out: &mut dyn FnMut(SourceRecord),
    errors: &mut Vec<ZoneError>,
) {
    parse_text_with(path, text, origin, out, errors, true);
}

/// `parse_text`; `direct: false` sends every record's data to hickory.
pub fn parse_text_with(
    path: &Path,
    text: &str,
    origin: &Name,
    out: &mut dyn FnMut(SourceRecord),
    errors: &mut Vec<ZoneError>,
    direct: bool,
) {
    let mut cursor = Cursor {
        direct,
        origin: origin.clone(),
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
    };
    parse_into(path, text, &mut cursor, out, errors, 0);
}

fn parse_into(
    path: &Path,
    text: &str,
    cursor: &mut Cursor,
    out: &mut dyn FnMut(SourceRecord),
    errors: &mut Vec<ZoneError>,
    depth: usize,
) {
    let at = |line: usize| Location {
        file: path.to_path_buf(),
        line: Some(line),
    };
    let file: std::sync::Arc<Path> = path.into();
    let lexed = lexer::each_entry(text, |entry| {
        let Some(first) = entry.tokens.first() else {
            return;
        };
        let result = if !entry.owner_blank && !first.quoted && first.text.starts_with('$') {
            directive(path, entry, cursor, out, errors, depth)
        } else {
            record(entry, cursor).map(|record| {
                out(SourceRecord {
                    record,
                    file: file.clone(),
                    line: entry.line,
                })
            })
        };
        if let Err(message) = result {
            errors.push(ZoneError {
                location: at(entry.line),
                message,
            });
        }
    });
    if let Err(e) = lexed {
        errors.push(ZoneError {
            location: at(e.line),
            message: e.message,
        });
    }
}

fn directive(
    path: &Path,
    entry: &Entry,
    cursor: &mut Cursor,
    out: &mut dyn FnMut(SourceRecord),
    errors: &mut Vec<ZoneError>,
    depth: usize,
) -> Result<(), String> {
    let (keyword, args) = entry.tokens.split_first().ok_or("empty directive")?;
    let name = keyword.text.to_ascii_uppercase();
    match name.as_str() {
        "$ORIGIN" => {
            let [arg] = args else {
                return Err("$ORIGIN takes one domain name".into());
            };
            cursor.origin = parse_name(arg.text, &cursor.origin)?;
            Ok(())
        }
        "$TTL" => {
            let [arg] = args else {
                return Err("$TTL takes one TTL, such as 3600 or 1h".into());
            };
            let ttl = parse_ttl(arg.text).map_err(|_| {
                format!(
                    "$TTL `{}` is not a TTL: expected seconds such as 3600, or 1h, 2d",
                    arg.text
                )
            })?;
            cursor.default_ttl = Some(ttl);
            Ok(())
        }
        "$INCLUDE" => {
            let (file, new_origin) = match args {
                [file] => (file, None),
                [file, origin] => (file, Some(parse_name(origin.text, &cursor.origin)?)),
                _ => return Err("$INCLUDE takes a file name and optionally an origin".into()),
            };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(format!(
                    "$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} files"
                ));
            }
            let included: PathBuf = path.parent().unwrap_or(Path::new(".")).join(file.text);
            let text = std::fs::read_to_string(&included)
                .map_err(|e| format!("cannot read $INCLUDE file {}: {e}", included.display()))?;
            // RFC 1035 section 5.1: the origin reverts after the included file.
            let saved_origin = cursor.origin.clone();
            if let Some(origin) = new_origin {
                cursor.origin = origin;
            }
            parse_into(&included, &text, cursor, out, errors, depth + 1);
            cursor.origin = saved_origin;
            Ok(())
        }
        _ => Err(format!(
            "unknown directive `{}`: expected $ORIGIN, $TTL or $INCLUDE",
            keyword.text
        )),
    }
}

fn parse_name(text: &str, origin: &Name) -> Result<Name, String> {
    let mut name = if text == "@" {
        origin.clone()
    } else {
        Name::parse(text, Some(origin))
            .map_err(|e| format!("`{text}` is not a domain name: {e}"))?
    };
    name.set_fqdn(true);
    Ok(name)
}

fn record(entry: &Entry, cursor: &mut Cursor) -> Result<Record, String> {
    let mut tokens = entry.tokens.iter();
    let owner = if entry.owner_blank {
        cursor.last_owner.clone().ok_or(
            "the record has no owner: the first record of a file must name its owner".to_string(),
        )?
    } else {
        let Some(first) = tokens.next() else {
            return Err("empty record".into());
        };
        if first.quoted {
            return Err(format!(
                "owner `\"{}\"` is quoted: expected a domain name",
                first.text
            ));
        }
        parse_name(first.text, &cursor.origin)?
    };
    cursor.last_owner = Some(owner.clone());

    let mut ttl = None;
    let mut class_seen = false;
    let rtype = loop {
        let Some(token) = tokens.next() else {
            return Err(format!(
                "record for {owner} has no type: expected [TTL] [IN] TYPE DATA"
            ));
        };
        // Upper case on the stack: types and classes are short words.
        let mut buf = [0u8; 16];
        let upper_owned;
        let upper: &str = match buf.get_mut(..token.text.len()) {
            Some(to) => {
                to.copy_from_slice(token.text.as_bytes());
                to.make_ascii_uppercase();
                std::str::from_utf8(to).unwrap_or(token.text)
            }
            None => {
                upper_owned = token.text.to_ascii_uppercase();
                &upper_owned
            }
        };
        if !token.quoted && ttl.is_none() && token.text.starts_with(|c: char| c.is_ascii_digit()) {
            ttl = Some(parse_ttl(token.text).map_err(|_| {
                format!(
                    "`{}` is not a TTL: expected seconds such as 3600, or 1h, 2d",
                    token.text
                )
            })?);
            continue;
        }
        match upper {
            "IN" if !class_seen => {
                class_seen = true;
                continue;
            }
            "CH" | "CS" | "HS" | "NONE" | "ANY" if !class_seen => {
                return Err(format!("class {upper} at {owner}: only class IN is served"));
            }
            _ => {}
        }
        break RecordType::from_str(upper).map_err(|_| {
            format!(
                "`{}` is not a record type: expected [TTL] [IN] TYPE, with a type such as A, AAAA, CNAME, MX, NS, SOA, SRV, TXT, CAA or PTR",
                token.text
            )
        })?;
    };
    if rtype == RecordType::DNAME {
        return Err(format!("DNAME at {owner}: DNAME records are not supported"));
    }

    let ttl = match ttl {
        Some(ttl) => {
            cursor.last_ttl = Some(ttl);
            ttl
        }
        None => cursor.default_ttl.or(cursor.last_ttl).ok_or_else(|| {
            format!("{rtype} record at {owner} has no TTL: write one on the record or a $TTL line before it")
        })?,
    };

    let data: Vec<&Token> = tokens.collect();
    if data.is_empty() {
        return Err(format!("{rtype} record at {owner} has no data"));
    }
    if rtype == RecordType::DS {
        // hickory reads DS only with its DNSSEC feature: read here.
        return ds_rdata(&data)
            .map(|rdata| Record::from_rdata(owner.clone(), ttl, rdata))
            .map_err(|e| format!("DS record at {owner}: {e}"));
    }
    if cursor.direct
        && let Some(rdata) = common_rdata(rtype, &data, &cursor.origin)
    {
        return Ok(Record::from_rdata(owner, ttl, rdata));
    }
    // One record, on one line, explicit TTL: the text hickory's parser
    // reads with the origin relative data names need. The owner is the
    // one we read, set after: written as `@`, since hickory reads the
    // text form of some names back differently or not at all (an
    // internationalised label holding an escaped dot).
    let mut text = format!("@ {ttl} IN {rtype}");
    for token in data {
        text.push(' ');
        if token.quoted {
            text.push('"');
            text.push_str(token.text);
            text.push('"');
        } else {
            text.push_str(token.text);
        }
    }
    text.push('\n');
    let (_, sets) = Parser::new(text, None, Some(cursor.origin.clone()))
        .parse()
        .map_err(|e| format!("{rtype} record at {owner}: {e}"))?;
    sets.into_values()
        .next()
        .and_then(|set| set.records_without_rrsigs().next().cloned())
        .map(|mut record| {
            record.name = owner.clone();
            record
        })
        .ok_or_else(|| format!("{rtype} record at {owner}: no record could be read"))
}

/// A DS record's data (RFC 4034 section 5.3): key tag, algorithm, digest
/// type, and the digest in hexadecimal (which may hold spaces).
fn ds_rdata(data: &[&Token]) -> Result<RData, String> {
    const EXPECTED: &str = "expected KEY-TAG ALGORITHM DIGEST-TYPE HEX-DIGEST";
    let [tag, algorithm, digest_type, digest @ ..] = data else {
        return Err(EXPECTED.into());
    };
    let number = |token: &Token, what: &str, max: u32| -> Result<u32, String> {
        token
            .text
            .parse::<u32>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                format!(
                    "{what} `{}` is not a number up to {max}: {EXPECTED}",
                    token.text
                )
            })
    };
    let tag = number(tag, "key tag", 65_535)? as u16;
    let algorithm = number(algorithm, "algorithm", 255)? as u8;
    let digest_type = number(digest_type, "digest type", 255)? as u8;
    let hex: String = digest.iter().map(|t| t.text).collect();
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("the digest `{hex}` is not hexadecimal: {EXPECTED}"));
    }
    let expected_len = match digest_type {
        1 => Some(20),
        2 => Some(32),
        4 => Some(48),
        _ => None,
    };
    if let Some(len) = expected_len
        && hex.len() != 2 * len
    {
        return Err(format!(
            "a digest of type {digest_type} has {len} bytes ({} hex digits), this one {}",
            2 * len,
            hex.len()
        ));
    }
    let mut rdata = Vec::with_capacity(4 + hex.len() / 2);
    rdata.extend_from_slice(&tag.to_be_bytes());
    rdata.push(algorithm);
    rdata.push(digest_type);
    for pair in hex.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).unwrap_or("00");
        rdata.push(u8::from_str_radix(text, 16).unwrap_or(0));
    }
    Ok(RData::Unknown {
        code: RecordType::DS,
        rdata: hickory_proto::rr::rdata::NULL::with(rdata),
    })
}

/// The data of the most common types in their plain forms, read directly:
/// hickory's parser is built for whole files, and one per record costs
/// most of a large zone's load. Anything else (an escape, a quoted
/// address, a value out of range) is `None` and goes to hickory, which
/// reads it or says what is wrong. The fuzz target `zone_file` checks that
/// both ways read every record alike.
fn common_rdata(rtype: RecordType, data: &[&Token], origin: &Name) -> Option<RData> {
    // Printable ASCII only: hickory's lexer splits at any Unicode space,
    // refuses control characters, and reads a leading `@` or `$` as a
    // token of its own (so `CNAME @` is its error, and stays so).
    let printable = |t: &Token| {
        t.text
            .bytes()
            .all(|b| b.is_ascii_graphic() || (t.quoted && b == b' '))
            && !t.text.contains('\\')
            && (t.quoted || !t.text.starts_with(['@', '$']))
    };
    if !data
        .iter()
        .all(|t| printable(t) && (rtype == RecordType::TXT || !t.quoted))
    {
        return None;
    }
    let name = |t: &Token| -> Option<Name> {
        let mut name = Name::parse(t.text, Some(origin)).ok()?;
        name.set_fqdn(true);
        Some(name)
    };
    Some(match (rtype, data) {
        (RecordType::A, [ip]) => RData::A(A(ip.text.parse().ok()?)),
        (RecordType::AAAA, [ip]) => RData::AAAA(AAAA(ip.text.parse().ok()?)),
        (RecordType::NS, [target]) => RData::NS(NS(name(target)?)),
        (RecordType::CNAME, [target]) => RData::CNAME(CNAME(name(target)?)),
        (RecordType::PTR, [target]) => RData::PTR(PTR(name(target)?)),
        (RecordType::MX, [preference, exchange]) => {
            RData::MX(MX::new(preference.text.parse().ok()?, name(exchange)?))
        }
        (RecordType::SRV, [priority, weight, port, target]) => RData::SRV(SRV::new(
            priority.text.parse().ok()?,
            weight.text.parse().ok()?,
            port.text.parse().ok()?,
            name(target)?,
        )),
        (RecordType::TXT, strings)
            if strings
                .iter()
                .all(|t| !t.text.is_empty() && t.text.len() <= 255) =>
        {
            RData::TXT(TXT::new(
                strings.iter().map(|t| t.text.to_owned()).collect(),
            ))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Vec<SourceRecord>, Vec<ZoneError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let origin = Name::from_ascii("example.com.").unwrap();
        parse_text(
            Path::new("t.zone"),
            text,
            &origin,
            &mut |r| out.push(r),
            &mut errors,
        );
        (out, errors)
    }

    #[test]
    fn relative_names_ttls_and_inherited_owner() {
        let (records, errors) = parse(
            "$TTL 1h\n@ IN SOA ns1 host ( 1 2 3 4 5 )\n  NS ns1\nmail 60 MX 10 mx.example.net.\n  A 192.0.2.1\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), 4);
        assert_eq!(records[1].record.name.to_string(), "example.com.");
        assert_eq!(records[1].record.ttl, 3600);
        assert_eq!(records[2].record.ttl, 60);
        assert_eq!(records[3].record.name.to_string(), "mail.example.com.");
        assert_eq!(records[3].line, 5);
        assert_eq!(records[3].record.ttl, 3600);
    }

    #[test]
    fn errors_name_their_line_and_parsing_goes_on() {
        let (records, errors) = parse("$TTL 60\na A 192.0.2.300\nb A 192.0.2.3\nc BOGUS x\n");
        assert_eq!(records.len(), 1);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].location.line, Some(2));
        assert_eq!(errors[1].location.line, Some(4));
        assert!(
            errors[1].message.contains("not a record type"),
            "{}",
            errors[1].message
        );
    }

    #[test]
    fn multi_line_quoted_txt_keeps_each_string() {
        let (records, errors) = parse("$TTL 60\nt TXT ( \"a b\"\n \"c\\\"d\" )\n");
        assert!(errors.is_empty(), "{errors:?}");
        let hickory_proto::rr::RData::TXT(txt) = &records[0].record.data else {
            panic!("not a TXT record: {:?}", records[0].record);
        };
        let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
        assert_eq!(strings, [&b"a b"[..], &b"c\"d"[..]]);
    }

    #[test]
    fn origin_directive_changes_relative_names() {
        let (records, errors) = parse("$TTL 60\n$ORIGIN sub\nx A 192.0.2.1\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records[0].record.name.to_string(), "x.sub.example.com.");
    }
}
