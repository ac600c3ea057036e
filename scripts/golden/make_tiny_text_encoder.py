#!/usr/bin/env python3
"""Writes tests/fixtures/models/tiny-text/encoder.onnx: a 4-wide stand-in for a text encoder (kind text_encoder)
that tests the package contract, never language understanding. Needs only `onnx` (1.23.2 was used).

    last_hidden_state[0, t, :] = input_ids[0, t] * W + attention_mask[0, t] * B + token_type_ids[0, t] * C

with W = [1, 2, -1, 0.5], B = [0, 0, 0, 1], C = [0, 0, 5, 0], so the pooled embedding of a phrase depends on
every id and the engine must feed the mask and zero token types (tests/models.rs checks the exact values).
Prints the file's sha256 for the manifest.
"""
import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/models/tiny-text/encoder.onnx"


def main() -> None:
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "T"])
    types = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, [1, "T"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "T", 4])
    consts = [
        helper.make_tensor("W", TensorProto.FLOAT, [1, 1, 4], [1.0, 2.0, -1.0, 0.5]),
        helper.make_tensor("B", TensorProto.FLOAT, [1, 1, 4], [0.0, 0.0, 0.0, 1.0]),
        helper.make_tensor("C", TensorProto.FLOAT, [1, 1, 4], [0.0, 0.0, 5.0, 0.0]),
        helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
    ]
    nodes = []
    for name, weight in (("input_ids", "W"), ("attention_mask", "B"), ("token_type_ids", "C")):
        nodes += [
            helper.make_node("Cast", [name], [f"{name}_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", [f"{name}_f", "axis2"], [f"{name}_u"]),
            helper.make_node("Mul", [f"{name}_u", weight], [f"{name}_w"]),
        ]
    nodes += [
        helper.make_node("Add", ["input_ids_w", "attention_mask_w"], ["sum0"]),
        helper.make_node("Add", ["sum0", "token_type_ids_w"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(nodes, "tiny_text_encoder", [ids, mask, types], [out], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="voxprompt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_bytes(model.SerializeToString())
    print(OUT, hashlib.sha256(OUT.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
