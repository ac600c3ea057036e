"""What one press of Apply does, without Slicer: settings into an engine, the host's inputs into objects, a
memory check before anything is allocated, the objects' prompts into the volume's session, and the result back
as one mask per segment, named after its prompt.

The Slicer Logic (VoxPrompt.py) only turns MRML nodes into the plain values taken here (arrays indexed
[k, j, i], the IJK->RAS matrix, ROI bounds and points in RAS) and writes `Result.segments` into a segmentation
node, so pytest runs everything else on real volumes (plugin/tests/test_workflow.py).
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .binding import TOO_LARGE, VoxPromptError
from .logic import BackgroundRun, Engine, PromptSync, Session, open_engine, segment_identity

# A session keeps about ten bytes per voxel next to the host's array (vxp_options_set_max_voxels in
# include/voxprompt.h); the run's outputs, allocated here, add one byte (the label mask) and four more with the
# confidence map.
SESSION_BYTES_PER_VOXEL = 10
MASK_BYTES_PER_VOXEL = 1
CONFIDENCE_BYTES_PER_VOXEL = 4
# The library's default embedding cache budget (vxp_options_set_cache_budget); always passed explicitly so that
# the estimate and the engine agree.
DEFAULT_CACHE_MB = 128
MEMINFO = "/proc/meminfo"
# The label mask is uint8: label 0 is the background.
MAX_OBJECTS = 255
DEFAULT_NAME = "VoxPrompt"


@dataclass(frozen=True)
class Settings:
    """The module's settings (Slicer keeps them in QSettings, across scenes). Frozen, so one engine is built per
    distinct value and kept."""

    library: Optional[str] = None           # libvoxprompt.so, or a folder holding it
    model_dir: Optional[str] = None         # the LiteMedSAM package; default: the one shipped with the library
    providers: str = "cpu"                  # comma-separated, by preference: "openvino,cpu"
    precision: str = "exact"                # or "fast"
    openvino_library: Optional[str] = None  # libopenvino_c.so.*; default VXP_OPENVINO_LIB, else beside the library
    threads: int = 0                        # 0: all cores
    cache_mb: int = DEFAULT_CACHE_MB        # embedding cache of each session, MiB

    def engine_options(self) -> dict:
        """Keyword arguments of `Engine` (and `open_engine`) for these settings."""
        return {"library_path": self.library or None, "model_dir": self.model_dir or None,
                "providers": self.providers.strip() or "cpu", "precision": self.precision,
                "openvino_library": self.openvino_library or None, "threads": int(self.threads),
                "cache_mb": int(self.cache_mb)}


# ---- memory ----

class NotEnoughMemory(VoxPromptError):
    """A run refused before it started: `need` and `available` in bytes."""

    def __init__(self, need: int, available: int, what: str):
        self.need, self.available = need, available
        super().__init__(TOO_LARGE, f"{what} needs about {_mib(need)} of memory and {_mib(available)} is "
                                    "available: close other volumes or programs, crop the volume (Crop Volume "
                                    "module) or lower the embedding cache in the settings")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 10 * 2**30 else f"{n / 2**30:,.1f} GiB"


def run_memory(shape_kji: Sequence[int], cache_bytes: int, confidence: bool, new_session: bool) -> int:
    """Bytes a run on a volume of this shape allocates beyond the host's array: the session (ten bytes a voxel
    and its embedding cache) when there is none yet for it, and the outputs."""
    voxels = int(np.prod([int(n) for n in shape_kji]))
    need = voxels * (MASK_BYTES_PER_VOXEL + (CONFIDENCE_BYTES_PER_VOXEL if confidence else 0))
    if new_session:
        need += voxels * SESSION_BYTES_PER_VOXEL + int(cache_bytes)
    return need


def available_memory(meminfo: str | Path = MEMINFO) -> Optional[int]:
    """MemAvailable in bytes (what can be allocated without swapping), or None where there is no such file."""
    try:
        text = Path(meminfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemAvailable:"):
            value, *unit = line.split(":", 1)[1].split()
            return int(value) * (1024 if unit and unit[0].lower() == "kb" else 1)
    return None


def check_memory(shape_kji: Sequence[int], cache_bytes: int, confidence: bool, new_session: bool,
                 meminfo: str | Path = MEMINFO) -> int:
    """Raises NotEnoughMemory when the run would need more than is available; returns the need."""
    need = run_memory(shape_kji, cache_bytes, confidence, new_session)
    available = available_memory(meminfo)
    if available is not None and need > available:
        dims = " x ".join(str(n) for n in reversed(tuple(shape_kji)))
        raise NotEnoughMemory(need, available, f"Segmenting this {dims} volume")
    return need


# ---- objects ----

@dataclass
class ObjectPrompt:
    """One object the host asks for: `key` names it across Applies (the ROI node's id, the phrase), so the
    same key refines the same object and segment."""

    key: str
    name: str = DEFAULT_NAME                      # the segment's name when no text names it
    box_ras: Optional[tuple] = None               # (r0, a0, s0, r1, a1, s1)
    points_ras: tuple = ()                        # (r, a, s, positive) each
    text: Optional[str] = None


def split_phrases(text: Optional[str]) -> list[str]:
    """The objects a text field names, one per ';' or line ("liver; spleen"); commas stay inside a phrase
    ("tumour of the right kidney, upper pole")."""
    out = []
    for part in (text or "").replace("\n", ";").split(";"):
        phrase = " ".join(part.split())
        if phrase and phrase.lower() not in (p.lower() for p in out):
            out.append(phrase)
    return out


def objects_from_inputs(rois: Sequence[tuple] = (), points_ras: Sequence[tuple] = (),
                        text: Optional[str] = None) -> list[ObjectPrompt]:
    """The objects of one Apply. `rois` holds (key, name, box_ras) per markups ROI. The phrases name the boxes
    in order (the box says where the object is, its phrase what it is, and the segment takes the concept's
    name); phrases beyond the boxes are objects found by text alone. The points refine the first object, or
    make one of their own when there is nothing else."""
    phrases = split_phrases(text)
    objects = [ObjectPrompt(key=f"roi:{key}", name=name or DEFAULT_NAME, box_ras=tuple(box))
               for key, name, box in rois]
    for o, phrase in zip(objects, phrases):
        o.text = phrase
    objects += [ObjectPrompt(key=f"text:{p.lower()}", name=p, text=p) for p in phrases[len(objects):]]
    points = tuple(points_ras)
    if points:
        if objects:
            objects[0].points_ras = points
        else:
            objects.append(ObjectPrompt(key="points", name=DEFAULT_NAME, points_ras=points))
    return objects


@dataclass
class SegmentPlan:
    """Where one object's result goes: its label in the session and the segment (by id, kept across runs)."""

    key: str
    label: int
    segment_id: str
    name: str
    terminology: Optional[str] = None            # Slicer's terminology entry, SNOMED CT codes
    color: Optional[tuple] = None                # 0..1 RGB
    sync: PromptSync = field(default=None, repr=False)


@dataclass
class SegmentResult:
    segment_id: str
    name: str
    label: int
    mask: np.ndarray                              # uint8 0/1, [k, j, i] on the input grid
    voxels: int
    confidence: Optional[float]                   # the library's per-object confidence (vxp_session_report)
    terminology: Optional[str] = None
    color: Optional[tuple] = None


@dataclass
class Result:
    segments: list                                # SegmentResult per object, in label order
    removed: list                                 # segment ids whose object is gone: the host deletes them
    confidence: Optional[np.ndarray]              # float32 [k, j, i], when asked for
    provider: str
    stats: dict


# The session's undo history keeps this many runs (SessionOptions::history in src/session/mod.rs).
HISTORY = 64


class _Volume:
    """One volume's session and its objects, with the object table of each of the session's checkpoints, kept
    in step with its undo history (src/session/history.rs): a run that changes a mask makes a checkpoint and
    drops what was undone; any prompt or setting sent since then is a pending edit, which undo drops first."""

    def __init__(self, session: Session, version):
        self.session, self.version = session, version
        self.plans: dict[str, SegmentPlan] = {}
        self.removed: list[str] = []
        self.checkpoints: list[dict] = []
        self.pos = 0
        self.dirty = False
        self.next_id = 1

    def snapshot(self) -> dict:
        return copy.deepcopy(self.plans)

    def checkpoint(self) -> None:
        del self.checkpoints[self.pos + 1 if self.checkpoints else 0:]
        self.checkpoints.append(self.snapshot())
        del self.checkpoints[:max(0, len(self.checkpoints) - HISTORY)]
        self.pos, self.dirty = len(self.checkpoints) - 1, False

    def back(self) -> dict:
        if not self.dirty:
            self.pos -= 1
        self.dirty = False
        return copy.deepcopy(self.checkpoints[self.pos])

    def forward(self) -> dict:
        self.pos += 1
        return copy.deepcopy(self.checkpoints[self.pos])


class Run:
    """A started run: poll `fraction` and `done`, `cancel()` from any thread, then `SegmentationLogic.finish`."""

    def __init__(self, volume_key, state: _Volume, background: BackgroundRun, need: int):
        self.volume_key, self.state, self.background, self.need = volume_key, state, background, need

    @property
    def fraction(self) -> float:
        return self.background.fraction

    @property
    def done(self) -> bool:
        return self.background.done

    @property
    def cancelled(self) -> bool:
        return self.background.cancelled

    def cancel(self) -> None:
        self.background.cancel()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.background.wait(timeout)


class SegmentationLogic:
    """The module's logic over plain arrays: one engine per settings (process-wide, Slicer may reload the
    module), one session per volume (kept while the volume's voxels are unchanged, so a refine re-uses its
    embeddings), several objects per run."""

    _engines: dict = {}
    _lock = threading.Lock()

    def __init__(self, settings: Settings = Settings(), meminfo: str | Path = MEMINFO):
        self.settings, self.meminfo = settings, meminfo
        self._volumes: dict = {}

    def engine(self) -> Engine:
        with SegmentationLogic._lock:
            if self.settings not in SegmentationLogic._engines:
                SegmentationLogic._engines[self.settings] = open_engine(**self.settings.engine_options())
            return SegmentationLogic._engines[self.settings]

    def set_settings(self, settings: Settings) -> None:
        """New settings apply from the next run; sessions of another engine are closed (a session keeps its
        engine's provider and cache budget)."""
        if settings != self.settings:
            self.forget()
            self.settings = settings

    def forget(self, volume_key=None) -> None:
        """Closes the session of one volume (all when None), e.g. when the scene closes."""
        keys = list(self._volumes) if volume_key is None else [volume_key]
        for k in keys:
            state = self._volumes.pop(k, None)
            if state is not None:
                state.session.close()

    def segments(self, volume_key) -> list[SegmentPlan]:
        state = self._volumes.get(volume_key)
        return sorted(state.plans.values(), key=lambda p: p.label) if state else []

    def start(self, volume_key, array_kji: np.ndarray, ijk_to_ras, objects: Sequence[ObjectPrompt], *,
              version=None, spacing=None, intensity: str = "auto", window=None, policy: str = "reseed",
              confidence: bool = False, restart: bool = False) -> Run:
        """Sends what changed in `objects` since the last run on this volume and starts a run on a worker
        thread. `version` tells the host's voxels apart (Slicer's image MTime): another one starts a new
        session. Objects no longer asked for are removed, their segments listed in `Result.removed`. With
        `restart` (the module's Apply, as opposed to Refine) every object is computed anew from its current
        prompts, into the same segments, from the embeddings already cached. Raises
        NotEnoughMemory before anything is allocated, VoxPromptError for a prompt the library refuses."""
        if not objects:
            raise VoxPromptError(106, "no prompt: give a box, a text or at least one positive point")
        if len(objects) > MAX_OBJECTS:
            raise VoxPromptError(106, f"{len(objects)} objects in one run: at most {MAX_OBJECTS}")
        state = self._volumes.get(volume_key)
        fresh = state is None or state.version != version
        need = check_memory(array_kji.shape, int(self.settings.cache_mb) << 20, confidence, fresh, self.meminfo)
        engine = self.engine()
        if fresh:
            self.forget(volume_key)
            state = _Volume(engine.session(array_kji, ijk_to_ras, spacing, intensity, window), version)
            self._volumes[volume_key] = state
        session = state.session
        state.dirty = True  # set_policy is an edit to the session's history, whatever else changes
        # Each step leaves the object table as the session's prompts are, so after an error here (a phrase
        # the library does not know, a box outside the volume) the next Apply sends only what is missing.
        session.set_policy(policy)
        wanted = {o.key for o in objects}
        for key in [k for k in state.plans if k not in wanted]:
            plan = state.plans.pop(key)
            session.remove_object(plan.label)
            state.removed.append(plan.segment_id)
        if restart:
            for plan in state.plans.values():
                session.remove_object(plan.label)
                plan.sync = PromptSync(plan.label)
        for o in objects:
            self._apply(engine, state, o)
        return Run(volume_key, state, BackgroundRun(session, confidence), need)

    @staticmethod
    def _apply(engine: Engine, state: _Volume, o: ObjectPrompt) -> None:
        plan = state.plans.get(o.key)
        text = (o.text or "").strip() or None
        if plan is None:
            used = {p.label for p in state.plans.values()}
            label = next(n for n in range(1, MAX_OBJECTS + 1) if n not in used)
            plan = SegmentPlan(o.key, label, f"VoxPrompt_{state.next_id}", o.name, sync=PromptSync(label))
            state.next_id += 1
        # The segment is named after the concept the text names, with its SNOMED CT codes where known; a
        # box or points alone keep the host's name.
        if text is not None:
            plan.name, plan.terminology, plan.color = segment_identity(engine.lookup(text))
        else:
            plan.name, plan.terminology, plan.color = o.name, None, None
        plan.sync.apply(state.session, o.box_ras, o.points_ras, text)
        state.plans[o.key] = plan

    def finish(self, run: Run) -> Result:
        """The finished run's segments; raises its error (VoxPromptError CANCELLED after a cancel). After an
        error the session keeps its previous result and the prompts sent, so the next Apply goes on from
        there."""
        state = run.state
        value = run.background.result()
        result = self._result(state, value)
        # The library checkpoints a run that computed something; one that only removed objects or found
        # nothing new leaves its edits pending.
        if result.stats["objects_full"] + result.stats["objects_refined"] > 0:
            state.checkpoint()
        return result

    def _result(self, state: _Volume, value) -> Result:
        mask, conf = value if isinstance(value, tuple) else (value, None)
        report = {o["label"]: o for o in state.session.report()}
        segments = []
        for plan in sorted(state.plans.values(), key=lambda p: p.label):
            m = (mask == plan.label).astype(np.uint8)
            segments.append(SegmentResult(plan.segment_id, plan.name, plan.label, m, int(m.sum()),
                                          report.get(plan.label, {}).get("confidence"), plan.terminology,
                                          plan.color))
        removed, state.removed = state.removed, []
        return Result(segments, removed, conf, state.session.engine.provider, state.session.stats())

    def undo(self, volume_key, confidence: bool = False) -> Result:
        """The session's undo: the objects and masks of its last run when prompts were sent since, else of the
        run before it; written without inference. VoxPromptError NOTHING_TO_UNDO before the second run (the
        Segment Editor's own undo goes back further)."""
        return self._step(volume_key, confidence, back=True)

    def redo(self, volume_key, confidence: bool = False) -> Result:
        return self._step(volume_key, confidence, back=False)

    def _step(self, volume_key, confidence: bool, back: bool) -> Result:
        state = self._volumes.get(volume_key)
        if state is None:
            raise VoxPromptError(109, "nothing to undo" if back else "nothing to redo")
        (state.session.undo if back else state.session.redo)()  # raises NOTHING_TO_UNDO as the library sees it
        plans = state.back() if back else state.forward()
        gone = {p.segment_id for p in state.plans.values()} - {p.segment_id for p in plans.values()}
        state.removed.extend(sorted(gone))
        state.plans = plans
        return self._result(state, state.session.run(confidence=confidence))


def confidence_colors(n: int = 256) -> np.ndarray:
    """The confidence map's colour table, RGBA in 0..1 for n steps over [0, 1]: transparent where the model has
    no opinion (below 0.05), then red (unsure) through yellow to green (sure), so an overlay shows where to look
    again."""
    t = np.linspace(0.0, 1.0, n)
    r = np.clip(2.0 * (1.0 - t), 0.0, 1.0)
    g = np.clip(2.0 * t, 0.0, 1.0)
    b = np.zeros(n)
    a = np.where(t < 0.05, 0.0, 1.0)
    return np.stack([r, g, b, a], axis=1)


__all__ = ["Settings", "NotEnoughMemory", "run_memory", "available_memory", "check_memory", "ObjectPrompt",
           "split_phrases", "objects_from_inputs", "SegmentPlan", "SegmentResult", "Result", "Run",
           "SegmentationLogic", "confidence_colors"]
