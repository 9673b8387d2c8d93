//! Signed notes and checkpoints from arbitrary bytes: parsing never panics, and whatever
//! parses prints back to the same text.

use ea_audit::checkpoint::{open_checkpoint, Checkpoint};
use ea_audit::note::{Note, NoteVerifier};

/// Runs one input.
pub fn run(data: &[u8]) {
    if let Ok(note) = Note::from_bytes(data) {
        if let Ok(checkpoint) = Checkpoint::from_text(note.unverified_text()) {
            assert_eq!(checkpoint.to_text(), note.unverified_text());
        }
        // A verifier named like the first signature, so the verification path runs too.
        if let Some(sig) = note.signatures().first() {
            if let Ok(verifier) = NoteVerifier::new(&sig.name, [7; 32]) {
                let _ = note.verify(std::slice::from_ref(&verifier));
                if let Ok(text) = std::str::from_utf8(data) {
                    let _ = open_checkpoint(text, &[verifier], None);
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(verifier) = text.parse::<NoteVerifier>() {
            assert_eq!(verifier.to_string(), text);
        }
    }
}
