#!/usr/bin/env python3
"""Writes tests/fixtures/models/tiny-mosaic/model.onnx: a `mosaic` stand-in with SFR's prompt-free contract
(METHODS §4.3, DESIGN.md §4). It tests the contract and the mosaic geometry, never segmentation: SFR released
no weights.

    model:  image [1, 3, 256, 256] -> logits [1, 2, 256, 256]
            m = mean of the 3 channels;  logits[:, 0] = 0 (background),  logits[:, 1] = 4 * (m - 0.5)

so after the softmax a pixel is foreground where its z-score exceeds 0.5, with probability sigmoid(4 (z - 0.5)):
tests/models.rs recomputes that from the volume alone, which checks the z-score, that every channel was filled,
and that each slice went to its tile and came back to its own place. Needs only `onnx` (1.23.2 was used);
prints the file's sha256 for the manifest.
"""
import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/models/tiny-mosaic"
S = 256


def main() -> None:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, S, S])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, S, S])
    consts = [
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("four", TensorProto.FLOAT, [], [4.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["m", "half"], ["centred"]),
        helper.make_node("Mul", ["centred", "four"], ["fg"]),
        helper.make_node("Mul", ["m", "zero"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny_mosaic", [image], [logits], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="voxprompt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "model.onnx"
    onnx.save(model, path)
    print("model.onnx", hashlib.sha256(path.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
