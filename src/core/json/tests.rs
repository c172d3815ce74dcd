#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Skips one whole document; Ok when it is JSON (as serde_json says).
fn skips(text: &[u8]) -> bool {
    let mut r = Reader::new(text);
    r.skip().and_then(|()| r.end()).is_ok()
}

fn serde_accepts(text: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

#[test]
fn skipping_accepts_exactly_what_serde_json_accepts() {
    let cases: &[&[u8]] = &[
        b"{}",
        b"[]",
        b"0",
        b"-0",
        b"1.5e+10",
        b"-12.25E-3",
        b"true",
        b"false",
        b"null",
        br#""a\"b\\c\/\b\f\n\r\t\u00e9\uD83D\uDE00""#,
        br#"{"a":[1,{"b":null}],"c":"d"}"#,
        b" \t\r\n[ 1 , 2 ] \n",
        b"[[[[[]]]]]",
        br#"{"":""}"#,
        "\"caf\u{e9} \u{1f600}\"".as_bytes(),
        // Invalid:
        b"",
        b" ",
        b"{",
        b"}",
        b"[",
        b"[1,]",
        b"[,1]",
        b"{,}",
        br#"{"a":1,}"#,
        br#"{"a"}"#,
        br#"{"a":}"#,
        br#"{"a" 1}"#,
        br#"{1:2}"#,
        b"01",
        b"1.",
        b".5",
        b"1e",
        b"1e+",
        b"-",
        b"--1",
        b"+1",
        b"tru",
        b"nul",
        b"nulll",
        b"True",
        b"[1 2]",
        b"\"abc",
        b"\"\\x\"",
        b"\"\\u12G4\"",
        b"\"\\u123\"",
        b"\"a\x01b\"",
        b"\"tab\there\"",
        b"[1]x",
        b"[1][2]",
        b"{\"a\":1}}",
        b"NaN",
        b"Infinity",
        b"[\"a\"\"b\"]",
        b"\x00",
        b"[1,\n]",
    ];
    for case in cases {
        assert_eq!(
            skips(case),
            serde_accepts(case),
            "{:?}",
            String::from_utf8_lossy(case)
        );
    }
}

#[test]
fn strings_longer_than_a_word_stop_exactly_at_their_end() {
    // Every position of a quote, backslash escape or control byte within
    // and across the eight-byte steps and the byte-wise tail.
    for len in 0..56 {
        for stop in [
            None,
            Some(b'\\'),
            Some(0x1f),
            Some(0x00),
            Some(0x7f),
            Some(0xff),
        ] {
            for at in 0..len.max(1) {
                let mut text = vec![b'"'];
                let mut body = vec![b'x'; len];
                if let (Some(stop), true) = (stop, at < len) {
                    body[at] = stop;
                }
                text.extend_from_slice(&body);
                text.push(b'"');
                assert_eq!(
                    skips(&text),
                    serde_accepts(&text),
                    "{:?}",
                    String::from_utf8_lossy(&text)
                );
            }
        }
    }
}

#[test]
fn keys_with_a_byte_above_ascii_anywhere_are_utf8_checked() {
    // A key is borrowed as bytes, checked as UTF-8 only when a byte above
    // ASCII was seen: that must be seen at every position of every step.
    fn key(text: &[u8]) -> Result<Option<Vec<u8>>, JsonError> {
        let mut r = Reader::new(text);
        r.begin_object("an object")?;
        Ok(r.next_key()?.map(Cow::into_owned))
    }
    for len in 1..56 {
        for at in 0..len {
            let mut name = vec![b'k'; len];
            name[at] = 0xff;
            let text = [&b"{\""[..], &name, &b"\":1}"[..]].concat();
            assert!(
                matches!(key(&text), Err(JsonError::Utf8 { .. })),
                "0xff at {at} of {len}"
            );
            let mut name = vec![b'k'; len];
            name.splice(at..=at, "\u{e9}".bytes());
            let text = [&b"{\""[..], &name, &b"\":1}"[..]].concat();
            assert_eq!(key(&text).unwrap(), Some(name), "\u{e9} at {at} of {len}");
        }
    }
}

#[test]
fn skipped_values_may_nest_without_limit() {
    let deep = format!("{}1{}", "[{\"a\":".repeat(5000), "}]".repeat(5000));
    assert!(skips(deep.as_bytes()));
    assert!(serde_accepts(format!("[{deep}]").as_bytes()));
    let unbalanced = format!("{}{}", "[".repeat(300), "]".repeat(299));
    assert!(!skips(unbalanced.as_bytes()));
    let crossed = format!("{}1{}", "[{\"a\":".repeat(200), "]}".repeat(200));
    assert!(!skips(crossed.as_bytes()));
}

#[test]
fn strings_read_are_checked_and_unescaped_like_serde_json() {
    fn read(text: &[u8]) -> Result<Cow<'_, str>, JsonError> {
        Reader::new(text).string("a string")
    }
    assert_eq!(read(br#""plain""#).unwrap(), "plain");
    assert!(matches!(read(br#""plain""#).unwrap(), Cow::Borrowed(_)));
    assert_eq!(read(br#""a\u00e9\n""#).unwrap(), "a\u{e9}\n");
    assert_eq!(read(br#""\uD83D\uDE00""#).unwrap(), "\u{1f600}");
    assert!(matches!(
        read(br#""\uD83D""#),
        Err(JsonError::Escape { .. })
    ));
    assert!(matches!(read(b"\"\xff\""), Err(JsonError::Utf8 { at: 1 })));
    assert!(matches!(
        read(b"\"ok\xc3\""),
        Err(JsonError::Utf8 { at: 3 })
    ));
    assert!(matches!(
        read(b"[1]"),
        Err(JsonError::Type { array: true, .. })
    ));
    assert!(matches!(read(b"x"), Err(JsonError::Syntax { at: 0, .. })));
    assert!(matches!(read(b"   "), Err(JsonError::Eof { at: 3 })));
}

#[test]
fn objects_and_arrays_are_walked_entry_by_entry() {
    let mut r = Reader::new(br#" { "a" : [ true , null , false ] , "b\u0063" : {} } "#);
    r.begin_object("an object").unwrap();
    assert_eq!(r.next_key().unwrap().as_deref(), Some(&b"a"[..]));
    r.begin_array("a list").unwrap();
    let mut got = Vec::new();
    while r.next_element().unwrap() {
        got.push(r.optional_bool("a bool").unwrap());
    }
    assert_eq!(got, [Some(true), None, Some(false)]);
    assert_eq!(r.next_key().unwrap().as_deref(), Some(&b"bc"[..]));
    assert_eq!(r.raw().unwrap(), "{}");
    assert_eq!(r.next_key().unwrap(), None);
    r.end().unwrap();

    for bad in [
        &br#"{"a":1,}"#[..],
        br#"{"a":1 "b":2}"#,
        br#"{"a" 1}"#,
        br#"{,"a":1}"#,
    ] {
        let mut r = Reader::new(bad);
        r.begin_object("an object").unwrap();
        let walked = (|| {
            while r.next_key()?.is_some() {
                r.skip()?;
            }
            r.end()
        })();
        assert!(walked.is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_field_given_twice_is_refused() {
    let mut seen = 0;
    first_time(&mut seen, 3, "x").unwrap();
    first_time(&mut seen, 4, "y").unwrap();
    assert_eq!(
        first_time(&mut seen, 3, "x"),
        Err(JsonError::Duplicate("x"))
    );
}

#[test]
fn strings_are_written_as_serde_json_writes_them() {
    let mut texts: Vec<String> = (0u8..=0x7f).map(|b| format!("a{}z", b as char)).collect();
    texts.extend(["", "705ab4f5-6393-11e8", "café", "\u{2028}", "😀"].map(str::to_owned));
    for text in &texts {
        let mut out = b"x".to_vec();
        write_string(&mut out, text);
        let want = format!("x{}", serde_json::to_string(text).unwrap());
        assert_eq!(String::from_utf8_lossy(&out), want, "{text:?}");
    }
}
