"""Batches on a Dask cluster (or any executor with `submit`): one engine per worker process, cases as tasks.

    from dask.distributed import Client, LocalCluster
    from voxprompt.distributed import Case, segment_cases

    with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
        masks = segment_cases(client, [Case(array_kji, affine, boxes=[box]), ...], threads=2)

Each worker process builds its engine on its first case and keeps it (the model is loaded once per process,
not per task); a case runs in one session there, so the masks are those of a serial run. Dask schedules and
retries; nothing here is a scheduler of its own.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

_ENGINES: dict = {}
_LOCK = threading.Lock()


@dataclass
class Case:
    """One volume and its objects: boxes (i0, j0, k0, i1, j1, k1) and phrases, one object each, labelled 1, 2, …
    in that order (boxes first)."""
    array_kji: np.ndarray
    ijk_to_ras: Optional[np.ndarray] = None
    boxes: Sequence[Sequence[int]] = ()
    texts: Sequence[str] = ()
    intensity: str = "auto"
    policy: Optional[str] = None
    engine: dict = field(default_factory=dict)


def worker_engine(**options):
    """This process's engine for `options` (Engine's keyword arguments), built on first use and kept."""
    from .logic import Engine

    key = tuple(sorted((k, str(v)) for k, v in options.items()))
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = Engine(**options)
        return _ENGINES[key]


def segment_case(case: Case) -> np.ndarray:
    """The label mask of one case ([k, j, i] uint8), on this process's engine."""
    engine = worker_engine(**case.engine)
    with engine.session(case.array_kji, case.ijk_to_ras, intensity=case.intensity) as s:
        if case.policy:
            s.set_policy(case.policy)
        for n, b in enumerate(case.boxes):
            s.add_box_ijk(n + 1, b)
        for n, t in enumerate(case.texts):
            s.add_text(len(case.boxes) + n + 1, t)
        return s.run()


def segment_cases(executor, cases: Sequence[Case], **engine_options) -> list:
    """Submits every case to `executor` (a dask.distributed Client, or a concurrent.futures executor) and
    returns the masks in the cases' order. `engine_options` go to each worker's engine."""
    futures = []
    for c in cases:
        if engine_options:
            c = Case(**{**c.__dict__, "engine": {**engine_options, **c.engine}})
        futures.append(executor.submit(segment_case, c, pure=False) if _is_dask(executor)
                       else executor.submit(segment_case, c))
    return [f.result() for f in futures]


def _is_dask(executor) -> bool:
    return type(executor).__module__.startswith("distributed")
