"""Run the official SteadyDancer pose drivers as a test oracle, on synthetic detector output.

``run_official(...)`` imports ``preprocess/pose_align.py`` or ``preprocess/pose_align_withdiffaug.py``
from the source cache and calls ``run_align_video_with_filterPose_translate_smooth`` unchanged.
Only what has no place on a test machine is replaced, by modules put into ``sys.modules`` (the
official files are never copied or edited):

* mmcv / mmdet / mmpose (the networks): ``inference_detector`` returns one person box covering
  the frame, ``inference_topdown`` returns the synthetic COCO-WholeBody keypoints of the frame it
  is given, in that frame's pixels, float32 like the real network, with float32 scores and no
  ``keypoints_visible`` (the official ``Wholebody`` then concatenates float64 ones, as it does with
  the real DWPose head). Everything from ``Wholebody.__call__`` on (neck insertion, index remap,
  ``DWposeDetector`` thresholds, normalisation, drawing) is the official code;
* moviepy (video writing): a clip whose ``write_videofile`` does nothing;
* cv2 video/image reading only: ``cv2.VideoCapture`` and ``cv2.imread`` serve uniform frames whose
  grey level says which synthetic skeleton they carry (a uniform image stays uniform through the
  official resizes, so the stub can read the level back).

The results are read without touching the code: a ``sys.settrace`` hook records the locals of the
driver when it returns (``pose_list``: the aligned poses, ``ref_H``/``ref_W``), every
``DWposeDetector.__call__`` result (the detector output, deep-copied before the driver modifies
it in place) and every ``pose_aug_diff`` result (the negative poses).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# grey level of the reference image; driving frame i has level FRAME_LEVEL0 + FRAME_STEP * i
REF_LEVEL = 250
FRAME_LEVEL0 = 10
FRAME_STEP = 7

OFFICIAL_MODULES = ("pose", "utils_aug", "pose_align", "pose_align_withdiffaug")
STUB_MODULES = (
    "mmcv",
    "mmdet",
    "mmdet.apis",
    "mmpose",
    "mmpose.apis",
    "mmpose.evaluation",
    "mmpose.evaluation.functional",
    "mmpose.utils",
    "mmpose.structures",
    "moviepy",
    "moviepy.video",
    "moviepy.video.io",
    "moviepy.video.io.ImageSequenceClip",
)


def _swapped(name: str) -> bool:
    return name.split(".")[0] in OFFICIAL_MODULES + ("mmcv", "mmdet", "mmpose", "moviepy")


class _Fields(dict):
    """mmengine InstanceData stand-in: attribute access, ``in`` and ``get``."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError as e:
            raise AttributeError(k) from e

    def cpu(self):
        return self

    def numpy(self):
        return self


class _Model:
    cfg = {}

    def to(self, device):
        return self


@dataclass
class Skeleton:
    """One person as the pose network reports it: COCO-WholeBody (133, 2) coordinates normalised
    to the frame (x / width, y / height) and float32 scores."""

    xy: np.ndarray
    scores: np.ndarray

    def pixels(self, width: int, height: int) -> np.ndarray:
        return (self.xy * np.array([width, height], dtype=np.float64)).astype(np.float32)


def _mm_stubs(by_level: dict) -> dict:
    def init_model(*a, **k):
        return _Model()

    def inference_detector(model, img):
        h, w = img.shape[:2]
        return _Fields(pred_instances=_Fields(bboxes=np.array([[0, 0, w, h]], np.float32), scores=np.array([0.95], np.float32), labels=np.array([0])))

    def inference_topdown(model, img, bboxes=None):
        level = int(img[img.shape[0] // 2, img.shape[1] // 2, 0])
        if not (img == level).all() or level not in by_level:
            raise AssertionError(f"the oracle stub got an unknown frame (level {level})")
        sk = by_level[level]
        h, w = img.shape[:2]
        return [_Fields(pred_instances=_Fields(keypoints=sk.pixels(w, h)[None], keypoint_scores=sk.scores.astype(np.float32)[None]))]

    class ImageSequenceClip:
        def __init__(self, frames, fps=None):
            self.frames = frames

        def write_videofile(self, *a, **k):
            pass

    mods = {name: types.ModuleType(name) for name in STUB_MODULES}
    mods["mmdet.apis"].init_detector = init_model
    mods["mmdet.apis"].inference_detector = inference_detector
    mods["mmpose.apis"].init_model = init_model
    mods["mmpose.apis"].inference_topdown = inference_topdown
    mods["mmpose.evaluation.functional"].nms = lambda boxes, thr: list(range(len(boxes)))
    mods["mmpose.utils"].adapt_mmdet_pipeline = lambda cfg: cfg
    mods["mmpose.structures"].merge_data_samples = lambda samples: samples[0]
    mods["moviepy.video.io.ImageSequenceClip"].ImageSequenceClip = ImageSequenceClip
    for name, mod in mods.items():  # parents carry their children as attributes
        if "." in name:
            parent, child = name.rsplit(".", 1)
            setattr(mods[parent], child, mod)
    return mods


class _Capture:
    def __init__(self, frames, ref_img, fps=25.0):
        self.frames = list(frames)
        self.h, self.w = self.frames[0].shape[:2]
        self.fps = fps

    def get(self, prop):
        import cv2

        return {cv2.CAP_PROP_FRAME_WIDTH: float(self.w), cv2.CAP_PROP_FRAME_HEIGHT: float(self.h), cv2.CAP_PROP_FRAME_COUNT: float(len(self.frames)), cv2.CAP_PROP_FPS: self.fps}[prop]

    def read(self):
        if not self.frames:
            return False, None
        return True, self.frames.pop(0)


@dataclass
class OfficialResult:
    ref_size: tuple  # (width, height) of the resized reference the driver uses
    aligned: list  # pose dicts, one per frame from align_frame on
    detections: list  # detector outputs in call order (reference first)
    negatives: list = field(default_factory=list)  # pose_aug_diff results (withdiffaug driver)


def run_official(source: Path, driver: str, ref_size: tuple, ref_skeleton: Skeleton, video_size: tuple, frame_skeletons: list, align_frame: int = 0) -> OfficialResult:
    """Run one official driver ("pose_align" or "pose_align_withdiffaug") on synthetic input.

    ``ref_size``/``video_size`` are (width, height) of the reference image and the driving video.
    The caller seeds Python's ``random`` first when it wants reproducible negative poses."""
    import cv2

    preprocess = Path(source) / "preprocess"
    if len(frame_skeletons) * FRAME_STEP + FRAME_LEVEL0 >= REF_LEVEL:
        raise ValueError("too many frames for the grey-level encoding")
    by_level = {REF_LEVEL: ref_skeleton}
    frames = []
    vw, vh = video_size
    for i, sk in enumerate(frame_skeletons):
        by_level[FRAME_LEVEL0 + FRAME_STEP * i] = sk
        frames.append(np.full((vh, vw, 3), FRAME_LEVEL0 + FRAME_STEP * i, np.uint8))
    rw, rh = ref_size
    ref_img = np.full((rh, rw, 3), REF_LEVEL, np.uint8)

    saved_modules = dict(sys.modules)
    saved_path = list(sys.path)
    saved_cv2 = (cv2.VideoCapture, cv2.imread)
    saved_trace = sys.gettrace()
    try:
        for name in list(sys.modules):
            if _swapped(name):
                del sys.modules[name]
        sys.modules.update(_mm_stubs(by_level))
        sys.path.insert(0, str(preprocess))
        cv2.VideoCapture = lambda path: _Capture(frames, ref_img)
        cv2.imread = lambda path, *a: ref_img.copy()
        mod = importlib.import_module(driver)
        if not str(mod.__file__).startswith(str(preprocess)):
            raise AssertionError(f"imported {mod.__file__}, not the official {driver}")
        dwpose = importlib.import_module("pose.script.dwpose")
        utils_aug = importlib.import_module("utils_aug")
        fn = mod.run_align_video_with_filterPose_translate_smooth
        got = {"detections": [], "negatives": [], "locals": None}

        def on_return(code, value, frame):
            if code is fn.__code__:
                got["locals"] = dict(frame.f_locals)
            elif code is dwpose.DWposeDetector.__call__.__code__:
                got["detections"].append(copy.deepcopy(value[1]))
            elif code is utils_aug.pose_aug_diff.__code__:
                got["negatives"].append(copy.deepcopy(value))

        watched = {fn.__code__, dwpose.DWposeDetector.__call__.__code__, utils_aug.pose_aug_diff.__code__}

        def tracer(frame, event, arg):
            if frame.f_code not in watched:
                return None

            def local(fr, ev, a):
                if ev == "return":
                    on_return(fr.f_code, a, fr)
                return local

            return local

        args = argparse.Namespace(
            vidfn="driving.mp4",
            imgfn_refer="ref.png",
            outfn="all.mp4",
            outfn_align_pose_video="single.mp4",
            detect_resolution=1024,
            image_resolution=720,
            yolox_config=None,
            dwpose_config=None,
            yolox_ckpt=None,
            dwpose_ckpt=None,
            align_frame=align_frame,
            max_frame=300,
        )
        sys.settrace(tracer)
        try:
            fn(args)
        finally:
            sys.settrace(saved_trace)
    finally:
        cv2.VideoCapture, cv2.imread = saved_cv2
        sys.path[:] = saved_path
        for name in list(sys.modules):  # the official modules and stubs go; torch etc. stay
            if _swapped(name):
                del sys.modules[name]
        sys.modules.update({k: v for k, v in saved_modules.items() if _swapped(k)})
    loc = got["locals"]
    if loc is None:
        raise AssertionError("the official driver did not return")
    return OfficialResult((int(loc["ref_W"]), int(loc["ref_H"])), loc["pose_list"], got["detections"], got["negatives"])
