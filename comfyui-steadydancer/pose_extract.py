"""Whole-body pose extraction (DWPose) on ONNX Runtime through ``rtmlib``.

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
Models are local files only: rtmlib downloads when given a URL or a missing path, so we check
the paths ourselves first and never let it. CUDA execution when onnxruntime has the CUDA
provider, CPU otherwise.
"""

from __future__ import annotations

import logging
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


class DWPoseEstimator:
    """YOLOX-L person detection + DWPose-L whole-body keypoints, from local ONNX files."""

    def __init__(self, detector_path: str | Path | None, pose_path: str | Path | None, device: str = "auto"):
        det = require_model(detector_path, DETECTOR_FILE)
        pose = require_model(pose_path, POSE_FILE)
        try:
            from rtmlib import RTMPose, YOLOX  # imported here: rtmlib prints on import of models only
        except ImportError as e:
            raise ImportError(
                "the pose nodes need rtmlib: pip install --no-deps -r requirements-nodeps.txt in the comfyui-steadydancer folder (--no-deps: its metadata would replace the headless OpenCV)"
            ) from e
        self.device = pick_device(device)
        self.detector = YOLOX(det, model_input_size=DETECT_INPUT_SIZE, det_mode="multiclass", nms_thr=NMS_IOU, score_thr=PERSON_SCORE, backend="onnxruntime", device=self.device)
        self.pose = RTMPose(pose, model_input_size=POSE_INPUT_SIZE, backend="onnxruntime", device=self.device)

    def detect(self, frame_rgb: np.ndarray) -> Pose:
        """One RGB uint8 frame -> the main person's pose (Pose.empty() never: with no box the
        whole frame is used, as upstream)."""
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 HxWx3 frame, got {frame_rgb.dtype} {frame_rgb.shape}")
        img = resize_for_detection(frame_rgb)
        h, w = img.shape[:2]
        boxes, classes = self.detector(img)
        boxes = np.asarray(boxes).reshape(-1, 4)
        classes = np.asarray(classes).reshape(-1)
        people = boxes[classes == 0] if len(boxes) else boxes
        kpts, scores = self.pose(img, bboxes=[people[0].tolist()] if len(people) else [])
        return keypoints_to_pose(np.asarray(kpts)[0], np.asarray(scores)[0], w, h)

    def detect_frames(self, frames_rgb, progress=None) -> PoseSequence:
        """A batch ``[F, H, W, 3]`` (uint8 or float 0..1) -> PoseSequence of F poses."""
        frames = np.asarray(frames_rgb)
        if frames.ndim != 4 or frames.shape[-1] < 3 or len(frames) == 0:
            raise ValueError(f"expected a non-empty batch of images [F, H, W, 3], got {frames.shape}")
        if frames.dtype != np.uint8:
            frames = (np.clip(frames[..., :3], 0.0, 1.0) * 255.0).round().astype(np.uint8)
        out = []
        for i, fr in enumerate(frames):
            out.append(self.detect(np.ascontiguousarray(fr[..., :3])))
            if progress:
                progress(i + 1, len(frames))
        return PoseSequence(out, int(frames.shape[2]), int(frames.shape[1]))
