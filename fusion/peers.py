"""External focus-stacking tools run on the same stack, for honest comparisons (fusion-notes §6.2–6.3).

Each peer is an executable on PATH; absent tools are reported as unavailable, never faked. Frames are handed
over as lossless TIFF/PNG files in a temporary folder (16-bit stays 16-bit) and the tool's own wall time is
measured around the subprocess alone, so our file writing does not count against it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture.focal_stack import FocalStack
from capture.stack_folders import read_image, write_image

#: The focus-stacking preset for enfuse (contrast only, hard mask), and its LoG variant that reduces halos.
_ENFUSE_PRESET = ["--exposure-weight=0", "--saturation-weight=0", "--contrast-weight=1", "--hard-mask"]
PEERS: dict[str, tuple[str, list[str]]] = {
    "enfuse": ("enfuse", _ENFUSE_PRESET),
    "enfuse-log": ("enfuse", [*_ENFUSE_PRESET, "--contrast-edge-scale=0.3"]),
    "focus-stack": ("focus-stack", ["--threads=2", "--align-keep-size", "--no-opencl"]),
}


class PeerError(RuntimeError):
    """An external tool failed; the message carries its command and the end of its output."""


@dataclass(frozen=True)
class PeerResult:
    name: str
    image: np.ndarray        # like one input frame
    time_s: float            # the tool's wall time (subprocess only)
    command: list[str]


def available_peers() -> list[str]:
    """Peers whose executable is on PATH."""
    return [name for name, (exe, _) in PEERS.items() if shutil.which(exe)]


def _frames_to_files(stack: FocalStack, folder: Path) -> list[Path]:
    paths = []
    frames = stack.frames
    if frames.dtype == np.float32:
        frames = (np.clip(frames, 0, 1) * 65535 + 0.5).astype(np.uint16)
    for k in range(stack.n_planes):
        paths.append(write_image(folder / f"plane_{k:04d}.tif", frames[k]))
    return paths


def run_peer(name: str, stack: FocalStack, timeout_s: float = 600.0) -> PeerResult:
    """Fuse ``stack`` with the named external tool (see :data:`PEERS`)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    exe, args = PEERS[name]
    path = shutil.which(exe)
    if path is None:
        raise PeerError(f"{exe} is not on PATH (install it, e.g. apt-get install enfuse)")
    with tempfile.TemporaryDirectory(prefix=f"focalrig-{name}-") as tmp:
        folder = Path(tmp)
        inputs = _frames_to_files(stack, folder)
        out = folder / "fused.tif"
        cmd = [path, *args, f"--output={out}", *map(str, inputs)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=folder)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0 or not out.is_file():
            tail = (proc.stderr or proc.stdout).strip()[-400:]
            raise PeerError(f"{' '.join(cmd[:len(args) + 2])} … failed (exit {proc.returncode}): {tail}")
        image = read_image(out)
    if image.ndim == 3 and not stack.is_color:
        image = image[..., 0]
    image = _convert_depth(image, stack.frames.dtype)
    return PeerResult(name, image, elapsed, cmd)


def _convert_depth(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The tool's output in the stack's dtype (tools may widen 8-bit to 16-bit; float stacks went out as 16-bit)."""
    if dtype == np.float32:
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
    if image.dtype == np.uint16 and dtype == np.uint8:
        return (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if image.dtype == np.uint8 and dtype == np.uint16:
        return image.astype(np.uint16) * 257
    return image
