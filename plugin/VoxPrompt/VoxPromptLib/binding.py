"""ctypes declarations of include/voxprompt.h, and the one place that turns a result code into an exception.

Slicer-free: only the standard library. The library is located without importing anything else, and ONNX Runtime
is found by libvoxprompt itself (next to it, or VXP_ORT_LIB); never `import onnxruntime` in Slicer to find it,
that module carries a second copy of ONNX Runtime (STYLE.md).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_double, c_float, c_int64, c_size_t,
                    c_uint32, c_uint64, c_void_p)
from pathlib import Path

# The ABI this binding was written against (VXP_ABI_VERSION_MAJOR / _MINOR in include/voxprompt.h); 0.4 added
# vxp_result_name, which names every code below, 0.10 the precision and OpenVINO setters the settings pass on.
ABI_MAJOR = 0
ABI_MINOR = 10

LIBRARY_ENV = "VXP_LIB"
LIBRARY_NAME = "libvoxprompt.so.0"

# The vxp_result codes this package raises itself or compares with. Every other code is named and described by
# the library (vxp_result_name, vxp_result_str), and Library() checks these names against it.
OK = 0
INVALID_ARGUMENT = 101
SHAPE_MISMATCH = 102
UNSUPPORTED_DTYPE = 103
BUFFER_TOO_SMALL = 104
INVALID_PROMPT = 106
UNKNOWN_CONCEPT = 107
MODEL_NOT_FOUND = 200
MODEL_CONTRACT = 202
RUNTIME_LOAD = 300
CANCELLED = 400
TOO_LARGE = 404
_OWN_CODES = {"OK": OK, "INVALID_ARGUMENT": INVALID_ARGUMENT, "SHAPE_MISMATCH": SHAPE_MISMATCH,
              "UNSUPPORTED_DTYPE": UNSUPPORTED_DTYPE,
              "BUFFER_TOO_SMALL": BUFFER_TOO_SMALL, "INVALID_PROMPT": INVALID_PROMPT,
              "UNKNOWN_CONCEPT": UNKNOWN_CONCEPT,
              "MODEL_NOT_FOUND": MODEL_NOT_FOUND, "MODEL_CONTRACT": MODEL_CONTRACT, "RUNTIME_LOAD": RUNTIME_LOAD,
              "CANCELLED": CANCELLED, "TOO_LARGE": TOO_LARGE}
_RESULT_PREFIX = "VXP_RESULT_"

# vxp_dtype, keyed by numpy's dtype.str without the byte-order mark.
DTYPES = {"u1": 1, "i1": 2, "u2": 3, "i2": 4, "u4": 5, "i4": 6, "f4": 7, "f8": 8}
# vxp_intensity
INTENSITY = {"auto": 0, "ct": 1, "mr": 2, "window": 3}
# vxp_policy
POLICIES = {"reference": 1, "reseed": 2, "reseed-in-box": 3}
# vxp_overlap
OVERLAP = {"default": 0, "overwrite": 1, "keep": 2, "confidence": 3}
# The names vxp_options_set_providers and vxp_options_set_precision take, for a host's choices (the library
# checks them itself and says which it does not know).
PROVIDERS = ("cpu", "openvino", "cuda", "tensorrt")
PRECISIONS = ("exact", "fast")


class VxpVolume(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("dtype", c_uint32),
        ("data", c_void_p),
        ("data_len", c_size_t),
        ("data_offset", c_size_t),
        ("dims", c_size_t * 3),
        ("strides", c_int64 * 3),
        ("spacing", c_double * 3),
        ("ijk_to_ras", c_double * 16),
        ("intensity", c_uint32),
        ("window_level", c_double),
        ("window_width", c_double),
    ]


class VxpRunStats(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("slices_encoded", c_uint64),
        ("slices_decoded", c_uint64),
        ("decoder_runs", c_uint64),
        ("objects_full", c_uint32),
        ("objects_refined", c_uint32),
        ("objects_unchanged", c_uint32),
        ("cache_entries", c_uint64),
        ("cache_bytes", c_uint64),
        ("seconds", c_double),
    ]


PROGRESS_FN = CFUNCTYPE(c_bool, c_void_p, c_uint32, c_float)
LOG_FN = CFUNCTYPE(None, c_void_p, c_uint32, c_char_p)


class VoxPromptError(Exception):
    """A failed library call: `code` is the vxp_result value, `name` its VXP_RESULT_ suffix and `description`
    its text, both as the loaded library gives them, and `message` what vxp_last_error said about it."""

    def __init__(self, code: int, message: str):
        self.code = code
        self.name = result_name(code)
        self.description = result_text(code)
        self.message = message
        super().__init__(f"{self.name} ({code}): {message}")


# The first library loaded (the names and texts of result codes are the same in every library of one ABI).
_NAMING: Library | None = None


def result_name(code: int) -> str:
    """The VXP_RESULT_ suffix of `code` from the loaded library (before one is loaded: this package's own
    codes only)."""
    raw = _NAMING.dll.vxp_result_name(code) if _NAMING is not None else None
    if raw is not None:
        return raw.decode().removeprefix(_RESULT_PREFIX)
    own = {v: k for k, v in _OWN_CODES.items()}
    return own.get(code, f"UNKNOWN_{code}")


def result_text(code: int) -> str:
    """The library's description of `code` (vxp_result_str), or "" before a library is loaded."""
    return _NAMING.dll.vxp_result_str(code).decode() if _NAMING is not None else ""


_SIGNATURES = {
    # name: (restype, argtypes)
    "vxp_version": (c_char_p, []),
    "vxp_abi_version": (c_uint32, [POINTER(c_uint32), POINTER(c_uint32)]),
    "vxp_result_str": (c_char_p, [c_uint32]),
    "vxp_result_name": (c_char_p, [c_uint32]),
    "vxp_last_error": (c_uint32, [c_char_p, c_size_t, POINTER(c_size_t)]),
    "vxp_set_log_callback": (c_uint32, [c_uint32, LOG_FN, c_void_p]),
    "vxp_options_new": (c_uint32, [POINTER(c_void_p)]),
    "vxp_options_free": (None, [c_void_p]),
    "vxp_options_set_ort_library": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_set_model_dir": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_add_model_dir": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_set_providers": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_set_precision": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_set_openvino_library": (c_uint32, [c_void_p, c_char_p]),
    "vxp_options_set_threads": (c_uint32, [c_void_p, c_uint32]),
    "vxp_options_set_cache_budget": (c_uint32, [c_void_p, c_size_t]),
    "vxp_options_set_brain_atlas": (c_uint32, [c_void_p, c_char_p, c_char_p]),
    "vxp_engine_new": (c_uint32, [c_void_p, POINTER(c_void_p)]),
    "vxp_engine_free": (None, [c_void_p]),
    "vxp_engine_provider": (c_uint32, [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "vxp_engine_lookup_concept": (c_uint32, [c_void_p, c_char_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "vxp_engine_complete_concepts": (c_uint32, [c_void_p, c_char_p, c_uint32, c_char_p, c_size_t,
                                                POINTER(c_size_t)]),
    "vxp_session_new": (c_uint32, [c_void_p, POINTER(VxpVolume), POINTER(c_void_p)]),
    "vxp_session_free": (None, [c_void_p]),
    "vxp_session_add_box_ijk": (c_uint32, [c_void_p, c_uint32, POINTER(c_int64)]),
    "vxp_session_add_box_ras": (c_uint32, [c_void_p, c_uint32, POINTER(c_double)]),
    "vxp_session_add_point_ijk": (c_uint32, [c_void_p, c_uint32, POINTER(c_int64), c_bool]),
    "vxp_session_add_point_ras": (c_uint32, [c_void_p, c_uint32, POINTER(c_double), c_bool]),
    "vxp_session_add_text": (c_uint32, [c_void_p, c_uint32, c_char_p]),
    "vxp_session_remove_object": (c_uint32, [c_void_p, c_uint32]),
    "vxp_session_clear_prompts": (c_uint32, [c_void_p]),
    "vxp_session_set_policy": (c_uint32, [c_void_p, c_uint32]),
    "vxp_session_set_axis": (c_uint32, [c_void_p, c_uint32]),
    "vxp_session_set_overlap": (c_uint32, [c_void_p, c_uint32]),
    "vxp_session_undo": (c_uint32, [c_void_p]),
    "vxp_session_redo": (c_uint32, [c_void_p]),
    "vxp_session_cancel": (c_uint32, [c_void_p]),
    "vxp_session_run_confidence": (c_uint32, [c_void_p, PROGRESS_FN, c_void_p, c_void_p, c_size_t,
                                              POINTER(c_int64), c_void_p, c_size_t, POINTER(c_int64)]),
    "vxp_session_last_stats": (c_uint32, [c_void_p, POINTER(VxpRunStats)]),
    "vxp_session_report": (c_uint32, [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)]),
}


class Library:
    """libvoxprompt loaded with ctypes.CDLL, which releases the GIL around every call, so a run on a worker
    thread leaves Slicer's GUI thread free."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = str(find_library(path))
        try:
            self.dll = ctypes.CDLL(self.path)
        except OSError as e:
            raise VoxPromptError(RUNTIME_LOAD, f"cannot load {self.path}: {e}") from None
        # The ABI first: an older library lacks symbols declared below, and would fail with an AttributeError
        # instead of saying which version it is.
        abi = self.dll.vxp_abi_version
        abi.restype, abi.argtypes = _SIGNATURES["vxp_abi_version"]
        major, minor = c_uint32(), c_uint32()
        if abi(ctypes.byref(major), ctypes.byref(minor)) != OK or major.value != ABI_MAJOR or minor.value < ABI_MINOR:
            raise VoxPromptError(MODEL_CONTRACT, f"{self.path} has ABI {major.value}.{minor.value}; this plugin "
                                                 f"needs {ABI_MAJOR}.{ABI_MINOR} or a later minor")
        for name, (res, args) in _SIGNATURES.items():
            f = getattr(self.dll, name)
            f.restype, f.argtypes = res, args
        for name, code in _OWN_CODES.items():
            theirs = self.dll.vxp_result_name(code)
            if theirs != (_RESULT_PREFIX + name).encode():
                raise VoxPromptError(MODEL_CONTRACT, f"{self.path} names result {code} {theirs!r}, this plugin "
                                                     f"{_RESULT_PREFIX + name}")
        self.abi = (major.value, minor.value)
        self.version = self.dll.vxp_version().decode()
        global _NAMING
        if _NAMING is None:
            _NAMING = self

    def last_error(self) -> str:
        needed = c_size_t()
        self.dll.vxp_last_error(None, 0, ctypes.byref(needed))
        buf = ctypes.create_string_buffer(needed.value + 1)
        self.dll.vxp_last_error(buf, len(buf), None)
        return buf.value.decode(errors="replace")

    def check(self, code: int) -> None:
        """Raises VoxPromptError for anything but VXP_RESULT_OK, with the calling thread's last error."""
        if code != OK:
            raise VoxPromptError(code, self.last_error() or self.dll.vxp_result_str(code).decode())


def packaged_library() -> Path | None:
    """The library bundled with this package, if any: inside it (the `voxprompt` wheel of `make wheel`:
    voxprompt/lib/libvoxprompt.so.0) or beside it (the Slicer module folder of `make slicer-package`:
    VoxPrompt/lib/libvoxprompt.so.0 next to VoxPromptLib/)."""
    here = Path(__file__).resolve().parent
    for p in (here / "lib" / LIBRARY_NAME, here.parent / "lib" / LIBRARY_NAME):
        if p.is_file():
            return p
    return None


def find_library(path: str | os.PathLike | None = None) -> Path:
    """The library of this self-contained package first, then $VXP_LIB, then the explicit path (the module's
    setting: the file, or a folder holding it), then a build of this checkout, then the loader's search path."""
    packaged = packaged_library()
    if packaged is not None:
        return packaged
    if os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    if path:
        p = Path(path)
        if p.is_dir():  # the module's library folder setting: an install's lib/ or a build's target/<profile>/
            for name in (LIBRARY_NAME, "libvoxprompt.so"):
                if (p / name).is_file():
                    return p / name
        return p
    repo = checkout()
    for build in ("release", "debug"):
        p = repo / "target" / build / "libvoxprompt.so" if repo else None
        if p is not None and p.exists():
            return p
    return Path(LIBRARY_NAME)


def checkout() -> Path | None:
    """The repository this package sits in (plugin/VoxPrompt/VoxPromptLib), if it runs from a checkout."""
    here = Path(__file__).resolve()
    if len(here.parents) > 3 and (here.parents[3] / "Cargo.toml").exists():
        return here.parents[3]
    return None


def locate_onnxruntime(search: list[str] | None = None) -> Path | None:
    """The ONNX Runtime library of an installed `onnxruntime` wheel (`onnxruntime/capi/libonnxruntime.so.*`),
    found on disk along `search` (default: sys.path) without importing the package: importing it would load a
    second ONNX Runtime into the host. The newest version when several are found."""
    import sys

    found = []
    for entry in (sys.path if search is None else search):
        capi = Path(entry or ".") / "onnxruntime" / "capi"
        if capi.is_dir():
            found.extend(p for p in capi.glob("libonnxruntime.so.*") if p.is_file())

    def version(p: Path) -> tuple:
        return tuple(int(x) if x.isdigit() else 0 for x in p.name.split(".so.", 1)[1].split("."))

    return max(found, key=version) if found else None
