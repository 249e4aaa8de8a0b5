#!/usr/bin/env python3
"""Writes the hostile legacy torch files that nst-weights' reader must refuse
within a fixed memory and time (crates/nst-weights/tests/hostile_legacy.rs).

Each is small (at most 600 KB) but, read naively, makes the reader
build something enormous out of memoised values: pickle's BINGET pushes a
value again for 2 bytes, and a reader that copies what it gets back copies
it again and again. The pickles are assembled opcode by opcode (Python's
pickler would not write these shapes). Pure Python, deterministic.

Run from anywhere: `python3 tests/weights_fixtures/make_hostile.py`.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

MAGIC = 0x1950A86A20F9469CFC6C

# The opcodes used (Python's pickletools names).
PROTO, STOP, MARK, NONE, NEWFALSE, NEWTRUE = b"\x80\x02", b".", b"(", b"N", b"\x89", b"\x88"
TUPLE, TUPLE1, EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST = b"t", b"\x85", b")", b"}", b"]"
SETITEM, SETITEMS, APPEND, APPENDS = b"s", b"u", b"a", b"e"
BINPERSID, REDUCE, GLOBAL = b"Q", b"R", b"c"


def binint(n):
    return b"J" + struct.pack("<i", n)


def binint1(n):
    return b"K" + bytes([n])


def text(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def put(i):
    return b"q" + bytes([i])  # BINPUT


def get(i):
    return b"h" + bytes([i])  # BINGET


def pickle(body):
    return PROTO + body + STOP


def magic():
    return pickle(b"\x8a\x0a" + MAGIC.to_bytes(10, "little"))  # LONG1


def version():
    return pickle(b"M" + struct.pack("<H", 1001))  # BININT2


def sys_info():
    return pickle(EMPTY_DICT + text("little_endian") + NEWTRUE + SETITEM)


def keys(n, width=3):
    """`n` distinct ASCII keys of `width` characters."""
    alphabet = [chr(c) for c in range(0x21, 0x7F)]
    out = []
    for i in range(n):
        k = ""
        for _ in range(width):
            k = alphabet[i % len(alphabet)] + k
            i //= len(alphabet)
        out.append(k)
    return out


# Memo slots of the main pickle.
G_REBUILD, G_DICT, STORAGE, ONE, ONES, TENSOR = range(6)


def tensor(size, stride, first_of=None):
    """_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()),
    where `size` and `stride` are opcodes pushing tuples. The first tensor
    (`first_of` = its storage's element count) defines the globals and the
    uint8 storage `s` and memoises them; the others fetch them."""
    if first_of is None:
        rebuild, store, odict = get(G_REBUILD), get(STORAGE), get(G_DICT)
    else:
        rebuild = GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n" + put(G_REBUILD)
        store = (
            MARK + text("storage") + GLOBAL + b"torch\nByteStorage\n" + text("s") + text("cpu")
            + binint(first_of) + NONE + TUPLE + BINPERSID + put(STORAGE)
        )
        odict = GLOBAL + b"collections\nOrderedDict\n" + put(G_DICT)
    return (
        rebuild + MARK + store + binint1(0) + size + stride + NEWFALSE + odict + EMPTY_TUPLE
        + REDUCE + TUPLE + REDUCE
    )


def one_dim(n):
    """Opcodes pushing the tuple `(n,)`."""
    return binint(n) + TUPLE1


def header():
    return magic() + version() + sys_info()


def file(main, storage_bytes, keys_pickle=None):
    """A whole file: the three header pickles, `main`, the keys pickle
    (default: `['s']`), and storage `s`'s record holding `storage_bytes`."""
    if keys_pickle is None:
        keys_pickle = pickle(EMPTY_LIST + text("s") + APPEND)
    record = struct.pack("<q", len(storage_bytes)) + storage_bytes
    return header() + pickle(main) + keys_pickle + record


def memo_bomb():
    """The protocol-version pickle is a tuple of 64 copies of a tuple of 64
    copies … 14 deep (within the reader's nesting limit of 16): 64^14
    leaves in 1.8 KB. Printing it (`{:?}`) would take about 1e26 bytes."""
    body = MARK * 14 + NONE + TUPLE1 + put(0)
    for level in range(1, 15):
        body += get(level - 1) * 63 + TUPLE + put(level)
    return magic() + pickle(body)


def same_tensor_under(names, storage_len):
    """A main dict giving each of `names` the one memoised tensor spanning
    all of a `storage_len`-byte storage."""
    main = EMPTY_DICT + MARK + text(names[0])
    main += tensor(one_dim(storage_len), one_dim(1), first_of=storage_len) + put(TENSOR)
    for k in names[1:]:
        main += text(k) + get(TENSOR)
    return main + SETITEMS


def copy_bomb(entries=6000, storage_len=48 << 10):
    """`entries` names for the same tensor spanning a whole 48 KiB storage:
    copying each tensor's bytes would take 295 MB."""
    main = same_tensor_under(keys(entries), storage_len)
    return file(main, bytes(storage_len))


def duplicate_names(entries=60_000):
    """`entries` distinct names for one one-byte tensor, then the first name
    again: a pairwise duplicate check makes 1.8e9 comparisons."""
    names = keys(entries)
    return file(same_tensor_under(names + names[:1], 1), b"\x00")


def key_bomb(key_len=64 << 10, copies=8000):
    """The storage-keys pickle lists one memoised 64 KiB string 8000 times:
    copying each key would take 524 MB."""
    main = EMPTY_DICT + text("t") + tensor(one_dim(1), one_dim(1), first_of=1) + SETITEM
    keys_pickle = pickle(
        EMPTY_LIST + MARK + text("k" * key_len) + put(0) + get(0) * (copies - 1) + APPENDS
    )
    return file(main, b"\x00", keys_pickle)


def dims_bomb(dims=32 << 10, tensors=1024):
    """1024 tensors whose size and stride are one memoised tuple of 32768
    ones: each tensor's shape and stride would take 512 KiB."""
    ones = MARK + binint1(1) + put(ONE) + get(ONE) * (dims - 1) + TUPLE + put(ONES)
    main = EMPTY_DICT + MARK
    for i, k in enumerate(keys(tensors)):
        if i == 0:
            main += text(k) + tensor(ones, get(ONES), first_of=1)
        else:
            main += text(k) + tensor(get(ONES), get(ONES))
    return file(main + SETITEMS, b"\x00")


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print("wrote %-24s %7d bytes" % (name, len(data)))


def main():
    write("hostile_memo_bomb.bin", memo_bomb())
    write("hostile_copy_bomb.bin", copy_bomb())
    write("hostile_duplicate_names.bin", duplicate_names())
    write("hostile_key_bomb.bin", key_bomb())
    write("hostile_dims_bomb.bin", dims_bomb())


if __name__ == "__main__":
    main()
