"""Rendering poses to the stick-figure images SteadyDancer was trained on.

Restates the drawing of the official preprocessing (``preprocess/pose/script/util.py``
``draw_bodypose`` / ``draw_handpose``, called by ``pose_align.py`` with ``draw_face=False``):
  * black canvas; 17 limbs (the first 17 of the OpenPose limb list; the last two, shoulder-ear,
    are never drawn) as filled ellipses of half-width 4 px along the segment, each in its colour;
  * the whole canvas is then dimmed to 60 % (``uint8(canvas * 0.6)``);
  * the 18 joints as filled circles of radius 4 in the joint colour (not dimmed);
  * hands: 20 bone lines of thickness 2, bone k coloured HSV(k/20, 1, 1), then each keypoint as a
    filled circle of radius 4, pure red; a hand point is drawn only when its pixel coordinates
    are both positive (the official ``> eps`` test).
The official canvas is drawn with those colour triples and then converted BGR -> RGB before it
is saved, so in the saved (RGB) pose frames every colour triple appears reversed: limb 0 (neck to
right shoulder), listed as [255, 0, 0], is blue; hand points, listed as (0, 0, 255), are red.
We draw the reversed triples straight into an RGB canvas, which gives the same pixels.

Canvas size: the official pipeline resizes the reference image to the 1024*576 pixel area at its
own aspect ratio (sides multiples of 16), draws the poses at twice that size (``single.mp4`` at
``ref_H*2, ref_W*2``), and ``generate_dancer.py`` resizes the frames with PIL bicubic to the
working size. ``render`` does the same by default (``supersample=0``), so strokes keep the
thickness, relative to the frame, that SteadyDancer saw in training at every output size;
``supersample=k`` draws at k times the output size instead.

Speed (bench/pose-prep.md): the limbs are drawn in their dimmed colours (no pass over the canvas)
and the bicubic resize runs only over the rows and columns that hold a figure
(``resize_bicubic``, bit for bit PIL's resize); frames are drawn on a thread pool.
"""

from __future__ import annotations

import colorsys
import math
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from PIL import Image

from .pose_align import Pose, PoseSequence, official_reference_size

LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17)]
# Colour triples as listed upstream (drawn on a BGR canvas there).
_LISTED = [
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
]
BODY_COLORS_RGB = [c[::-1] for c in _LISTED]
HAND_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20)]
HAND_EDGE_COLORS_RGB = [tuple(float(v) * 255 for v in colorsys.hsv_to_rgb(k / len(HAND_EDGES), 1.0, 1.0))[::-1] for k in range(len(HAND_EDGES))]
HAND_POINT_RGB = (255, 0, 0)
LIMB_HALF_WIDTH = 4
JOINT_RADIUS = 4
HAND_LINE_THICKNESS = 2
HAND_POINT_RADIUS = 4
# The limbs are drawn first on the black canvas and the whole canvas is then dimmed to 60 %; limb
# pixels are written without antialiasing (each pixel holds exactly one limb's colour or black),
# so drawing each limb in its dimmed colour, uint8(colour * 0.6) as numpy computes it for the
# canvas, gives the same pixels without a pass over the whole canvas.
_LIMB_COLORS_DIM = [tuple(int(v) for v in (np.array(c, dtype=np.uint8) * 0.6).astype(np.uint8)) for c in BODY_COLORS_RGB]


def draw_pose(pose: Pose, width: int, height: int) -> np.ndarray:
    """One pose on a black ``height x width`` RGB uint8 canvas."""
    if width <= 0 or height <= 0:
        raise ValueError(f"render size must be positive, got {width}x{height}")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    b, ok = pose.body, pose.body_valid
    for i, (p, q) in enumerate(LIMBS):
        if not (ok[p] and ok[q]):
            continue
        xs = b[[p, q], 0] * float(width)
        ys = b[[p, q], 1] * float(height)
        length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        poly = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), LIMB_HALF_WIDTH), int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, poly, _LIMB_COLORS_DIM[i])
    for i in range(len(b)):
        if ok[i]:
            cv2.circle(canvas, (int(b[i, 0] * width), int(b[i, 1] * height)), JOINT_RADIUS, BODY_COLORS_RGB[i], thickness=-1)
    for h in range(2):
        pts, valid = pose.hands[h], pose.hands_valid[h]
        px = [(int(x * width), int(y * height)) for x, y in pts]
        for k, (e0, e1) in enumerate(HAND_EDGES):
            (x1, y1), (x2, y2) = px[e0], px[e1]
            if valid[e0] and valid[e1] and min(x1, y1, x2, y2) > 0:
                cv2.line(canvas, (x1, y1), (x2, y2), HAND_EDGE_COLORS_RGB[k], thickness=HAND_LINE_THICKNESS)
        for j, (x, y) in enumerate(px):
            if valid[j] and x > 0 and y > 0:
                cv2.circle(canvas, (x, y), HAND_POINT_RADIUS, HAND_POINT_RGB, thickness=-1)
    return canvas


def resize_bicubic(img: np.ndarray, width: int, height: int) -> tuple:
    """PIL's bicubic resize of a mostly black uint8 RGB canvas to (width, height), computed where
    it is not black: returns (columns c0..c1 of the result, c0); (None, 0) for a black canvas.
    The result's other columns are black.

    Exactly PIL's ``Image.resize((width, height), BICUBIC)``: PIL resizes in two separable passes,
    horizontal (every row on its own, rounded to uint8) then vertical (every column on its own),
    each pass's weights depending only on the input and output lengths along its axis. A black
    row stays black through the horizontal pass and a black column through the vertical one,
    so the horizontal pass runs on the band of rows holding pixels and the vertical pass on the
    band of columns holding pixels after it; both are PIL's own passes, on the full length of
    their axis (only one axis changes per call, so PIL runs only that pass)."""
    h, w = img.shape[:2]
    rows = np.flatnonzero(img.reshape(h, -1).any(axis=1))
    if not len(rows):
        return None, 0
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    band = np.asarray(Image.fromarray(np.ascontiguousarray(img[r0:r1])).resize((width, r1 - r0), Image.Resampling.BICUBIC))
    cols = np.flatnonzero(band.reshape(-1, width * 3).any(axis=0).reshape(width, 3).any(axis=1))  # (fast axis order)
    if not len(cols):
        return None, 0
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    temp = np.zeros((h, c1 - c0, 3), dtype=np.uint8)
    temp[r0:r1] = band[:, c0:c1]
    return np.asarray(Image.fromarray(temp).resize((c1 - c0, height), Image.Resampling.BICUBIC)), c0


def official_canvas(frame_width: int, frame_height: int) -> tuple[int, int]:
    """(width, height) the official preprocessing draws at for a reference of this size:
    twice the 1024*576-area size at the same aspect ratio, sides multiples of 16."""
    w16, h16 = official_reference_size(frame_width, frame_height)
    return 2 * w16, 2 * h16


def render(seq: PoseSequence, width: int, height: int, supersample: int = 0) -> np.ndarray:
    """All frames as float32 ``[F, height, width, 3]`` in 0..1 (a ComfyUI IMAGE batch).

    ``supersample`` 0: the official canvas for the sequence's frame size (see module doc);
    k >= 1: draw at k x (width, height). Either way the result is PIL-bicubic resized to
    (width, height) when the canvas differs."""
    if supersample < 0:
        raise ValueError(f"supersample must be >= 0 (0: official canvas), got {supersample}")
    if width <= 0 or height <= 0:
        raise ValueError(f"render size must be positive, got {width}x{height}")
    if len(seq) == 0:
        raise ValueError("render: the pose sequence is empty")
    cw, ch = official_canvas(seq.width, seq.height) if supersample == 0 else (width * supersample, height * supersample)
    # zeros: black is 0.0 and most of every frame is black; only the drawn columns are written
    out = np.zeros((len(seq), height, width, 3), dtype=np.float32)

    def one(f):
        img = draw_pose(seq.frames[f], cw, ch)
        c0 = 0
        if (cw, ch) != (width, height):
            img, c0 = resize_bicubic(img, width, height)
        if img is not None:
            np.divide(img, 255.0, out=out[f][:, c0 : c0 + img.shape[1]], dtype=np.float32)

    # frames are independent; OpenCV's drawing and PIL's resize release the GIL, so threads overlap
    workers = min(len(seq), os.cpu_count() or 1, 16)
    if workers <= 1:
        for f in range(len(seq)):
            one(f)
    else:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, range(len(seq))))
    return out
