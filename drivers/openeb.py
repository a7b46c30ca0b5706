"""Where OpenEB (Prophesee's open Metavision SDK) is installed, and how to use it from here.

OpenEB is not on PyPI, so it is found rather than imported blindly. focalrig needs it for nothing
file-related; the Prophesee backend needs its HAL bindings (``metavision_hal``), and the tests and
``focalrig bench io`` run its tools and Python API beside focalrig's own codecs as an independent oracle.

An install is a prefix with ``bin/`` (the ``metavision_*`` tools), ``lib/`` (the SDK and its HAL
plugins) and ``lib/pythonX.Y/site-packages`` (the bindings), as OpenEB's ``cmake --install`` and the
relocatable build in ``../shared/tools/openeb`` lay it out. It is looked for, in order, at
``$FOCALRIG_OPENEB``, ``$OPENEB_PREFIX`` (exported by that build's ``openeb-env.sh``) and ``/opt/openeb``.

Why two ways to run the Python API: the bindings import into this interpreter (same CPython minor
version) for RAW files and the HAL, but OpenEB's HDF5 reading goes through h5py with the ECF filter
plugin, and a PyPI h5py wheel bundles its own HDF5 library, which must never load a plugin built
against the system's. So HDF5 work runs in :attr:`OpenEB.python`, an interpreter whose h5py uses the
system HDF5 (``$OPENEB_PY``; Debian's ``python3`` with ``python3-h5py``), in a separate process.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

#: Where to look when neither environment variable names an install.
DEFAULT_PREFIX = Path("/opt/openeb")
ENV_VARS = ("FOCALRIG_OPENEB", "OPENEB_PREFIX")
_PROBE_TOOL = "metavision_file_info"


@dataclass(frozen=True)
class OpenEB:
    """One OpenEB install: its folders, the environment its tools need, and an interpreter for its bindings."""

    prefix: Path

    @property
    def bin(self) -> Path:
        return self.prefix / "bin"

    @property
    def site_packages(self) -> Path:
        """The bindings' folder for this interpreter's version (may not exist: bindings are per CPython version)."""
        return self.prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"

    @property
    def hal_plugins(self) -> Path:
        return self.prefix / "lib" / "metavision" / "hal" / "plugins"

    @property
    def hdf5_plugins(self) -> Path:
        return self.prefix / "lib" / "hdf5" / "plugin"

    def tool(self, name: str) -> Path:
        """Path of a command-line tool, e.g. ``metavision_file_to_csv``; FileNotFoundError if this install lacks it."""
        path = self.bin / name
        if not path.is_file():
            raise FileNotFoundError(f"OpenEB at {self.prefix} has no {name} (looked for {path})")
        return path

    @property
    def python(self) -> str:
        """An interpreter that imports the bindings *and* reads ECF HDF5 through h5py (see the module docstring).

        ``$OPENEB_PY`` when set, else the one ``openeb-env.sh`` records, else Debian's ``/usr/bin/python3``.
        """
        if os.environ.get("OPENEB_PY"):
            return os.environ["OPENEB_PY"]
        script = self.prefix / "openeb-env.sh"
        if script.is_file():
            match = re.search(r'^export OPENEB_PY="?([^"\n]+)"?', script.read_text(errors="replace"), re.MULTILINE)
            if match:
                return match.group(1)
        return "/usr/bin/python3"

    @property
    def python_site_packages(self) -> Path:
        """The bindings' folder for :attr:`python` (OpenEB builds bindings for one CPython version)."""
        found = sorted((self.prefix / "lib").glob("python3.*/site-packages"))
        return found[-1] if found else self.site_packages

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) plus what ``openeb-env.sh`` exports, for subprocesses."""
        env = dict(os.environ if base is None else base)

        def prepend(key: str, value: Path) -> None:
            env[key] = str(value) + (os.pathsep + env[key] if env.get(key) else "")

        prepend("PATH", self.bin)
        prepend("LD_LIBRARY_PATH", self.prefix / "lib")
        prepend("PYTHONPATH", self.python_site_packages)
        prepend("HDF5_PLUGIN_PATH", self.hdf5_plugins)
        env["MV_HAL_PLUGIN_PATH"] = str(self.hal_plugins)
        env["OPENEB_PREFIX"] = str(self.prefix)
        return env


def candidates() -> list[Path]:
    """The prefixes looked at, in order (for messages that say where OpenEB was looked for)."""
    found = [Path(os.environ[v]) for v in ENV_VARS if os.environ.get(v)]
    return [*found, DEFAULT_PREFIX]


def find_openeb() -> OpenEB | None:
    """The first install among :func:`candidates` that has the tools, or None."""
    for prefix in candidates():
        if (prefix / "bin" / _PROBE_TOOL).is_file():
            return OpenEB(prefix.resolve())
    return None


def where_looked() -> str:
    """One phrase naming the places :func:`find_openeb` searched."""
    named = [f"${v}" for v in ENV_VARS]
    return f"{', '.join(named)} and {DEFAULT_PREFIX}"


def import_hal() -> ModuleType:
    """``metavision_hal``: from the import path if it is there, else from an install :func:`find_openeb` finds.

    A found install's bindings are appended to ``sys.path`` and its HAL plugin folder becomes
    ``MV_HAL_PLUGIN_PATH`` (unless already set): without that the HAL opens no camera and no file.
    ImportError (message: what is missing and where it was looked for) when neither works.
    """
    try:
        import metavision_hal
    except ImportError:
        install = find_openeb()
        if install is None:
            raise
        if not install.site_packages.is_dir():
            built = ", ".join(p.parent.name for p in (install.prefix / "lib").glob("python3.*")) or "none"
            raise ImportError(f"OpenEB at {install.prefix} has Python bindings for {built}, not for this "
                              f"Python {sys.version_info.major}.{sys.version_info.minor}") from None
        sys.path.append(str(install.site_packages))
        os.environ.setdefault("MV_HAL_PLUGIN_PATH", str(install.hal_plugins))
        import metavision_hal
    else:
        install = find_openeb()
        if install is not None and Path(metavision_hal.__file__).resolve().is_relative_to(install.prefix):
            os.environ.setdefault("MV_HAL_PLUGIN_PATH", str(install.hal_plugins))
    return metavision_hal
