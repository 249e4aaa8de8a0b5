//! The legacy torch reader on the small files that
//! `tests/weights_fixtures/make_legacy.py` writes.

use std::path::{Path, PathBuf};

use nst_weights::legacy::{read_legacy, LegacyData, LegacyError};
use nst_weights::{convert_legacy, WeightsError};

fn fixture(name: &str) -> Vec<u8> {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/weights_fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generator's `Lcg`, for the expected uint8 indices.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn reads_the_tiny_file() {
    let tensors = read_legacy(&fixture("tiny_ok.bin")).unwrap();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "block1_conv1_W_q",
            "block1_conv1_W_table",
            "block1_conv1_b",
            "block1_conv2_W_q",
            "block1_conv2_W_table",
            "block1_conv2_b",
        ]
    );
    let mut rng = Lcg(2024);
    let q1: Vec<u8> = (0..108).map(|_| (rng.next() % 256) as u8).collect();
    let q2: Vec<u8> = (0..144).map(|_| (rng.next() % 256) as u8).collect();
    assert_eq!(tensors[0].1.shape, [4, 3, 3, 3]);
    assert_eq!(tensors[0].1.data, LegacyData::U8(q1));
    assert_eq!(tensors[3].1.shape, [4, 4, 3, 3]);
    assert_eq!(tensors[3].1.data, LegacyData::U8(q2));
    let table: Vec<f32> = (0..256).map(|i| (i - 128) as f32 / 256.0 * 2.0).collect();
    assert_eq!(tensors[4].1.shape, [256]);
    assert_eq!(tensors[4].1.data, LegacyData::F32(table));
    assert_eq!(
        tensors[5].1.data,
        LegacyData::F32(vec![-0.25, 0.0, 0.25, 0.5])
    );
}

#[test]
fn truncated_file() {
    let e = read_legacy(&fixture("truncated.bin")).unwrap_err();
    let LegacyError::Truncated {
        ref what,
        offset,
        len,
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(what, "the 108 data bytes of storage `69071984`");
    assert_eq!(len, 934);
    assert_eq!(offset, 884);
    assert_eq!(
        e.to_string(),
        "the file is truncated: it ends at byte 934 while reading the 108 data bytes of storage \
         `69071984` at byte 884"
    );
    // Through the converter, the message names the fix too.
    let e = convert_legacy(&fixture("truncated.bin")).unwrap_err();
    assert!(matches!(e, WeightsError::Legacy { .. }), "{e}");
    assert!(
        e.to_string().contains("damaged: fetch the weights again"),
        "{e}"
    );
}

#[test]
fn every_prefix_of_the_tiny_file_is_an_error() {
    let bytes = fixture("tiny_ok.bin");
    for n in 0..bytes.len() {
        assert!(read_legacy(&bytes[..n]).is_err(), "prefix of {n} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        read_legacy(&longer).unwrap_err(),
        LegacyError::TrailingBytes {
            count: 1,
            offset: bytes.len()
        }
    );
}

#[test]
fn unexpected_opcode() {
    let e = read_legacy(&fixture("unexpected_opcode.bin")).unwrap_err();
    assert_eq!(
        e,
        LegacyError::UnexpectedOpcode {
            opcode: b'G',
            name: "BINFLOAT",
            offset: 163,
            pickle: "main pickle",
        }
    );
    assert_eq!(
        e.to_string(),
        "unexpected pickle opcode 0x47 (BINFLOAT) at byte 163 in the main pickle"
    );
}

#[test]
fn unexpected_global() {
    let e = read_legacy(&fixture("unexpected_global.bin")).unwrap_err();
    assert_eq!(
        e,
        LegacyError::UnexpectedGlobal {
            module: "builtins".into(),
            name: "eval".into(),
            offset: 104,
        }
    );
    assert!(e
        .to_string()
        .starts_with("unexpected pickle global `builtins.eval` at byte 104"));
}

#[test]
fn corrupt_magic_and_zip_files() {
    let mut bytes = fixture("tiny_ok.bin");
    bytes[5] ^= 0xff;
    assert_eq!(read_legacy(&bytes).unwrap_err(), LegacyError::BadMagic);
    assert_eq!(
        read_legacy(b"PK\x03\x04....").unwrap_err(),
        LegacyError::ZipFormat
    );
    assert!(matches!(
        read_legacy(b"").unwrap_err(),
        LegacyError::Truncated { .. }
    ));
}

#[test]
fn a_tiny_file_is_not_vgg19() {
    let e = convert_legacy(&fixture("tiny_ok.bin")).unwrap_err();
    let WeightsError::WrongShape {
        ref name,
        ref expected,
        ref found,
        ..
    } = e
    else {
        panic!("{e}")
    };
    assert_eq!(name, "block1_conv1_W_q");
    assert_eq!(expected, &[64, 3, 3, 3]);
    assert_eq!(found, &[4, 3, 3, 3]);
}
