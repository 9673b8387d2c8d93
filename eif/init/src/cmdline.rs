//! The parent's vsock CID from the kernel command line.
//!
//! On Nitro the parent instance is always CID 3. Under QEMU's `nitro-enclave` machine the
//! host is CID 2, so the test harness appends `ea.parent_cid=2`. The name contains a dot on
//! purpose: the kernel treats dotted parameters as module parameters and neither passes them
//! to init's environment nor its arguments, so `/proc/cmdline` is the one place to read it.

use thiserror::Error;

/// The command-line parameter that names the parent's CID.
pub const PARENT_CID_PARAM: &str = "ea.parent_cid";

/// The parent's CID when the command line does not name one: the Nitro parent instance.
pub const DEFAULT_PARENT_CID: u32 = 3;

/// `VMADDR_CID_ANY`: a wildcard for binding, never a peer to connect to.
const VMADDR_CID_ANY: u32 = u32::MAX;

/// The command line names a parent CID that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmdlineError {
    /// The value is not a decimal `u32`.
    #[error("kernel command line: {PARENT_CID_PARAM}={value:?} is not a CID (a decimal number below 4294967295)")]
    NotANumber {
        /// The value as written.
        value: String,
    },
    /// The value is `VMADDR_CID_ANY`, which cannot be connected to.
    #[error("kernel command line: {PARENT_CID_PARAM}=4294967295 is VMADDR_CID_ANY, not a peer")]
    Wildcard,
}

/// The parent CID named by `cmdline` (the text of `/proc/cmdline`), or
/// [`DEFAULT_PARENT_CID`] when it names none.
///
/// The last occurrence wins, so a harness can override a value baked into the image by
/// appending its own. A present but unusable value is an error rather than the default:
/// a typo should stop the boot, not silently talk to another peer.
///
/// Words are split the way the kernel splits them: on whitespace outside double quotes, so
/// `foo="a ea.parent_cid=5"` is one word (the value of `foo`) and names no CID.
pub fn parent_cid(cmdline: &str) -> Result<u32, CmdlineError> {
    let mut found = None;
    for word in words(cmdline) {
        // The kernel strips the quotes from `param="value"`; a CID never needs them, but
        // accept them the same way.
        let word = word.replace('"', "");
        if let Some(value) = word
            .strip_prefix(PARENT_CID_PARAM)
            .and_then(|rest| rest.strip_prefix('='))
        {
            found = Some(value.to_owned());
        }
    }
    let Some(value) = found else {
        return Ok(DEFAULT_PARENT_CID);
    };
    match value.parse::<u32>() {
        Ok(VMADDR_CID_ANY) => Err(CmdlineError::Wildcard),
        Ok(cid) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(cid),
        // `u32::from_str` accepts a leading `+`; the kernel would not write one and a
        // human who did probably meant something else.
        _ => Err(CmdlineError::NotANumber { value }),
    }
}

/// Splits like the kernel's `next_arg`: whitespace separates words unless inside quotes.
fn words(cmdline: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut in_quotes = false;
    let mut start = None;
    for (i, c) in cmdline.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c.is_whitespace() && !in_quotes {
            if let Some(s) = start.take() {
                words.extend(cmdline.get(s..i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.extend(cmdline.get(s..));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_when_absent() {
        assert_eq!(parent_cid("console=ttyS0 reboot=t\n"), Ok(3));
        assert_eq!(parent_cid(""), Ok(3));
    }

    #[test]
    fn reads_the_value() {
        assert_eq!(
            parent_cid("console=ttyS0 ea.parent_cid=2 reboot=t\n"),
            Ok(2)
        );
    }

    #[test]
    fn last_occurrence_wins() {
        assert_eq!(parent_cid("ea.parent_cid=3 quiet ea.parent_cid=2\n"), Ok(2));
        assert_eq!(parent_cid("ea.parent_cid=2 quiet ea.parent_cid=7"), Ok(7));
    }

    #[test]
    fn similar_names_do_not_count() {
        assert_eq!(parent_cid("xea.parent_cid=5 ea.parent_cid_x=6"), Ok(3));
        assert_eq!(parent_cid("ea.parent_cid"), Ok(3));
    }

    #[test]
    fn quoted_words_are_one_word() {
        assert_eq!(parent_cid("foo=\"a ea.parent_cid=5\" bar"), Ok(3));
        assert_eq!(parent_cid("ea.parent_cid=\"9\""), Ok(9));
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in ["", "abc", "-1", "+2", "4294967296", "0x3", "2.0"] {
            let line = format!("ea.parent_cid={bad}");
            let err = parent_cid(&line).unwrap_err();
            assert!(
                matches!(err, CmdlineError::NotANumber { .. }),
                "{line:?} gave {err:?}"
            );
        }
        assert_eq!(
            parent_cid("ea.parent_cid=4294967295"),
            Err(CmdlineError::Wildcard)
        );
    }

    #[test]
    fn splits_on_any_whitespace() {
        assert_eq!(words(" a\tb\n c "), vec!["a", "b", "c"]);
        assert_eq!(words("a=\"x y\" b"), vec!["a=\"x y\"", "b"]);
    }
}
