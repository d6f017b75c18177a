"""Whole-body pose extraction (DWPose) on ONNX Runtime, with ``rtmlib``'s pre- and post-processing.

Pose path decision: the official SteadyDancer preprocessing detects with YOLOX-L and estimates
whole-body keypoints with DWPose-L (``dw-ll_ucoco_384``, 384x288) through mmdet/mmpose. ``rtmlib``
runs exactly that model family from ONNX files without mmcv (``yolox_l.onnx`` +
``dw-ll_ucoco_384.onnx``), so the keypoints our alignment and rendering see come from the same
detector and pose network SteadyDancer's training poses came from. (The WanAnimatePreprocess
pack uses ViTPose + YOLOv10 with Wan-Animate's own retargeting and meta format; we would still
have to convert its output and would get a different keypoint distribution.)

Behaviour restated from the official ``DWposeDetector`` / ``Wholebody`` (no code taken):
  * the frame is resized so its short side is ``detect_resolution`` (1024) and both sides are
    multiples of 64 (cubic when enlarging, area when shrinking), and handed to the networks in the
    channel order the official detector hands it to mmdet/mmpose (it converts the video frame
    with RGB2BGR before inference, so the networks see the frame's channels swapped relative to
    cv2's BGR convention; we pass our RGB frame to rtmlib, which expects BGR, to reproduce that);
  * person boxes: class "person", score > 0.5, NMS IoU 0.7; keypoints of the highest-scoring
    person (the one the official pipeline keeps); with no box, the whole frame is the box;
  * COCO-WholeBody 133 points -> OpenPose-18 body with a neck = midpoint of the shoulders
    (valid only when both shoulder scores > 0.3); body/hands/face points with score < 0.35 are
    invalid (body: score > 0.35 is valid; hands/face: score >= 0.35), compared in float64 as
    upstream does (a float32 score of 0.35 is below 0.35 there); invalid body points keep their
    coordinates (upstream copies the body before writing -1), so the alignment still uses them;
    coordinates are divided by the resized frame's width and height.
Models are local files only (we open the sessions ourselves; rtmlib's classes would download a
missing path). CUDA execution when onnxruntime has the CUDA provider (the CPU provider behind it
for any node CUDA lacks; a CUDA provider that fails to start is reported and CPU is used), CPU
otherwise; graph optimisations all on.

How it runs (issue #13, bench/pose-prep.md): the pack used to call rtmlib's ``YOLOX`` and
``RTMPose`` objects frame by frame. It now runs the same ONNX models itself on chunks of frames:
the per-frame work (conversion to uint8, resize, letterbox, person crop) on a thread pool, each
network once per chunk when its input has a dynamic batch axis (once per frame when the batch is
fixed), SimCC decoding over the chunk. The pre/post-processing is rtmlib 0.0.16's, restated with
the same numpy operations (letterbox, YOLOX grid decoding) or called (``bbox_xyxy2cs``,
``top_down_affine``, ``get_simcc_maximum``), with two shortcuts of identical results: the crop's
normalisation is a per-value table (the crop is uint8), and the person box is the top class-0
score instead of an 80-class NMS whose first person box it is (``top_person_box``).
tests/test_pose_extract.py checks the poses against rtmlib's frame-by-frame results bit for bit,
for fixed and dynamic batch axes. (A network batched on a dynamic axis may round its outputs
differently from batch 1, as any batched convolution can; the tiny test networks do not.)
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from .pose_align import N_BODY, Pose, PoseSequence

log = logging.getLogger("steadydancer")

DETECTOR_FILE = "yolox_l.onnx"
POSE_FILE = "dw-ll_ucoco_384.onnx"
POSE_INPUT_SIZE = (288, 384)  # (width, height) of dw-ll_ucoco_384
DETECT_INPUT_SIZE = (640, 640)
DETECT_RESOLUTION = 1024
SCORE_THRESHOLD = 0.35
NECK_SHOULDER_THRESHOLD = 0.3
PERSON_SCORE = 0.5
NMS_IOU = 0.7

# OpenPose-18 index -> COCO-WholeBody index (index 1, the neck, is computed).
OPENPOSE_FROM_COCO = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
LEFT_HAND = slice(91, 112)
RIGHT_HAND = slice(112, 133)
FACE = slice(23, 91)


class MissingModelError(FileNotFoundError):
    pass


def require_model(path: str | Path | None, name: str, folder: str = "models/detection") -> str:
    if path is None or not Path(path).is_file():
        where = f" (looked for {path})" if path else ""
        raise MissingModelError(f"pose model {name} is missing from {folder}{where}; fetch it with `steadydancer models download`")
    return str(path)


def pick_device(requested: str = "auto") -> str:
    import onnxruntime as ort

    have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if requested == "cuda" and not have_cuda:
        log.warning("steadydancer pose: onnxruntime has no CUDA provider here; running on CPU")
    if requested == "cpu":
        return "cpu"
    return "cuda" if have_cuda else "cpu"


def resize_for_detection(img: np.ndarray, resolution: int = DETECT_RESOLUTION) -> np.ndarray:
    h, w = img.shape[:2]
    k = float(resolution) / min(h, w)
    nh, nw = int(np.round(h * k / 64.0)) * 64, int(np.round(w * k / 64.0)) * 64
    interp = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    return cv2.resize(img, (max(nw, 64), max(nh, 64)), interpolation=interp)


def keypoints_to_pose(kpts: np.ndarray, scores: np.ndarray, width: int, height: int) -> Pose:
    """One person's COCO-WholeBody (133, 2) pixel keypoints + scores -> normalised Pose."""
    if kpts.shape != (133, 2) or scores.shape != (133,):
        raise ValueError(f"expected 133 whole-body keypoints, got {kpts.shape} / {scores.shape}")
    xy = kpts.astype(np.float64) / np.array([width, height], dtype=np.float64)
    # thresholds compared in float64, as upstream (its Wholebody concatenates the network's
    # float32 scores with float64 ones): a float32 0.35 is 0.3499999940..., below 0.35
    scores = np.asarray(scores).astype(np.float64)
    ok = scores > SCORE_THRESHOLD  # body joints: official subset test "score > 0.35"
    ok_parts = scores >= SCORE_THRESHOLD  # hands/face: official "-1 where score < 0.35"
    body = np.zeros((N_BODY, 2))
    body_ok = np.zeros(N_BODY, bool)
    for op, coco in enumerate(OPENPOSE_FROM_COCO):
        if coco is None:
            body[op] = (xy[5] + xy[6]) / 2
            body_ok[op] = bool(scores[5] > NECK_SHOULDER_THRESHOLD and scores[6] > NECK_SHOULDER_THRESHOLD)
        else:
            body[op] = xy[coco]
            body_ok[op] = ok[coco]
    hands = np.stack([xy[LEFT_HAND], xy[RIGHT_HAND]])
    hands_ok = np.stack([ok_parts[LEFT_HAND], ok_parts[RIGHT_HAND]])
    return Pose(body, body_ok, hands, hands_ok, xy[FACE], ok_parts[FACE])


def session_providers(device: str) -> list:
    """ONNX Runtime providers for ``device``: CUDA first with the CPU provider behind it (nodes
    the CUDA provider lacks run there), or the CPU provider alone."""
    if device == "cuda":
        # EXHAUSTIVE: cuDNN benchmarks the convolution algorithms once per input shape (the
        # frame batches have one or two shapes per job) and keeps the fastest
        return [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "1"}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def make_session(path: str, device: str):
    """An inference session with every graph optimisation on and ONNX Runtime's own thread pool
    (one thread per physical core on CPU; our frame work runs between the network calls)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), sess_options=opts, providers=session_providers(device))


def batch_size(session) -> int | None:
    """The model input's batch size: None when the axis is dynamic (a name or unset), else the
    fixed size the model was exported with (1 for the stand-in fixtures)."""
    dim = session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) and dim > 0 else None


def run_batched(session, x: np.ndarray, max_batch: int) -> list:
    """``session`` on the images ``x`` [N, C, H, W]: in batches of up to ``max_batch`` when the
    model's batch axis is dynamic, else in batches of the fixed size (the last one zero-padded);
    returns the outputs concatenated over the N images, in the session's output order."""
    fixed = batch_size(session)
    step = fixed or max(1, max_batch)
    name = session.get_inputs()[0].name
    outs = []
    for s in range(0, len(x), step):
        part = x[s : s + step]
        n = len(part)
        if fixed and n < fixed:
            part = np.concatenate([part, np.zeros((fixed - n, *part.shape[1:]), part.dtype)])
        outs.append([o[:n] for o in session.run(None, {name: np.ascontiguousarray(part)})])
    return [np.concatenate([o[k] for o in outs]) if len(outs) > 1 else outs[0][k] for k in range(len(outs[0]))]


# --- YOLOX (restated from rtmlib 0.0.16 YOLOX.preprocess / postprocess, same numpy operations) ---


def letterbox(img: np.ndarray, size: tuple = DETECT_INPUT_SIZE) -> tuple:
    """(padded uint8 image of ``size`` (h, w), ratio): bilinear resize by the ratio that fits,
    top-left aligned on grey 114, as rtmlib's YOLOX.preprocess."""
    if img.shape[:2] == tuple(size[:2]):
        return img.copy(), 1.0
    padded = np.full((size[0], size[1], 3), 114, dtype=np.uint8)
    ratio = min(size[0] / img.shape[0], size[1] / img.shape[1])
    nw, nh = int(img.shape[1] * ratio), int(img.shape[0] * ratio)
    padded[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return padded, ratio


_GRIDS: dict = {}


def _yolox_grids(size: tuple = DETECT_INPUT_SIZE) -> tuple:
    if size not in _GRIDS:
        grids, strides = [], []
        for stride in (8, 16, 32):
            xv, yv = np.meshgrid(np.arange(size[1] // stride), np.arange(size[0] // stride))
            g = np.stack((xv, yv), 2).reshape(1, -1, 2)
            grids.append(g)
            strides.append(np.full((*g.shape[:2], 1), stride))
        _GRIDS[size] = (np.concatenate(grids, 1), np.concatenate(strides, 1))
    return _GRIDS[size]


def top_person_box(outputs: np.ndarray, ratio: float, score_thr: float = PERSON_SCORE):
    """One image's raw YOLOX output [1, anchors, 85] (decoded in place) -> the xyxy box (list of
    4 floats, in the letterboxed image's source pixels) of the highest-scoring "person", or None.

    The same box as rtmlib's YOLOX postprocess + multiclass NMS followed by "the first person box"
    (what the official pipeline keeps): NMS keeps, first, the best-scoring box of each class, so
    its first person box is the top of the class-0 scores above the threshold, in the order
    rtmlib's NMS sorts them (the same ``argsort()[::-1]``, ties included). The other 79 classes
    and the NMS loop itself (thousands of boxes when many anchors are confident) are skipped."""
    if outputs.ndim != 3 or outputs.shape[0] != 1 or outputs.shape[-1] <= 5:
        raise ValueError(f"expected a YOLOX output [1, anchors, 5 + classes] without NMS, got {outputs.shape}")
    grids, strides = _yolox_grids()
    if outputs.shape[1] != grids.shape[1]:
        raise ValueError(f"YOLOX output has {outputs.shape[1]} anchors, expected {grids.shape[1]} for a {DETECT_INPUT_SIZE} input")
    outputs[..., :2] = (outputs[..., :2] + grids) * strides
    outputs[..., 2:4] = np.exp(outputs[..., 2:4]) * strides
    pred = outputs[0]
    boxes = pred[:, :4]
    person = (pred[:, 4:5] * pred[:, 5:6])[:, 0]
    valid = person > score_thr
    if not valid.any():
        return None
    xyxy = np.ones_like(boxes)
    xyxy[:, 0] = boxes[:, 0] - boxes[:, 2] / 2.0
    xyxy[:, 1] = boxes[:, 1] - boxes[:, 3] / 2.0
    xyxy[:, 2] = boxes[:, 0] + boxes[:, 2] / 2.0
    xyxy[:, 3] = boxes[:, 1] + boxes[:, 3] / 2.0
    xyxy /= ratio
    first = person[valid].argsort()[::-1][0]
    return xyxy[valid][first].astype(np.float64).tolist()


# --- RTMPose / DWPose (restated from rtmlib 0.0.16 RTMPose.preprocess / postprocess) ---------

POSE_MEAN = (123.675, 116.28, 103.53)
POSE_STD = (58.395, 57.12, 57.375)
# (v - mean) / std in float64, then float32, for every uint8 value v and channel: the crop is
# uint8, so this table gives exactly what rtmlib's float64 normalisation + float32 cast gives
_POSE_LUT = np.ascontiguousarray(((np.arange(256, dtype=np.float64)[:, None] - np.array(POSE_MEAN)) / np.array(POSE_STD)).astype(np.float32).T)


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, centers: np.ndarray, scales: np.ndarray, split_ratio: float = 2.0) -> tuple:
    """SimCC outputs of N crops -> (keypoints [N, K, 2] float64 in frame pixels, scores [N, K]
    float32), the operations of rtmlib's RTMPose.postprocess over the batch."""
    from rtmlib.tools.pose_estimation.post_processings import get_simcc_maximum

    locs, scores = get_simcc_maximum(simcc_x, simcc_y)
    keypoints = locs / split_ratio
    scales = np.asarray(scales)[:, None, :]
    keypoints = keypoints / POSE_INPUT_SIZE * scales
    keypoints = keypoints + np.asarray(centers)[:, None, :] - scales / 2
    return keypoints, scores


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """An RGB(A) frame, uint8 or float 0..1 -> contiguous RGB uint8: clip to 0..1, * 255, round
    half to even; the same values as ``(np.clip(x, 0, 1) * 255).round().astype(uint8)``, with
    fewer passes over the frame (NaN stays NaN through both)."""
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame[..., :3])
    x = np.maximum(frame[..., :3], 0.0)
    np.minimum(x, 1.0, out=x)
    np.multiply(x, 255.0, out=x)
    np.rint(x, out=x)
    return x.astype(np.uint8)


_STAGES = ("convert", "resize", "det_pre", "det_net", "det_post", "pose_pre", "pose_net", "pose_post", "to_pose")


class DWPoseEstimator:
    """YOLOX-L person detection + DWPose-L whole-body keypoints, from local ONNX files.

    Frames go through in chunks of ``chunk`` frames: conversion, resize, letterbox and the
    person crops run on a thread pool (OpenCV and numpy release the GIL), the next chunk's
    preparation overlapping this chunk's network calls; each network runs once per chunk when
    its ONNX input has a dynamic batch axis (else once per frame). ``timings`` holds the last
    ``detect_frames`` call's seconds per stage, summed over the worker threads, and ``wall``."""

    chunk = 16
    workers = None  # threads for the per-frame work; None: one per CPU, at most 16
    overlap = None  # prepare the next chunk while the networks run; None: when they run on CUDA
    clock = staticmethod(time.perf_counter)  # of ``timings`` (bench/pose_prep.py: process CPU time)

    def __init__(self, detector_path: str | Path | None, pose_path: str | Path | None, device: str = "auto"):
        det = require_model(detector_path, DETECTOR_FILE)
        pose = require_model(pose_path, POSE_FILE)
        try:
            # rtmlib's own affine crop and SimCC decoding (the package first: an install without
            # it must fail here even when a submodule is already imported)
            import rtmlib  # noqa: F401
            from rtmlib.tools.pose_estimation.pre_processings import bbox_xyxy2cs, top_down_affine
        except ImportError as e:
            raise ImportError(
                "the pose nodes need rtmlib: pip install --no-deps -r requirements-nodeps.txt in the comfyui-steadydancer folder (--no-deps: its metadata would replace the headless OpenCV)"
            ) from e
        self._bbox_xyxy2cs, self._top_down_affine = bbox_xyxy2cs, top_down_affine
        self.device = pick_device(device)
        self.detector_session = make_session(det, self.device)
        self.pose_session = make_session(pose, self.device)
        if self.device == "cuda" and not all(s.get_providers()[0] == "CUDAExecutionProvider" for s in (self.detector_session, self.pose_session)):
            # onnxruntime falls back to CPU when the CUDA provider cannot load (CUDA/cuDNN libraries)
            log.warning("steadydancer pose: onnxruntime could not start its CUDA provider (see its log above); running on CPU")
            self.device = "cpu"
        self.timings: dict = {}

    # -- per frame, on the worker threads --

    def _prepare(self, frame, out: np.ndarray) -> tuple:
        """A frame (HxWxC, uint8 or float 0..1) -> the detector's input (letterboxed, CHW float32)
        in ``out``; returns (uint8 RGB frame at the detect resolution, ratio, {stage: seconds})."""
        t0 = self.clock()
        frame = to_uint8(frame)
        t1 = self.clock()
        img = resize_for_detection(frame)
        t2 = self.clock()
        padded, ratio = letterbox(img)
        for c, plane in enumerate(cv2.split(padded)):
            out[c] = plane
        t3 = self.clock()
        return img, ratio, {"convert": t1 - t0, "resize": t2 - t1, "det_pre": t3 - t2}

    def _crop(self, img: np.ndarray, box, out: np.ndarray) -> tuple:
        """The pose network's input for one person box (the whole frame without one) into
        ``out`` [3, 384, 288] float32; returns (center, scale) for decoding."""
        bbox = np.array(box if box is not None else [0, 0, img.shape[1], img.shape[0]])
        center, scale = self._bbox_xyxy2cs(bbox, padding=1.25)
        crop, scale = self._top_down_affine(POSE_INPUT_SIZE, scale, center, img)
        for c in range(3):
            np.take(_POSE_LUT[c], crop[..., c], out=out[c])
        return center, scale

    # -- the chunked pipeline --

    def _detect(self, frames, progress=None) -> list:
        n = len(frames)
        t = dict.fromkeys(_STAGES, 0.0)
        wall0 = time.perf_counter()
        workers = max(1, min(n, self.workers or os.cpu_count() or 1, 16))
        # on CPU the networks use every core themselves: preparing the next chunk meanwhile would
        # only contend with them
        overlap = self.device == "cuda" if self.overlap is None else self.overlap
        poses = []
        with ThreadPoolExecutor(workers) as pool:

            def submit(s):
                idx = range(s, min(s + self.chunk, n))
                det_in = np.empty((len(idx), 3, *DETECT_INPUT_SIZE), np.float32)
                return det_in, [pool.submit(self._prepare, frames[i], det_in[b]) for b, i in enumerate(idx)]

            pending = submit(0)
            for s in range(0, n, self.chunk):
                det_in, futures = pending
                prepared = [f.result() for f in futures]
                if overlap and s + self.chunk < n:
                    pending = submit(s + self.chunk)  # prepared while this chunk's networks run
                for *_, ts in prepared:
                    for k, v in ts.items():
                        t[k] += v
                t1 = self.clock()
                det_out = run_batched(self.detector_session, det_in, self.chunk)[0]
                t2 = self.clock()
                boxes = [top_person_box(det_out[b : b + 1], ratio) for b, (_, ratio, _) in enumerate(prepared)]
                t3 = self.clock()
                pose_in = np.empty((len(prepared), 3, POSE_INPUT_SIZE[1], POSE_INPUT_SIZE[0]), np.float32)
                cs = list(pool.map(self._crop, [img for img, *_ in prepared], boxes, pose_in))
                t4 = self.clock()
                simcc_x, simcc_y = run_batched(self.pose_session, pose_in, self.chunk)[:2]
                t5 = self.clock()
                kpts, scores = decode_simcc(simcc_x, simcc_y, np.stack([c for c, _ in cs]), np.stack([sc for _, sc in cs]))
                t6 = self.clock()
                for b, (img, *_rest) in enumerate(prepared):
                    poses.append(keypoints_to_pose(kpts[b], scores[b], img.shape[1], img.shape[0]))
                t7 = self.clock()
                for k, a, z in (("det_net", t1, t2), ("det_post", t2, t3), ("pose_pre", t3, t4), ("pose_net", t4, t5), ("pose_post", t5, t6), ("to_pose", t6, t7)):
                    t[k] += z - a
                if progress:
                    for i in range(s, s + len(prepared)):
                        progress(i + 1, n)
                if not overlap and s + self.chunk < n:
                    pending = submit(s + self.chunk)
        t["wall"] = time.perf_counter() - wall0
        self.timings = t
        return poses

    def detect(self, frame_rgb: np.ndarray) -> Pose:
        """One RGB uint8 frame -> the main person's pose (Pose.empty() never: with no box the
        whole frame is used, as upstream)."""
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 HxWx3 frame, got {frame_rgb.dtype} {frame_rgb.shape}")
        return self._detect(frame_rgb[None])[0]

    def detect_frames(self, frames_rgb, progress=None) -> PoseSequence:
        """A batch ``[F, H, W, 3]`` (uint8 or float 0..1) -> PoseSequence of F poses."""
        frames = np.asarray(frames_rgb)
        if frames.ndim != 4 or frames.shape[-1] < 3 or len(frames) == 0:
            raise ValueError(f"expected a non-empty batch of images [F, H, W, 3], got {frames.shape}")
        return PoseSequence(self._detect(frames, progress), int(frames.shape[2]), int(frames.shape[1]))
