//! `eif-crosscheck FILE`: the PCRs of an enclave image as AWS's own image-format crate (the
//! code behind `nitro-cli describe-eif`) computes them, printed as a JSON object
//! `{"CrcOk": bool, "PCR0": hex, ...}`. A second, independent implementation for tests to
//! compare with `govctl eif pcrs` and with the PCRs a booted enclave reports.

use std::process::ExitCode;

use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use aws_nitro_enclaves_image_format::utils::get_pcrs;
use sha2::{Digest, Sha384};

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: eif-crosscheck FILE.eif");
        return ExitCode::from(2);
    };
    let mut reader = match EifReader::from_eif(path.clone()) {
        Ok(reader) => reader,
        Err(error) => {
            eprintln!("eif-crosscheck: {path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signed = reader.signature_section.is_some();
    let measurements = match get_pcrs(
        &mut reader.image_hasher,
        &mut reader.bootstrap_hasher,
        &mut reader.app_hasher,
        &mut reader.cert_hasher,
        Sha384::new(),
        signed,
    ) {
        Ok(measurements) => measurements,
        Err(error) => {
            eprintln!("eif-crosscheck: {path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = serde_json::Map::new();
    out.insert("CrcOk".into(), reader.check_crc().into());
    for (name, value) in measurements {
        out.insert(name, value.into());
    }
    println!("{}", serde_json::Value::Object(out));
    ExitCode::SUCCESS
}
