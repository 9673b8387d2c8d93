//! The canonical form of the free-form CBOR values inside a record (`decision`, `changes`).
//!
//! ciborium already writes the shortest integer and float forms and definite lengths; what it
//! leaves to us is map key order. Canonical here means RFC 8949 section 4.2.1: keys sorted by
//! the bytewise order of their own encodings, no duplicate keys, and a bounded nesting depth
//! (so that whatever we encode, our decoder accepts).

use std::cmp::Ordering;
use std::io;

use ciborium::Value;

/// How deeply `decision` and `changes` may nest arrays, maps and tags.
pub const MAX_VALUE_DEPTH: usize = 32;

/// Why a value has no canonical form, or is not in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueProblem {
    /// Two entries of one map have the same key.
    DuplicateKey,
    /// Map keys are not in canonical order (decoding only; encoding sorts them).
    UnsortedKeys,
    /// Nested deeper than [`MAX_VALUE_DEPTH`].
    TooDeep,
}

/// Checks that `value` is canonical as it stands: every map sorted, no duplicate key, not
/// too deep. Allocation-free in the common case of text and integer keys.
pub(crate) fn check(value: &Value) -> Result<(), ValueProblem> {
    check_at(value, 0)
}

fn check_at(value: &Value, depth: usize) -> Result<(), ValueProblem> {
    match value {
        Value::Array(items) => {
            let depth = deeper(depth)?;
            items.iter().try_for_each(|item| check_at(item, depth))
        }
        Value::Map(entries) => {
            let depth = deeper(depth)?;
            for pair in entries.windows(2) {
                if let [(a, _), (b, _)] = pair {
                    match key_order(a, b) {
                        Ordering::Less => {}
                        Ordering::Equal => return Err(ValueProblem::DuplicateKey),
                        Ordering::Greater => return Err(ValueProblem::UnsortedKeys),
                    }
                }
            }
            entries
                .iter()
                .try_for_each(|(k, v)| check_at(k, depth).and_then(|()| check_at(v, depth)))
        }
        Value::Tag(_, inner) => check_at(inner, deeper(depth)?),
        _ => Ok(()),
    }
}

/// Returns the canonical form of `value`: maps sorted, or an error for a duplicate key or
/// too deep a value. Copies only when something must be reordered.
pub(crate) fn canonicalize(value: &Value) -> Result<std::borrow::Cow<'_, Value>, ValueProblem> {
    match check(value) {
        Ok(()) => Ok(std::borrow::Cow::Borrowed(value)),
        Err(ValueProblem::UnsortedKeys) => sorted(value, 0).map(std::borrow::Cow::Owned),
        Err(problem) => Err(problem),
    }
}

fn sorted(value: &Value, depth: usize) -> Result<Value, ValueProblem> {
    Ok(match value {
        Value::Array(items) => {
            let depth = deeper(depth)?;
            Value::Array(
                items
                    .iter()
                    .map(|item| sorted(item, depth))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let depth = deeper(depth)?;
            let mut out = entries
                .iter()
                .map(|(k, v)| Ok((sorted(k, depth)?, sorted(v, depth)?)))
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by(|(a, _), (b, _)| key_order(a, b));
            if out
                .windows(2)
                .any(|pair| matches!(pair, [(a, _), (b, _)] if key_order(a, b) == Ordering::Equal))
            {
                return Err(ValueProblem::DuplicateKey);
            }
            Value::Map(out)
        }
        Value::Tag(tag, inner) => Value::Tag(*tag, Box::new(sorted(inner, deeper(depth)?)?)),
        other => other.clone(),
    })
}

fn deeper(depth: usize) -> Result<usize, ValueProblem> {
    let depth = depth + 1;
    if depth > MAX_VALUE_DEPTH {
        Err(ValueProblem::TooDeep)
    } else {
        Ok(depth)
    }
}

/// The canonical order of two map keys: the bytewise order of their encodings.
fn key_order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        // For one major type, a shorter string has a smaller (or equal-prefix, shorter)
        // header, so (length, bytes) is the order of the encodings.
        (Value::Text(a), Value::Text(b)) => (a.len(), a.as_bytes()).cmp(&(b.len(), b.as_bytes())),
        (Value::Bytes(a), Value::Bytes(b)) => (a.len(), a.as_slice()).cmp(&(b.len(), b.as_slice())),
        _ => encoded(a).cmp(&encoded(b)),
    }
}

fn encoded(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; an unencodable key sorts first and is then refused by
    // the encoder itself.
    let _ = ciborium::into_writer(value, &mut out);
    out
}

/// A writer that compares what is written with the bytes we expect, without storing it:
/// re-encoding a decoded record through it proves the input was canonical.
pub(crate) struct CompareWriter<'a> {
    expected: &'a [u8],
    position: usize,
    mismatch: Option<usize>,
}

impl<'a> CompareWriter<'a> {
    pub(crate) fn new(expected: &'a [u8]) -> Self {
        Self {
            expected,
            position: 0,
            mismatch: None,
        }
    }

    /// `None` when exactly the expected bytes were written, else the first offset that
    /// differs (or the length written, when it stopped short).
    pub(crate) fn first_difference(&self) -> Option<usize> {
        match self.mismatch {
            Some(offset) => Some(offset),
            None if self.position != self.expected.len() => Some(self.position),
            None => None,
        }
    }
}

impl io::Write for CompareWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.mismatch.is_none() {
            let rest = self.expected.get(self.position..).unwrap_or_default();
            let same = rest.iter().zip(buf).take_while(|(a, b)| a == b).count();
            if same < buf.len() {
                self.mismatch = Some(self.position + same);
            }
        }
        self.position += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn sorts_keys_by_encoding_length_first() {
        let unsorted = Value::Map(vec![
            (text("bb"), Value::Integer(1.into())),
            (text("c"), Value::Integer(2.into())),
            (Value::Integer(10.into()), Value::Null),
            (
                text("a"),
                Value::Array(vec![Value::Map(vec![
                    (text("z"), Value::Null),
                    (text("y"), Value::Null),
                ])]),
            ),
        ]);
        assert_eq!(check(&unsorted), Err(ValueProblem::UnsortedKeys));
        let fixed = canonicalize(&unsorted).unwrap().into_owned();
        assert_eq!(check(&fixed), Ok(()));
        let Value::Map(entries) = &fixed else {
            panic!("not a map")
        };
        let keys: Vec<_> = entries.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(
            keys,
            vec![Value::Integer(10.into()), text("a"), text("c"), text("bb")]
        );
    }

    #[test]
    fn refuses_duplicates_and_depth() {
        let dup = Value::Map(vec![
            (text("a"), Value::Null),
            (text("a"), Value::Bool(true)),
        ]);
        assert_eq!(check(&dup), Err(ValueProblem::DuplicateKey));
        assert_eq!(
            canonicalize(&dup).map(|_| ()),
            Err(ValueProblem::DuplicateKey)
        );
        let mut deep = Value::Null;
        for _ in 0..MAX_VALUE_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        assert_eq!(check(&deep), Ok(()));
        let too_deep = Value::Array(vec![deep]);
        assert_eq!(check(&too_deep), Err(ValueProblem::TooDeep));
    }

    #[test]
    fn compare_writer_finds_first_difference() {
        use std::io::Write;
        let mut w = CompareWriter::new(b"abcdef");
        w.write_all(b"abc").unwrap();
        assert_eq!(w.first_difference(), Some(3));
        w.write_all(b"dXf").unwrap();
        assert_eq!(w.first_difference(), Some(4));
        let mut w = CompareWriter::new(b"ab");
        w.write_all(b"ab").unwrap();
        assert_eq!(w.first_difference(), None);
        w.write_all(b"c").unwrap();
        assert_eq!(w.first_difference(), Some(2));
    }
}
