"""Header-only GGUF reader: metadata, tensor infos and a vocabulary fingerprint, never tensor data.

Why not `gguf.GGUFReader`: it memory-maps the file and builds numpy views of every field and
tensor; on the lab's 2-core VMs that takes ~15 s for gemma-3-270m (262,144 tokens), and
`import gguf` alone pulls numpy (~250 ms). This parser walks the KV section with `struct`,
skips fixed-size arrays with a seek, reads the file with plain `read()` calls (so the bytes it
reads are countable in /proc/self/io) and stops after the tensor infos. It uses the gguf
package's own constants (value types, quantization block sizes, file-type names), loaded
without the package's numpy-importing `__init__`.

Vocabulary fingerprint: llama.cpp accepts a draft whose vocabulary differs in size by at most
128 tokens when token texts agree from id 5 up to the smaller size, so `vocab_tail_hashes` keeps
a short sha256 of tokens[5:m] (raw, length-prefixed, in order) for each m in the last 129 sizes,
and `vocab_hash` = sha256(raw tokens[0:5] + sha256(tokens[5:n])): every token string in order,
hashed in one pass over the 4 MB of a 262k-token vocabulary.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
import sys
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"
TOKENS_KEY = "tokenizer.ggml.tokens"
VOCAB_CHECK_START = 5  # llama.cpp SPEC_VOCAB_CHECK_START_TOKEN_ID
VOCAB_MAX_DIFF = 128  # llama.cpp SPEC_VOCAB_MAX_SIZE_DIFFERENCE
TAIL_HASH_CHARS = 16
SMALL_ARRAY = 64  # arrays up to this many items are kept as values; longer ones only counted
FIRST_READ = 64 * 1024

# GGUFValueType -> struct format (STRING=8 and ARRAY=9 are variable-sized)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRUCTS = {t: struct.Struct(f) for t, f in _SCALARS.items()}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STRING, _ARRAY = 8, 9


class GGUFError(Exception):
    """The file is not a readable GGUF; the message is the reason shown in the inventory."""


def constants() -> Any:
    """The gguf package's `constants` module, without running `gguf/__init__` (numpy, ~250 ms)."""
    mod = sys.modules.get("gguf.constants") or sys.modules.get("_epyc_gguf_constants")
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("gguf")
    if spec is None or not spec.submodule_search_locations:
        raise GGUFError("the gguf package is not installed (pip install gguf)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "constants.py")
    cspec = importlib.util.spec_from_file_location("_epyc_gguf_constants", path)
    assert cspec is not None and cspec.loader is not None
    mod = importlib.util.module_from_spec(cspec)
    sys.modules["_epyc_gguf_constants"] = mod
    cspec.loader.exec_module(mod)
    return mod


class _Stream:
    """Bytes [base, base+len(buf)) of the file in memory, read with plain read() calls in growing
    chunks; a fixed-size array reaching past the buffer is skipped with a seek, not read."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self.f, self.size = f, size
        self.buf = bytearray()
        self.base = 0  # file offset of buf[0]
        self.pos = 0  # read position inside buf
        self.nread = 0
        self.fast = True
        self.used_fast = False

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def ensure(self, n: int) -> None:
        """Make buf[pos:pos+n] available, or raise GGUFError if the file ends first."""
        short = self.pos + n - len(self.buf)
        if short <= 0:
            return
        if self.base + len(self.buf) + short > self.size:
            raise GGUFError(f"truncated: header needs byte {self.offset + n:,} but the file has {self.size:,}")
        want = max(short, len(self.buf) // 8, FIRST_READ)
        want = min(want, self.size - self.base - len(self.buf))
        data = self.f.read(want)
        self.nread += len(data)
        if len(data) < short:
            raise GGUFError(f"truncated: short read at byte {self.base + len(self.buf):,}")
        self.buf += data

    def take(self, st: struct.Struct) -> Any:
        self.ensure(st.size)
        v = st.unpack_from(self.buf, self.pos)[0]
        self.pos += st.size
        return v

    def string(self) -> str:
        n = self.take(_U64)
        self.ensure(n)
        s = bytes(self.buf[self.pos : self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return s

    def skip(self, n: int) -> None:
        if self.pos + n <= len(self.buf):
            self.pos += n
            return
        target = self.offset + n
        if target > self.size:
            raise GGUFError(f"truncated: header needs byte {target:,} but the file has {self.size:,}")
        self.f.seek(target)
        self.buf, self.base, self.pos = bytearray(), target, 0

    def walk_strings(self, count: int, marks: list[int] | None = None) -> None:
        """Advance over `count` length-prefixed strings, appending each one's buf offset to `marks`."""
        if self.fast and marks is None:
            self.used_fast |= count > 0
            return self._walk_low_byte(count)
        unpack = _U64.unpack_from
        done = 0
        while done < count:  # hot loop: a short buffer raises, then it grows and resumes
            buf, off, i = self.buf, self.pos, done
            try:
                if marks is None:
                    for i in range(done, count):  # noqa: B007 - `i` says where a short buffer stopped
                        off += 8 + unpack(buf, off)[0]
                else:
                    for i in range(done, count):  # noqa: B007
                        marks.append(off)
                        off += 8 + unpack(buf, off)[0]
                i = count
            except struct.error:
                if marks and marks[-1] == off:
                    marks.pop()
            self.pos, done = off, i
            if done < count:
                self.ensure(8)
        self.ensure(0)  # the last string's bytes

    def _walk_low_byte(self, count: int) -> None:
        """The fast walk: a length read as its low byte, eight strings per loop turn (~3x faster).

        Exact while every string is shorter than 256 bytes, as in real vocabularies. A longer
        one derails the walk, the rest of the header then fails to parse, and `read_header`
        parses again with full 8-byte lengths.
        """
        done = 0
        while done < count:
            buf, off = self.buf, self.pos
            groups = max(0, min(count - done, (len(buf) - off) // 263) // 8)  # 8 strings of <= 263 bytes fit
            for _ in range(groups):
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
                off += buf[off] + 8
            done += 8 * groups
            if not groups and done < count:  # near the buffer's end, or the last few strings
                if off >= len(buf):
                    self.ensure(8)
                    continue
                off += buf[off] + 8
                done += 1
            self.pos = off
        self.ensure(0)


def _value(s: _Stream, vtype: int) -> Any:
    if vtype == _STRING:
        return s.string()
    st = _STRUCTS.get(vtype)
    if st is None:
        raise GGUFError(f"corrupt: unknown value type {vtype} at byte {s.offset:,}")
    return s.take(st)


def _array(s: _Stream, key: str, out: dict[str, Any]) -> Any:
    """Read or skip an array; small ones come back as lists, long ones only as a count."""
    etype = s.take(_U32)
    count = s.take(_U64)
    if count > s.size:
        raise GGUFError(f"corrupt: array {key!r} claims {count:,} items")
    if key == TOKENS_KEY and etype == _STRING:
        _fingerprint(s, count, out)
        return None
    if count <= SMALL_ARRAY:
        return [_array(s, key, {}) if etype == _ARRAY else _value(s, etype) for _ in range(count)]
    if etype in _STRUCTS:
        s.skip(count * _STRUCTS[etype].size)
    elif etype == _STRING:
        s.walk_strings(count)
    elif etype == _ARRAY:
        for _ in range(count):
            _array(s, key, {})
    else:
        raise GGUFError(f"corrupt: unknown array type {etype} in {key!r}")
    out.setdefault("array_lengths", {})[key] = count
    return None


def _fingerprint(s: _Stream, count: int, out: dict[str, Any]) -> None:
    """Walk the token strings; hash all of them, and tokens[5:m] for each m in the last 129 sizes."""
    head = min(count, VOCAB_CHECK_START + 1)
    tail_start = max(head, count - VOCAB_MAX_DIFF - 1)
    tail_from = max(count - VOCAB_MAX_DIFF, VOCAB_CHECK_START)
    first = s.pos
    s.ensure(min(count * 16, s.size - s.offset))  # one read for most vocabularies (~16 bytes a token)
    marks: list[int] = []
    s.walk_strings(head, marks)
    s.walk_strings(tail_start - head)
    s.walk_strings(count - tail_start, marks)
    marks.append(s.pos)

    def start_of(t: int) -> int:
        return marks[t] if t < head else marks[head + t - tail_start]

    hashes = []
    h = hashlib.sha256()
    with memoryview(s.buf) as buf:  # released before the buffer may grow again
        start5 = start_of(min(count, VOCAB_CHECK_START))
        if count > VOCAB_CHECK_START:
            prev = start5
            for m in range(tail_from, count + 1):
                end = start_of(m)
                h.update(buf[prev:end])
                prev = end
                hashes.append(h.copy().hexdigest()[:TAIL_HASH_CHARS])
        out["vocab_hash"] = hashlib.sha256(bytes(buf[first:start5]) + h.digest()).hexdigest()
    out["vocab_size"] = count
    out["vocab_check_from"] = tail_from
    out["vocab_tail_hashes"] = "".join(hashes)


def read_header(path: str | os.PathLike[str], fast: bool = True) -> dict[str, Any]:
    """Parse a GGUF file's header. Raises GGUFError with a one-line reason for anything unreadable.

    Returns: version, kv (scalars and short arrays), array_lengths, tensor_count, param_count,
    tensor_types ({type name: count}), data_end (bytes the header says the file needs),
    header_bytes, bytes_read, and the vocabulary fingerprint when the file has tokens.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            stream = _Stream(f, size)  # type: ignore[arg-type]
            stream.fast = fast
            try:
                return _parse(stream)
            except GGUFError:
                if not stream.used_fast:
                    raise
        return read_header(path, fast=False)  # a string of 256+ bytes may have derailed the fast walk
    except OSError as e:
        raise GGUFError(f"unreadable: {e.strerror or e}") from None


def _parse(s: _Stream) -> dict[str, Any]:
    if s.size < 4:
        raise GGUFError(f"not a GGUF file: only {s.size} bytes")
    s.ensure(4)
    magic = bytes(s.buf[:4])
    if magic != GGUF_MAGIC:
        raise GGUFError(f"not a GGUF file: starts with {magic!r}, expected b'GGUF'")
    s.pos = 4
    version = s.take(_U32)
    if version not in (2, 3):
        what = "big-endian GGUF" if version & 0xFFFF == 0 else f"GGUF version {version}"
        raise GGUFError(f"unsupported: {what} (this reader handles little-endian v2/v3)")
    n_tensors = s.take(_U64)
    n_kv = s.take(_U64)
    if n_kv > 1_000_000 or n_tensors > 10_000_000:
        raise GGUFError(f"corrupt: implausible counts ({n_kv:,} keys, {n_tensors:,} tensors)")
    out: dict[str, Any] = {"version": version}
    kv: dict[str, Any] = {}
    for _ in range(n_kv):
        key = s.string()
        vtype = s.take(_U32)
        kv[key] = _array(s, key, out) if vtype == _ARRAY else _value(s, vtype)
    kv = {k: v for k, v in kv.items() if v is not None}
    out["kv"] = kv
    _tensor_infos(s, n_tensors, kv, out)
    out["header_bytes"] = s.offset
    out["bytes_read"] = s.nread
    return out


def _tensor_infos(s: _Stream, n_tensors: int, kv: dict[str, Any], out: dict[str, Any]) -> None:
    """Sum parameters, count tensor types, and find the byte the data section must reach."""
    c = constants()
    sizes = c.GGML_QUANT_SIZES
    names = {int(t): t.name for t in c.GGMLQuantizationType}
    params = 0
    data_need = 0
    types: dict[str, int] = {}
    for _ in range(n_tensors):
        name = s.string()
        n_dims = s.take(_U32)
        if n_dims > 8:
            raise GGUFError(f"corrupt: tensor {name!r} has {n_dims} dimensions")
        n = 1
        for _d in range(n_dims):
            n *= s.take(_U64)
        ttype = s.take(_U32)
        offset = s.take(_U64)
        if ttype not in names:
            raise GGUFError(f"corrupt: tensor {name!r} has unknown type {ttype}")
        block, type_size = sizes[c.GGMLQuantizationType(ttype)]
        params += n
        types[names[ttype]] = types.get(names[ttype], 0) + 1
        data_need = max(data_need, offset + n // block * type_size)
    align = kv.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise GGUFError(f"corrupt: general.alignment is {align!r}, expected a power of two")
    data_end = -(-s.offset // align) * align + data_need if n_tensors else s.offset
    out.update(tensor_count=n_tensors, param_count=params, tensor_types=types, data_end=data_end)
    if data_end > s.size:
        raise GGUFError(f"truncated: tensor data needs {data_end:,} bytes, the file has {s.size:,}")


def quantization_name(file_type: int | None, tensor_types: dict[str, int] | None = None) -> str | None:
    """`general.file_type` as llama.cpp names it (15 -> Q4_K_M); else the most common tensor type."""
    if file_type is not None:
        try:
            name = constants().LlamaFileType(file_type).name
        except ValueError:
            return f"unknown({file_type})"
        return name.removeprefix("MOSTLY_").removeprefix("ALL_")
    if tensor_types:
        quant = {k: v for k, v in tensor_types.items() if k not in ("F32",)} or tensor_types
        return max(quant, key=lambda k: quant[k])
    return None


def tail_hash(entry: dict[str, Any], m: int) -> str | None:
    """The fingerprint of tokens[5:m] for an inventory entry, if m is within its last 129 sizes."""
    start, hashes = entry.get("vocab_check_from"), entry.get("vocab_tail_hashes")
    if start is None or not hashes:
        return None
    i = m - start
    if i < 0 or (i + 1) * TAIL_HASH_CHARS > len(hashes):
        return None
    return str(hashes[i * TAIL_HASH_CHARS : (i + 1) * TAIL_HASH_CHARS])
