#!/usr/bin/env python3
"""Writes the small checkpoint fixtures that Tests/WanModelsTests read, and expected.json with every
tensor's dtype, shape and values (the tests compare the Swift readers against it exactly).

Needs torch (for real torch.save output and bf16/fp8 dtypes) and safetensors:
    python3 -m venv /opt/venv-torch && /opt/venv-torch/bin/pip install torch safetensors numpy
    /opt/venv-torch/bin/python Tests/WanModelsTests/Fixtures/generate_checkpoints.py

Files (all tiny):
  basic.safetensors           every safetensors dtype, a scalar, an empty tensor, __metadata__
  shard-0000{1,2}-of-00002.safetensors + sharded.safetensors.index.json
  state.pth                   torch.save of an OrderedDict: f32/f16/bf16/f64/i64/fp8/bool tensors, a
                              transposed (strided) view and a sliced view sharing one storage, an nn.Parameter
  nested.pth                  torch.save({"state_dict": {"encoder": {...}, ...}, "epoch": 3})
  zip64.pth                   state.pth's records re-packed with ZIP64 extra fields on every entry
  deflated.pth                state.pth's records re-packed with ZIP_DEFLATED (must be refused)
  evil.pth                    torch layout whose data.pkl calls os.system (must be refused, never run)
  legacy.pth                  torch.save(..., _use_new_zipfile_serialization=False) (must be refused)
"""
import collections
import json
import os
import struct
import zipfile
import zlib

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def values(n, seed):
    """Deterministic values exactly representable in bf16 and f16: k/16 for k in -50..50."""
    return [((i * 37 + seed * 11) % 101 - 50) / 16 for i in range(n)]


def fp8_values(n, seed):
    """Values exact in e4m3fn and e5m2: multiples of 0.5 in [-2, 2]."""
    return [((i + seed) % 9 - 4) * 0.5 for i in range(n)]


def make(shape, dtype, seed):
    n = 1
    for d in shape:
        n *= d
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        return torch.tensor(fp8_values(n, seed), dtype=torch.float32).reshape(shape).to(dtype)
    if dtype == torch.bool:
        return torch.tensor([(i + seed) % 3 == 0 for i in range(n)], dtype=torch.bool).reshape(shape)
    if dtype in (torch.int64, torch.int32, torch.int16):
        return torch.tensor([(i * 1001 - 3000) * (seed + 1) for i in range(n)], dtype=dtype).reshape(shape)
    if dtype == torch.int8:
        return torch.tensor([(i * 7 + seed) % 256 - 128 for i in range(n)], dtype=dtype).reshape(shape)
    if dtype == torch.uint8:
        return torch.tensor([(i * 7 + seed) % 256 for i in range(n)], dtype=dtype).reshape(shape)
    return torch.tensor(values(n, seed), dtype=torch.float64).reshape(shape).to(dtype)


DTYPE_NAMES = {
    torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.float8_e4m3fn: "f8e4m3fn", torch.float8_e5m2: "f8e5m2", torch.int64: "i64", torch.int32: "i32",
    torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8", torch.bool: "bool",
}


def describe(tensors):
    out = {}
    for name, t in tensors.items():
        flat = t.detach().contiguous().reshape(-1)
        if t.dtype == torch.bool:
            vals = [1.0 if v else 0.0 for v in flat.tolist()]
        else:
            vals = [float(v) for v in flat.to(torch.float64).tolist()] if t.dtype.is_floating_point else [int(v) for v in flat.tolist()]
        out[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "values": vals}
    return out


def write_zip(path, records, zip64=False, deflate=False, align=64):
    """Writes records [(name, bytes)] as a ZIP. Stored entries are aligned to `align` bytes with a padding
    extra field, as torch.save does; zip64=True puts ZIP64 extra fields on every entry (sizes and offsets
    saturated in the classic fields) and writes ZIP64 end records."""
    if deflate:
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name, data in records:
                z.writestr(name, data)
        return
    out = bytearray()
    central = bytearray()
    for name, data in records:
        nb = name.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        extra = bytearray()
        if zip64:
            extra += struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = (-(offset + 30 + len(nb) + len(extra) + 4)) % align
        extra += struct.pack("<HH", 0x4246, pad) + b"Z" * pad
        size32 = 0xFFFFFFFF if zip64 else len(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if zip64 else 20, 0, 0, 0, 0x21, crc, size32, size32,
                           len(nb), len(extra))
        out += nb + extra
        assert len(out) % align == 0
        out += data
        cextra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset) if zip64 else b""
        off32 = 0xFFFFFFFF if zip64 else offset
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45 if zip64 else 20, 0, 0, 0, 0x21, crc,
                               size32, size32, len(nb), len(cextra), 0, 0, 0, 0, off32)
        central += nb + cextra
    cd_offset = len(out)
    out += central
    n = len(records)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), cd_offset, 0)
    with open(path, "wb") as f:
        f.write(out)
    # Python's own reader must agree.
    with zipfile.ZipFile(path) as z:
        for name, data in records:
            assert z.read(name) == data, name


def records_of(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def main():
    expected = {}

    # --- safetensors: every dtype ---
    basic = collections.OrderedDict()
    basic["f32"] = make([3, 5], torch.float32, 1)
    basic["f16"] = make([7], torch.float16, 2)
    basic["bf16"] = make([2, 3, 4], torch.bfloat16, 3)
    basic["f64"] = make([4], torch.float64, 4)
    basic["f8e4m3"] = make([2, 3], torch.float8_e4m3fn, 5)
    basic["f8e5m2"] = make([5], torch.float8_e5m2, 6)
    basic["i64"] = make([5], torch.int64, 7)
    basic["i32"] = make([3], torch.int32, 8)
    basic["i16"] = make([3], torch.int16, 0)
    basic["i8"] = make([4], torch.int8, 9)
    basic["u8"] = make([4], torch.uint8, 10)
    basic["mask"] = make([6], torch.bool, 11)
    basic["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    basic["empty"] = torch.zeros([0, 3], dtype=torch.float32)
    save_file(basic, os.path.join(HERE, "basic.safetensors"), metadata={"format": "pt", "note": "fixture"})
    expected["basic.safetensors"] = describe(basic)

    # --- sharded safetensors ---
    shard1 = {"blocks.0.weight": make([4, 3], torch.bfloat16, 12), "blocks.0.bias": make([4], torch.float32, 13)}
    shard2 = {"blocks.1.weight": make([4, 3], torch.bfloat16, 14), "head.weight": make([2, 4], torch.float16, 15)}
    names = ["shard-00001-of-00002.safetensors", "shard-00002-of-00002.safetensors"]
    save_file(shard1, os.path.join(HERE, names[0]))
    save_file(shard2, os.path.join(HERE, names[1]))
    weight_map = {k: names[0] for k in shard1}
    weight_map.update({k: names[1] for k in shard2})
    total = sum(t.numel() * t.element_size() for t in list(shard1.values()) + list(shard2.values()))
    with open(os.path.join(HERE, "sharded.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    expected["sharded.safetensors.index.json"] = describe({**shard1, **shard2})

    # --- torch.save: an OrderedDict state dict ---
    base = make([4, 6], torch.float32, 16)
    state = collections.OrderedDict()
    state["linear.weight"] = make([4, 3], torch.float32, 17)
    state["linear.bias"] = make([5], torch.float16, 18)
    state["norm.weight"] = make([3, 2], torch.bfloat16, 19)
    state["double"] = make([3], torch.float64, 20)
    state["steps"] = make([2], torch.int64, 21)
    state["fp8"] = make([2, 2], torch.float8_e4m3fn, 22)
    state["flags"] = make([3], torch.bool, 23)
    state["base"] = base
    state["base_t"] = base.t()            # strided view of the same storage
    state["base_rows"] = base[1:3]        # view with a storage offset
    state["param"] = torch.nn.Parameter(make([2, 2], torch.float32, 24), requires_grad=False)
    torch.save(state, os.path.join(HERE, "state.pth"))
    expected["state.pth"] = describe(state)

    # --- nested dict with a wrapper key ---
    nested = {
        "state_dict": {"encoder": {"w": make([2, 3], torch.float16, 25), "b": make([2], torch.float32, 26)},
                       "head.weight": make([3], torch.bfloat16, 27), "count": 7},
        "epoch": 3,
        "name": "fixture",
    }
    torch.save(nested, os.path.join(HERE, "nested.pth"))
    expected["nested.pth"] = describe({"encoder.w": nested["state_dict"]["encoder"]["w"],
                                       "encoder.b": nested["state_dict"]["encoder"]["b"],
                                       "head.weight": nested["state_dict"]["head.weight"]})

    # --- the same records in other zip containers ---
    recs = records_of(os.path.join(HERE, "state.pth"))
    write_zip(os.path.join(HERE, "zip64.pth"), recs, zip64=True)
    expected["zip64.pth"] = expected["state.pth"]
    write_zip(os.path.join(HERE, "deflated.pth"), recs, deflate=True)

    # --- a pickle that would run os.system('true') if a real unpickler loaded it ---
    evil_pkl = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    prefix = recs[0][0].split("/")[0]
    evil = [(f"{prefix}/data.pkl", evil_pkl)] + [r for r in recs if not r[0].endswith("data.pkl")]
    write_zip(os.path.join(HERE, "evil.pth"), evil)

    # --- the legacy (non-zip) torch format ---
    torch.save({"w": make([2], torch.float32, 28)}, os.path.join(HERE, "legacy.pth"),
               _use_new_zipfile_serialization=False)

    # Re-read everything through torch / safetensors to make sure the fixtures say what expected.json says.
    from safetensors.torch import load_file
    for name in ["basic.safetensors"]:
        got = describe(load_file(os.path.join(HERE, name)))
        assert got == expected[name], name
    for name in ["state.pth", "zip64.pth"]:
        got = describe(torch.load(os.path.join(HERE, name), weights_only=True))
        assert got == expected[name], name

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
    for name in sorted(os.listdir(HERE)):
        print(f"{os.path.getsize(os.path.join(HERE, name)):8d}  {name}")


if __name__ == "__main__":
    main()
