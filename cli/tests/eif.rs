//! `govctl eif` through the real binary, on EIFs written in the test from synthetic kernel,
//! cmdline and ramdisk sections. Expected PCRs are computed here with the `sha2` crate from
//! the rule in SPEC-trust section 6, not with ea-eif's own code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration-test helpers"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ea_eif::writer::{EifBuilder, PcrSigner};
use ea_eif::CoseAlgorithm;
use sha2::{Digest, Sha384};

const KERNEL: &[u8] = b"synthetic bzImage \x00\x01\x02";
const CMDLINE: &[u8] = b"reboot=k panic=30 pci=off nomodules console=ttyS0";
const INIT: &[u8] = b"bootstrap ramdisk: init, nsm driver";
const APP: &[u8] = b"application ramdisk: enclave-app";
const APP2: &[u8] = b"application ramdisk: second layer";

/// SHA-384 extend from 48 zero bytes of SHA-384 of the concatenated parts.
fn independent_pcr(parts: &[&[u8]]) -> String {
    let mut inner = Sha384::new();
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha384::new();
    outer.update([0u8; 48]);
    outer.update(inner.finalize());
    hex::encode(outer.finalize())
}

fn govctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_govctl"))
        .args(args)
        .output()
        .expect("run govctl")
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn write_eif(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn sample_image() -> Vec<u8> {
    EifBuilder::new(KERNEL, CMDLINE)
        .ramdisk(INIT)
        .ramdisk(APP)
        .ramdisk(APP2)
        .build()
        .unwrap()
}

#[test]
fn pcrs_writes_the_measurements_document_with_independently_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
    let out = dir.path().join("pcrs.json");
    let output = govctl(&["eif", "pcrs", path_str(&eif), "--out", path_str(&out)]);
    assert!(output.status.success(), "{}", stderr(&output));

    let written = std::fs::read_to_string(&out).unwrap();
    assert_eq!(written, stdout(&output));
    let json: serde_json::Value = serde_json::from_str(&written).unwrap();
    let expected = serde_json::json!({
        "HashAlgorithm": "Sha384 { ... }",
        "PCR0": independent_pcr(&[KERNEL, CMDLINE, INIT, APP, APP2]),
        "PCR1": independent_pcr(&[KERNEL, CMDLINE, INIT]),
        "PCR2": independent_pcr(&[APP, APP2]),
    });
    assert_eq!(json, expected);
}

#[test]
fn inspect_prints_describe_eif_shape() {
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
    let output = govctl(&["eif", "inspect", path_str(&eif)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["EifVersion"], 4);
    assert_eq!(json["IsSigned"], false);
    assert_eq!(json["CheckCRC"], true);
    assert_eq!(
        json["Measurements"]["PCR0"],
        independent_pcr(&[KERNEL, CMDLINE, INIT, APP, APP2])
    );
    assert!(json["Measurements"].get("PCR8").is_none());
    let sections: Vec<(&str, u64)> = json["Sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["Type"].as_str().unwrap(), s["Size"].as_u64().unwrap()))
        .collect();
    let len = |b: &[u8]| b.len() as u64;
    assert_eq!(
        sections,
        [
            ("Kernel", len(KERNEL)),
            ("Cmdline", len(CMDLINE)),
            ("Ramdisk", len(INIT)),
            ("Ramdisk", len(APP)),
            ("Ramdisk", len(APP2)),
        ]
    );
}

#[test]
fn signed_image_has_pcr8_of_the_certificate_and_a_passing_signature_check() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["eif-signer.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        &key.serialize_der(),
        &rng,
    )
    .unwrap();
    let signer = PcrSigner::new(cert.pem(), CoseAlgorithm::Es384, move |message| {
        pair.sign(&ring::rand::SystemRandom::new(), message)
            .unwrap()
            .as_ref()
            .to_vec()
    });
    let bytes = EifBuilder::new(KERNEL, CMDLINE)
        .ramdisk(INIT)
        .ramdisk(APP)
        .signer(signer)
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "signed.eif", &bytes);
    let output = govctl(&["eif", "inspect", path_str(&eif)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(json["IsSigned"], true);
    assert_eq!(json["SignatureCheck"], true);
    assert_eq!(json["Measurements"]["PCR8"], independent_pcr(&[cert.der()]));
    assert_eq!(
        json["Measurements"]["PCR0"],
        independent_pcr(&[KERNEL, CMDLINE, INIT, APP])
    );
    assert_eq!(json["SigningCertificate"]["Algorithm"], "ecdsa-with-SHA384");
}

#[test]
fn a_corrupted_crc_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = sample_image();
    // The CRC is the last field of the 548-byte header.
    bytes[547] ^= 0xff;
    let eif = write_eif(dir.path(), "bad-crc.eif", &bytes);
    for command in ["pcrs", "inspect"] {
        let output = govctl(&["eif", command, path_str(&eif)]);
        assert_eq!(output.status.code(), Some(1));
        let err = stderr(&output);
        assert!(err.contains("is not a valid EIF"), "{err}");
        assert!(err.contains("CRC mismatch"), "{err}");
        assert!(stdout(&output).is_empty());
    }
}

#[test]
fn a_truncated_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = sample_image();
    let cut = write_eif(dir.path(), "cut.eif", &bytes[..bytes.len() - 10]);
    let output = govctl(&["eif", "pcrs", path_str(&cut)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("section 4"), "{err}");
    assert!(err.contains("runs past the end"), "{err}");

    let header_only = write_eif(dir.path(), "short.eif", &bytes[..100]);
    let output = govctl(&["eif", "inspect", path_str(&header_only)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("truncated EIF"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_section_size_past_the_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = sample_image();
    // Size table: after magic, version, flags, memory, cpus, reserved, count (28 bytes) and
    // 32 offsets. Section 2 is the first ramdisk; make it claim a terabyte.
    let slot = 28 + 32 * 8 + 2 * 8;
    bytes[slot..slot + 8].copy_from_slice(&(1u64 << 40).to_be_bytes());
    let eif = write_eif(dir.path(), "huge-section.eif", &bytes);
    let output = govctl(&["eif", "pcrs", path_str(&eif)]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains("section 2"), "{err}");
    assert!(err.contains("1099511627776 data bytes"), "{err}");
    assert!(err.contains("runs past the end"), "{err}");
}

#[test]
fn a_non_eif_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "not.eif", &[0x7f; 600]);
    let output = govctl(&["eif", "inspect", path_str(&eif)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not an EIF"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn compare_accepts_matching_sources_and_reports_mismatches() {
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
    let pcrs = dir.path().join("pcrs.json");
    assert!(
        govctl(&["eif", "pcrs", path_str(&eif), "--out", path_str(&pcrs)])
            .status
            .success()
    );

    // A second build of the same inputs: same PCRs.
    let rebuilt = write_eif(dir.path(), "rebuilt.eif", &sample_image());
    let output = govctl(&[
        "eif",
        "compare",
        "--expected",
        path_str(&pcrs),
        "--actual",
        path_str(&rebuilt),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert!(stdout(&output).contains("OK: every expected PCR matches"));

    // A changed application ramdisk: PCR0 and PCR2 differ, PCR1 does not.
    let changed = EifBuilder::new(KERNEL, CMDLINE)
        .ramdisk(INIT)
        .ramdisk(b"another application".as_slice())
        .build()
        .unwrap();
    let changed = write_eif(dir.path(), "changed.eif", &changed);
    let output = govctl(&[
        "eif",
        "compare",
        "--expected",
        path_str(&pcrs),
        "--actual",
        path_str(&changed),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let text = stdout(&output);
    assert!(text.contains("PCR0  MISMATCH"), "{text}");
    assert!(text.contains("PCR1  match"), "{text}");
    assert!(text.contains("FAILED: PCR0, PCR2 differ"), "{text}");
}

#[test]
fn compare_reads_nitro_cli_describe_enclaves_output() {
    let dir = tempfile::tempdir().unwrap();
    let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
    let pcr = |parts: &[&[u8]]| independent_pcr(parts);
    let running = |name: &str, pcr0: String| {
        serde_json::json!({
            "EnclaveName": name,
            "EnclaveID": "i-0123456789abcdef0-enc0123456789abcdef",
            "ProcessID": 4242,
            "EnclaveCID": 16,
            "NumberOfCPUs": 2,
            "CPUIDs": [1, 3],
            "MemoryMiB": 2048,
            "State": "RUNNING",
            "Flags": "NONE",
            "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": pcr0,
                "PCR1": pcr(&[KERNEL, CMDLINE, INIT]),
                "PCR2": pcr(&[APP, APP2]),
            }
        })
    };
    let good = pcr(&[KERNEL, CMDLINE, INIT, APP, APP2]);
    let one = dir.path().join("one.json");
    std::fs::write(
        &one,
        serde_json::json!([running("approvals", good.clone())]).to_string(),
    )
    .unwrap();
    let output = govctl(&[
        "eif",
        "compare",
        "--expected",
        path_str(&eif),
        "--actual",
        path_str(&one),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));

    let two = dir.path().join("two.json");
    let list = serde_json::json!([
        running("approvals", good),
        running("other", "00".repeat(48))
    ]);
    std::fs::write(&two, list.to_string()).unwrap();
    let ambiguous = govctl(&[
        "eif",
        "compare",
        "--expected",
        path_str(&eif),
        "--actual",
        path_str(&two),
    ]);
    assert_eq!(ambiguous.status.code(), Some(1));
    assert!(stderr(&ambiguous).contains("--enclave-name"));
    for (name, code) in [("approvals", 0), ("other", 2)] {
        let output = govctl(&[
            "eif",
            "compare",
            "--expected",
            path_str(&eif),
            "--actual",
            path_str(&two),
            "--enclave-name",
            name,
        ]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{name}: {}",
            stdout(&output)
        );
    }
}

/// The deployment scripts, run with stand-ins for `nitro-cli` and `docker` (neither runs on a
/// development machine) and the real govctl.
/// `govctl eif ramdisk` then `govctl eif build`: the image builder of build-eif-local.sh.
#[test]
fn ramdisk_and_build_make_a_reproducible_image_with_independently_computed_pcrs() {
    let dir = tempfile::tempdir().unwrap();
    let stage = dir.path().join("stage");
    std::fs::create_dir(&stage).unwrap();
    std::fs::write(stage.join("init-binary"), b"pretend init").unwrap();
    std::fs::write(stage.join("app-binary"), b"pretend enclave-app").unwrap();
    std::fs::write(dir.path().join("kernel"), KERNEL).unwrap();
    let init_list = dir.path().join("init.list");
    std::fs::write(
        &init_list,
        "dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init init-binary 0755 0 0\n",
    )
    .unwrap();
    let app_list = dir.path().join("app.list");
    std::fs::write(
        &app_list,
        "dir /usr 0755 0 0\ndir /usr/bin 0755 0 0\nfile /usr/bin/app app-binary 0755 0 0\n",
    )
    .unwrap();

    let build = |name: &str, mtime: &str| -> (Vec<u8>, serde_json::Value) {
        let out = dir.path().join(name);
        std::fs::create_dir_all(&out).unwrap();
        for (list, cpio) in [(&init_list, "init.cpio"), (&app_list, "app.cpio")] {
            let output = govctl(&[
                "eif",
                "ramdisk",
                "--list",
                path_str(list),
                "--from",
                path_str(&stage),
                "--mtime",
                mtime,
                "--out",
                path_str(&out.join(cpio)),
            ]);
            assert!(output.status.success(), "{}", stderr(&output));
        }
        let eif = out.join("enclave.eif");
        let output = govctl(&[
            "eif",
            "build",
            "--kernel",
            path_str(&dir.path().join("kernel")),
            "--cmdline",
            std::str::from_utf8(CMDLINE).unwrap(),
            "--ramdisk",
            path_str(&out.join("init.cpio")),
            "--ramdisk",
            path_str(&out.join("app.cpio")),
            "--build-time",
            "1700000000",
            "--out",
            path_str(&eif),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let pcrs: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        (std::fs::read(&eif).unwrap(), pcrs)
    };

    let (first, pcrs) = build("first", "1700000000");
    let (second, _) = build("second", "1700000000");
    assert_eq!(first, second, "the same inputs give the same bytes");
    let (later, later_pcrs) = build("later", "1700000001");
    assert_ne!(first, later, "the ramdisks carry the mtime");
    assert_ne!(pcrs["PCR2"], later_pcrs["PCR2"]);

    let init = std::fs::read(dir.path().join("first/init.cpio")).unwrap();
    let app = std::fs::read(dir.path().join("first/app.cpio")).unwrap();
    assert_eq!(
        pcrs["PCR0"],
        independent_pcr(&[KERNEL, CMDLINE, &init, &app])
    );
    assert_eq!(pcrs["PCR1"], independent_pcr(&[KERNEL, CMDLINE, &init]));
    assert_eq!(pcrs["PCR2"], independent_pcr(&[&app]));
    // The image reads back as nitro-cli's describe-eif would show it, metadata included.
    let eif = dir.path().join("first/enclave.eif");
    let output = govctl(&["eif", "inspect", path_str(&eif)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let described: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        described["Metadata"]["BuildTime"], "2023-11-14T22:13:20Z",
        "{described}"
    );
}

#[test]
fn ramdisk_and_build_refuse_bad_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("bad.list");
    std::fs::write(
        &list,
        "dir /a 0755 0 0\nfile /a/b missing-source 0644 0 0\n",
    )
    .unwrap();
    let output = govctl(&[
        "eif",
        "ramdisk",
        "--list",
        path_str(&list),
        "--out",
        path_str(&dir.path().join("x.cpio")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("line 2"), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("missing-source"),
        "{}",
        stderr(&output)
    );

    std::fs::write(dir.path().join("kernel"), KERNEL).unwrap();
    std::fs::write(dir.path().join("one.cpio"), INIT).unwrap();
    let output = govctl(&[
        "eif",
        "build",
        "--kernel",
        path_str(&dir.path().join("kernel")),
        "--cmdline",
        "x",
        "--ramdisk",
        path_str(&dir.path().join("one.cpio")),
        "--out",
        path_str(&dir.path().join("x.eif")),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("at least two --ramdisk"),
        "{}",
        stderr(&output)
    );
}

mod scripts {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn executable(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/usr/bin/env bash\nset -euo pipefail\n{body}"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn script(name: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("scripts").join(name))
            .env("GOVCTL", env!("CARGO_BIN_EXE_govctl"));
        command
    }

    /// A fake `nitro-cli describe-enclaves` printing one running enclave with these PCRs.
    fn fake_nitro_cli(dir: &Path, pcr0: &str) -> PathBuf {
        let json = serde_json::json!([{
            "EnclaveName": "enclave-approvals",
            "EnclaveCID": 16,
            "State": "RUNNING",
            "Flags": "NONE",
            "Measurements": {
                "HashAlgorithm": "Sha384 { ... }",
                "PCR0": pcr0,
                "PCR1": independent_pcr(&[KERNEL, CMDLINE, INIT]),
                "PCR2": independent_pcr(&[APP, APP2]),
            }
        }]);
        executable(
            dir,
            "nitro-cli",
            &format!("[ \"$1\" = describe-enclaves ] || exit 9\ncat <<'JSON'\n{json}\nJSON\n"),
        )
    }

    #[test]
    fn describe_says_whether_the_running_enclave_is_the_expected_image() {
        let dir = tempfile::tempdir().unwrap();
        let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
        let pcrs = dir.path().join("pcrs.json");
        assert!(
            govctl(&["eif", "pcrs", path_str(&eif), "--out", path_str(&pcrs)])
                .status
                .success()
        );

        let good = fake_nitro_cli(
            dir.path(),
            &independent_pcr(&[KERNEL, CMDLINE, INIT, APP, APP2]),
        );
        let output = script("describe.sh")
            .args(["--pcrs", path_str(&pcrs)])
            .env("NITRO_CLI", &good)
            .output()
            .unwrap();
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
        assert!(text.contains("PCR0  match"), "{text}");
        assert!(
            text.contains("the running enclave is the expected image"),
            "{text}"
        );

        let other = tempfile::tempdir().unwrap();
        let bad = fake_nitro_cli(other.path(), &"00".repeat(48));
        let output = script("describe.sh")
            .args([
                "--pcrs",
                path_str(&pcrs),
                "--enclave-name",
                "enclave-approvals",
            ])
            .env("NITRO_CLI", &bad)
            .output()
            .unwrap();
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(2), "{text}{}", stderr(&output));
        assert!(text.contains("PCR0  MISMATCH"), "{text}");
        assert!(text.contains("NOT the expected image"), "{text}");
    }

    #[test]
    fn deploy_dry_run_writes_allocator_settings_and_units() {
        let dir = tempfile::tempdir().unwrap();
        let eif = write_eif(dir.path(), "enclave.eif", &sample_image());
        let pcrs = dir.path().join("pcrs.json");
        assert!(
            govctl(&["eif", "pcrs", path_str(&eif), "--out", path_str(&pcrs)])
                .status
                .success()
        );
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_govctl"), bin.join("govctl")).unwrap();
        executable(&bin, "parent-proxy", "exit 0\n");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "certificate").unwrap();
        std::fs::write(&key, "key").unwrap();

        let deploy = |root: &Path, extra: &[&str]| {
            let mut args = vec![
                "--dry-run",
                "--skip-install",
                "--root",
                path_str(root),
                "--eif",
                path_str(&eif),
                "--bin-dir",
                path_str(&bin),
                "--tls-cert",
                path_str(&cert),
                "--tls-key",
                path_str(&key),
                "--memory",
                "4096",
                "--cpus",
                "4",
                "--cid",
                "21",
                "--region",
                "eu-west-1",
            ];
            args.extend_from_slice(extra);
            script("deploy-ec2.sh").args(&args).output().unwrap()
        };

        let root = dir.path().join("root");
        let output = deploy(&root, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let allocator = read("etc/nitro_enclaves/allocator.yaml");
        assert!(allocator.contains("memory_mib: 4096"), "{allocator}");
        assert!(allocator.contains("cpu_count: 4"), "{allocator}");
        let enclave = read("etc/systemd/system/enclave-approvals-enclave.service");
        assert!(
            enclave.contains(
                "run-enclave --enclave-name enclave-approvals --eif-path \
                 /opt/enclave-approvals/enclave.eif --enclave-cid 21 --cpu-count 4 --memory 4096\n"
            ),
            "{enclave}"
        );
        assert!(!enclave.contains("--debug-mode"), "{enclave}");
        let proxy = read("etc/systemd/system/enclave-approvals-proxy.service");
        assert!(
            proxy.contains(
                "--kms-relay-endpoint kms.eu-west-1.amazonaws.com:443 --aws-credentials imds"
            ),
            "{proxy}"
        );
        assert!(
            proxy.contains("Environment=PROXY_ENCLAVE=vsock:21:5000"),
            "{proxy}"
        );
        assert!(
            proxy.contains("Environment=PROXY_LISTEN=0.0.0.0:8443"),
            "{proxy}"
        );
        assert!(
            proxy.contains("--tls-cert /etc/enclave-approvals/tls.crt"),
            "{proxy}"
        );
        assert!(proxy.contains("Environment=PROXY_KMS_ARGS="), "{proxy}");
        assert_eq!(
            read("opt/enclave-approvals/pcrs.json"),
            std::fs::read_to_string(&pcrs).unwrap()
        );
        assert_eq!(
            std::fs::read(root.join("opt/enclave-approvals/enclave.eif")).unwrap(),
            sample_image()
        );
        let commands = stdout(&output);
        assert!(
            commands.contains("+ systemctl restart nitro-enclaves-allocator.service"),
            "{commands}"
        );
        assert!(
            commands.contains("health --endpoint https://localhost:8443"),
            "{commands}"
        );

        // Debug mode only when asked for, and loudly.
        let debug_root = dir.path().join("debug-root");
        let output = deploy(&debug_root, &["--debug-mode"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let enclave = std::fs::read_to_string(
            debug_root.join("etc/systemd/system/enclave-approvals-enclave.service"),
        )
        .unwrap();
        assert!(
            enclave.contains("--memory 4096 --debug-mode\n"),
            "{enclave}"
        );
        assert!(stderr(&output).contains("WARNING: debug mode"));

        // A pcrs.json that does not describe the EIF stops the deployment before any change.
        let other = EifBuilder::new(KERNEL, CMDLINE)
            .ramdisk(INIT)
            .build()
            .unwrap();
        let other = write_eif(dir.path(), "other.eif", &other);
        let refused_root = dir.path().join("refused-root");
        let output = deploy(
            &refused_root,
            &["--eif", path_str(&other), "--pcrs", path_str(&pcrs)],
        );
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("does not describe"),
            "{}",
            stderr(&output)
        );
        assert!(!refused_root.exists());
    }
}
