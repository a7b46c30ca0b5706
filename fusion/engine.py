"""The single way into fusion: ``fuse(stack, method=..., device=...)`` → :class:`FusionResult`.

The GUI, the CLI and the evaluation harness all call :func:`fuse`; a method is one module that maps a
:class:`~capture.focal_stack.FocalStack` to a :class:`FusionResult` and registers itself by name
with :func:`register_method`. Methods are imported lazily on first use so that ``classical`` needs
no torch import and an optional method's dependencies are only needed when it is asked for.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from capture.focal_stack import FocalStack

Device = Literal["auto", "cpu", "cuda"]

#: Built-in methods and the module that registers each (imported on first use).
BUILTIN_METHODS: dict[str, str] = {"classical": "fusion.classical", "net": "fusion.net.method"}
#: The default method: the network where a CUDA device runs it (milliseconds per stack), the classical method on the
#: CPU, where it fuses a 320×240 sweep in ~20 ms against the network's 0.3–1 s for about the same quality on the
#: product path (README, Fusion), so live fusion keeps pace with the sweep. One default for the GUI and the CLI.
AUTO = "auto"


class FusionError(ValueError):
    """The stack or the settings cannot be fused as asked; the message says what to change."""


@dataclass(frozen=True)
class FusionResult:
    all_in_focus: np.ndarray        # like one input frame: (H, W) or (H, W, 3), same dtype as the input
    focal_index: np.ndarray         # float32 (H, W) in 0..N-1, sub-plane where the method can tell
    depth_dpt: np.ndarray           # float32 (H, W): focal power interpolated at focal_index
    confidence: np.ndarray          # float32 (H, W) in [0, 1]
    method: str
    device: str
    timings_s: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


FusionMethod = Callable[..., FusionResult]
_METHODS: dict[str, FusionMethod] = {}


def register_method(name: str) -> Callable[[FusionMethod], FusionMethod]:
    """Decorator: ``@register_method("classical") def fuse_classical(stack, *, device, **options)``."""
    def decorate(fn: FusionMethod) -> FusionMethod:
        _METHODS[name] = fn
        return fn
    return decorate


def available_methods() -> list[str]:
    return sorted(set(BUILTIN_METHODS) | set(_METHODS))


def cuda_available() -> bool:
    """Whether torch is installed and sees a CUDA device (torch is imported only to ask)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_method(method: str, device: Device = "auto") -> str:
    """The method ``fuse`` runs for ``method``: itself, or for ``"auto"`` the network on CUDA, else classical."""
    if method != AUTO:
        return method
    return "net" if device != "cpu" and cuda_available() else "classical"


def get_method(name: str) -> FusionMethod:
    if name not in _METHODS and name in BUILTIN_METHODS:
        try:
            importlib.import_module(BUILTIN_METHODS[name])
        except ModuleNotFoundError as exc:  # the method's module or one of its dependencies is not installed
            raise FusionError(f"fusion method {name!r} is not available here ({exc})") from exc
    try:
        return _METHODS[name]
    except KeyError:
        raise FusionError(f"unknown fusion method {name!r}; choose one of {', '.join(available_methods())}") from None


def depth_from_index(focal_index: np.ndarray, focal_powers_dpt: np.ndarray) -> np.ndarray:
    """Focal power at a (fractional) plane index, linear between planes; never rescaled to the image's range."""
    planes = np.arange(len(focal_powers_dpt), dtype=np.float64)
    return np.interp(focal_index, planes, focal_powers_dpt).astype(np.float32)


def fuse(stack: FocalStack, method: str = "classical", device: Device = "auto", **options: Any) -> FusionResult:
    """Fuse ``stack`` with the named method (or ``"auto"``, see :data:`AUTO`); ``options`` are the method's own
    keyword settings."""
    if stack.n_planes < 2:
        raise FusionError(f"a focal stack needs at least 2 planes to fuse, got {stack.n_planes}")
    chosen = resolve_method(method, device)
    start = time.perf_counter()
    result = get_method(chosen)(stack, device=device, **options)
    timings = {**result.timings_s, "total": time.perf_counter() - start}
    return FusionResult(result.all_in_focus, result.focal_index, result.depth_dpt, result.confidence,
                        result.method, result.device, timings, result.settings)
