"""Building and loading the compiled CPU kernels of models/ops/<op>/csrc/ (the `cpu` backends).

A kernel is one C++ file of plain C entry points on contiguous arrays (`extern "C"`), called
through ctypes; its only torch header is ATen/Parallel.h, for at::parallel_for (no Python
headers are needed). It is built on first use with torch.utils.cpp_extension (ninja, `-O3
-fopenmp`, the vector instructions of this CPU as PyTorch detects them) into a folder of the
extensions cache ($TORCH_EXTENSIONS_DIR, else ~/.cache/torch_extensions/py<version>_cpu/), and
later runs load it from there. The extension's
name carries a hash of the source, the flags and the torch version, so an edited kernel, another
checkout or another torch never loads a stale build, and two versions never overwrite each other.

Two processes that build at once (two runs started together) are safe: cpp_extension's own lock
file lets one build while the other waits, and a kernel lock (flock, released by the OS when its
holder dies) around it removes the lock file of a builder that was killed, which would otherwise
make every later run wait forever.

Where it cannot build (no C++ compiler, no ninja) or the build fails, `BackendUnavailable` says
why in one line and the dispatcher runs the op's PyTorch form instead (models/ops/dispatch.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.ops.dispatch import Backend, BackendUnavailable

# Flags for the vector instructions that PyTorch found on this CPU (ATEN_CPU_CAPABILITY lowers
# them); -march=native would do the same but could not be named in the cache, where a build
# from a larger CPU on a shared home folder would crash a smaller one.
VECTOR_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mfma"],
    "AVX2": ["-mavx2", "-mfma"],
}
# -fno-trapping-math lets GCC turn the branch-free selects of a vectorisable exp (comparisons)
# into vector blends; no kernel enables floating-point traps.
CFLAGS = ["-O3", "-fopenmp", "-fno-trapping-math", "-DNDEBUG"]
# -fopenmp links libgomp; at run time its soname resolves to the libgomp that torch has already
# loaded, so at::parallel_for in the kernel uses torch's thread pool and torch.get_num_threads().
LDFLAGS = ["-fopenmp"]
# Headers every kernel includes (kernel_common.h): an include path of every build, and part of
# every kernel's build name, so that a change to them rebuilds the kernels.
COMMON_HEADERS = Path(__file__).resolve().parent / "csrc"


@dataclass
class LoadedKernel:
    """A built kernel: its library (ctypes: kernel.library.<C function>), where it lives, and
    how long this process spent building it (None when it came from the cache)."""

    name: str
    library: ctypes.CDLL
    path: Path
    build_seconds: float | None


_loaded: dict[str, LoadedKernel] = {}  # "stem:source" -> the kernel this process loaded
_problems: dict[tuple[str, str], str | None] = {}
_lock = threading.Lock()


def compiler() -> str:
    """The C++ compiler cpp_extension uses: $CXX, else c++."""
    return os.environ.get("CXX", "c++")


def build_problem() -> str | None:
    """Why no kernel can be built here (no compiler, no ninja), or None. Checked once per
    compiler setting: it is asked on every op call."""
    key = (compiler(), os.environ.get("PATH", ""))
    if key not in _problems:
        from torch.utils.cpp_extension import is_ninja_available

        if shutil.which(key[0]) is None:
            _problems[key] = f"no C++ compiler ({key[0]} not found)"
        elif not is_ninja_available():
            _problems[key] = "ninja not found (pip install ninja)"
        else:
            _problems[key] = None
    return _problems[key]


def on_cpu_and_buildable(tensors: Sequence[torch.Tensor]) -> str | None:
    """The `available` check of a `cpu` backend: CPU tensors, and a compiler and ninja here."""
    devices = {t.device.type for t in tensors}
    if devices - {"cpu"}:
        return f"the compiled CPU kernel takes CPU tensors (got {sorted(devices)})"
    return build_problem()


def compiled_cpu_backend(target: str) -> Backend:
    """The `cpu` backend of an op: its compiled kernel at `target` ('module:function'), run on
    CPU tensors where a kernel can be built, passed over by "auto" with one line where not."""
    return Backend("cpu", target, available=on_cpu_and_buildable, optional=True, compiled=True)


def extensions_root() -> Path:
    """$TORCH_EXTENSIONS_DIR, else cpp_extension's per-user cache, one folder per Python."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root is not None:
        return Path(root)
    return (
        Path(get_default_build_root()) / f"py{sys.version_info.major}{sys.version_info.minor}_cpu"
    )


def kernel_name(stem: str, source: Path, cflags: Sequence[str]) -> str:
    """stem_<cpu capability>_<hash of source, common headers, flags, torch version>."""
    digest = hashlib.sha256(source.read_bytes())
    for header in sorted(COMMON_HEADERS.glob("*.h")):
        digest.update(header.read_bytes())
    digest.update(" ".join([*cflags, *LDFLAGS, torch.__version__]).encode())
    capability = torch.backends.cpu.get_cpu_capability().lower()
    return f"{stem}_{capability}_{digest.hexdigest()[:10]}"


def load_kernel(stem: str, source: Path) -> LoadedKernel:
    """Builds (first time) or loads (from the cache) the kernel of `source`, a C++ file of
    `extern "C"` functions. Raises BackendUnavailable with a one-line reason when it cannot."""
    key = f"{stem}:{source}"
    loaded = _loaded.get(key)  # (every op call asks: a dict lookup once loaded)
    if loaded is not None:
        return loaded
    problem = build_problem()
    if problem is not None:
        raise BackendUnavailable(problem)
    with _lock:
        if key not in _loaded:
            cflags = [*CFLAGS, *VECTOR_FLAGS.get(torch.backends.cpu.get_cpu_capability(), [])]
            _loaded[key] = _build_or_load(kernel_name(stem, source, cflags), source, cflags)
    return _loaded[key]


def _build_or_load(name: str, source: Path, cflags: list[str]) -> LoadedKernel:
    from torch.utils import cpp_extension

    folder = extensions_root() / name
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / f"{name}.so"
    try:
        with _kernel_lock(folder):
            # (asked inside the lock: a process that waited for another's build loads it)
            cached = library.exists()
            started = time.perf_counter()
            cpp_extension.load(
                name=name,
                sources=[str(source)],
                # (copies: cpp_extension appends its own flags to these lists)
                extra_cflags=list(cflags),
                extra_ldflags=list(LDFLAGS),
                extra_include_paths=[str(COMMON_HEADERS)],
                build_directory=str(folder),
                is_python_module=False,
                verbose=False,
            )
        library_handle = ctypes.CDLL(str(library))
    except Exception as error:  # a compiler error, a missing header, a failed link, a bad .so
        raise BackendUnavailable(
            f"C++ build failed ({_first_line(error)}); build folder {folder}"
        ) from error
    seconds = None if cached else time.perf_counter() - started
    return LoadedKernel(name, library_handle, library, seconds)


class _kernel_lock:
    """An exclusive flock on <folder>.lock for the build: while it is held no other process is
    building here, so a leftover cpp_extension lock file is a dead builder's and is removed.
    (Where flock does not exist, only cpp_extension's lock file guards the build.)"""

    def __init__(self, folder: Path) -> None:
        self.path = folder.with_name(folder.name + ".lock")
        self.baton = folder / "lock"
        self.handle = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.handle = open(self.path, "a")  # noqa: SIM115 (held until __exit__)
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        self.baton.unlink(missing_ok=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the flock


def _first_line(error: Exception) -> str:
    """The compiler's first error line, else the exception's first line."""
    text = str(error)
    for line in text.splitlines():
        if "error" in line.lower() and "Error building extension" not in line:
            return line.strip()[:200]
    return (text.splitlines() or [type(error).__name__])[0].strip()[:200]


_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}
KERNEL_DTYPES = tuple(_SUFFIX)


def call(library: ctypes.CDLL, name: str, tensors: Sequence, sizes: Sequence[int]) -> None:
    """Runs the C function `<name>_f32` or `<name>_f64` of `library` (by the dtype of the first
    tensor) on the tensors' data pointers (None: a null pointer) and int64 sizes; its non-zero
    return (an exception inside the kernel) raises here."""
    function = getattr(library, f"{name}_{_SUFFIX[tensors[0].dtype]}")
    function.restype = ctypes.c_int
    pointers = [ctypes.c_void_p(None if t is None else t.data_ptr()) for t in tensors]
    status = function(*pointers, *map(ctypes.c_int64, sizes))
    if status == 2:
        raise MemoryError(f"{name}: out of memory")
    if status != 0:
        raise RuntimeError(f"{name} failed")


def parts_per_row(rows: int, most: int) -> int:
    """Into how many parts a kernel cuts each of `rows` independent rows of work (each part then
    keeps its own partial sums) so that every thread has some: 1 when the rows share out evenly
    over torch's threads, else two tasks per thread, never more than `most` parts."""
    threads = torch.get_num_threads()
    if rows % threads == 0:
        return 1
    return max(1, min(-(-2 * threads // rows), most))
