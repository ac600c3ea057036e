"""Engine and Session over libvoxprompt for numpy arrays, and a background run with progress and cancel.

Slicer-free (numpy and the standard library), so pytest exercises it for real (plugin/tests). Arrays are
indexed [k, j, i] as `slicer.util.arrayFromVolume` returns them; any strides, negative ones included, are
passed to the library as they are, without a copy. The library copies the voxels it needs at session
creation and keeps no pointer to the host's buffer.
"""
from __future__ import annotations

import ctypes
import json
import threading
from ctypes import byref, c_double, c_int64, c_size_t, c_void_p
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .binding import (BUFFER_TOO_SMALL, CANCELLED, DTYPES, INTENSITY, OVERLAP, POLICIES, PROGRESS_FN, Library, VoxPromptError,
                      VxpRunStats, VxpVolume, checkout, find_library, locate_onnxruntime)

_LIBRARIES: dict[str, Library] = {}
_LOCK = threading.Lock()


def library(path: Optional[str] = None) -> Library:
    """One Library per path for the process: Slicer may reload this module, the library must stay loaded."""
    key = str(find_library(path))
    with _LOCK:
        if key not in _LIBRARIES:
            _LIBRARIES[key] = Library(key)
        return _LIBRARIES[key]


def default_model_dir(lib: Library) -> Path:
    """Where scripts/install puts the model next to lib/libvoxprompt.so, else this checkout's package."""
    lib_path = Path(lib.path).resolve()
    installed = lib_path.parent.parent / "share" / "voxprompt" / "models" / "litemedsam"
    if (installed / "manifest.toml").exists():
        return installed
    repo = checkout()
    if repo is None:
        raise VoxPromptError(200, f"no model package next to {lib.path} ({installed}) and no checkout: "
                                  "set the model directory")
    return repo / "models" / "litemedsam"


# The ONNX Runtime this build was tested with (scripts/setup-onnxruntime); the library needs 1.31 or newer.
PINNED_ONNXRUNTIME = "onnxruntime==1.32.0"
_RUNTIME_CODES = (300, 301)  # VXP_RESULT_RUNTIME_LOAD, VXP_RESULT_RUNTIME_VERSION


class RuntimeMissing(VoxPromptError):
    """ONNX Runtime is missing or too old, and no installed `onnxruntime` wheel has a usable one: `message` says
    so in plain words, with what to install (`PINNED_ONNXRUNTIME`)."""


def runtime_problem(e: VoxPromptError) -> Optional[str]:
    """Plain words for a missing or too old ONNX Runtime, None for any other error."""
    if e.code not in _RUNTIME_CODES:
        return None
    what = "is too old" if e.code == 301 else "was not found"
    return (f"ONNX Runtime, which VoxPrompt runs its models with, {what} ({e.message}). Install the tested "
            f"version into this Python ({PINNED_ONNXRUNTIME}); VoxPrompt then loads its library from disk and "
            "never imports the onnxruntime package.")


def open_engine(**kw) -> "Engine":
    """`Engine(**kw)`, falling back to the library of an installed `onnxruntime` wheel (found on disk, never
    imported) when ONNX Runtime is missing or too old; `RuntimeMissing` when there is none either."""
    try:
        return Engine(**kw)
    except VoxPromptError as e:
        problem = runtime_problem(e)
        if problem is None or kw.get("ort_library"):
            raise
        wheel = locate_onnxruntime()
        if wheel is None:
            raise RuntimeMissing(e.code, problem) from e
        return Engine(**{**kw, "ort_library": str(wheel)})


class Engine:
    """A loaded model: create once, share between sessions (thread-safe in the library)."""

    _handle = None  # so that __del__ after a failed __init__ has nothing to free

    def __init__(self, model_dir: Optional[str] = None, ort_library: Optional[str] = None,
                 providers: str = "cpu", threads: int = 0, cache_mb: Optional[int] = None,
                 library_path: Optional[str] = None, brain_atlas: Optional[tuple[str, str]] = None,
                 precision: str = "exact", openvino_library: Optional[str] = None):
        """providers: comma-separated, in order of preference ("openvino,cpu"); one that cannot run is skipped
        and `provider` says why. precision: "exact" or "fast" (bf16 where the provider has it).
        openvino_library: libopenvino_c.so.* for "openvino" (default: VXP_OPENVINO_LIB, else beside the library).
        brain_atlas: (T1 template, aseg label volume) NIfTI paths for brain structures named by text on
        MR (nilearn's MNI ICBM152 2009a T1 and covale's aseg-auto, as `make setup` installs them)."""
        self.lib = library(library_path)
        dll = self.lib.dll
        opts = c_void_p()
        self.lib.check(dll.vxp_options_new(byref(opts)))
        try:
            model_dir = str(model_dir or default_model_dir(self.lib))
            self.lib.check(dll.vxp_options_set_model_dir(opts, model_dir.encode()))
            # The text encoder installed beside the spatial model, for phrasings outside the vocabulary.
            text_dir = Path(model_dir).parent / "minilm"
            if (text_dir / "manifest.toml").is_file():
                self.lib.check(dll.vxp_options_add_model_dir(opts, str(text_dir).encode()))
            if ort_library:
                self.lib.check(dll.vxp_options_set_ort_library(opts, str(ort_library).encode()))
            self.lib.check(dll.vxp_options_set_providers(opts, providers.encode()))
            self.lib.check(dll.vxp_options_set_precision(opts, precision.encode()))
            if openvino_library:
                self.lib.check(dll.vxp_options_set_openvino_library(opts, str(openvino_library).encode()))
            self.lib.check(dll.vxp_options_set_threads(opts, int(threads)))
            if cache_mb is not None:
                self.lib.check(dll.vxp_options_set_cache_budget(opts, int(cache_mb) << 20))
            if brain_atlas is not None:
                template, labels = (str(p).encode() for p in brain_atlas)
                self.lib.check(dll.vxp_options_set_brain_atlas(opts, template, labels))
            handle = c_void_p()
            self.lib.check(dll.vxp_engine_new(opts, byref(handle)))
        finally:
            dll.vxp_options_free(opts)
        self._handle = handle
        self.model_dir = model_dir

    @property
    def provider(self) -> str:
        """The execution provider that really runs, with the reasons others were skipped."""
        needed = c_size_t()
        dll = self.lib.dll
        dll.vxp_engine_provider(self._handle, None, 0, byref(needed))  # BUFFER_TOO_SMALL, with the size
        buf = ctypes.create_string_buffer(needed.value + 1)
        self.lib.check(dll.vxp_engine_provider(self._handle, buf, len(buf), None))
        return buf.value.decode()

    def _text_out(self, call) -> str:
        """A string result: one call into a 16 KiB buffer, a second of the reported size if that was short
        (so a phrase is resolved, and embedded, once in the common case)."""
        needed = c_size_t()
        buf = ctypes.create_string_buffer(16384)
        code = call(buf, len(buf), byref(needed))
        if code == BUFFER_TOO_SMALL:
            buf = ctypes.create_string_buffer(needed.value + 1)
            code = call(buf, len(buf), None)
        self.lib.check(code)
        return buf.value.decode()

    def lookup(self, phrase: str) -> dict:
        """What a phrase names: the concepts (with SNOMED codes and colour), lesion, modifiers, method, score
        and alternatives. Raises VoxPromptError UNKNOWN_CONCEPT, whose message names the closest concepts."""
        dll = self.lib.dll
        return json.loads(self._text_out(
            lambda b, n, need: dll.vxp_engine_lookup_concept(self._handle, phrase.encode(), b, n, need)))

    def complete(self, prefix: str, limit: int = 20) -> list:
        """Concepts whose name or a term starts with prefix, for a text field's completion."""
        dll = self.lib.dll
        return json.loads(self._text_out(
            lambda b, n, need: dll.vxp_engine_complete_concepts(self._handle, prefix.encode(), int(limit), b, n,
                                                                need)))

    def session(self, array_kji: np.ndarray, ijk_to_ras: Optional[np.ndarray] = None,
                spacing: Optional[Sequence[float]] = None, intensity: str = "auto",
                window: Optional[tuple[float, float]] = None) -> "Session":
        return Session(self, array_kji, ijk_to_ras, spacing, intensity, window)

    def close(self) -> None:
        if self._handle:
            self.lib.dll.vxp_engine_free(self._handle)
            self._handle = None

    def __del__(self):
        self.close()


def volume_descriptor(array_kji: np.ndarray, ijk_to_ras: Optional[np.ndarray], spacing: Optional[Sequence[float]],
                      intensity: str, window: Optional[tuple[float, float]]) -> VxpVolume:
    """A vxp_volume over the array's own memory (no copy): voxel (i, j, k) is array_kji[k, j, i]."""
    a = array_kji
    if a.ndim != 3:
        raise VoxPromptError(102, f"a volume is a 3D array indexed [k, j, i], got {a.ndim} dimensions")
    key = a.dtype.str[1:]
    if key not in DTYPES or not a.dtype.isnative:
        raise VoxPromptError(103, f"unsupported voxel type {a.dtype} (native u1 i1 u2 i2 u4 i4 f4 f8)")
    if intensity not in INTENSITY:
        raise VoxPromptError(101, f"unknown intensity mapping {intensity!r}: one of {sorted(INTENSITY)}")
    nk, nj, ni = a.shape
    dims = (ni, nj, nk)
    strides = (a.strides[2], a.strides[1], a.strides[0])
    lo = sum(min(0, s * (n - 1)) for s, n in zip(strides, dims))
    hi = sum(max(0, s * (n - 1)) for s, n in zip(strides, dims)) + a.itemsize
    m = np.eye(4) if ijk_to_ras is None else np.asarray(ijk_to_ras, dtype=np.float64)
    if m.shape != (4, 4):
        raise VoxPromptError(101, f"ijk_to_ras must be 4x4, got {m.shape}")
    if spacing is None:
        spacing = np.linalg.norm(m[:3, :3], axis=0)
    v = VxpVolume()
    v.struct_size = ctypes.sizeof(VxpVolume)
    v.dtype = DTYPES[key]
    v.data = a.ctypes.data
    v.data_len = hi - lo if a.size else 0
    v.data_offset = -lo
    v.dims[:] = dims
    v.strides[:] = strides
    v.spacing[:] = [float(s) for s in spacing]
    v.ijk_to_ras[:] = [float(x) for x in m.reshape(-1)]
    v.intensity = INTENSITY["window" if window else intensity]
    if window:
        v.window_level, v.window_width = float(window[0]), float(window[1])
    return v


class Session:
    """One volume with its prompts, cached embeddings and last result. One run at a time; `cancel` may be
    called from any thread."""

    _handle = None

    def __init__(self, engine: Engine, array_kji: np.ndarray, ijk_to_ras, spacing, intensity, window):
        self.engine, self.lib = engine, engine.lib
        self.shape_kji = tuple(array_kji.shape)
        desc = volume_descriptor(array_kji, ijk_to_ras, spacing, intensity, window)
        handle = c_void_p()
        self.lib.check(self.lib.dll.vxp_session_new(engine._handle, byref(desc), byref(handle)))
        self._handle = handle

    # ---- prompts ----
    def add_box_ijk(self, label: int, box: Sequence[int]) -> None:
        """box = (i0, j0, k0, i1, j1, k1), inclusive voxel indices."""
        self.lib.check(self.lib.dll.vxp_session_add_box_ijk(self._handle, label, (c_int64 * 6)(*map(int, box))))

    def add_box_ras(self, label: int, corners: Sequence[float]) -> None:
        """corners = (r0, a0, s0, r1, a1, s1) in mm, e.g. a markups ROI's bounds."""
        self.lib.check(self.lib.dll.vxp_session_add_box_ras(self._handle, label,
                                                            (c_double * 6)(*map(float, corners))))

    def add_point_ijk(self, label: int, ijk: Sequence[int], positive: bool = True) -> None:
        self.lib.check(self.lib.dll.vxp_session_add_point_ijk(self._handle, label, (c_int64 * 3)(*map(int, ijk)),
                                                              bool(positive)))

    def add_point_ras(self, label: int, ras: Sequence[float], positive: bool = True) -> None:
        self.lib.check(self.lib.dll.vxp_session_add_point_ras(self._handle, label,
                                                              (c_double * 3)(*map(float, ras)), bool(positive)))

    def add_text(self, label: int, phrase: str) -> None:
        """Names object `label` in words ("left kidney"): the library finds the structure in this (CT) volume.
        Raises VoxPromptError UNKNOWN_CONCEPT (with the closest concepts), INVALID_PROMPT (not in this volume)
        or UNSUPPORTED (no prior for it yet)."""
        self.lib.check(self.lib.dll.vxp_session_add_text(self._handle, int(label), phrase.encode()))

    def report(self) -> list:
        """Per object (label, voxels, confidence, mean IoU, slices) every prompt with its source (user, text
        concept and score, anatomy, a click's growth), weight and measured contribution to the last result."""
        dll = self.lib.dll
        return json.loads(self.engine._text_out(lambda b, n, need: dll.vxp_session_report(self._handle, b, n, need)))

    def remove_object(self, label: int) -> None:
        self.lib.check(self.lib.dll.vxp_session_remove_object(self._handle, label))

    def clear_prompts(self) -> None:
        self.lib.check(self.lib.dll.vxp_session_clear_prompts(self._handle))

    # ---- settings ----
    def set_policy(self, name: str) -> None:
        if name not in POLICIES:
            raise VoxPromptError(101, f"unknown policy {name!r}: one of {sorted(POLICIES)}")
        self.lib.check(self.lib.dll.vxp_session_set_policy(self._handle, POLICIES[name]))

    def set_axis(self, axis: int) -> None:
        self.lib.check(self.lib.dll.vxp_session_set_axis(self._handle, int(axis)))

    def set_overlap(self, rule: str) -> None:
        if rule not in OVERLAP:
            raise VoxPromptError(101, f"unknown overlap rule {rule!r}: one of {sorted(OVERLAP)}")
        self.lib.check(self.lib.dll.vxp_session_set_overlap(self._handle, OVERLAP[rule]))

    def undo(self) -> None:
        self.lib.check(self.lib.dll.vxp_session_undo(self._handle))

    def redo(self) -> None:
        self.lib.check(self.lib.dll.vxp_session_redo(self._handle))

    # ---- running ----
    def cancel(self) -> None:
        self.lib.check(self.lib.dll.vxp_session_cancel(self._handle))

    def run(self, progress: Optional[Callable[[float], bool]] = None, confidence: bool = False):
        """Runs every object up to date. Returns the label mask (uint8, [k, j, i]) and, with `confidence`, the
        per-voxel confidence (float32 in [0, 1]) too. `progress(fraction)` returning False cancels the run
        (VoxPromptError CANCELLED); it is called on the thread that runs."""
        mask = np.zeros(self.shape_kji, np.uint8)
        m_strides = (c_int64 * 3)(mask.strides[2], mask.strides[1], mask.strides[0])
        conf, c_ptr, c_len, c_strides = None, None, 0, None
        if confidence:
            conf = np.zeros(self.shape_kji, np.float32)
            c_ptr, c_len = conf.ctypes.data, conf.nbytes
            c_strides = (c_int64 * 3)(conf.strides[2], conf.strides[1], conf.strides[0])
        errors: list[BaseException] = []

        def on_progress(_user, _stage, fraction):
            if progress is None:
                return True
            try:
                return bool(progress(float(fraction)))
            except BaseException as e:  # an exception must not unwind into the library
                errors.append(e)
                return False

        callback = PROGRESS_FN(on_progress)  # kept alive for the whole call
        code = self.lib.dll.vxp_session_run_confidence(self._handle, callback, None, mask.ctypes.data, mask.nbytes,
                                                       m_strides, c_ptr, c_len, c_strides)
        if errors:
            raise errors[0]
        self.lib.check(code)
        return (mask, conf) if confidence else mask

    def stats(self) -> dict:
        s = VxpRunStats()
        s.struct_size = ctypes.sizeof(VxpRunStats)
        self.lib.check(self.lib.dll.vxp_session_last_stats(self._handle, byref(s)))
        return {name: getattr(s, name) for name, _ in VxpRunStats._fields_ if name != "struct_size"}

    def close(self) -> None:
        if self._handle:
            self.lib.dll.vxp_session_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class PromptSync:
    """What one object of a session has been given, for a host that re-sends all its prompts on every Apply
    (Slicer's ROI and point lists): only new points are added, so the next run refines the object instead of
    propagating it again; a changed box or a removed point starts the object over."""

    def __init__(self, label: int = 1):
        self.label = label
        self.box: Optional[tuple] = None
        self.points: list[tuple] = []
        self.text: Optional[str] = None

    def apply(self, session: "Session", box_ras: Optional[Sequence[float]] = None,
              points_ras: Sequence[tuple] = (), text: Optional[str] = None) -> str:
        """`points_ras` holds (r, a, s, positive); `text` names the object ("left kidney"). Returns "new",
        "refine", "unchanged" or "reset"."""
        box = None if box_ras is None else tuple(round(float(v), 3) for v in box_ras)
        points = [(round(float(r), 3), round(float(a), 3), round(float(s_), 3), bool(pos))
                  for r, a, s_, pos in points_ras]
        text = (text or "").strip() or None
        if box is None and text is None and not any(p[3] for p in points):
            raise VoxPromptError(106, "no prompt: give a box, a text or at least one positive point")
        kept = set(self.points) <= set(points)
        state = "new" if self.box is None and not self.points and self.text is None else "refine"
        if box != self.box or text != self.text or not kept:
            if self.box is not None or self.points or self.text is not None:
                session.remove_object(self.label)
                state = "reset"
            self.box, self.points, self.text = None, [], None
            if box is not None:
                session.add_box_ras(self.label, box)
                self.box = box
            if text is not None:
                # After the box: the host's box leads, the text adds the structure's limit.
                session.add_text(self.label, text)
                self.text = text
        had = set(self.points)
        added = [p for p in dict.fromkeys(points) if p not in had]
        for r, a, s_, pos in added:
            session.add_point_ras(self.label, (r, a, s_), pos)
            self.points.append((r, a, s_, pos))
        return "unchanged" if state == "refine" and not added else state


# Slicer's serialised terminology entry: context~category~type~modifier~anatomic context~region~region modifier.
_TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def segment_identity(resolution: dict) -> tuple[str, Optional[str], Optional[tuple[float, float, float]]]:
    """A segment's name, Slicer terminology entry (SNOMED-CT codes, where the concept has them) and colour
    (0..1) from a `Engine.lookup` answer: "left kidney" → ("left kidney", "...~SCT^64033007^Kidney~SCT^7771000^
    Left~...", (0.18, 0.54, 0.72))."""
    name = resolution["name"]
    concepts = resolution.get("concepts") or []
    first = concepts[0] if concepts else {}
    sn = first.get("snomed")
    term = None
    if sn and len(concepts) == 1 and not resolution.get("lesion"):
        modifier = f"SCT^{sn['modifier']}^{sn['modifier_meaning']}" if sn.get("modifier") else "^^"
        term = "~".join([_TERMINOLOGY_CONTEXT, f"SCT^{sn['category']}^{sn['category_meaning']}",
                         f"SCT^{sn['type']}^{sn['type_meaning']}", modifier, _ANATOMIC_CONTEXT, "^^", "^^"])
    color = tuple(c / 255.0 for c in first["color"]) if first.get("color") else None
    return name, term, color


class BackgroundRun:
    """`Session.run` on a worker thread: the GUI polls `fraction` and `done` (a QTimer in Slicer) and may call
    `cancel()`; afterwards `result()` returns the run's value or raises its error."""

    def __init__(self, session: Session, confidence: bool = False):
        self.session = session
        self.fraction = 0.0
        self._value = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._work, args=(confidence,), name="voxprompt-run", daemon=True)
        self._thread.start()

    def _work(self, confidence: bool) -> None:
        def progress(f: float) -> bool:
            self.fraction = f
            return True

        try:
            self._value = self.session.run(progress, confidence)
        except BaseException as e:
            self._error = e

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return isinstance(self._error, VoxPromptError) and self._error.code == CANCELLED

    def cancel(self) -> None:
        self.session.cancel()

    def wait(self, timeout: Optional[float] = None) -> bool:
        self._thread.join(timeout)
        return self.done

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    s = int(a.sum()) + int(b.sum())
    return 2.0 * int((a & b).sum()) / s if s else 1.0


def box_of(mask: np.ndarray) -> tuple[int, int, int, int, int, int]:
    """The inclusive (i0, j0, k0, i1, j1, k1) box of a [k, j, i] mask's nonzero voxels."""
    k, j, i = np.nonzero(mask)
    if not len(i):
        raise VoxPromptError(106, "the mask is empty: no box")
    return int(i.min()), int(j.min()), int(k.min()), int(i.max()), int(j.max()), int(k.max())
