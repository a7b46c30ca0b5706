"""Deterministic mutations of seed files: the damage real files suffer, and the damage crafted files carry.

A case is fully determined by ``(seed, index)``: :func:`make_case` draws from a generator seeded with both,
so a failing case can be rebuilt from its number alone, without keeping the file.

Mutations of one file's bytes: bit and byte flips, truncation (at any byte, or at a word boundary, which a
crash between flushes leaves), header edits (RAW ``% key value`` lines; HDF5 superblock and object-header
bytes), zeroed blocks (what a lost disk block reads as), duplicated blocks (a write repeated at the wrong
offset), and — for RAW — injected time words (TIME_HIGH jumps and wraps that stretch the time span without
adding events). Offsets are drawn half uniformly, half from the first and last 8 KiB, where headers,
superblocks, B-trees and heaps live: payload damage alone would mostly test the decoders' word loops.

Recording folders lose, empty, cut or corrupt one or two parts, or get a JSON document edited to hold the
wrong types.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.fuzz.seeds import Seed

BYTE_MUTATIONS = ("flip", "truncate", "header", "zero", "duplicate", "time")
_EDGE = 8192
#: Recording parts and what may happen to each.
RECORDING_PARTS = ("events.raw", "frames.h5", "sync.h5", "metadata.json", "run.jsonl")
PART_DAMAGE = ("delete", "empty", "truncate", "bytes", "json")


@dataclass(frozen=True)
class Case:
    """One fuzz input: which seed it came from, where it is, and what was done to it."""

    index: int
    seed: Seed
    path: Path
    mutations: tuple[str, ...]

    @property
    def is_recording(self) -> bool:
        return self.seed.is_recording


def _offset(rng: np.random.Generator, size: int) -> int:
    """A byte offset, half the time near either end of the file (see the module notes)."""
    if size <= 1:
        return 0
    r = rng.random()
    if r < 0.5 or size <= 2 * _EDGE:
        return int(rng.integers(0, size))
    if r < 0.75:
        return int(rng.integers(0, _EDGE))
    return int(rng.integers(size - _EDGE, size))


def _word_bytes(kind: str) -> int:
    return {"evt3": 2, "evt2": 4}.get(kind, 8 if kind.startswith("evt21") else 1)


def _raw_payload_offset(data: bytes) -> int:
    """Where a RAW header ends (after ``% end``, or at the first line not starting with ``%``)."""
    end = data.find(b"% end\n")
    if end >= 0:
        return end + len(b"% end\n")
    pos = 0
    while data.startswith(b"%", pos):
        nl = data.find(b"\n", pos)
        if nl < 0:
            return len(data)
        pos = nl + 1
    return pos


_HEADER_VALUES = [b"EVT3", b"EVT2", b"EVT21", b"EVT4", b"0x0", b"99999x99999", b"2048x2048", b"-5x3", b"4.2",
                  b"", b"\xff\xfe", b"65535", b"EVT3;height=0;width=0", b"EVT21;endianness=big",
                  b"EVT2;height=720;width=1280", b"1280x720", b"x", b"3.0", b"2.1"]


def _edit_raw_header(data: bytearray, rng: np.random.Generator) -> str:
    end = _raw_payload_offset(bytes(data))
    lines = bytes(data[:end]).split(b"\n")
    keyed = [i for i, line in enumerate(lines) if line.startswith(b"% ") and line != b"% end"]
    choice = int(rng.integers(0, 4))
    if choice == 0 and keyed:  # replace a value
        i = keyed[int(rng.integers(0, len(keyed)))]
        key = lines[i].split(b" ")[1] if len(lines[i].split(b" ")) > 1 else b"format"
        lines[i] = b"% " + key + b" " + _HEADER_VALUES[int(rng.integers(0, len(_HEADER_VALUES)))]
        what = f"header value of {key.decode('ascii', 'replace')}"
    elif choice == 1 and keyed:  # drop a line
        i = keyed[int(rng.integers(0, len(keyed)))]
        what = f"header line dropped: {lines[i][:24].decode('ascii', 'replace')}"
        del lines[i]
    elif choice == 2:  # drop the end marker: the payload's first bytes are read as header
        lines = [line for line in lines if line != b"% end"]
        what = "header end marker dropped"
    else:  # add a key that changes the decoding
        key = [b"format", b"geometry", b"evt", b"system_ID", b"endianness"][int(rng.integers(0, 5))]
        value = _HEADER_VALUES[int(rng.integers(0, len(_HEADER_VALUES)))]
        lines.insert(0, b"% " + key + b" " + value)
        what = f"header line added: {key.decode()}"
    data[:end] = b"\n".join(lines)
    return what


def _time_words(data: bytearray, kind: str, rng: np.random.Generator) -> str:
    """Overwrite aligned payload words with time words: jumps forward, steps back, and wraps."""
    start = _raw_payload_offset(bytes(data))
    wb = _word_bytes(kind)
    n_words = (len(data) - start) // wb
    if n_words < 2:
        return "time words: payload too short"
    count = int(rng.integers(1, 65))
    for _ in range(count):
        at = start + wb * int(rng.integers(0, n_words - 1))
        if kind == "evt3":  # EVT3 TIME_HIGH 0x8, 12-bit payload
            word = (0x8 << 12) | int(rng.integers(0, 1 << 12))
            data[at:at + 2] = word.to_bytes(2, "little")
        else:  # EVT 2.x TIME_HIGH 0x8, 28-bit payload; EVT 2.1 carries it in the EVT2-shaped half
            value = int(rng.choice([0, (1 << 28) - 1, int(rng.integers(0, 1 << 28))]))
            word = (0x8 << 28) | value
            if kind == "evt2":
                data[at:at + 4] = word.to_bytes(4, "little")
            elif kind == "evt21-little":
                data[at:at + 8] = (word << 32).to_bytes(8, "little")
            else:
                data[at:at + 8] = word.to_bytes(4, "little") + bytes(4)
    return f"time words x{count}"


def mutate_bytes(data: bytes, kind: str, rng: np.random.Generator, mutation: str) -> tuple[bytes, str]:
    """Apply one named mutation (one of :data:`BYTE_MUTATIONS`) to a file's bytes; returns them and a label."""
    buf = bytearray(data)
    size = len(buf)
    if mutation == "flip":
        n = int(rng.integers(1, 9))
        for _ in range(n):
            at = _offset(rng, size)
            if at < size:
                buf[at] ^= 1 << int(rng.integers(0, 8)) if rng.random() < 0.5 else int(rng.integers(1, 256))
        return bytes(buf), f"flip x{n}"
    if mutation == "truncate":
        cut = int(rng.integers(0, max(size, 1)))
        if rng.random() < 0.3:  # at a word boundary, as a crash between flushes leaves a RAW file
            wb = _word_bytes(kind)
            start = _raw_payload_offset(data) if kind.startswith("evt") else 0
            cut = start + (max(cut - start, 0) // wb) * wb
        return bytes(buf[:cut]), f"truncate at {cut}/{size}"
    if mutation == "header":
        if kind.startswith("evt"):
            label = _edit_raw_header(buf, rng)
            return bytes(buf), label
        at = int(rng.integers(0, min(size, 4096))) if size else 0
        run = int(rng.integers(1, 17))
        fill = rng.choice([0x00, 0xFF, -1])
        chunk = rng.integers(0, 256, run, dtype=np.uint8).tobytes() if fill < 0 else bytes([int(fill)]) * run
        buf[at:at + run] = chunk[: max(0, min(run, size - at))]
        return bytes(buf[:size]), f"header bytes {at}+{run}"
    if mutation == "zero":
        at = _offset(rng, size)
        run = int(rng.choice([1, 8, 64, 512, 4096]))
        buf[at:at + run] = bytes(min(run, size - at))
        return bytes(buf), f"zero {at}+{run}"
    if mutation == "duplicate":
        if size < 2:
            return bytes(buf), "duplicate: too short"
        run = int(rng.choice([8, 64, 512, 4096]))
        src = _offset(rng, size)
        block = bytes(buf[src:src + run])
        dst = _offset(rng, size)
        if rng.random() < 0.5:
            buf[dst:dst] = block  # inserted: everything after it shifts
            return bytes(buf), f"insert {src}+{len(block)} at {dst}"
        buf[dst:dst + len(block)] = block
        return bytes(buf[:max(size, dst + len(block))]), f"copy {src}+{len(block)} over {dst}"
    if mutation == "time":
        if not kind.startswith("evt"):
            return mutate_bytes(data, kind, rng, "flip")
        label = _time_words(buf, kind, rng)
        return bytes(buf), label
    raise ValueError(f"unknown mutation {mutation!r}")


def mutate_file(path: Path, kind: str, rng: np.random.Generator) -> list[str]:
    """One to three byte mutations of the file at ``path``, in place; returns their labels."""
    data = path.read_bytes()
    labels = []
    for _ in range(int(rng.choice([1, 1, 2, 3]))):
        mutation = BYTE_MUTATIONS[int(rng.integers(0, len(BYTE_MUTATIONS)))]
        data, label = mutate_bytes(data, kind, rng, mutation)
        labels.append(label)
    path.write_bytes(data)
    return labels


_JSON_JUNK = [None, "x", -1, 1e308, [], {}, [1], {"waveform": 3}, True, "", [-5, "a"], 0]


def _edit_json(path: Path, rng: np.random.Generator) -> str:
    """Give one key (at the top level or one level down) a value of the wrong type or range."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8").splitlines()[0] if path.suffix == ".jsonl"
                         else path.read_text(encoding="utf-8"))
    except (ValueError, IndexError):
        return "json edit skipped (unreadable)"
    if not isinstance(doc, dict) or not doc:
        return "json edit skipped (not an object)"
    keys = sorted(doc)
    key = keys[int(rng.integers(0, len(keys)))]
    target, where = doc, key
    if isinstance(doc[key], dict) and doc[key] and rng.random() < 0.6:
        target = doc[key]
        sub = sorted(target)[int(rng.integers(0, len(target)))]
        key, where = sub, f"{key}.{sub}"
    target[key] = _JSON_JUNK[int(rng.integers(0, len(_JSON_JUNK)))]
    text = json.dumps(doc)
    if path.suffix == ".jsonl":
        rest = path.read_text(encoding="utf-8").splitlines()[1:]
        text = "\n".join([text, *rest]) + "\n"
    path.write_text(text, encoding="utf-8")
    return f"json {where}={target[key]!r}"


def damage_part(folder: Path, part: str, rng: np.random.Generator) -> str:
    """Do one of :data:`PART_DAMAGE` to one part of a recording folder; returns a label."""
    path = folder / part
    damage = PART_DAMAGE[int(rng.integers(0, len(PART_DAMAGE)))]
    if damage == "json" and not part.endswith((".json", ".jsonl")):
        damage = "bytes"
    if damage == "delete":
        path.unlink(missing_ok=True)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(rng.integers(0, max(len(data), 1)))])
    elif damage == "json":
        return f"{part}: {_edit_json(path, rng)}"
    else:
        kind = "evt3" if part.endswith(".raw") else "hdf5"
        return f"{part}: " + ", ".join(mutate_file(path, kind, rng))
    return f"{part}: {damage}"


def make_case(seeds: list[Seed], run_seed: int, index: int, folder: Path) -> Case:
    """Case ``index`` of run ``run_seed``: a mutated copy of one seed, written under ``folder``."""
    rng = np.random.default_rng([run_seed, index])
    seed = seeds[index % len(seeds)]
    dst = folder / f"case{index:06d}_{seed.path.name}"
    if seed.is_recording:
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(seed.path, dst)
        parts = rng.choice(RECORDING_PARTS, size=int(rng.choice([1, 1, 2])), replace=False)
        labels = tuple(damage_part(dst, str(p), rng) for p in parts)
    else:
        shutil.copyfile(seed.path, dst)
        labels = tuple(mutate_file(dst, seed.kind, rng))
    return Case(index, seed, dst, labels)
