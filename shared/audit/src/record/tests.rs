use super::*;
use proptest::prelude::*;

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn sample() -> Record {
    Record {
        seq: 7,
        time: 1_700_000_000_000,
        kind: RecordKind::StateChange,
        actor: "alice".to_owned(),
        request: Some(vec![0xa1, 0x61, 0x76, 0x01]),
        decision: Value::Map(vec![
            (text("effect"), text("allow")),
            (text("reasons"), Value::Array(vec![text("role:Owner")])),
        ]),
        changes: Value::Array(vec![Value::Map(vec![(text("event"), text("created"))])]),
        attestation: None,
    }
}

/// Encodes a CBOR value with ciborium as it comes (no canonicalization).
fn raw(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

fn wire_map(entries: Vec<(&str, Value)>) -> Vec<u8> {
    raw(&Value::Map(
        entries.into_iter().map(|(k, v)| (text(k), v)).collect(),
    ))
}

fn sample_entries() -> Vec<(&'static str, Value)> {
    let r = sample();
    vec![
        ("seq", Value::Integer(r.seq.into())),
        ("time", Value::Integer(r.time.into())),
        ("kind", text("state_change")),
        ("actor", text("alice")),
        ("request", Value::Bytes(r.request.clone().unwrap())),
        ("decision", r.decision.clone()),
        ("changes", r.changes.clone()),
        ("attestation", Value::Null),
    ]
}

/// `sample()` encoded: `a8` (map of 8), `63 "seq" 07`, `64 "time" 1b 0000018bcfe56800`, ...,
/// `6b "attestation" f6`.
const GOLDEN_RECORD: &str = "a863736571076474696d651b0000018bcfe56800646b696e646c73746174655f6368\
    616e6765656163746f7265616c696365677265717565737444a1617601686465636973696f6ea266656666656374\
    65616c6c6f7767726561736f6e73816a726f6c653a4f776e6572676368616e67657381a1656576656e7467637265\
    617465646b6174746573746174696f6ef6";

#[test]
fn golden_encoding_and_hashes() {
    let bytes = sample().to_bytes().unwrap();
    // Pins the format byte for byte: a change here breaks every stored log.
    assert_eq!(hex::encode(&bytes), GOLDEN_RECORD);
    // The same bytes as a plain CBOR map in the documented field order.
    assert_eq!(bytes, wire_map(sample_entries()));
    assert_eq!(bytes.first(), Some(&0xa8), "a map of 8 entries");
    assert_eq!(
        sample().record_hash().unwrap(),
        hash::sha256(&[&bytes]),
        "without attestation the record hash is the hash of the bytes"
    );
    assert_eq!(sample().leaf_hash().unwrap(), hash::leaf_hash(&bytes));
}

#[test]
fn round_trip() {
    let record = sample();
    let bytes = record.to_bytes().unwrap();
    assert_eq!(Record::from_bytes(&bytes).unwrap(), record);
}

#[test]
fn record_hash_ignores_attestation_and_leaf_hash_does_not() {
    let plain = sample();
    for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, 70_000] {
        let mut attested = sample();
        attested.attestation = Some(vec![0x5a; len]);
        assert_eq!(
            attested.record_hash().unwrap(),
            plain.record_hash().unwrap()
        );
        assert_ne!(attested.leaf_hash().unwrap(), plain.leaf_hash().unwrap());
        let bytes = attested.to_bytes().unwrap();
        let decoded = Record::from_bytes(&bytes).unwrap();
        assert_eq!(
            record_hash_of(&bytes, &decoded),
            plain.record_hash().unwrap(),
            "len {len}"
        );
    }
    let bytes = plain.to_bytes().unwrap();
    assert_eq!(record_hash_of(&bytes, &plain), plain.record_hash().unwrap());
}

#[test]
fn encoding_sorts_nested_maps() {
    let mut record = sample();
    record.decision = Value::Map(vec![(text("zz"), Value::Null), (text("a"), Value::Null)]);
    let bytes = record.to_bytes().unwrap();
    let decoded = Record::from_bytes(&bytes).unwrap();
    assert_eq!(
        decoded.decision,
        Value::Map(vec![(text("a"), Value::Null), (text("zz"), Value::Null)])
    );
    record.changes = Value::Map(vec![(text("a"), Value::Null), (text("a"), Value::Null)]);
    assert_eq!(
        record.to_bytes(),
        Err(EncodeError::DuplicateMapKey { field: "changes" })
    );
}

#[test]
fn refuses_unsorted_and_duplicate_keys() {
    let mut entries = sample_entries();
    entries[5].1 = Value::Map(vec![(text("b"), Value::Null), (text("a"), Value::Null)]);
    assert_eq!(
        Record::from_bytes(&wire_map(entries.clone())),
        Err(RecordError::UnsortedMapKeys { field: "decision" })
    );
    entries[5].1 = Value::Map(vec![(text("a"), Value::Null), (text("a"), Value::Null)]);
    assert_eq!(
        Record::from_bytes(&wire_map(entries)),
        Err(RecordError::DuplicateMapKey { field: "decision" })
    );
}

#[test]
fn refuses_fields_out_of_order_missing_or_unknown() {
    let mut swapped = sample_entries();
    swapped.swap(0, 1);
    assert!(matches!(
        Record::from_bytes(&wire_map(swapped)),
        Err(RecordError::NotCanonical { offset: 1 })
    ));
    let mut missing = sample_entries();
    missing.remove(0);
    assert!(matches!(
        Record::from_bytes(&wire_map(missing)),
        Err(RecordError::NotARecord { .. })
    ));
    // serde reads a missing optional field as null; the canonical check still refuses it.
    let mut no_attestation = sample_entries();
    no_attestation.pop();
    assert!(matches!(
        Record::from_bytes(&wire_map(no_attestation)),
        Err(RecordError::NotCanonical { .. })
    ));
    let mut extra = sample_entries();
    extra.push(("extra", Value::Null));
    assert!(matches!(
        Record::from_bytes(&wire_map(extra)),
        Err(RecordError::NotARecord { .. })
    ));
    let mut kind = sample_entries();
    kind[2].1 = text("state-change");
    assert_eq!(
        Record::from_bytes(&wire_map(kind)),
        Err(RecordError::UnknownKind(UnknownKind("state-change".into())))
    );
}

#[test]
fn refuses_non_shortest_forms_and_trailing_bytes() {
    let bytes = sample().to_bytes().unwrap();
    // seq = 7 written as a one-byte-argument integer (0x18 0x07) instead of 0x07.
    let seq_at = 1 + 4;
    assert_eq!(bytes[seq_at], 0x07);
    let mut long_int = bytes.clone();
    long_int.splice(seq_at..=seq_at, [0x18, 0x07]);
    assert_eq!(
        Record::from_bytes(&long_int),
        Err(RecordError::NotCanonical { offset: seq_at })
    );
    // The outer map with an indefinite length.
    let mut indefinite = bytes.clone();
    indefinite[0] = 0xbf;
    indefinite.push(0xff);
    assert_eq!(
        Record::from_bytes(&indefinite),
        Err(RecordError::NotCanonical { offset: 0 })
    );
    // undefined (0xf7) where null is written.
    let mut undefined = bytes.clone();
    *undefined.last_mut().unwrap() = 0xf7;
    assert!(Record::from_bytes(&undefined).is_err());
    // A float that fits in half precision written as a double.
    let mut entries = sample_entries();
    entries[5].1 = Value::Float(1.5);
    let canonical = wire_map(entries);
    let at = canonical
        .windows(3)
        .position(|w| w == [0xf9, 0x3e, 0x00])
        .unwrap();
    let mut wide = canonical.clone();
    wide.splice(at..at + 3, [0xfb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    assert!(Record::from_bytes(&canonical).is_ok());
    assert_eq!(
        Record::from_bytes(&wide),
        Err(RecordError::NotCanonical { offset: at })
    );
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(&[0x00, 0x00]);
    assert_eq!(
        Record::from_bytes(&trailing),
        Err(RecordError::TrailingBytes { extra: 2 })
    );
    assert_eq!(
        Record::from_bytes(&bytes[..bytes.len() - 1]),
        Err(RecordError::Truncated)
    );
}

#[test]
fn refuses_oversized_and_too_deep() {
    assert_eq!(
        Record::from_bytes(&vec![0u8; MAX_RECORD_LEN + 1]),
        Err(RecordError::TooLarge {
            len: MAX_RECORD_LEN + 1
        })
    );
    let mut record = sample();
    record.request = Some(vec![0; MAX_RECORD_LEN]);
    assert!(matches!(
        record.to_bytes(),
        Err(EncodeError::TooLarge { .. })
    ));
    let mut deep = Value::Null;
    for _ in 0..=MAX_VALUE_DEPTH {
        deep = Value::Array(vec![deep]);
    }
    let mut entries = sample_entries();
    entries[6].1 = deep.clone();
    assert_eq!(
        Record::from_bytes(&wire_map(entries)),
        Err(RecordError::TooDeep)
    );
    record.request = None;
    record.changes = deep;
    assert_eq!(
        record.to_bytes(),
        Err(EncodeError::TooDeep { field: "changes" })
    );
    // Far deeper than the decoder's own recursion guard: still an error, not a crash.
    let mut bytes = wire_map(sample_entries());
    let at = bytes.len() - 1 - "attestation".len() - 1 - 1;
    let nested: Vec<u8> = std::iter::repeat_n(0x81, 10_000).chain([0xf6]).collect();
    bytes.splice(at..at + 1, nested);
    assert!(Record::from_bytes(&bytes).is_err());
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Integer(i.into())),
        any::<u64>().prop_map(|i| Value::Integer(i.into())),
        any::<f64>()
            .prop_filter("NaN has many encodings", |f| !f.is_nan())
            .prop_map(Value::Float),
        "[a-z]{0,30}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{0,8}", inner.clone(), 0..6).prop_map(|m| {
                // Insertion order from a BTreeMap is not the canonical order (length first).
                Value::Map(
                    m.into_iter()
                        .rev()
                        .map(|(k, v)| (Value::Text(k), v))
                        .collect(),
                )
            }),
            (0u64..100, inner).prop_map(|(t, v)| Value::Tag(t + 40, Box::new(v))),
        ]
    })
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        any::<u64>(),
        any::<u64>(),
        proptest::sample::select(RecordKind::ALL),
        "\\PC{0,20}",
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        arb_value(),
        arb_value(),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
    )
        .prop_map(
            |(seq, time, kind, actor, request, decision, changes, attestation)| Record {
                seq,
                time,
                kind,
                actor,
                request,
                decision,
                changes,
                attestation,
            },
        )
}

proptest! {
    #[test]
    fn encode_decode_encode_is_identity(record in arb_record()) {
        let bytes = record.to_bytes().unwrap();
        let decoded = Record::from_bytes(&bytes).unwrap();
        prop_assert_eq!(decoded.to_bytes().unwrap(), bytes.clone());
        prop_assert_eq!(record_hash_of(&bytes, &decoded), record.record_hash().unwrap());
    }

    #[test]
    fn whatever_decodes_is_canonical(record in arb_record(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = record.to_bytes().unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(decoded) = Record::from_bytes(&bytes) {
            prop_assert_eq!(decoded.to_bytes().unwrap(), bytes);
        }
    }
}

/// The bytes of one CBOR value, for comparing with the slices `RecordFields` finds.
fn value_bytes(value: &Value) -> Vec<u8> {
    raw(&canonical::canonicalize(value).unwrap())
}

#[test]
fn fields_locate_what_the_full_decoder_reads() {
    let mut record = sample();
    record.attestation = Some(vec![9; 300]);
    let bytes = record.to_bytes().unwrap();
    let fields = RecordFields::parse(&bytes).unwrap();
    assert_eq!(fields.seq, 7);
    assert_eq!(fields.time, record.time);
    assert_eq!(fields.kind, RecordKind::StateChange);
    assert_eq!(fields.actor, "alice");
    assert_eq!(fields.request, record.request.as_deref());
    assert_eq!(fields.decision, value_bytes(&record.decision));
    assert_eq!(fields.changes, value_bytes(&record.changes));
    assert_eq!(fields.attestation, record.attestation.as_deref());
    assert_eq!(
        record_hash_from(&bytes, fields.attestation),
        record.record_hash().unwrap()
    );
}

#[test]
fn fields_refuse_what_is_not_a_record() {
    let good = sample().to_bytes().unwrap();
    // Cut anywhere: never a panic, always an error.
    for len in 0..good.len() {
        assert!(RecordFields::parse(&good[..len]).is_err(), "cut at {len}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        RecordFields::parse(&trailing),
        Err(RecordError::TrailingBytes { extra: 1 })
    );
    let mut swapped = sample_entries();
    swapped.swap(0, 1);
    assert!(matches!(
        RecordFields::parse(&wire_map(swapped)),
        Err(RecordError::NotARecord { .. })
    ));
    let mut unknown = sample_entries();
    unknown[2].1 = text("no_such_kind");
    assert!(matches!(
        RecordFields::parse(&wire_map(unknown)),
        Err(RecordError::UnknownKind(_))
    ));
    // An array that claims more items than there are bytes is refused before any loop.
    let mut lying = sample_entries();
    lying[6].1 = Value::Null;
    let mut bytes = wire_map(lying);
    let at = bytes.len() - 1 - "attestation".len() - 1 - 1;
    bytes[at] = 0x9b;
    bytes.splice(at + 1..at + 1, u64::MAX.to_be_bytes());
    assert!(RecordFields::parse(&bytes).is_err());
    // Nesting beyond the decoder's limit is refused, not recursed into.
    let mut deep = sample_entries();
    deep[5].1 = Value::Null;
    let mut bytes = wire_map(deep);
    let at = bytes.windows(9).position(|w| w == b"\x68decision").unwrap() + 9;
    let nested: Vec<u8> = std::iter::repeat_n(0x81, 10_000).chain([0xf6]).collect();
    bytes.splice(at..at + 1, nested);
    assert_eq!(RecordFields::parse(&bytes), Err(RecordError::TooDeep));
}

proptest! {
    #[test]
    fn fields_agree_with_the_full_decoder(record in arb_record()) {
        let bytes = record.to_bytes().unwrap();
        let fields = RecordFields::parse(&bytes).unwrap();
        prop_assert_eq!(fields.seq, record.seq);
        prop_assert_eq!(fields.time, record.time);
        prop_assert_eq!(fields.kind, record.kind);
        prop_assert_eq!(fields.actor, record.actor.as_str());
        prop_assert_eq!(fields.request, record.request.as_deref());
        prop_assert_eq!(fields.decision.to_vec(), value_bytes(&record.decision));
        prop_assert_eq!(fields.changes.to_vec(), value_bytes(&record.changes));
        prop_assert_eq!(fields.attestation, record.attestation.as_deref());
    }

    #[test]
    fn fields_never_panic_on_changed_bytes(record in arb_record(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = record.to_bytes().unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        // Whatever the full decoder accepts, the field parser reads the same way.
        let fields = RecordFields::parse(&bytes);
        if let Ok(decoded) = Record::from_bytes(&bytes) {
            let fields = fields.unwrap();
            prop_assert_eq!(fields.seq, decoded.seq);
            prop_assert_eq!(fields.kind, decoded.kind);
            prop_assert_eq!(fields.attestation, decoded.attestation.as_deref());
        }
    }
}
