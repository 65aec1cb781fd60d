"""RFC 6962 / RFC 9162 Merkle tree math over persisted nodes, with no I/O.

Hashing (RFC 9162 section 2.1.1), with domain separation so that a leaf can
never be passed off as an interior node or the other way round::

    leaf_hash(d)    = SHA-256(0x00 || d)
    node_hash(l, r) = SHA-256(0x01 || l || r)
    EMPTY_ROOT      = SHA-256("")           (the root of the tree of size 0)

The Merkle Tree Hash MTH of n > 1 leaves splits them at k, the largest power
of two smaller than n: MTH(D[0:n]) = node_hash(MTH(D[0:k]), MTH(D[k:n])).

Stored-node model (as in golang.org/x/mod/sumdb/tlog): storage keeps the
hash of every *complete, aligned* subtree and nothing else. Node
``(level L, index i)`` covers the leaves ``[i * 2**L, (i + 1) * 2**L)``;
level 0 holds the leaf hashes. Invariants:

1. a node exists once all of its leaves exist, and never changes after;
2. node (L, i) for L > 0 is node_hash((L-1, 2i), (L-1, 2i+1));
3. appending leaf number ``size`` (0-based) creates (0, size) and then each
   parent for as long as the new node is a right child (``new_nodes``);
4. the hash of any range the RFC recursion meets, [lo, hi), is the fold of
   O(log n) stored nodes (split at the largest power of two, the left part
   is one aligned node, recurse on the right), so roots and proofs need
   O(log n) node reads, never O(n).

Every function that reads storage takes ``read_many(keys) -> {key: hash}``,
works out the whole set of keys it needs first, calls ``read_many`` at most
once (not at all when no key is needed) and then only computes.

Proofs are RFC 9162 section 2.1.3.1 (PATH) and 2.1.4.1 (PROOF/SUBPROOF);
verification is section 2.1.3.2 and 2.1.4.2, step by step. ``mth``,
``path``, ``subproof`` and ``proof`` are the RFC's O(n) definitions written
out literally, kept as references for tests.

This module must not import from ``ledger/``: it is shared with offline
verifiers and does no I/O at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeKey",
    "ProofError",
    "ReadMany",
    "ReadOne",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "mth",
    "needed_for_consistency",
    "needed_for_inclusion",
    "needed_for_root",
    "new_nodes",
    "new_nodes_for_hash",
    "node_hash",
    "path",
    "proof",
    "root_from_inclusion",
    "subproof",
    "tree_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]
"""(level, index): the complete subtree over leaves [index * 2**level, (index + 1) * 2**level)."""

ReadOne = Callable[[NodeKey], bytes]
ReadMany = Callable[[list[NodeKey]], dict[NodeKey, bytes]]
Range = tuple[int, int]


class ProofError(Exception):
    """A proof does not verify, or does not have the shape its sizes require."""


# -- hashing ------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(name: str, value: int, error: type[Exception] = ValueError) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise error(f"{name} must be a non-negative integer, got {value!r}")


# -- appending ----------------------------------------------------------------


def new_nodes(size: int, leaf: bytes, read: ReadOne) -> list[tuple[NodeKey, bytes]]:
    """The nodes completed by appending ``leaf`` (raw data) as leaf number ``size``."""
    return new_nodes_for_hash(size, leaf_hash(leaf), read)


def new_nodes_for_hash(size: int, leaf_hash: bytes, read: ReadOne) -> list[tuple[NodeKey, bytes]]:
    """Like ``new_nodes`` for a precomputed leaf hash.

    Returns (0, size) and then every parent completed by it, bottom up;
    ``read`` supplies the left siblings, which are already stored.
    """
    _check_size("size", size)
    _check_stored("leaf hash", leaf_hash)
    level, index, h = 0, size, leaf_hash
    out: list[tuple[NodeKey, bytes]] = [((0, size), leaf_hash)]
    while index & 1:
        h = node_hash(_checked_read(read, (level, index - 1)), h)
        level, index = level + 1, index >> 1
        out.append(((level, index), h))
    return out


class Frontier:
    """The right edge of a tree: its complete subtrees, largest first.

    ``append`` needs no storage read, so an appender that keeps a Frontier
    can append any number of leaves and store the nodes it returns.
    """

    __slots__ = ("_edge", "_size")

    def __init__(self, size: int, edge: Sequence[tuple[int, bytes]]) -> None:
        _check_size("size", size)
        levels = [level for level, _ in edge]
        expected = [b for b in range(size.bit_length() - 1, -1, -1) if size >> b & 1]
        if levels != expected:
            raise ValueError(f"frontier levels for size {size}: expected {expected}, got {levels}")
        for _, h in edge:
            _check_stored("frontier hash", h)
        self._size = size
        self._edge: list[tuple[int, bytes]] = list(edge)

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, [])

    @classmethod
    def load(cls, size: int, read: ReadOne) -> Frontier:
        """Reads the O(log n) stored nodes of the right edge of a tree of ``size`` leaves."""
        _check_size("size", size)
        keys = needed_for_root(size)
        return cls(size, [(level, _checked_read(read, (level, i))) for level, i in keys])

    @property
    def size(self) -> int:
        return self._size

    def hashes(self) -> list[tuple[NodeKey, bytes]]:
        """The stored nodes making up the right edge, largest first."""
        out: list[tuple[NodeKey, bytes]] = []
        start = 0
        for level, h in self._edge:
            out.append(((level, start >> level), h))
            start += 1 << level
        return out

    def append(self, leaf_hash: bytes) -> list[tuple[NodeKey, bytes]]:
        """Appends a leaf hash; returns the newly completed nodes, bottom up."""
        _check_stored("leaf hash", leaf_hash)
        index, level, h = self._size, 0, leaf_hash
        out: list[tuple[NodeKey, bytes]] = [((0, index), h)]
        while self._edge and self._edge[-1][0] == level:
            h = node_hash(self._edge.pop()[1], h)
            level += 1
            out.append(((level, index >> level), h))
        self._edge.append((level, h))
        self._size += 1
        return out

    def root(self) -> bytes:
        """The tree's root, EMPTY_ROOT for size 0."""
        if not self._edge:
            return EMPTY_ROOT
        h = self._edge[-1][1]
        for _, left in reversed(self._edge[:-1]):
            h = node_hash(left, h)
        return h


# -- ranges over stored nodes ---------------------------------------------------


def _range_keys(lo: int, hi: int) -> list[NodeKey]:
    """The stored nodes whose fold is MTH(D[lo:hi]), left to right.

    Valid for the ranges the RFC recursion produces: lo is a multiple of
    every power of two the split uses.
    """
    keys: list[NodeKey] = []
    while hi - lo > 0:
        n = hi - lo
        k = n if n & (n - 1) == 0 else _split(n)
        if lo % k:
            raise ValueError(f"range [{lo}, {hi}) is not made of aligned subtrees")
        keys.append((k.bit_length() - 1, lo // k))
        lo += k
    return keys


def _range_hash(lo: int, hi: int, nodes: dict[NodeKey, bytes]) -> bytes:
    keys = _range_keys(lo, hi)
    h = nodes[keys[-1]]
    for key in reversed(keys[:-1]):
        h = node_hash(nodes[key], h)
    return h


def _read_ranges(ranges: Sequence[Range], read_many: ReadMany) -> list[bytes]:
    """Reads every node the ranges need in one ``read_many`` call, then folds each."""
    keys = _distinct_keys(ranges)
    if not keys:
        return []
    got = read_many(list(keys))
    for key in keys:
        if key not in got:
            raise LookupError(f"storage did not return node {key}")
        _check_stored(f"stored node {key}", got[key])
    return [_range_hash(lo, hi, got) for lo, hi in ranges]


def _distinct_keys(ranges: Sequence[Range]) -> list[NodeKey]:
    keys: dict[NodeKey, None] = {}
    for lo, hi in ranges:
        keys.update(dict.fromkeys(_range_keys(lo, hi)))
    return list(keys)


def _checked_read(read: ReadOne, key: NodeKey) -> bytes:
    value = read(key)
    _check_stored(f"stored node {key}", value)
    return value


def _check_stored(what: str, value: bytes) -> None:
    """Like _check_hash for hashes from storage or an appender: ValueError, not ProofError."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ValueError(f"{what} has wrong length: expected {HASH_SIZE}, got {got}")


def _inclusion_ranges(index: int, size: int) -> list[Range]:
    """The ranges whose MTHs form PATH(index, D[0:size]), in proof order (bottom up)."""
    lo, hi = 0, size
    top_down: list[Range] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo += k
    return top_down[::-1]


def _consistency_ranges(size1: int, size2: int) -> list[Range]:
    """The ranges whose MTHs form PROOF(size1, D[0:size2]), in proof order."""
    if size1 == 0 or size1 == size2:
        return []
    lo, hi, m, complete = 0, size2, size1, True
    top_down: list[Range] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            top_down.append((lo + k, hi))
            hi = lo + k
        else:
            top_down.append((lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    head: list[Range] = [] if complete else [(lo, hi)]
    return head + top_down[::-1]


def _check_inclusion_args(index: int, size: int) -> None:
    _check_size("index", index)
    _check_size("size", size)
    if index >= size:
        raise ValueError(f"leaf index out of range: expected < {size}, got {index}")


def _check_consistency_args(size1: int, size2: int) -> None:
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise ValueError(f"size1 must not exceed size2: got size1={size1}, size2={size2}")


# -- roots and proofs from stored nodes -------------------------------------------


def needed_for_root(size: int) -> list[NodeKey]:
    """The stored nodes the root of a tree of ``size`` leaves is folded from."""
    _check_size("size", size)
    return _range_keys(0, size)


def needed_for_inclusion(index: int, size: int) -> list[NodeKey]:
    """The stored nodes ``inclusion_proof(index, size, ...)`` reads."""
    _check_inclusion_args(index, size)
    return _distinct_keys(_inclusion_ranges(index, size))


def needed_for_consistency(size1: int, size2: int) -> list[NodeKey]:
    """The stored nodes ``consistency_proof(size1, size2, ...)`` reads."""
    _check_consistency_args(size1, size2)
    return _distinct_keys(_consistency_ranges(size1, size2))


def tree_hash(size: int, read_many: ReadMany) -> bytes:
    """The root of the tree made of the first ``size`` leaves (EMPTY_ROOT for 0)."""
    _check_size("size", size)
    if size == 0:
        return EMPTY_ROOT
    return _read_ranges([(0, size)], read_many)[0]


def inclusion_proof(index: int, size: int, read_many: ReadMany) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 section 2.1.3.1, leaf level first."""
    _check_inclusion_args(index, size)
    return _read_ranges(_inclusion_ranges(index, size), read_many)


def consistency_proof(size1: int, size2: int, read_many: ReadMany) -> list[bytes]:
    """PROOF(size1, D[0:size2]) of RFC 9162 section 2.1.4.1 (empty if size1 is 0 or size2)."""
    _check_consistency_args(size1, size2)
    return _read_ranges(_consistency_ranges(size1, size2), read_many)


# -- verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ---------------------------


def _check_hash(what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{what} has wrong length: expected {HASH_SIZE}, got {got}")


def _check_proof(kind: str, proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(f"{kind} proof has wrong size: expected {expected}, got {len(proof)}")
    for i, h in enumerate(proof):
        _check_hash(f"{kind} proof hash {i}", h)


def _check_root(what: str, computed: bytes, expected: bytes) -> None:
    if computed != expected:
        raise ProofError(f"{what} mismatch: computed {computed.hex()} expected {expected.hex()}")


def _shift_until_odd(fn: int, sn: int) -> tuple[int, int]:
    """Right-shifts fn and sn equally until LSB(fn) is set or fn is 0."""
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof leads to (steps 1-4 of RFC 9162 section 2.1.3.2)."""
    _check_size("index", index, ProofError)
    _check_size("size", size, ProofError)
    if index >= size:
        raise ProofError(f"leaf index out of range: expected < {size}, got {index}")
    _check_hash("leaf hash", leaf_hash)
    _check_proof("inclusion", proof, len(_inclusion_ranges(index, size)))
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long for its tree size")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            fn, sn = _shift_until_odd(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"inclusion proof ends above the leaves: expected sn=0, got {sn}")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Raises ProofError unless ``proof`` proves leaf ``index`` is in the tree ``root``."""
    _check_hash("root", root)
    _check_root("root", root_from_inclusion(leaf_hash, index, size, proof), root)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raises ProofError unless the tree ``root2`` extends the tree ``root1``.

    Size 0 is consistent with everything (its root must be EMPTY_ROOT and the
    proof empty); equal sizes need an empty proof and equal roots; otherwise
    RFC 9162 section 2.1.4.2.
    """
    _check_size("size1", size1, ProofError)
    _check_size("size2", size2, ProofError)
    if size1 > size2:
        raise ProofError(f"size1 must not exceed size2: got size1={size1}, size2={size2}")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_proof("consistency", proof, len(_consistency_ranges(size1, size2)))
    if size1 == 0:
        _check_root("root1", root1, EMPTY_ROOT)
        return
    if size1 == size2:
        _check_root("root", root2, root1)
        return
    fr, sr = _consistency_roots(size1, size2, proof, root1)
    _check_root("root1", fr, root1)
    _check_root("root2", sr, root2)


def _consistency_roots(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes
) -> tuple[bytes, bytes]:
    """Steps 1-6 of RFC 9162 section 2.1.4.2, for 0 < size1 < size2."""
    hashes = list(proof)
    if not hashes:
        raise ProofError("consistency proof has wrong size: expected at least 1, got 0")
    if size1 & (size1 - 1) == 0:
        hashes.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long for its tree sizes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_until_odd(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"consistency proof ends above the leaves: expected sn=0, got {sn}")
    return fr, sr


# -- literal RFC definitions, O(n), for tests ----------------------------------------


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1 over raw leaf data."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = _split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    n = len(leaves)
    if not 0 <= m < n:
        raise ValueError(f"leaf index out of range: expected < {n}, got {m}")
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1 (empty for m == 0)."""
    if not 0 <= m <= len(leaves):
        raise ValueError(f"size1 out of range: expected <= {len(leaves)}, got {m}")
    return subproof(m, leaves, True) if m else []


def subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = _split(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]
