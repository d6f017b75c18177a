"""Pose extraction end to end on CPU through rtmlib + onnxruntime with tiny random ONNX models that
have the real signatures (tests/onnx_fixtures.py): shapes, frame counts, the detection and the
no-detection paths, the OpenPose mapping, the nodes, and the missing-model error. Not accuracy."""

import numpy as np
import pytest
import torch

from pack_loader import pack_module

onnx = pytest.importorskip("onnx", reason="the onnx package builds the tiny test models (requirements-dev.txt)")
pytest.importorskip("rtmlib", reason="rtmlib runs DWPose (requirements-nodeps.txt, installed with --no-deps)")
import onnx_fixtures  # noqa: E402

pe = pack_module("pose_extract")
pa = pack_module("pose_align")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("detection")
    onnx_fixtures.build_yolox(d / "yolox_l.onnx", person_bias=8.0)
    onnx_fixtures.build_dwpose(d / "dw-ll_ucoco_384.onnx")
    onnx_fixtures.build_yolox(d / "yolox_nobody.onnx", person_bias=-8.0)
    # person scores around the 0.5 threshold: some anchors pass, some do not, frame by frame
    onnx_fixtures.build_yolox(d / "yolox_edge.onnx", person_bias=0.88, seed=3)
    # the same networks with a dynamic batch axis
    onnx_fixtures.build_yolox(d / "yolox_l_dyn.onnx", person_bias=8.0, batch=None)
    onnx_fixtures.build_yolox(d / "yolox_edge_dyn.onnx", person_bias=0.88, seed=3, batch=None)
    onnx_fixtures.build_dwpose(d / "dw-ll_ucoco_384_dyn.onnx", batch=None)
    return d


def frames(n, h=72, w=96, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_detect_frames_shapes_and_counts(models):
    est = pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx", device="auto")
    assert est.device == "cpu"  # no CUDA provider on this machine
    assert est.detector_session.get_providers() == ["CPUExecutionProvider"]
    assert est.pose_session.get_providers() == ["CPUExecutionProvider"]
    seen = []
    seq = est.detect_frames(frames(3), progress=lambda d, n: seen.append((d, n)))
    assert len(seq) == 3 and (seq.width, seq.height) == (96, 72)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for p in seq.frames:
        assert p.body.shape == (18, 2) and p.hands.shape == (2, 21, 2) and p.face.shape == (68, 2)
        # the tiny pose model scores every keypoint ~0.9: all visible, neck included
        assert p.body_valid.all() and p.hands_valid.all() and p.face_valid.all()
        assert np.isfinite(p.body).all()
    # float IMAGE batches (ComfyUI) are accepted too
    seq2 = est.detect_frames(frames(2).astype(np.float32) / 255.0)
    assert len(seq2) == 2


def rtmlib_tools(det, pose):
    """rtmlib's own YOLOX + RTMPose on the files, set up as the pack did before it ran the
    networks itself (the reference for our batched pipeline)."""
    from rtmlib import RTMPose, YOLOX

    detector = YOLOX(str(det), model_input_size=pe.DETECT_INPUT_SIZE, det_mode="multiclass", nms_thr=pe.NMS_IOU, score_thr=pe.PERSON_SCORE, backend="onnxruntime", device="cpu")
    return detector, RTMPose(str(pose), model_input_size=pe.POSE_INPUT_SIZE, backend="onnxruntime", device="cpu")


def rtmlib_detect(tools, frame_rgb):
    """One frame through rtmlib frame by frame: multiclass NMS, the first person box (or the whole
    frame), the pose network on that crop, our OpenPose mapping."""
    detector, pose = tools
    img = pe.resize_for_detection(frame_rgb)
    boxes, classes = detector(img)
    boxes = np.asarray(boxes).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    people = boxes[classes == 0] if len(boxes) else boxes
    k, s = pose(img, bboxes=[people[0].tolist()] if len(people) else [])
    return pe.keypoints_to_pose(np.asarray(k)[0], np.asarray(s)[0], img.shape[1], img.shape[0])


def assert_same_pose(a, b, msg=""):
    for f in ("body", "body_valid", "hands", "hands_valid", "face", "face_valid"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{msg} {f}")


def test_no_person_uses_whole_frame(models):
    est = pe.DWPoseEstimator(models / "yolox_nobody.onnx", models / "dw-ll_ucoco_384.onnx", device="cpu")
    detector, rtm_pose = rtmlib_tools(models / "yolox_nobody.onnx", models / "dw-ll_ucoco_384.onnx")
    img = pe.resize_for_detection(frames(1)[0])
    boxes, classes = detector(img)
    assert len(np.asarray(boxes)) == 0
    p = est.detect(frames(1)[0])
    # the pose equals the pose model run on the whole (resized) frame as its box
    k, s = rtm_pose(img, bboxes=[[0, 0, img.shape[1], img.shape[0]]])
    whole = pe.keypoints_to_pose(k[0], s[0], img.shape[1], img.shape[0])
    np.testing.assert_allclose(p.body, whole.body)
    # while with a person box the crop differs
    est2 = pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx", device="cpu")
    assert not np.allclose(est2.detect(frames(1)[0]).body, p.body)


@pytest.mark.parametrize(
    "det,pose,size",
    [
        ("yolox_l.onnx", "dw-ll_ucoco_384.onnx", (72, 96)),  # fixed batch 1: one run per frame
        ("yolox_l_dyn.onnx", "dw-ll_ucoco_384_dyn.onnx", (72, 96)),  # dynamic: one run per chunk
        ("yolox_edge.onnx", "dw-ll_ucoco_384.onnx", (50, 37)),
        ("yolox_edge_dyn.onnx", "dw-ll_ucoco_384_dyn.onnx", (50, 37)),
        ("yolox_nobody.onnx", "dw-ll_ucoco_384_dyn.onnx", (64, 64)),
    ],
)
def test_batched_pipeline_equals_rtmlib_frame_by_frame(models, det, pose, size):
    """11 frames in chunks of 4 (two full, one partial) give, bit for bit, the poses rtmlib gives
    frame by frame: the same boxes (the top person of its NMS, ties in its order; the edge models
    keep some anchors and drop others), crops, network outputs and decoding. The networks run on
    whole chunks when the input's batch axis is dynamic, on single frames when it is fixed."""
    est = pe.DWPoseEstimator(models / det, models / pose, device="cpu")
    est.chunk = 4
    batches = {"det": [], "pose": []}
    for key, sess in (("det", est.detector_session), ("pose", est.pose_session)):
        real = sess.run

        def spy(names, feed, *a, _real=real, _key=key):
            batches[_key].append(len(next(iter(feed.values()))))
            return _real(names, feed, *a)

        sess.run = spy
    h, w = size
    fr = frames(11, h, w, seed=11)
    fr[3] = 0  # a black frame
    fr[4, : h // 2] = 255
    seen = []
    seq = est.detect_frames(fr, progress=lambda d, n: seen.append(d))
    assert seen == list(range(1, 12))
    tools = rtmlib_tools(models / det, models / pose)
    for i in range(11):
        assert_same_pose(seq.frames[i], rtmlib_detect(tools, fr[i]), f"frame {i}")
    assert batches["det"] == ([4, 4, 3] if "dyn" in det else [1] * 11)
    assert batches["pose"] == ([4, 4, 3] if "dyn" in pose else [1] * 11)
    assert set(est.timings) >= {"convert", "resize", "det_pre", "det_net", "det_post", "pose_pre", "pose_net", "pose_post", "to_pose", "wall"}


def test_top_person_box_equals_rtmlib_nms(models):
    """Our shortcut (the top class-0 score above the threshold) picks the box rtmlib's multiclass
    NMS puts first among the persons: tied scores, another class scoring higher on the same
    anchors, scores exactly at the threshold, no person at all."""
    detector, _ = rtmlib_tools(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx")
    rs = np.random.RandomState(5)
    for case in range(12):
        out = rs.normal(0, 2, (1, 8400, 85)).astype(np.float32)
        # objectness x class above 0.5 for about 1 % of the anchors per class (NMS stays quick)
        out[..., 4:] = rs.uniform(0, 0.75, (1, 8400, 81)).astype(np.float32)
        if case % 4 == 0:
            out[0, rs.randint(0, 8400, 30), 4:6] = 1.0  # 30 anchors tied at score 1
        if case % 4 == 1:
            # person scores at the threshold in float32, a few just above; class 1 higher there
            out[0, :200, 4:6] = np.float32(np.sqrt(0.5))
            out[0, 50:53, 4:6] = np.float32(0.7072)
            out[0, :7, 6] = 1.0
        if case % 4 == 2:
            out[0, :, 5] *= 0.4  # no person above 0.5; other classes are
        ratio = [0.625, 1.0, 0.3][case % 3]
        boxes, classes = detector.postprocess(out.copy(), ratio)
        people = np.asarray(boxes).reshape(-1, 4)[np.asarray(classes).reshape(-1) == 0] if len(boxes) else []
        ours = pe.top_person_box(out.copy(), ratio)
        if len(people) == 0:
            assert ours is None, case
        else:
            assert ours == people[0].tolist(), case


def test_cuda_session_keeps_cpu_fallback_and_reports_it(models, monkeypatch, caplog):
    """With the CUDA provider available the sessions ask for CUDA and then CPU (for nodes CUDA
    lacks); when onnxruntime could not start CUDA (its libraries missing) the estimator says so
    and reports the CPU."""
    import onnxruntime as ort

    asked = []
    running = ["CUDAExecutionProvider", "CPUExecutionProvider"]

    class Session:
        def __init__(self, path, sess_options=None, providers=None, **kw):
            asked.append(providers)
            self.opts = sess_options

        def get_providers(self):
            return list(running)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", Session)
    est = pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx", device="auto")
    assert est.device == "cuda"
    assert [p if isinstance(p, str) else p[0] for p in asked[0]] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert est.detector_session.opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    running[:] = ["CPUExecutionProvider"]
    with caplog.at_level("WARNING", logger="steadydancer"):
        est = pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx", device="cuda")
    assert est.device == "cpu" and "could not start its CUDA provider" in caplog.text
    assert pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx", device="cpu").device == "cpu"
    assert asked[-1] == ["CPUExecutionProvider"]


def test_resize_for_detection_matches_official_rule():
    """Short side to 1024, both sides rounded to multiples of 64: 72x96 -> k = 1024/72,
    96*k = 1365.3 -> 1344 (21*64), 72*k = 1024."""
    out = pe.resize_for_detection(np.zeros((72, 96, 3), np.uint8))
    assert out.shape == (1024, 1344, 3)


def test_openpose_mapping_and_thresholds():
    """COCO-WholeBody -> OpenPose-18: point i of COCO placed at x = i; neck = shoulders' midpoint."""
    k = np.stack([np.arange(133, dtype=float), np.full(133, 5.0)], axis=1)
    s = np.full(133, 0.9)
    s[16] = 0.35  # R ankle exactly at the threshold: body needs > 0.35
    s[100] = 0.35  # a left-hand point at the threshold: hands keep >= 0.35
    s[6] = 0.29  # right shoulder below 0.3: no neck
    p = pe.keypoints_to_pose(k, s, 200, 10)
    expected_x = [0, 5.5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    np.testing.assert_allclose(p.body[:, 0] * 200, expected_x)
    assert not p.body_valid[1]  # neck: a shoulder scored below 0.3
    assert not p.body_valid[2]  # R shoulder = COCO 6, scored 0.29
    assert not p.body_valid[10]  # R ankle = COCO 16, scored exactly 0.35
    assert p.body_valid[[0, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17]].all()
    assert p.hands[0, 0, 0] == pytest.approx(91 / 200) and p.hands[1, 0, 0] == pytest.approx(112 / 200)
    assert p.hands_valid[0, 100 - 91]
    assert p.face[0, 0] == pytest.approx(23 / 200) and p.face.shape == (68, 2)
    assert p.body[0, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="133"):
        pe.keypoints_to_pose(np.zeros((17, 2)), np.zeros(17), 10, 10)


def test_thresholds_compare_in_float64():
    """The network hands over float32 scores; upstream compares them in float64 (its Wholebody
    concatenates float64 ones). float32(0.35) = 0.3499999940 is then below 0.35: a hand or face
    point scored so is dropped (a float32 comparison would keep it), and float32(0.30) =
    0.3000000119 is above 0.3: both shoulders scored so still give a neck."""
    k = np.stack([np.arange(133, dtype=float), np.full(133, 5.0)], axis=1).astype(np.float32)
    s = np.full(133, 0.9, np.float32)
    s[[5, 6]] = np.float32(0.30)
    s[[100, 40]] = np.float32(0.35)
    p = pe.keypoints_to_pose(k, s, 200, 10)
    assert p.body_valid[1]  # neck
    assert not p.hands_valid[0, 100 - 91]  # left-hand point at float32 0.35
    assert not p.face_valid[40 - 23]  # face point at float32 0.35
    assert p.hands_valid[0, 0] and p.face_valid[0]


def test_missing_model_names_file_and_command(tmp_path, models):
    with pytest.raises(pe.MissingModelError, match=r"yolox_l\.onnx.*steadydancer models download"):
        pe.DWPoseEstimator(tmp_path / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx")
    with pytest.raises(pe.MissingModelError, match=r"dw-ll_ucoco_384\.onnx"):
        pe.DWPoseEstimator(models / "yolox_l.onnx", None)
    est = pe.DWPoseEstimator(models / "yolox_l.onnx", models / "dw-ll_ucoco_384.onnx")
    with pytest.raises(ValueError, match="RGB uint8"):
        est.detect(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="non-empty"):
        est.detect_frames(np.zeros((0, 8, 8, 3), np.uint8))


def test_nodes_end_to_end(models, comfyui_source, monkeypatch):
    """Loader -> PosePrep through ComfyUI's folder_paths: 1 reference + 6 driving frames,
    frame_count 5 -> 5 positive and 5 negative pose images at 64x48; then the single-step nodes."""
    import folder_paths

    folder_paths.add_model_folder_path("detection", str(models))
    nodes = pack_module("nodes_pose")
    est = nodes.SteadyDancerPoseModelLoader.execute("yolox_l.onnx", "dw-ll_ucoco_384.onnx", "cpu").result[0]
    ref = torch.from_numpy(frames(1, 80, 60, seed=5).astype(np.float32) / 255)
    drv = torch.from_numpy(frames(6, 72, 96, seed=6).astype(np.float32) / 255)
    pos, neg, poses = nodes.SteadyDancerPosePrep.execute(est, ref, drv, 64, 48, 5, True, 3).result
    assert pos.shape == (5, 48, 64, 3) and neg.shape == (5, 48, 64, 3)
    assert pos.dtype == torch.float32 and 0 <= float(pos.min()) and float(pos.max()) <= 1
    assert float(pos.sum()) > 0 and not torch.equal(pos, neg)
    assert len(poses) == 5 and (poses.width, poses.height) == (60, 80)
    with pytest.raises(ValueError, match="reference_image must be an IMAGE batch"):
        nodes.SteadyDancerPosePrep.execute(est, ref[0], drv, 64, 48, 5, True, 3)
    with pytest.raises(ValueError, match="fewer than the 9"):
        nodes.SteadyDancerPosePrep.execute(est, ref, drv, 64, 48, 9, True, 3)
    det = nodes.SteadyDancerPoseDetect.execute(est, drv).result[0]
    refp = nodes.SteadyDancerPoseDetect.execute(est, ref).result[0]
    al = nodes.SteadyDancerPoseAlign.execute(refp, det, 0).result[0]
    ng = nodes.SteadyDancerPoseAugment.execute(al, 3, 0.7, 1.3, 0.6, 1.4).result[0]
    img = nodes.SteadyDancerPoseRender.execute(ng, 64, 48, 2).result[0]
    assert img.shape == (6, 48, 64, 3)
    # the single-step chain on the same 5 frames gives exactly what PosePrep gives
    det5 = nodes.SteadyDancerPoseDetect.execute(est, drv[:5]).result[0]
    al5 = nodes.SteadyDancerPoseAlign.execute(refp, det5, 0).result[0]
    ng5 = nodes.SteadyDancerPoseAugment.execute(al5, 3, 0.7, 1.3, 0.6, 1.4).result[0]
    assert torch.equal(nodes.SteadyDancerPoseRender.execute(al5, 64, 48, 0).result[0], pos)
    assert torch.equal(nodes.SteadyDancerPoseRender.execute(ng5, 64, 48, 0).result[0], neg)
    # negatives off (the workflows): the same positive images and poses, no negative rendering
    renders = []
    monkeypatch.setattr(nodes, "render", lambda seq, *a, **k: renders.append(len(seq)) or pack_module("pose_render").render(seq, *a, **k))
    pos_off, neg_off, poses_off = nodes.SteadyDancerPosePrep.execute(est, ref, drv, 64, 48, 5, True, 3, negatives=False).result
    assert neg_off is None and torch.equal(pos_off, pos) and renders == [5]
    assert all(np.array_equal(a.body, b.body) for a, b in zip(poses_off.frames, poses.frames, strict=True))
    with pytest.raises(pe.MissingModelError, match="steadydancer models download"):
        nodes.SteadyDancerPoseModelLoader.execute("missing.onnx", "dw-ll_ucoco_384.onnx", "cpu")


def test_to_uint8_equals_the_clip_scale_round_recipe():
    """to_uint8 gives what (clip(x, 0, 1) * 255).round().astype(uint8) gives (the conversion of
    ComfyUI's float IMAGE frames before detection), for float32/float64/float16 values at every
    rounding boundary, out of range, signed zero and infinities, and keeps only 3 channels."""
    halves = (np.arange(256) + 0.5) / 255.0
    vals = np.concatenate([halves, np.nextafter(halves, 0), np.nextafter(halves, 1), [-0.0, -1e-9, 1.0, 1.5, -3, np.inf, -np.inf]])
    for dt in (np.float32, np.float64, np.float16):
        x = np.resize(vals.astype(dt), (5, 7, 4 * 4 * 3)).reshape(5, -1, 4)  # RGBA
        ref = (np.clip(x[..., :3], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        got = pe.to_uint8(x)
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, ref, err_msg=str(dt))
    u = np.random.RandomState(0).randint(0, 256, (4, 5, 4), dtype=np.uint8)
    np.testing.assert_array_equal(pe.to_uint8(u), u[..., :3])
