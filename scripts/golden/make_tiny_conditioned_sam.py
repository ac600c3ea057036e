#!/usr/bin/env python3
"""Writes tests/fixtures/models/tiny-conditioned/{encoder,decoder}.onnx: a `sam2d` stand-in whose decoder takes a
text embedding and an anatomy mask (a package's [conditioning], DESIGN.md §4). It tests the contract, never
segmentation: no trained text-conditioned medical SAM weights exist in any registry.

    encoder:  image [1, 3, 64, 64] -> image_embeddings [1, 4, 16, 16]   (a 4x4 average per channel)
    decoder:  low_res_logits[b]  = 20 * anatomy_mask[b] - 10            (inside exactly where the region is)
              iou_predictions[b] = 0.9 + 0.05 * tanh(text_embedding[b] . w),  w[i] = ((i mod 7) - 3) / 8

so the mask shows that the engine fed the object's region, in the frame, and the IoU shows which 384-wide
embedding it fed (tests/models.rs recomputes both). The prompt encoder's usual inputs are taken and not used.
Needs only `onnx` (1.23.2 was used); prints each file's sha256 for the manifest.
"""
import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper

OUT = Path(__file__).resolve().parents[2] / "tests/fixtures/models/tiny-conditioned"
S, E, C, D = 64, 16, 4, 384


def save(graph: onnx.GraphProto, name: str) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="voxprompt-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = OUT / name
    onnx.save(model, path)
    print(name, hashlib.sha256(path.read_bytes()).hexdigest())


def encoder() -> onnx.GraphProto:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, S, S])
    emb = helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, C, E, E])
    k = S // E
    weight = helper.make_tensor("W", TensorProto.FLOAT, [C, 3, k, k], [1.0 / (3 * k * k)] * (C * 3 * k * k))
    conv = helper.make_node("Conv", ["image", "W"], ["image_embeddings"], kernel_shape=[k, k], strides=[k, k])
    return helper.make_graph([conv], "tiny_conditioned_encoder", [image], [emb], [weight])


def decoder() -> onnx.GraphProto:
    ins = [
        helper.make_tensor_value_info("image_embeddings", TensorProto.FLOAT, [1, C, E, E]),
        helper.make_tensor_value_info("point_coords", TensorProto.FLOAT, ["B", "N", 2]),
        helper.make_tensor_value_info("point_labels", TensorProto.FLOAT, ["B", "N"]),
        helper.make_tensor_value_info("mask_input", TensorProto.FLOAT, ["B", 1, S, S]),
        helper.make_tensor_value_info("has_mask_input", TensorProto.FLOAT, ["B"]),
        helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["B", D]),
        helper.make_tensor_value_info("anatomy_mask", TensorProto.FLOAT, ["B", 1, S, S]),
    ]
    outs = [
        helper.make_tensor_value_info("low_res_logits", TensorProto.FLOAT, ["B", 1, S, S]),
        helper.make_tensor_value_info("iou_predictions", TensorProto.FLOAT, ["B", 1]),
    ]
    consts = [
        helper.make_tensor("twenty", TensorProto.FLOAT, [], [20.0]),
        helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]),
        helper.make_tensor("w", TensorProto.FLOAT, [D, 1], [((i % 7) - 3) / 8.0 for i in range(D)]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [0.05]),
        helper.make_tensor("base", TensorProto.FLOAT, [], [0.9]),
    ]
    nodes = [
        helper.make_node("Mul", ["anatomy_mask", "twenty"], ["a20"]),
        helper.make_node("Sub", ["a20", "ten"], ["low_res_logits"]),
        helper.make_node("MatMul", ["text_embedding", "w"], ["tw"]),
        helper.make_node("Tanh", ["tw"], ["th"]),
        helper.make_node("Mul", ["th", "scale"], ["ths"]),
        helper.make_node("Add", ["ths", "base"], ["iou_predictions"]),
    ]
    return helper.make_graph(nodes, "tiny_conditioned_decoder", ins, outs, consts)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    save(encoder(), "encoder.onnx")
    save(decoder(), "decoder.onnx")


if __name__ == "__main__":
    main()
