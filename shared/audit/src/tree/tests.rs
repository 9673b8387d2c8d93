use super::*;
use crate::hash::{empty_root, leaf_hash};
use crate::proof::{root_from_inclusion, verify_consistency};
use proptest::prelude::*;

/// The eight leaves of the RFC 6962 test data used by certificate-transparency and
/// transparency-dev/merkle.
fn rfc_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).unwrap())
    .collect()
}

/// Roots of the trees of 1 to 8 of those leaves.
const RFC_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn h(hex: &str) -> Hash {
    hex.parse().unwrap()
}

fn rfc_tree() -> MerkleTree {
    MerkleTree::from_leaves(rfc_leaves().iter().map(|l| leaf_hash(l)))
}

#[test]
fn rfc6962_roots() {
    let tree = rfc_tree();
    for (i, root) in RFC_ROOTS.iter().enumerate() {
        assert_eq!(tree.root_at(i as u64 + 1), Some(h(root)), "size {}", i + 1);
        let prefix = MerkleTree::from_leaves(rfc_leaves()[..=i].iter().map(|l| leaf_hash(l)));
        assert_eq!(prefix.root(), h(root));
    }
    assert_eq!(tree.root_at(0), Some(empty_root()));
    assert_eq!(tree.root_at(9), None);
    assert_eq!(MerkleTree::new().root(), empty_root());
}

#[test]
fn rfc6962_inclusion_proofs() {
    let tree = rfc_tree();
    let vectors: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, path) in vectors {
        let want: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof.path, want, "{index}/{size}");
        let leaf = tree.leaf(index).unwrap();
        let root = h(RFC_ROOTS[size as usize - 1]);
        proof.verify(&leaf, &root).unwrap();
    }
    assert_eq!(tree.inclusion_proof(0, 1).unwrap().path, vec![]);
    assert!(tree.inclusion_proof(8, 8).is_err());
    assert!(tree.inclusion_proof(0, 9).is_err());
}

#[test]
fn rfc6962_consistency_proofs() {
    let tree = rfc_tree();
    let vectors: [(u64, u64, &[&str]); 5] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (1, 1, &[]),
    ];
    for (old, new, path) in vectors {
        let want: Vec<Hash> = path.iter().map(|p| h(p)).collect();
        let proof = tree.consistency_proof(old, new).unwrap();
        assert_eq!(proof.path, want, "{old}->{new}");
        let old_root = h(RFC_ROOTS[old as usize - 1]);
        let new_root = h(RFC_ROOTS[new as usize - 1]);
        proof.verify(&old_root, &new_root).unwrap();
        if !want.is_empty() {
            assert!(proof.verify(&new_root, &old_root).is_err(), "swapped roots");
        }
    }
    assert!(tree.consistency_proof(5, 4).is_err());
    assert!(tree.consistency_proof(1, 9).is_err());
}

#[test]
fn consistency_edge_cases() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    assert!(verify_consistency(0, 0, &a, &a, &[]).is_ok());
    assert!(verify_consistency(0, 0, &a, &b, &[]).is_err());
    assert!(verify_consistency(0, 1, &a, &b, &[]).is_ok());
    assert!(verify_consistency(0, 1, &a, &b, &[a]).is_err());
    assert!(verify_consistency(1, 1, &b, &b, &[]).is_ok());
    assert!(verify_consistency(1, 1, &b, &b, &[b]).is_err());
    assert!(verify_consistency(2, 1, &a, &b, &[]).is_err());
    assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
    // A single-entry tree: its root is its leaf hash and the proof is empty.
    assert_eq!(root_from_inclusion(0, 1, &a, &[]), Ok(a));
    assert!(root_from_inclusion(0, 0, &a, &[]).is_err());
    assert!(root_from_inclusion(1, 1, &a, &[]).is_err());
}

/// The reference model: RFC 9162's recursive definitions, verbatim, over a slice of leaf
/// hashes.
mod naive {
    use crate::hash::{empty_root, node_hash, Hash};

    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    pub fn mth(d: &[Hash]) -> Hash {
        match d.len() {
            0 => empty_root(),
            1 => d[0],
            n => {
                let k = split(n);
                node_hash(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    pub fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n <= 1 {
            return vec![];
        }
        let k = split(n);
        if m < k {
            let mut p = path(m, &d[..k]);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = path(m - k, &d[k..]);
            p.push(mth(&d[..k]));
            p
        }
    }

    pub fn proof(m: usize, d: &[Hash]) -> Vec<Hash> {
        if m == 0 || m == d.len() {
            return vec![];
        }
        subproof(m, d, true)
    }

    fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = subproof(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = subproof(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

#[test]
fn matches_naive_model_exhaustively_for_small_trees() {
    let all = leaves(70);
    let tree = MerkleTree::from_leaves(all.iter().copied());
    for size in 1..=all.len() {
        let d = &all[..size];
        let root = naive::mth(d);
        assert_eq!(tree.root_at(size as u64), Some(root));
        for index in 0..size {
            let proof = tree.inclusion_proof(index as u64, size as u64).unwrap();
            assert_eq!(proof.path, naive::path(index, d), "{index}/{size}");
            proof.verify(&d[index], &root).unwrap();
        }
        for old in 0..=size {
            let proof = tree.consistency_proof(old as u64, size as u64).unwrap();
            assert_eq!(proof.path, naive::proof(old, d), "{old}->{size}");
            let old_root = naive::mth(&d[..old]);
            proof.verify(&old_root, &root).unwrap();
        }
    }
}

fn flip(hash: &mut Hash, bit: usize) {
    hash.0[bit / 8 % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_agrees_with_naive_and_every_bit_matters(
        size in 1usize..3000,
        index_seed in any::<prop::sample::Index>(),
        bit in 0usize..256,
    ) {
        let all = leaves(size);
        let tree = MerkleTree::from_leaves(all.iter().copied());
        let index = index_seed.index(size);
        let root = naive::mth(&all);
        prop_assert_eq!(tree.root(), root);
        let proof = tree.inclusion_proof(index as u64, size as u64).unwrap();
        prop_assert_eq!(&proof.path, &naive::path(index, &all));
        prop_assert!(proof.verify(&all[index], &root).is_ok());

        let mut bad_root = root;
        flip(&mut bad_root, bit);
        prop_assert!(proof.verify(&all[index], &bad_root).is_err());
        let mut bad_leaf = all[index];
        flip(&mut bad_leaf, bit);
        prop_assert!(proof.verify(&bad_leaf, &root).is_err());
        for i in 0..proof.path.len() {
            let mut bad = proof.clone();
            flip(&mut bad.path[i], bit);
            prop_assert!(bad.verify(&all[index], &root).is_err(), "node {}", i);
        }
        if !proof.path.is_empty() {
            let mut short = proof.clone();
            short.path.pop();
            prop_assert!(short.verify(&all[index], &root).is_err());
        }
        let mut long = proof.clone();
        long.path.push(root);
        prop_assert!(long.verify(&all[index], &root).is_err());
        if index + 1 < size {
            let mut moved = proof.clone();
            moved.index += 1;
            prop_assert!(moved.verify(&all[index], &root).is_err());
        }
    }

    #[test]
    fn consistency_agrees_with_naive_and_every_bit_matters(
        new in 1usize..3000,
        old_seed in any::<prop::sample::Index>(),
        bit in 0usize..256,
    ) {
        let all = leaves(new);
        let tree = MerkleTree::from_leaves(all.iter().copied());
        let old = old_seed.index(new) + 1;
        let (old_root, new_root) = (naive::mth(&all[..old]), naive::mth(&all));
        let proof = tree.consistency_proof(old as u64, new as u64).unwrap();
        prop_assert_eq!(&proof.path, &naive::proof(old, &all));
        prop_assert!(proof.verify(&old_root, &new_root).is_ok());
        if old != new {
            let mut bad = old_root;
            flip(&mut bad, bit);
            prop_assert!(proof.verify(&bad, &new_root).is_err());
            let mut bad = new_root;
            flip(&mut bad, bit);
            prop_assert!(proof.verify(&old_root, &bad).is_err());
            for i in 0..proof.path.len() {
                let mut bad = proof.clone();
                flip(&mut bad.path[i], bit);
                prop_assert!(bad.verify(&old_root, &new_root).is_err(), "node {}", i);
            }
        }
    }
}
