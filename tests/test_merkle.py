"""audit.merkle against the published RFC 6962 vectors and the RFC's own definitions.

- the hash vectors (domain separation) and the root of every tree size 0..8,
  computed from stored nodes (appended through Frontier and new_nodes) and
  with the literal recursive MTH;
- every published inclusion and consistency proof reproduced byte for byte
  from stored nodes, and verifying;
- RFC test-suite corruptions of every valid proof rejected;
- every proof for all sizes 1..64 equal to the RFC's PATH/PROOF and verifying
  against the literal MTH roots;
- roots and proofs read O(log n) stored nodes, in one read_many call.

No network, no database; the data is the public vectors.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import merkle
from audit.merkle import (
    EMPTY_ROOT,
    Frontier,
    NodeKey,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    mth,
    new_nodes,
    new_nodes_for_hash,
    node_hash,
    tree_hash,
    verify_consistency,
    verify_inclusion,
)

# copied from the shared test data with their provenance: tests/vectors/upstream/README.md
TESTDATA = Path(__file__).resolve().parent / "vectors" / "upstream"
VECTORS: dict[str, Any] = json.loads((TESTDATA / "rfc6962-vectors.json").read_text("utf-8"))
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaf_inputs_hex"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["root_by_tree_size_hex"]]
INCLUSION = VECTORS["inclusion"]
CONSISTENCY = VECTORS["consistency"]
SOME_HASH = hashlib.sha256(b"some other hash").digest()

Store = dict[NodeKey, bytes]


def build_store(leaves: list[bytes]) -> Store:
    store: Store = {}
    frontier = Frontier.empty()
    for leaf in leaves:
        store.update(frontier.append(leaf_hash(leaf)))
    return store


def reader(store: Store) -> Callable[[list[NodeKey]], dict[NodeKey, bytes]]:
    return lambda keys: {k: store[k] for k in keys}


STORE = build_store(LEAVES)
READ = reader(STORE)


def flip(h: bytes, bit: int = 3) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


def hexes(proof: list[bytes]) -> list[str]:
    return [h.hex() for h in proof]


def inclusion_id(v: dict[str, Any]) -> str:
    return f"leaf{v['leaf_index']}-of-{v['tree_size']}"


def consistency_id(v: dict[str, Any]) -> str:
    return f"{v['size1']}-to-{v['size2']}"


# -- hashing and roots ------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["hash_vectors"], ids=lambda v: v["kind"])
def test_hash_vectors(vector: dict[str, Any]) -> None:
    if vector["kind"] == "leaf":
        got = leaf_hash(vector["input_ascii"].encode("ascii"))
    else:
        got = node_hash(vector["left_ascii"].encode("ascii"), vector["right_ascii"].encode("ascii"))
    assert got.hex() == vector["sha256_hex"]


def test_empty_root() -> None:
    assert EMPTY_ROOT == ROOTS[0] == hashlib.sha256(b"").digest() == mth([])
    assert tree_hash(0, READ) == EMPTY_ROOT
    assert Frontier.empty().root() == EMPTY_ROOT


def test_roots_of_every_size_from_stored_nodes() -> None:
    assert len(ROOTS) == len(LEAVES) + 1
    frontier = Frontier.empty()
    store: Store = {}
    for size in range(1, len(LEAVES) + 1):
        store.update(frontier.append(leaf_hash(LEAVES[size - 1])))
        assert frontier.size == size
        assert frontier.root() == ROOTS[size], size
        assert tree_hash(size, reader(store)) == ROOTS[size], size
        assert mth(LEAVES[:size]) == ROOTS[size], size
        assert Frontier.load(size, store.__getitem__).root() == ROOTS[size]


def test_new_nodes_build_the_same_store_as_frontier() -> None:
    store: Store = {}
    reads: list[NodeKey] = []

    def read(key: NodeKey) -> bytes:
        reads.append(key)
        return store[key]

    for size, leaf in enumerate(LEAVES):
        reads.clear()
        created = new_nodes(size, leaf, read)
        assert created == new_nodes_for_hash(size, leaf_hash(leaf), store.__getitem__)
        # one read per completed parent, each a left sibling
        assert len(reads) == len(created) - 1
        assert all(index % 2 == 0 for _, index in reads)
        store.update(created)
    assert store == STORE
    # 8 leaves: 8 + 4 + 2 + 1 complete aligned subtrees
    assert sorted(store) == [(lv, i) for lv in range(4) for i in range(8 >> lv)]


def test_stored_nodes_are_the_complete_subtrees() -> None:
    for (level, index), h in STORE.items():
        lo, hi = index << level, (index + 1) << level
        assert h == mth(LEAVES[lo:hi]), (level, index)


def test_frontier_loaded_midway_continues_identically() -> None:
    for size in range(len(LEAVES) + 1):
        frontier = Frontier.load(size, STORE.__getitem__)
        assert [k for k, _ in frontier.hashes()] == merkle.needed_for_root(size)
        rest: Store = {}
        for leaf in LEAVES[size:]:
            rest.update(frontier.append(leaf_hash(leaf)))
        assert frontier.root() == ROOTS[-1]
        assert all(STORE[k] == h for k, h in rest.items())
        assert set(rest) == {k for k in STORE if (k[1] + 1) << k[0] > size}


def test_missing_or_bad_stored_node_is_an_error() -> None:
    with pytest.raises(LookupError, match=r"\(0, 6\)"):
        tree_hash(7, lambda keys: {k: STORE[k] for k in keys if k != (0, 6)})
    with pytest.raises(LookupError):
        inclusion_proof(0, 8, lambda keys: {})
    with pytest.raises(ValueError, match="expected 32, got 31"):
        tree_hash(3, lambda keys: {k: STORE[k][:31] for k in keys})
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(8, 8, READ)
    with pytest.raises(ValueError, match="must not exceed"):
        consistency_proof(5, 4, READ)
    with pytest.raises(ValueError, match="non-negative"):
        tree_hash(-1, READ)


# -- published proofs -------------------------------------------------------------------


@pytest.mark.parametrize("vector", INCLUSION, ids=inclusion_id)
def test_published_inclusion_proof(vector: dict[str, Any]) -> None:
    index, size = vector["leaf_index"], vector["tree_size"]
    proof = inclusion_proof(index, size, READ)
    assert hexes(proof) == vector["proof_hex"]
    assert hexes(merkle.path(index, LEAVES[:size])) == vector["proof_hex"]
    verify_inclusion(leaf_hash(LEAVES[index]), index, size, proof, ROOTS[size])
    assert merkle.root_from_inclusion(leaf_hash(LEAVES[index]), index, size, proof) == ROOTS[size]


@pytest.mark.parametrize("vector", CONSISTENCY, ids=consistency_id)
def test_published_consistency_proof(vector: dict[str, Any]) -> None:
    size1, size2 = vector["size1"], vector["size2"]
    proof = consistency_proof(size1, size2, READ)
    assert hexes(proof) == vector["proof_hex"]
    assert hexes(merkle.proof(size1, LEAVES[:size2])) == vector["proof_hex"]
    verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])


def test_error_messages_state_expected_and_got() -> None:
    v = INCLUSION[0]
    proof = [bytes.fromhex(h) for h in v["proof_hex"]]
    lh = leaf_hash(LEAVES[0])
    with pytest.raises(ProofError, match=r"^inclusion proof has wrong size: expected 3, got 4$"):
        verify_inclusion(lh, 0, 8, [*proof, SOME_HASH], ROOTS[8])
    with pytest.raises(ProofError, match=r"^root mismatch: computed [0-9a-f]{64} expected "):
        verify_inclusion(lh, 0, 8, proof, ROOTS[7])
    with pytest.raises(ProofError, match=r"^consistency proof has wrong size: expected 0, got 1$"):
        verify_consistency(8, 8, [SOME_HASH], ROOTS[8], ROOTS[8])


# -- corrupted proofs (the RFC test suites' probes) ----------------------------------------


def inclusion_shape(index: int, size: int, n: int) -> tuple[str, ...] | None:
    """How the RFC 9162 verifier combines n proof hashes for (index, size): 'L' when the
    proof hash goes on the left, 'R' on the right; None if it rejects the shape."""
    if not 0 <= index < size:
        return None
    fn, sn, out = index, size - 1, []
    for _ in range(n):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            out.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            out.append("R")
        fn, sn = fn >> 1, sn >> 1
    return tuple(out) if sn == 0 else None


def consistency_shape(size1: int, size2: int, n: int) -> tuple[str, ...] | None:
    """Like inclusion_shape for RFC 9162 section 2.1.4.2 (0 < size1 < size2)."""
    if not 0 < size1 < size2 or n == 0:
        return None
    first = size1 & (size1 - 1) == 0
    fn, sn, out = size1 - 1, size2 - 1, ["P" if first else "-"]
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    for _ in range(n if first else n - 1):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            out.append("L")
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            out.append("R")
        fn, sn = fn >> 1, sn >> 1
    return tuple(out) if sn == 0 else None


def proof_mutations(proof: list[bytes], root: bytes) -> Iterator[tuple[str, list[bytes]]]:
    if proof:
        yield "truncated", proof[:-1]
    yield "extended with a hash", [*proof, SOME_HASH]
    yield "extended with the root", [*proof, root]
    yield "prepended a hash", [SOME_HASH, *proof]
    yield "prepended the root", [root, *proof]
    yield "extended with empty bytes", [*proof, b""]
    if len(proof) > 1:
        yield "inserted a hash", [proof[0], SOME_HASH, *proof[1:]]
    for i in range(len(proof)):
        for bit in (0, 3, 7):
            yield f"hash {i} bit {bit} flipped", [*proof[:i], flip(proof[i], bit), *proof[i + 1 :]]
        last = proof[i][:-1] + bytes([proof[i][-1] ^ 0x80])
        yield f"hash {i} last byte flipped", [*proof[:i], last, *proof[i + 1 :]]
    for i in range(len(proof) - 1):
        if proof[i] != proof[i + 1]:
            swapped = [*proof[:i], proof[i + 1], proof[i], *proof[i + 2 :]]
            yield f"hashes {i} and {i + 1} swapped", swapped
    if len(proof) > 1:
        yield "reversed", proof[::-1]
    if proof:
        yield "empty", []
    else:
        yield "one hash where none is needed", [SOME_HASH]


def all_inclusion_cases() -> list[tuple[int, int]]:
    published = [(v["leaf_index"], v["tree_size"]) for v in INCLUSION]
    every = [(i, n) for n in range(1, len(LEAVES) + 1) for i in range(n)]
    return published + [c for c in every if c not in published]


def all_consistency_cases() -> list[tuple[int, int]]:
    published = [(v["size1"], v["size2"]) for v in CONSISTENCY]
    every = [(m, n) for n in range(1, len(LEAVES) + 1) for m in range(1, n + 1)]
    return published + [c for c in every if c not in published]


@pytest.mark.parametrize(("index", "size"), all_inclusion_cases())
def test_corrupted_inclusion_proofs_are_rejected(index: int, size: int) -> None:
    proof = inclusion_proof(index, size, READ)
    lh, root = leaf_hash(LEAVES[index]), ROOTS[size]
    verify_inclusion(lh, index, size, proof, root)
    for what, bad in proof_mutations(proof, root):
        with pytest.raises(ProofError):
            verify_inclusion(lh, index, size, bad, root)
            pytest.fail(f"accepted: {what}")
    wrong_inputs = [
        ("wrong leaf", leaf_hash(b"WrongLeaf"), root),
        ("leaf data instead of its hash", hashlib.sha256(LEAVES[index]).digest(), root),
        ("empty root", lh, EMPTY_ROOT),
        ("another root", lh, SOME_HASH),
        ("root flipped", lh, flip(root)),
    ]
    wrong_inputs += [(f"root of size {n}", lh, r) for n, r in enumerate(ROOTS) if r != root]
    for what, bad_leaf, bad_root in wrong_inputs:
        with pytest.raises(ProofError):
            verify_inclusion(bad_leaf, index, size, proof, bad_root)
            pytest.fail(f"accepted: {what}")
    for what, i in [("index - 1", index - 1), ("index + 1", index + 1), ("index ^ 2", index ^ 2)]:
        with pytest.raises(ProofError):
            verify_inclusion(lh, i, size, proof, root)
            pytest.fail(f"accepted: {what}")
    true_shape = inclusion_shape(index, size, len(proof))
    assert true_shape is not None
    for n in {size - 1, size + 1, size * 2, size // 2} - {size}:
        # the claimed size with the root of that size, as a signed checkpoint pairs them
        if n < len(ROOTS) and not (index < n and inclusion_proof(index, n, READ) == proof):
            with pytest.raises(ProofError):
                verify_inclusion(lh, index, n, proof, ROOTS[n])
                pytest.fail(f"accepted: size {n} with its root")
        # the claimed size with this proof's root: rejected unless the shape is the
        # same (see test_a_proof_binds_its_size_only_through_the_root)
        if inclusion_shape(index, n, len(proof)) == true_shape:
            verify_inclusion(lh, index, n, proof, root)
        else:
            with pytest.raises(ProofError):
                verify_inclusion(lh, index, n, proof, root)
                pytest.fail(f"accepted: size {n} with the root of size {size}")


def test_index_changes_always_change_the_proof_shape() -> None:
    """A wrong index is rejected by shape alone, for every tree up to 300 leaves."""
    for size in range(1, 300):
        for index in range(size):
            n = next(k for k in range(64) if inclusion_shape(index, size, k) is not None)
            shape = inclusion_shape(index, size, n)
            for other in (index - 1, index + 1, index ^ 2):
                if other != index:
                    assert inclusion_shape(other, size, n) != shape, (index, size, other)


def test_a_proof_binds_its_size_only_through_the_root() -> None:
    """RFC 9162 verification takes the tree size as an input and the proof only fixes
    the order hashes are combined in: leaf 0 of 7 and leaf 0 of 8 both put three
    proof hashes on the right. So the 8-leaf proof "verifies" for size 7 against the
    8-leaf root, which is no corruption of the proof: a verifier takes size and root
    together from a signed checkpoint, and against the 7-leaf root it is rejected."""
    proof = inclusion_proof(0, 8, READ)
    lh = leaf_hash(LEAVES[0])
    assert inclusion_shape(0, 7, 3) == inclusion_shape(0, 8, 3) == ("R", "R", "R")
    verify_inclusion(lh, 0, 7, proof, ROOTS[8])
    with pytest.raises(ProofError, match="root mismatch"):
        verify_inclusion(lh, 0, 7, proof, ROOTS[7])
    verify_inclusion(lh, 0, 7, inclusion_proof(0, 7, READ), ROOTS[7])


@pytest.mark.parametrize(("size1", "size2"), all_consistency_cases())
def test_corrupted_consistency_proofs_are_rejected(size1: int, size2: int) -> None:
    proof = consistency_proof(size1, size2, READ)
    root1, root2 = ROOTS[size1], ROOTS[size2]
    verify_consistency(size1, size2, proof, root1, root2)
    for what, bad in proof_mutations(proof, root2):
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, bad, root1, root2)
            pytest.fail(f"accepted: {what}")
    wrong_roots = [
        ("root1 flipped", flip(root1), root2),
        ("root2 flipped", root1, flip(root2)),
        ("roots swapped", root2, root1),
        ("root1 empty", EMPTY_ROOT, root2),
        ("root2 another", root1, SOME_HASH),
    ]
    wrong_roots += [(f"root1 of size {n}", r, root2) for n, r in enumerate(ROOTS) if r != root1]
    wrong_roots += [(f"root2 of size {n}", root1, r) for n, r in enumerate(ROOTS) if r != root2]
    for what, r1, r2 in wrong_roots:
        if (r1, r2) == (root1, root2):
            continue
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, r1, r2)
            pytest.fail(f"accepted: {what}")
    true_shape = consistency_shape(size1, size2, len(proof))
    for what, m, n in [
        ("size1 - 1", size1 - 1, size2),
        ("size1 + 1", size1 + 1, size2),
        ("size2 - 1", size1, size2 - 1),
        ("size2 + 1", size1, size2 + 1),
        ("sizes swapped", size2, size1),
    ]:
        if (m, n) == (size1, size2):
            continue
        # the claimed sizes with their own roots, as signed checkpoints pair them
        if 0 <= m <= n < len(ROOTS) and consistency_proof(m, n, READ) != proof:
            with pytest.raises(ProofError):
                verify_consistency(m, n, proof, ROOTS[m], ROOTS[n])
                pytest.fail(f"accepted: {what} with its roots")
        # with this proof's roots: rejected unless the shape is the same
        if true_shape is not None and consistency_shape(m, n, len(proof)) == true_shape:
            verify_consistency(m, n, proof, root1, root2)
            continue
        with pytest.raises(ProofError):
            verify_consistency(m, n, proof, root1, root2)
            pytest.fail(f"accepted: {what}")


def test_consistency_edge_cases() -> None:
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 8, [], EMPTY_ROOT, ROOTS[8])
    verify_consistency(8, 8, [], ROOTS[8], ROOTS[8])
    assert consistency_proof(0, 8, READ) == []
    assert consistency_proof(8, 8, READ) == []
    with pytest.raises(ProofError, match="root1 mismatch"):
        verify_consistency(0, 8, [], ROOTS[1], ROOTS[8])
    with pytest.raises(ProofError, match="expected 0, got 1"):
        verify_consistency(0, 8, [ROOTS[8]], EMPTY_ROOT, ROOTS[8])
    with pytest.raises(ProofError, match="root mismatch"):
        verify_consistency(8, 8, [], ROOTS[8], ROOTS[7])
    with pytest.raises(ProofError, match="must not exceed"):
        verify_consistency(8, 7, [], ROOTS[8], ROOTS[7])
    with pytest.raises(ProofError, match="non-negative"):
        verify_consistency(-1, 7, [], ROOTS[0], ROOTS[7])
    with pytest.raises(ProofError, match="root1 has wrong length"):
        verify_consistency(1, 1, [], b"", ROOTS[1])


def test_inclusion_edge_cases() -> None:
    lh = leaf_hash(LEAVES[0])
    verify_inclusion(lh, 0, 1, [], ROOTS[1])
    for index, size in [(1, 1), (0, 0), (8, 8), (-1, 8)]:
        with pytest.raises(ProofError):
            verify_inclusion(lh, index, size, [], ROOTS[1])
    with pytest.raises(ProofError, match="leaf hash has wrong length: expected 32, got 1"):
        verify_inclusion(LEAVES[1], 0, 1, [], ROOTS[1])


# -- every size 1..64 against the RFC's definitions ----------------------------------------

BIG = [f"leaf {i}".encode() for i in range(64)]
BIG_STORE = build_store(BIG)
BIG_READ = reader(BIG_STORE)
BIG_ROOTS = [mth(BIG[:n]) for n in range(len(BIG) + 1)]


def test_every_inclusion_proof_up_to_64() -> None:
    for size in range(1, len(BIG) + 1):
        assert tree_hash(size, BIG_READ) == BIG_ROOTS[size]
        for index in range(size):
            proof = inclusion_proof(index, size, BIG_READ)
            assert proof == merkle.path(index, BIG[:size]), (index, size)
            verify_inclusion(leaf_hash(BIG[index]), index, size, proof, BIG_ROOTS[size])


def test_every_consistency_proof_up_to_64() -> None:
    for size2 in range(0, len(BIG) + 1):
        for size1 in range(0, size2 + 1):
            proof = consistency_proof(size1, size2, BIG_READ)
            assert proof == merkle.proof(size1, BIG[:size2]), (size1, size2)
            verify_consistency(size1, size2, proof, BIG_ROOTS[size1], BIG_ROOTS[size2])
            if 0 < size1 < size2:
                with pytest.raises(ProofError):
                    verify_consistency(size1, size2, proof, BIG_ROOTS[size1 - 1], BIG_ROOTS[size2])


# -- node reads are O(log n), in one batch ----------------------------------------------------


class CountingStore:
    """A fake store of any size: node (level, index) hashes to SHA-256 of its key."""

    def __init__(self) -> None:
        self.calls: list[list[NodeKey]] = []

    def __call__(self, keys: list[NodeKey]) -> dict[NodeKey, bytes]:
        self.calls.append(list(keys))
        assert len(set(keys)) == len(keys), "duplicate keys requested"
        return {k: hashlib.sha256(repr(k).encode()).digest() for k in keys}


def sample_sizes() -> list[int]:
    sizes = set(range(1, 130))
    for b in range(1, 21):
        sizes |= {2**b - 1, 2**b, 2**b + 1, 3 * 2 ** (b - 1) + 1}
    sizes |= {1_000_000, 999_999, 2**20 - 12345}
    return sorted(s for s in sizes if s <= 2**20)


def bound(n: int) -> int:
    """At most ceil(log2 n)^2 keys: O(log^2 n), never O(n) (at least 1 for n = 2)."""
    return max(1, math.ceil(math.log2(n))) ** 2


def test_reads_are_logarithmic_and_batched() -> None:
    worst = 0.0
    for n in sample_sizes():
        store = CountingStore()
        tree_hash(n, store)
        assert len(store.calls) == 1
        assert store.calls[0] == merkle.needed_for_root(n)
        assert len(store.calls[0]) == bin(n).count("1")
        for index in sorted({0, 1, n // 3, n // 2, n - 2, n - 1} & set(range(n))):
            store = CountingStore()
            proof = inclusion_proof(index, n, store)
            assert len(store.calls) <= 1
            keys = store.calls[0] if store.calls else []
            assert keys == merkle.needed_for_inclusion(index, n)
            assert len(keys) <= bound(n), (index, n, len(keys))
            assert len(proof) <= max(1, math.ceil(math.log2(n)))
            worst = max(worst, len(keys) / max(1, math.log2(n)))
        for m in sorted({1, 2, n // 3, n // 2, n - 1, n} & set(range(1, n + 1))):
            store = CountingStore()
            consistency_proof(m, n, store)
            keys = store.calls[0] if store.calls else []
            assert len(store.calls) <= 1
            assert keys == merkle.needed_for_consistency(m, n)
            assert len(keys) <= bound(n), (m, n, len(keys))
            worst = max(worst, len(keys) / max(1, math.log2(n)))
    # in fact linear in log n: at most about 2 log2(n) nodes
    assert worst <= 3.0


def test_frontier_load_reads_one_node_per_set_bit() -> None:
    reads: list[NodeKey] = []

    def read(key: NodeKey) -> bytes:
        reads.append(key)
        return hashlib.sha256(repr(key).encode()).digest()

    frontier = Frontier.load(1_000_000, read)
    assert len(reads) == bin(1_000_000).count("1")
    assert frontier.size == 1_000_000
    created = frontier.append(leaf_hash(b"x"))
    assert created[0][0] == (0, 1_000_000)
    assert len(created) == 1 + (1_000_000 ^ 1_000_001).bit_length() - 1


def test_audit_modules_do_not_import_ledger() -> None:
    code = (
        "import sys, audit.merkle, audit.note; "
        "bad = sorted(m for m in sys.modules if m == 'ledger' or m.startswith('ledger.')); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


def test_worked_example_in_the_docs_is_right() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "verification.md").read_text("utf-8")
    store = build_store(LEAVES[:3])
    root = tree_hash(3, reader(store))
    values = [
        *(leaf_hash(leaf).hex() for leaf in LEAVES[:3]),
        store[(1, 0)].hex(),
        root.hex(),
        *hexes(inclusion_proof(2, 3, reader(store))),
        *hexes(consistency_proof(2, 3, reader(store))),
        base64.b64encode(root).decode(),
    ]
    for value in values:
        assert value in doc
    assert root == ROOTS[3]
