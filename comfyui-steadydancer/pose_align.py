"""Whole-body pose keypoints, alignment to the reference person, negative-pose augmentation.

Our implementation of the semantics of the official SteadyDancer preprocessing
(``preprocess/pose_align.py`` and ``preprocess/pose_align_withdiffaug.py`` + ``utils_aug.py`` at
MCG-NJU/SteadyDancer 866a7219): no code is taken from there, the maths is restated here and
checked by ``tests/test_pose_align.py`` against values worked out by hand and by
``tests/test_pose_official.py`` against the official drivers themselves, run as the oracle.

Keypoint layout (OpenPose-18 body as DWPose reports it, after inserting the neck):
    0 nose, 1 neck, 2 R shoulder, 3 R elbow, 4 R wrist, 5 L shoulder, 6 L elbow, 7 L wrist,
    8 R hip, 9 R knee, 10 R ankle, 11 L hip, 12 L knee, 13 L ankle, 14 R eye, 15 L eye,
    16 R ear, 17 L ear.
    hands[0] is the left hand (its root follows wrist 7), hands[1] the right hand (wrist 4),
    21 points each; face: 68 points.
Coordinates are normalised to the frame: x in [0, 1] of the width, y in [0, 1] of the height.
Points below the detector's confidence threshold are marked invalid in the ``*_valid`` masks
(the official code writes -1 into the coordinates instead; a mask says the same thing without
letting -1 take part in arithmetic). Body points keep their coordinates when invalid, as in the
official detector (it copies the body before writing -1): the alignment uses them all, only
drawing skips them.

Alignment (official ``align_img`` + the scale estimation in
``run_align_video_with_filterPose_translate_smooth``), in "aspect space" where x is multiplied by
the frame's width/height so that distances are isotropic:
  * ten scale factors, each ``|segment in the reference| / |segment in the first driving frame|``
    (neck 0-1; face-left 16-14 + 14-0; face-right 17-15 + 15-0; shoulder 2-5; upper arm: mean of
    2-3 and 5-6; lower arm: mean of 3-4 and 6-7; hand = (upper arm + lower arm) / 2 (the official
    hand-finger ratio loop runs zero times, so this is what it computes); body length: neck to
    the hip midpoint; upper leg: mean of 8-9 and 11-12; lower leg: mean of 9-10 and 12-13);
  * every frame is rescaled joint by joint down the kinematic chain, the neck (1) fixed: a child's
    new position is its parent's new position plus the scale times the child's original offset
    from its parent (shoulders and hips hang from the neck; the nose from the neck; eyes and ears
    from the nose; hands from the wrists); the face is not rescaled;
  * then every point is shifted by ``neck(reference) - neck(first frame)`` and x is divided by the
    reference's width/height, i.e. the result is normalised to the reference frame. That
    width/height is the one of the official reference resize (1024*576 area, sides multiples of
    16: ``official_reference_size``), not of the image as given.
A scale 0/0 (a segment of zero length in both poses) is 1, as upstream; an infinite one (zero
length in the first frame only) takes the mean of the finite ones (see ``body_part_scales``).

Negative-pose augmentation (official ``pose_aug_diff``), independently for every frame: draw
``offset_x, offset_y`` (drawn but unused, as upstream), ``scale ~ U(0.7, 1.3)``,
``aspect ~ U(0.6, 1.4)``; multiply body and hand x by ``aspect``, then body and hands by
``scale``; then translate body, hands and face so that the neck returns to where it was.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

N_BODY = 18
N_HAND = 21
N_FACE = 68

# (parent, child) chains used by the alignment, in the order the official code applies them.
SCALE_NAMES = (
    "scale_neck",
    "scale_face_left",
    "scale_face_right",
    "scale_shoulder",
    "scale_arm_upper",
    "scale_arm_lower",
    "scale_hand",
    "scale_body_len",
    "scale_leg_upper",
    "scale_leg_lower",
)


@dataclass
class Pose:
    """One person's whole-body keypoints in one frame (normalised coordinates, see module doc)."""

    body: np.ndarray
    body_valid: np.ndarray
    hands: np.ndarray
    hands_valid: np.ndarray
    face: np.ndarray = field(default_factory=lambda: np.zeros((N_FACE, 2)))
    face_valid: np.ndarray = field(default_factory=lambda: np.zeros(N_FACE, dtype=bool))

    def __post_init__(self):
        self.body = np.asarray(self.body, dtype=np.float64).reshape(N_BODY, 2)
        self.body_valid = np.asarray(self.body_valid, dtype=bool).reshape(N_BODY)
        self.hands = np.asarray(self.hands, dtype=np.float64).reshape(2, N_HAND, 2)
        self.hands_valid = np.asarray(self.hands_valid, dtype=bool).reshape(2, N_HAND)
        self.face = np.asarray(self.face, dtype=np.float64).reshape(N_FACE, 2)
        self.face_valid = np.asarray(self.face_valid, dtype=bool).reshape(N_FACE)

    @classmethod
    def empty(cls) -> "Pose":
        """No person detected: every point invalid."""
        return cls(np.zeros((N_BODY, 2)), np.zeros(N_BODY, bool), np.zeros((2, N_HAND, 2)), np.zeros((2, N_HAND), bool))

    def copy(self) -> "Pose":
        return replace(
            self, body=self.body.copy(), body_valid=self.body_valid.copy(), hands=self.hands.copy(), hands_valid=self.hands_valid.copy(), face=self.face.copy(), face_valid=self.face_valid.copy()
        )

    def scaled_x(self, factor: float) -> "Pose":
        """A copy with every x multiplied by ``factor`` (to and from aspect space)."""
        p = self.copy()
        p.body[:, 0] *= factor
        p.hands[..., 0] *= factor
        p.face[:, 0] *= factor
        return p


@dataclass
class PoseSequence:
    """Poses of consecutive frames plus the pixel size of the frames they were detected in."""

    frames: list
    width: int
    height: int

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"pose frame size must be positive, got {self.width}x{self.height}")

    @property
    def aspect(self) -> float:
        return self.width / self.height

    def __len__(self) -> int:
        return len(self.frames)


def _dist(a: Pose, i: int, j: int) -> float:
    """Length of body segment i-j. Every body point takes part, detected or not: the official
    detector keeps the coordinates of low-score body points (only its drawing skips them)."""
    return float(np.linalg.norm(a.body[i] - a.body[j]))


def _ratio(num: float, den: float) -> float:
    """num / den with IEEE semantics, as the official numpy division: x/0 = inf, 0/0 = NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(num) / np.float64(den))


def body_part_scales(ref: Pose, first: Pose) -> dict:
    """The ten scale factors reference / first driving frame; both poses in aspect space.

    Paired limbs take the mean of both sides' ratios; the hand scale is (upper arm + lower arm)
    / 2. A ratio 0/0 (a zero-length segment in both) becomes 1, as upstream; a ratio x/0 (zero
    length in the first frame only) is infinite and takes the mean of the finite scales (what
    the official ``align_img`` computes for infinite scales; its transforms then use the
    unreplaced infinite value, which only turns those joints into -1, so we keep the mean).
    """

    def path(p: Pose, *idx: int) -> float:
        return float(sum(_dist(p, a, b) for a, b in zip(idx, idx[1:])))

    def trunk(p: Pose) -> float:
        return float(np.linalg.norm(p.body[1] - (p.body[8] + p.body[11]) / 2))

    def pair(a: tuple, b: tuple) -> float:
        return (_ratio(_dist(ref, *a), _dist(first, *a)) + _ratio(_dist(ref, *b), _dist(first, *b))) / 2

    s = {
        "scale_neck": _ratio(_dist(ref, 0, 1), _dist(first, 0, 1)),
        "scale_face_left": _ratio(path(ref, 16, 14, 0), path(first, 16, 14, 0)),
        "scale_face_right": _ratio(path(ref, 17, 15, 0), path(first, 17, 15, 0)),
        "scale_shoulder": _ratio(_dist(ref, 2, 5), _dist(first, 2, 5)),
        "scale_arm_upper": pair((2, 3), (5, 6)),
        "scale_arm_lower": pair((3, 4), (6, 7)),
        "scale_body_len": _ratio(trunk(ref), trunk(first)),
        "scale_leg_upper": pair((8, 9), (11, 12)),
        "scale_leg_lower": pair((9, 10), (12, 13)),
    }
    s["scale_hand"] = (s["scale_arm_upper"] + s["scale_arm_lower"]) / 2
    s = {k: (1.0 if np.isnan(v) else v) for k, v in s.items()}
    finite = [v for v in s.values() if not np.isinf(v)]
    if not finite:
        raise ValueError("the align frame's skeleton is degenerate: every body segment has zero length")
    fill = float(np.mean(finite))
    return {k: (fill if np.isinf(s[k]) else float(s[k])) for k in SCALE_NAMES}


def align_pose(pose: Pose, scales: dict) -> Pose:
    """Rescale one frame's skeleton limb by limb about the fixed neck (aspect space in and out)."""
    o = pose.body  # original positions: offsets are always taken from these
    b = o.copy()
    hands = pose.hands.copy()

    def hang(child, parent, scale):
        b[child] = b[parent] + scale * (o[child] - o[parent])

    hang(0, 1, scales["scale_neck"])
    for c in (14, 16):
        hang(c, 0, scales["scale_face_left"])
    for c in (15, 17):
        hang(c, 0, scales["scale_face_right"])
    for c in (2, 5):
        hang(c, 1, scales["scale_shoulder"])
    hang(3, 2, scales["scale_arm_upper"])
    hang(4, 3, scales["scale_arm_lower"])
    hands[1] = b[4] + scales["scale_hand"] * (pose.hands[1] - o[4])
    hang(6, 5, scales["scale_arm_upper"])
    hang(7, 6, scales["scale_arm_lower"])
    hands[0] = b[7] + scales["scale_hand"] * (pose.hands[0] - o[7])
    for c in (8, 11):
        hang(c, 1, scales["scale_body_len"])
    hang(9, 8, scales["scale_leg_upper"])
    hang(10, 9, scales["scale_leg_lower"])
    hang(12, 11, scales["scale_leg_upper"])
    hang(13, 12, scales["scale_leg_lower"])
    out = pose.copy()
    out.body = b
    out.hands = hands
    return out


def _translated(p: Pose, d: np.ndarray) -> Pose:
    out = p.copy()
    out.body = out.body + d
    out.hands = out.hands + d
    out.face = out.face + d
    return out


OFFICIAL_AREA = 1024 * 576


def official_reference_size(width: int, height: int) -> tuple:
    """(width, height) the official preprocessing resizes the reference image to before anything
    else: the 1024*576 area at the image's aspect, each side floored to a multiple of 16
    (700x1000 -> 640x912). The alignment's reference aspect is this size's, not the original's."""
    if width <= 0 or height <= 0:
        raise ValueError(f"reference size must be positive, got {width}x{height}")
    ar = height / width
    w16 = int(round(np.sqrt(OFFICIAL_AREA / ar) // 16)) * 16
    h16 = int(round(np.sqrt(OFFICIAL_AREA * ar) // 16)) * 16
    if w16 == 0 or h16 == 0:
        raise ValueError(f"reference image {width}x{height} is too elongated: its 1024*576-area resize has a side under 16 px")
    return w16, h16


def align_sequence(reference: Pose, reference_size: tuple, driving: PoseSequence, align_frame: int = 0) -> PoseSequence:
    """Align every driving frame to the reference person; the result is in the reference frame.

    ``reference_size`` is (width, height) of the reference image as given (the aspect used is
    that of its official resize, ``official_reference_size``; the result keeps the given size);
    ``align_frame`` picks the driving frame whose proportions are matched to the reference
    (official ``--align_frame``; the frames before it are kept here, aligned with the same
    factors, where upstream drops them).
    """
    if len(driving) == 0:
        raise ValueError("align_sequence: the driving pose sequence is empty")
    if not 0 <= align_frame < len(driving):
        raise ValueError(f"align_frame {align_frame} is outside the driving video (0..{len(driving) - 1})")
    rw, rh = reference_size
    ow, oh = official_reference_size(rw, rh)
    if not reference.body_valid[1]:
        raise ValueError("no person (neck keypoint) detected in the reference image")
    ref_aspect = ow / oh
    ref = reference.scaled_x(ref_aspect)
    first = driving.frames[align_frame].scaled_x(driving.aspect)
    if not first.body_valid[1]:
        raise ValueError(f"no person (neck keypoint) detected in driving frame {align_frame}")
    scales = body_part_scales(ref, first)
    shift = ref.body[1] - first.body[1]
    out = []
    for p in driving.frames:
        a = align_pose(p.scaled_x(driving.aspect), scales)
        out.append(_translated(a, shift).scaled_x(1.0 / ref_aspect))
    return PoseSequence(out, rw, rh)


# --- negative poses --------------------------------------------------------------------------

OFFICIAL_AUG = {"offset_x": (-0.2, 0.2), "offset_y": (-0.2, 0.2), "scale": (0.7, 1.3), "aspect": (0.6, 1.4)}


def augment_pose(pose: Pose, aspect: float, scale: float) -> Pose:
    """Distort one pose: x *= aspect, then (body, hands) *= scale, then neck back in place."""
    out = pose.copy()
    out.body[:, 0] *= aspect
    out.hands[..., 0] *= aspect
    out.body *= scale
    out.hands *= scale
    back = pose.body[1] - out.body[1]
    out.body += back
    out.hands += back
    out.face = out.face + back
    return out


def draw_aug_params(rng: random.Random, ranges: dict = OFFICIAL_AUG) -> tuple:
    """One frame's random draws in the official order; returns (aspect, scale)."""
    rng.uniform(*ranges["offset_x"])
    rng.uniform(*ranges["offset_y"])
    scale = rng.uniform(*ranges["scale"])
    aspect = rng.uniform(*ranges["aspect"])
    return aspect, scale


def augment_sequence(seq: PoseSequence, seed: int, scale_range: Sequence[float] = (0.7, 1.3), aspect_range: Sequence[float] = (0.6, 1.4)) -> PoseSequence:
    """Negative poses: every frame distorted with its own random draw (seeded, reproducible)."""
    for name, r in (("scale_range", scale_range), ("aspect_range", aspect_range)):
        if len(r) != 2 or not (0 < r[0] <= r[1]):
            raise ValueError(f"{name} must be (low, high) with 0 < low <= high, got {tuple(r)}")
    ranges = dict(OFFICIAL_AUG, scale=tuple(scale_range), aspect=tuple(aspect_range))
    rng = random.Random(seed)
    frames = []
    for p in seq.frames:
        aspect, scale = draw_aug_params(rng, ranges)
        frames.append(augment_pose(p, aspect, scale))
    return PoseSequence(frames, seq.width, seq.height)
