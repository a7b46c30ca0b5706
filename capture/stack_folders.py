"""Focal stacks as folders of images: the seed projects' layouts (EventStackMFF, StackMFF-V2), read and written.

The one place that knows these layouts, so ``focalrig predict`` and calibration's export agree on them:

- one stack: a folder of numbered images (``1.png, 2.png …``, any naturally sorted names; png/jpg/tif/bmp,
  8/16-bit, colour or grey), optional event slices in a second folder, matched by sorted order: EventStackMFF PNGs
  (red = positive, blue = negative, white = none, so each plane carries 0/1 per polarity) or ``.npy`` counts
  (2, H, W) per plane (index 0 = negative/OFF, 1 = positive/ON, as ``FocalStack.events``). Focal powers come from
  an optional ``focal_powers.json`` (a list, or ``{"focal_powers_dpt": [...]}``) or ``focal_powers.txt`` in the
  image folder; without one the planes are numbered 0..N−1 and ``meta["focal_powers"]`` says ``"indices"``;
- EventStackMFF dataset: ``<dataset>/image_stack/<scene>/k.png`` + ``<dataset>/event_stack/<scene>/k.png``;
- StackMFF-V2 dataset: ``<dataset>/dof_stack/<scene>/k.png``;
- ground truth next to either: ``<dataset>/AiF/<scene>.png|jpg`` (the seed evaluators' layout) and, written by
  focalrig, ``<dataset>/focal_index/<scene>.npy``;
- pair datasets (StackMFF-V2 ``predict_pair_datasets``): ``<dataset>/A/*``, ``<dataset>/B/*`` paired by sorted
  order, or one flat folder of ``name-A.jpg`` / ``name_B.jpg`` files paired by name.

Frames are returned in RGB order (OpenCV reads BGR; the swap happens here and nowhere else).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from capture.focal_stack import FocalStack

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
POWER_SIDECARS = ("focal_powers.json", "focal_powers.txt")
#: Stems that name a reference or result image sitting in a stack folder, never a plane of the stack.
REFERENCE_STEMS = frozenset({"expected", "reference", "aif", "all_in_focus", "allinfocus", "fused", "result"})


class StackFolderError(ValueError):
    """A folder does not hold a readable focal stack; the message names the path and what to fix."""


def natural_key(name: str) -> tuple:
    """Sort key that orders ``img2`` before ``img10`` (digit runs compare as numbers)."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t)


def list_images(folder: Path, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files of ``folder`` in natural order, without reference images (``expected.jpg`` …)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise StackFolderError(f"{folder}: not a folder")
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in tuple(suffixes)
             and p.stem.lower() not in REFERENCE_STEMS]
    return sorted(files, key=lambda p: natural_key(p.name))


def reference_image(folder: Path) -> Path | None:
    """A reference/result image kept inside a stack folder (e.g. ``expected.jpg``), if there is one."""
    for p in sorted(Path(folder).iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and p.stem.lower() in REFERENCE_STEMS:
            return p
    return None


def read_image(path: Path) -> np.ndarray:
    """One image as (H, W) grey or (H, W, 3) RGB, uint8 or uint16 as stored (alpha dropped)."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise StackFolderError(f"{path}: unreadable image (not a valid {path.suffix or 'image'} file)")
    if img.dtype not in (np.uint8, np.uint16):
        raise StackFolderError(f"{path}: {img.dtype} pixels; only 8- and 16-bit images are supported")
    if img.ndim == 3:
        if img.shape[2] == 1:
            return img[..., 0]
        return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
    return img


def write_image(path: Path, image: np.ndarray) -> Path:
    """Write an RGB or grey uint8/uint16 image (float in [0, 1] becomes 16-bit); parents are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.dtype == np.float32 or image.dtype == np.float64:
        image = (np.clip(image, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    if not cv2.imwrite(str(path), out):
        raise StackFolderError(f"{path}: could not write the image (check the folder and the extension)")
    return path


def write_images(items: list[tuple[Path, np.ndarray]]) -> list[Path]:
    """:func:`write_image` of every (path, image), on a thread per core (a fusion's seven output images were 50 ms
    of ``focalrig predict`` on one core)."""
    return _per_core(lambda item: write_image(*item), items, "write-image")


def _read_images(paths: list[Path]) -> list[np.ndarray]:
    """:func:`read_image` of every path, on a thread per core (a 16-plane 640x480 stack's decoding was a tenth of a
    second of ``focalrig predict`` on one core)."""
    return _per_core(read_image, paths, "read-image")


def _per_core(fn: Callable[[Any], Any], items: list, name: str) -> list:
    """``fn`` of every item, in order, on a thread per core: OpenCV's image codecs run without the GIL. A failure
    raises as it would one by one: the first in order."""
    workers = min(len(items), os.cpu_count() or 1)
    if workers < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        return list(pool.map(fn, items))


def _read_frames(paths: list[Path], where: Path) -> np.ndarray:
    if not paths:
        raise StackFolderError(f"{where}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    if len(paths) < 2:
        raise StackFolderError(f"{where}: only one image ({paths[0].name}); a focal stack needs at least 2")
    images = _read_images(paths)
    first = images[0]
    for p, img in zip(paths, images, strict=True):
        if img.shape[:2] != first.shape[:2]:
            raise StackFolderError(f"{p}: size {img.shape[1]}x{img.shape[0]} differs from {paths[0].name} "
                                   f"({first.shape[1]}x{first.shape[0]}); align or crop the stack first")
        if img.dtype != first.dtype:
            raise StackFolderError(f"{p}: {img.dtype} differs from {paths[0].name} ({first.dtype}); "
                                   "use one bit depth for the whole stack")
    if any(img.ndim == 3 for img in images):  # a stray grey plane in a colour stack: repeat it into RGB
        images = [img if img.ndim == 3 else np.repeat(img[..., None], 3, axis=2) for img in images]
    return np.stack(images)


def decode_event_png(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """EventStackMFF event PNG → (2, H, W) uint16 counts 0/1 (index 0 = negative/blue, 1 = positive/red)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise StackFolderError(f"{path}: unreadable event image")
    if img.ndim == 2 or img.shape[2] == 1:
        raise StackFolderError(f"{path}: grayscale event image; polarity is lost. Event slices must be colour PNGs "
                               "(red = positive, blue = negative, white = none) or .npy counts (2, H, W)")
    if img.shape[:2] != shape:
        raise StackFolderError(f"{path}: event slice is {img.shape[1]}x{img.shape[0]}, frames are "
                               f"{shape[1]}x{shape[0]}")
    scale = 255.0 if img.dtype == np.uint8 else 65535.0
    signed = (img[..., 2].astype(np.float32) - img[..., 0].astype(np.float32)) / scale  # R − B (BGR order)
    return np.stack([signed < -0.5, signed > 0.5]).astype(np.uint16)


def encode_event_png(counts: np.ndarray) -> np.ndarray:
    """(2, H, W) counts → EventStackMFF RGB uint8 slice: sign of the net count (lossy: magnitudes are dropped)."""
    net = counts[1].astype(np.int64) - counts[0].astype(np.int64)
    img = np.full((*net.shape, 3), 255, np.uint8)
    img[net > 0] = (255, 0, 0)
    img[net < 0] = (0, 0, 255)
    return img


def _read_events(folder: Path, n: int, shape: tuple[int, int]) -> np.ndarray:
    folder = Path(folder)
    npys = sorted(folder.glob("*.npy"), key=lambda p: natural_key(p.name)) if folder.is_dir() else []
    pngs = list_images(folder) if not npys else []
    paths = npys or pngs
    if not paths:
        raise StackFolderError(f"{folder}: no event slices (.png or .npy) in this folder")
    if len(paths) != n:
        raise StackFolderError(f"{folder}: {len(paths)} event slices for {n} images; give one slice per plane")
    if npys:
        slices = []
        for p in npys:
            try:
                a = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise StackFolderError(f"{p}: unreadable .npy ({exc})") from exc
            if a.shape != (2, *shape):
                raise StackFolderError(f"{p}: event counts must be (2, H, W) = {(2, *shape)}, got {a.shape}")
            slices.append(a)
        return np.stack(slices)
    return np.stack([decode_event_png(p, shape) for p in pngs])


def _read_powers(folder: Path, n: int) -> np.ndarray | None:
    for name in POWER_SIDECARS:
        p = Path(folder) / name
        if not p.is_file():
            continue
        try:
            if p.suffix == ".json":
                data = json.loads(p.read_text())
                values = data["focal_powers_dpt"] if isinstance(data, dict) else data
            else:
                values = p.read_text().split()
            powers = np.asarray(values, dtype=np.float64)
        except (ValueError, KeyError, TypeError) as exc:
            raise StackFolderError(f"{p}: cannot read focal powers ({exc}); expected a list of numbers") from exc
        if powers.shape != (n,):
            raise StackFolderError(f"{p}: {powers.size} focal powers for {n} images")
        return powers
    return None


def read_stack_folder(input_dir: str | Path, event_dir: str | Path | None = None, *,
                      name: str | None = None) -> FocalStack:
    """A folder of numbered images (+ optional event slices and focal-power sidecar) as a :class:`FocalStack`.

    Planes must be ordered by focal power; a sidecar listing strictly descending powers reverses the planes (and
    events) so the stack is ascending, and ``meta["reversed"]`` records it.
    """
    folder = Path(input_dir)
    paths = list_images(folder)
    frames = _read_frames(paths, folder)
    n, shape = frames.shape[0], frames.shape[1:3]
    events = _read_events(Path(event_dir), n, shape) if event_dir is not None else None
    powers = _read_powers(folder, n)
    meta: dict = {"source": str(folder), "files": [p.name for p in paths]}
    if event_dir is not None:
        meta["event_source"] = str(event_dir)
    if powers is None:
        powers = np.arange(n, dtype=np.float64)
        meta["focal_powers"] = "indices"
    elif n > 1 and np.all(np.diff(powers) < 0):
        frames, powers = frames[::-1].copy(), powers[::-1].copy()
        events = None if events is None else events[::-1].copy()
        meta["reversed"] = True
    ref = reference_image(folder)
    if ref is not None:
        meta["reference"] = str(ref)
    return FocalStack(frames, powers, events, meta=meta, name=name or folder.name)


def _write_planes(folder: Path, stack: FocalStack) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(stack.n_planes):
        write_image(folder / f"{k + 1}.png", stack.frames[k])
    if stack.meta.get("focal_powers") != "indices":
        (folder / POWER_SIDECARS[0]).write_text(json.dumps({"focal_powers_dpt": stack.focal_powers_dpt.tolist()}))


def _write_ground_truth(root: Path, scene: str, stack: FocalStack) -> None:
    if "all_in_focus" in stack.ground_truth:
        write_image(root / "AiF" / f"{scene}.png", np.asarray(stack.ground_truth["all_in_focus"]))
    if "focal_index" in stack.ground_truth:
        (root / "focal_index").mkdir(parents=True, exist_ok=True)
        np.save(root / "focal_index" / f"{scene}.npy", np.asarray(stack.ground_truth["focal_index"], np.float32))


def write_eventstackmff(stack: FocalStack, root: str | Path, scene: str | None = None) -> Path:
    """EventStackMFF layout under ``root`` (image_stack/, event_stack/ when the stack has events, AiF/)."""
    root, scene = Path(root), scene or stack.name or "scene"
    _write_planes(root / "image_stack" / scene, stack)
    if stack.events is not None:
        for k in range(stack.n_planes):
            write_image(root / "event_stack" / scene / f"{k + 1}.png", encode_event_png(stack.events[k]))
    _write_ground_truth(root, scene, stack)
    return root


def write_stackmff(stack: FocalStack, root: str | Path, scene: str | None = None) -> Path:
    """StackMFF-V2 layout under ``root`` (dof_stack/<scene>/k.png, AiF/)."""
    root, scene = Path(root), scene or stack.name or "scene"
    _write_planes(root / "dof_stack" / scene, stack)
    _write_ground_truth(root, scene, stack)
    return root


@dataclass(frozen=True)
class StackEntry:
    """One stack of a dataset: where its planes, events and ground truth are."""

    dataset: str
    scene: str
    image_dir: Path
    event_dir: Path | None = None
    all_in_focus: Path | None = None
    focal_index: Path | None = None

    def load(self, with_events: bool = True) -> FocalStack:
        stack = read_stack_folder(self.image_dir, self.event_dir if with_events else None, name=self.scene)
        gt = {}
        if self.all_in_focus is not None:
            aif = read_image(self.all_in_focus)
            if aif.ndim == 2 and stack.is_color:
                aif = np.repeat(aif[..., None], 3, axis=2)
            gt["all_in_focus"] = aif
        if self.focal_index is not None:
            gt["focal_index"] = np.load(self.focal_index, allow_pickle=False)
        if not gt:
            return stack
        return FocalStack(stack.frames, stack.focal_powers_dpt, stack.events, gt, stack.meta, stack.name)


def _find_gt(folder: Path, scene: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{scene}{suffix}"
        if p.is_file():
            return p
    return None


def discover_datasets(test_root: str | Path, datasets: Iterable[str]) -> list[StackEntry]:
    """Every stack of the named datasets under ``test_root`` (EventStackMFF or StackMFF-V2 layout)."""
    entries: list[StackEntry] = []
    for name in datasets:
        base = Path(test_root) / name
        if (base / "image_stack").is_dir():
            stacks_dir, events_dir = base / "image_stack", base / "event_stack"
        elif (base / "dof_stack").is_dir():
            stacks_dir, events_dir = base / "dof_stack", None
        else:
            raise StackFolderError(f"{base}: neither image_stack/ (EventStackMFF) nor dof_stack/ (StackMFF-V2) "
                                   "found; pass the folder that contains them")
        scenes = sorted((d for d in stacks_dir.iterdir() if d.is_dir()), key=lambda p: natural_key(p.name))
        if not scenes:
            raise StackFolderError(f"{stacks_dir}: no scene folders")
        for d in scenes:
            ev = events_dir / d.name if events_dir is not None and (events_dir / d.name).is_dir() else None
            fi = base / "focal_index" / f"{d.name}.npy"
            entries.append(StackEntry(name, d.name, d, ev, _find_gt(base / "AiF", d.name),
                                      fi if fi.is_file() else None))
    return entries


_PAIR_SUFFIX = re.compile(r"^(?P<base>.*?)[-_ ]?(?P<side>[AaBb])$")


def discover_pairs(test_root: str | Path, datasets: Iterable[str]) -> list[tuple[str, str, Path, Path]]:
    """(dataset, pair name, A path, B path) for every pair: ``A/`` + ``B/`` folders, or flat ``x-A``/``x-B`` files."""
    out = []
    for name in datasets:
        base = Path(test_root) / name
        if (base / "A").is_dir() and (base / "B").is_dir():
            a, b = list_images(base / "A"), list_images(base / "B")
            if len(a) != len(b):
                raise StackFolderError(f"{base}: {len(a)} images in A/ but {len(b)} in B/")
            out += [(name, str(i + 1), pa, pb) for i, (pa, pb) in enumerate(zip(a, b, strict=True))]
            continue
        sides: dict[str, dict[str, Path]] = {}
        for p in list_images(base):
            m = _PAIR_SUFFIX.match(p.stem)
            if m:
                sides.setdefault(m["base"], {})[m["side"].upper()] = p
        pairs = [(name, k, v["A"], v["B"]) for k, v in sorted(sides.items(), key=lambda kv: natural_key(kv[0]))
                 if set(v) == {"A", "B"}]
        if not pairs:
            raise StackFolderError(f"{base}: no pairs (expected A/ and B/ folders, or files named like x-A.jpg "
                                   "and x-B.jpg)")
        out += pairs
    return out


def read_pair(a: Path, b: Path, name: str = "") -> FocalStack:
    """Two images as a 2-plane stack (planes numbered 0, 1: a pair has no focal powers)."""
    frames = _read_frames([Path(a), Path(b)], Path(a).parent)
    return FocalStack(frames, np.arange(2, dtype=np.float64), meta={"source": [str(a), str(b)],
                                                                    "focal_powers": "indices"}, name=name)
