"""Tiny random ONNX models with the real input/output signatures of the pose models:

* ``yolox_l.onnx`` (the DWPose/YOLOX-L export): input ``images`` float32 [1, 3, 640, 640] (pixel
  values, letterboxed), output ``output`` [1, 8400, 85] = per anchor (cx, cy, w, h) grid offsets
  and log-sizes, objectness, 80 class probabilities, over the stride-8/16/32 grids (6400 + 1600 +
  400 anchors). Here: one strided convolution per stride with small random weights, a sigmoid, and
  raw box offsets/log-sizes (~320 px boxes), sigmoid
  probabilities, and a bias that makes "person" confident or not (``person_bias``).
* ``dw-ll_ucoco_384.onnx`` (DWPose-L, 384x288): input ``input`` float32 [1, 3, 384, 288], outputs
  ``simcc_x`` [1, 133, 576] and ``simcc_y`` [1, 133, 768] (SimCC, split ratio 2). Here: global
  average pooling, a small random projection and a random peak per keypoint so that every
  keypoint scores above the visibility threshold.
Both take ``batch=None`` for a dynamic batch axis ("N"): whether the real exports have one is not
known here (no weights on the test machines), so the estimator is tested with both.
Built with the ``onnx`` package in the test itself; weights from a seeded RandomState."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def build_yolox(path, person_bias: float = 0.0, seed: int = 0, batch: int | None = 1):
    """``batch``: the input's batch size, None for a dynamic batch axis ("N")."""
    n = batch or "N"
    rs = np.random.RandomState(seed)
    nodes, inits, parts = [], [], []
    for stride in (8, 16, 32):
        w = rs.normal(0, 1e-5, (85, 3, stride, stride))
        b = np.zeros(85)
        b[2] = b[3] = np.log(320.0 / stride)  # boxes of ~320 px, so that NMS merges them
        b[4] = b[5] = person_bias  # objectness and class 0 (person) logits
        b[6:] = -6.0  # other classes unlikely
        inits += [_init(f"w{stride}", w), _init(f"b{stride}", b)]
        nodes.append(helper.make_node("Conv", ["images", f"w{stride}", f"b{stride}"], [f"c{stride}"], kernel_shape=[stride, stride], strides=[stride, stride]))
        nodes.append(helper.make_node("Reshape", [f"c{stride}", "shape3"], [f"r{stride}"]))
        parts.append(f"r{stride}")
    inits.append(numpy_helper.from_array(np.array([batch or 0, 85, -1], dtype=np.int64), "shape3"))  # 0: keep the batch
    nodes += [
        helper.make_node("Concat", parts, ["cat"], axis=2),
        helper.make_node("Transpose", ["cat"], ["tr"], perm=[0, 2, 1]),
        helper.make_node("Slice", ["tr", "s0", "s4", "ax2"], ["box"]),
        helper.make_node("Slice", ["tr", "s4", "s85", "ax2"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["probs"]),
        helper.make_node("Concat", ["box", "probs"], ["output"], axis=2),
    ]
    for name, v in (("s0", 0), ("s4", 4), ("s85", 85), ("ax2", 2)):
        inits.append(numpy_helper.from_array(np.array([v], dtype=np.int64), name))
    graph = helper.make_graph(
        nodes, "tiny_yolox", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [n, 3, 640, 640])], [helper.make_tensor_value_info("output", TensorProto.FLOAT, [n, 8400, 85])], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_dwpose(path, seed: int = 1, batch: int | None = 1):
    """``batch``: the input's batch size, None for a dynamic batch axis ("N")."""
    n = batch or "N"
    rs = np.random.RandomState(seed)
    inits, nodes = [], [helper.make_node("GlobalAveragePool", ["input"], ["gap"]), helper.make_node("Flatten", ["gap"], ["flat"])]
    for axis, bins in (("x", 576), ("y", 768)):
        w = rs.normal(0, 1e-3, (3, 133 * bins))
        peak = np.zeros((133, bins))
        # peaks well inside the crop so that keypoints land inside the person box
        peak[np.arange(133), rs.randint(bins // 5, 4 * bins // 5, 133)] = 0.9
        inits += [_init(f"w{axis}", w), _init(f"p{axis}", peak.reshape(-1)), numpy_helper.from_array(np.array([batch or -1, 133, bins], dtype=np.int64), f"s{axis}")]
        nodes += [
            helper.make_node("MatMul", ["flat", f"w{axis}"], [f"m{axis}"]),
            helper.make_node("Add", [f"m{axis}", f"p{axis}"], [f"a{axis}"]),
            helper.make_node("Reshape", [f"a{axis}", f"s{axis}"], [f"simcc_{axis}"]),
        ]
    graph = helper.make_graph(
        nodes,
        "tiny_dwpose",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 3, 384, 288])],
        [helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [n, 133, 576]), helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [n, 133, 768])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


if __name__ == "__main__":
    # python onnx_fixtures.py DIR: write tiny yolox_l.onnx + dw-ll_ucoco_384.onnx (e.g. into a test
    # ComfyUI's models/detection) for end-to-end runs that need the pose models' real signatures.
    import sys
    from pathlib import Path

    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    build_yolox(out / "yolox_l.onnx", person_bias=8.0)
    build_dwpose(out / "dw-ll_ucoco_384.onnx")
    print(out / "yolox_l.onnx")
    print(out / "dw-ll_ucoco_384.onnx")
