"""Run by scripts/test-wheel in a fresh virtual environment holding the installed voxprompt wheel, from a clean
folder with no VXP_* variables: the library, ONNX Runtime and the models come from the installed package.

    wheel_check.py CT SEG
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

assert not [k for k in os.environ if k.startswith("VXP_")], "the check must run without VXP_* variables"
import voxprompt  # noqa: E402
from voxprompt import Engine, dice, find_library  # noqa: E402
from voxprompt.distributed import Case, segment_case, segment_cases  # noqa: E402

def main() -> None:
    installed = Path(voxprompt.__file__).resolve().parent
    assert "site-packages" in str(installed), installed
    assert find_library().is_relative_to(installed), f"the library was found at {find_library()}"


    def kji(path):
        img = nib.load(path)
        return np.asanyarray(img.dataobj).transpose(2, 1, 0), img.affine


    vol, affine = kji(sys.argv[1])
    truth = (kji(sys.argv[2])[0] == 5).astype(np.uint8)
    ks, js, is_ = np.nonzero(truth)
    box = (int(is_.min()), int(js.min()), int(ks.min()), int(is_.max()), int(js.max()), int(ks.max()))

    engine = Engine(threads=2)
    assert Path(engine.model_dir).resolve().is_relative_to(installed), engine.model_dir
    # numpy in (a [k, j, i] view of nibabel's array, not a copy) and out.
    cases = [Case(vol, affine, boxes=[box], intensity="ct", policy="reference"),
             Case(vol, affine, texts=["liver"], intensity="ct", policy="reference")]
    serial = [segment_case(c) for c in cases]
    for how, m in zip(("box", "text"), serial):
        assert m.dtype == np.uint8 and m.shape == vol.shape
        d = dice(m, truth)
        print(f"wheel: liver by {how}: Dice {d:.3f}")
        assert d >= 0.85, (how, d)

    # The same cases on a local Dask cluster: two worker processes on loopback, one engine each.
    from dask.distributed import Client, LocalCluster  # noqa: E402

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        masks = segment_cases(client, cases + cases, threads=1)
        workers = client.run(lambda: len(__import__("voxprompt.distributed").distributed._ENGINES))
    for n, m in enumerate(masks):
        assert np.array_equal(m, serial[n % 2]), f"case {n}: the Dask mask differs from the serial one"
    print(f"wheel: 4 cases on 2 Dask workers ({workers}), masks identical to the serial run")
    assert sum(workers.values()) >= 1 and all(v <= 1 for v in workers.values()), workers
    print("wheel: ok")


if __name__ == "__main__":  # Dask's worker processes import this file again
    main()
