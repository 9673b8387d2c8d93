use super::*;

/// One entry read back from an archive: (name, mode, uid, gid, nlink, mtime, rdev, data).
type Parsed = (String, u32, u32, u32, u32, u32, (u32, u32), Vec<u8>);

/// A minimal newc reader, to check what the writer wrote field by field.
fn read_back(mut bytes: &[u8]) -> Vec<Parsed> {
    let mut entries = Vec::new();
    let mut offset = 0usize;
    loop {
        assert_eq!(&bytes[..6], MAGIC, "magic at offset {offset}");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&bytes[6 + 8 * i..14 + 8 * i]).unwrap(),
                16,
            )
            .unwrap()
        };
        let (mode, uid, gid, nlink, mtime) = (field(1), field(2), field(3), field(4), field(5));
        let size = field(6) as usize;
        let rdev = (field(9), field(10));
        let name_size = field(11) as usize;
        let name = std::str::from_utf8(&bytes[110..110 + name_size - 1])
            .unwrap()
            .to_owned();
        assert_eq!(bytes[110 + name_size - 1], 0, "name is NUL-terminated");
        let data_at = (110 + name_size).next_multiple_of(4);
        let data = bytes[data_at..data_at + size].to_vec();
        let next = (data_at + size).next_multiple_of(4);
        offset += next;
        bytes = &bytes[next..];
        if name == TRAILER {
            assert!(bytes.is_empty(), "nothing after the trailer");
            return entries;
        }
        entries.push((name, mode, uid, gid, nlink, mtime, rdev, data));
    }
}

fn sample() -> Ramdisk {
    let mut ramdisk = Ramdisk::new(1_234_567_890);
    ramdisk.directory("/dev", 0o755, 0, 0).unwrap();
    ramdisk
        .char_device("/dev/console", 0o600, 0, 0, 5, 1)
        .unwrap();
    ramdisk
        .file("/init", 0o755, 0, 0, b"hello".to_vec())
        .unwrap();
    ramdisk.directory("/etc", 0o755, 0, 0).unwrap();
    ramdisk.symlink("/etc/link", "/init", 0o777, 0, 0).unwrap();
    ramdisk
}

#[test]
fn entries_come_out_sorted_with_their_metadata_and_contents() {
    let entries = read_back(&sample().to_cpio());
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["dev", "dev/console", "etc", "etc/link", "init"]);
    let console = &entries[1];
    assert_eq!(console.1, 0o020_600);
    assert_eq!(console.6, (5, 1));
    let link = &entries[3];
    assert_eq!(link.1, 0o120_777);
    assert_eq!(link.7, b"/init");
    let init = &entries[4];
    assert_eq!((init.1, init.2, init.3, init.4), (0o100_755, 0, 0, 1));
    assert_eq!(init.5, 1_234_567_890);
    assert_eq!(init.7, b"hello");
    assert_eq!(entries[0].4, 2, "directories have two links");
}

#[test]
fn insertion_order_does_not_change_the_bytes() {
    let mut other = Ramdisk::new(1_234_567_890);
    other.directory("/etc", 0o755, 0, 0).unwrap();
    other.file("/init", 0o755, 0, 0, b"hello".to_vec()).unwrap();
    other.directory("/dev", 0o755, 0, 0).unwrap();
    other.symlink("/etc/link", "/init", 0o777, 0, 0).unwrap();
    other
        .char_device("/dev/console", 0o600, 0, 0, 5, 1)
        .unwrap();
    assert_eq!(other.to_cpio(), sample().to_cpio());
}

#[test]
fn the_mtime_is_the_only_time_in_the_archive() {
    let a = sample().to_cpio();
    let mut later = sample();
    later.mtime = 1_234_567_891;
    let b = later.to_cpio();
    assert_ne!(a, b);
    assert_eq!(a.len(), b.len());
}

#[test]
fn a_single_file_archive_has_exactly_the_expected_bytes() {
    let mut ramdisk = Ramdisk::new(0x10);
    ramdisk.file("/a", 0o644, 0, 0, b"xyz".to_vec()).unwrap();
    let expected = [
        "070701",
        "00000001",
        "000081A4",
        "00000000",
        "00000000",
        "00000001",
        "00000010",
        "00000003",
        "00000000",
        "00000000",
        "00000000",
        "00000000",
        "00000002",
        "00000000",
        "a\0",   // 110 + 2 = 112: already aligned
        "xyz\0", // 3 bytes of data, padded to 4
        "070701",
        "00000000",
        "00000000",
        "00000000",
        "00000000",
        "00000001",
        "00000000",
        "00000000",
        "00000000",
        "00000000",
        "00000000",
        "00000000",
        "0000000B",
        "00000000",
        "TRAILER!!!\0", // 110 + 11 = 121, padded to 124
        "\0\0\0",
    ]
    .concat();
    assert_eq!(ramdisk.to_cpio(), expected.as_bytes());
}

#[test]
fn bad_entries_are_refused_by_name() {
    let mut ramdisk = Ramdisk::new(0);
    for path in [
        "relative",
        "/",
        "/a/../b",
        "/a//b",
        "/a/",
        "/a/./b",
        "/with space",
    ] {
        assert!(
            matches!(
                ramdisk.directory(path, 0o755, 0, 0),
                Err(RamdiskError::BadPath { .. })
            ),
            "{path} should be refused"
        );
    }
    assert!(matches!(
        ramdisk.file("/missing/parent", 0o644, 0, 0, Vec::new()),
        Err(RamdiskError::MissingParent { .. })
    ));
    ramdisk.file("/f", 0o644, 0, 0, Vec::new()).unwrap();
    assert!(matches!(
        ramdisk.file("/f", 0o644, 0, 0, Vec::new()),
        Err(RamdiskError::Duplicate { .. })
    ));
    assert!(
        matches!(
            ramdisk.file("/f/child", 0o644, 0, 0, Vec::new()),
            Err(RamdiskError::MissingParent { .. })
        ),
        "a file is not a parent"
    );
    assert!(matches!(
        ramdisk.file("/g", 0o100_644, 0, 0, Vec::new()),
        Err(RamdiskError::BadMode { .. })
    ));
}

#[test]
fn a_list_builds_the_same_ramdisk_as_code() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("init.bin"), b"hello").unwrap();
    let list = "\
# the init ramdisk
dir /dev 0755 0 0
nod /dev/console 0600 0 0 c 5 1

file /init init.bin 0755 0 0
dir /etc 755 0 0
slink /etc/link /init 0777 0 0
";
    let from_list = Ramdisk::from_list(list, dir.path(), 1_234_567_890).unwrap();
    assert_eq!(from_list.to_cpio(), sample().to_cpio());
}

#[test]
fn list_errors_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("dir /a 0755 0", 1),
        ("dir /a 0755 0 0\nfile /a/b missing 0644 0 0", 2),
        ("pipe /p 0644 0 0", 1),
        ("dir /a 9755 0 0", 1),
        ("dir /a 0755 root 0", 1),
        ("dir /a 0755 0 0\ndir /a 0755 0 0", 2),
        ("nod /c 0600 0 0 x 5 1", 1),
        ("\n\nfile /x/y src 0644 0 0", 3),
    ];
    for (list, line) in cases {
        let error = Ramdisk::from_list(list, dir.path(), 0).unwrap_err();
        assert!(
            matches!(
                &error,
                RamdiskError::List { line: l, .. } | RamdiskError::Source { line: l, .. } if *l == line
            ),
            "{list:?}: {error}"
        );
    }
    let long = "#".repeat(MAX_LIST_LEN + 1);
    assert!(matches!(
        Ramdisk::from_list(&long, dir.path(), 0),
        Err(RamdiskError::ListTooLong { .. })
    ));
}
