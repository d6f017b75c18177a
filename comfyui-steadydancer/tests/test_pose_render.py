"""Pose rendering: limb and joint colours at known pixels, hands, supersampled batches, and
pixel parity of the body drawing with the official util.draw_bodypose."""

import sys

import cv2
import numpy as np
import pytest

from pack_loader import pack_module

pa = pack_module("pose_align")
pr = pack_module("pose_render")


def pose_with(points, hands=None):
    body = np.zeros((18, 2))
    valid = np.zeros(18, bool)
    for i, xy in points.items():
        body[i], valid[i] = xy, True
    h = np.zeros((2, 21, 2))
    hv = np.zeros((2, 21), bool)
    for (s, j), xy in (hands or {}).items():
        h[s, j], hv[s, j] = xy, True
    return pa.Pose(body, valid, h, hv)


def test_single_limb_colours():
    """Neck (1) at (50, 50) px and right shoulder (2) at (150, 50) px on a 200x100 canvas.
    Limb 0 (1-2) is listed as [255, 0, 0] on the official BGR canvas, so it is blue in RGB and
    dimmed to 60 %: int(255 * 0.6) = 153 -> (0, 0, 153) at the segment's middle (100, 50),
    within the half-width of 4 px (row 53) but not at row 56.
    Joint 1, listed [255, 85, 0], is RGB (0, 85, 255) undimmed at (50, 50);
    joint 2, listed [255, 170, 0], is RGB (0, 170, 255) at (150, 50)."""
    img = pr.draw_pose(pose_with({1: (0.25, 0.5), 2: (0.75, 0.5)}), 200, 100)
    assert img.shape == (100, 200, 3) and img.dtype == np.uint8
    assert tuple(img[50, 100]) == (0, 0, 153)
    assert tuple(img[53, 100]) == (0, 0, 153)
    assert tuple(img[56, 100]) == (0, 0, 0)
    assert tuple(img[50, 50]) == (0, 85, 255)
    assert tuple(img[50, 150]) == (0, 170, 255)
    assert tuple(img[10, 10]) == (0, 0, 0)
    lit = np.argwhere(img.any(-1))
    assert lit[:, 0].min() >= 45 and lit[:, 0].max() <= 55


def test_invalid_points_are_not_drawn():
    p = pose_with({1: (0.25, 0.5), 2: (0.75, 0.5)})
    p.body_valid[2] = False
    img = pr.draw_pose(p, 200, 100)
    assert tuple(img[50, 100]) == (0, 0, 0)  # no limb without both ends
    assert tuple(img[50, 50]) == (0, 85, 255)  # the neck joint alone is drawn


def test_nose_limb_is_red():
    """Limb 12 (neck 1 - nose 0) is listed [0, 0, 255] -> RGB (255, 0, 0), dimmed (153, 0, 0)."""
    img = pr.draw_pose(pose_with({1: (0.5, 0.8), 0: (0.5, 0.2)}), 100, 100)
    assert tuple(img[50, 50]) == (153, 0, 0)
    # joint 0 listed [255, 0, 0] -> RGB (0, 0, 255)
    assert tuple(img[20, 50]) == (0, 0, 255)


def test_hand_bones_and_points():
    """Right hand: point 0 at (20, 20) px, point 1 at (80, 20) px on 100x100: bone 0 has hue 0,
    i.e. (255, 0, 0) on the official BGR canvas -> RGB (0, 0, 255), drawn undimmed at its middle;
    hand points are red (255, 0, 0). Bone 1 (1-2) is not drawn: point 2 is undetected. A point at
    x = 0 px is not drawn (the official > eps test)."""
    img = pr.draw_pose(pose_with({}, {(1, 0): (0.2, 0.2), (1, 1): (0.8, 0.2), (0, 5): (0.0, 0.5)}), 100, 100)
    assert tuple(img[20, 50]) == (0, 0, 255)
    assert tuple(img[20, 20]) == (255, 0, 0)
    assert tuple(img[20, 80]) == (255, 0, 0)
    assert not img[45:56, 0:5].any()


def test_hand_bone_colour_hue():
    """Bone 10 (10-11) has hue 10/20 = 0.5: HSV(0.5,1,1) = (0, 255, 255) listed -> RGB (255, 255, 0)."""
    img = pr.draw_pose(pose_with({}, {(0, 10): (0.1, 0.5), (0, 11): (0.9, 0.5)}), 100, 100)
    assert tuple(img[50, 50]) == (255, 255, 0)


def test_render_batch_supersampled():
    seq = pa.PoseSequence([pose_with({1: (0.25, 0.5), 2: (0.75, 0.5)}), pose_with({1: (0.5, 0.8), 0: (0.5, 0.2)})], 64, 32)
    out = pr.render(seq, 64, 48, supersample=2)
    assert out.shape == (2, 48, 64, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # the blue limb of frame 0 survives the bicubic downscale at its middle
    r, g, b = out[0, 24, 32]
    assert b > 0.4 and r < 0.1 and g < 0.1
    # frame 1 has the red nose limb
    r, g, b = out[1, 24, 32]
    assert r > 0.4 and b < 0.1
    with pytest.raises(ValueError, match="empty"):
        pr.render(pa.PoseSequence([], 8, 8), 8, 8)
    with pytest.raises(ValueError, match="supersample"):
        pr.render(seq, 8, 8, supersample=-1)
    with pytest.raises(ValueError, match="positive"):
        pr.draw_pose(seq.frames[0], 0, 8)


def test_body_matches_official_draw(official_source):
    """Our body drawing equals the official util.draw_bodypose followed by BGR->RGB, pixel for
    pixel, on a random full skeleton with two undetected joints."""
    sys.path.insert(0, str(official_source / "preprocess" / "pose" / "script"))
    try:
        import util as official_util  # noqa: the official module, as an oracle only
    finally:
        sys.path.pop(0)
    rs = np.random.RandomState(3)
    body = rs.uniform(0.05, 0.95, (18, 2))
    valid = np.ones(18, bool)
    valid[[9, 15]] = False
    subset = np.where(valid, np.arange(18), -1).astype(float)[None]
    cand = np.where(valid[:, None], body, -1.0)
    for w, h in ((320, 240), (257, 401)):
        theirs = official_util.draw_bodypose(np.zeros((h, w, 3), np.uint8), cand, subset)
        theirs = cv2.cvtColor(theirs, cv2.COLOR_BGR2RGB)
        p = pa.Pose(body, valid, np.zeros((2, 21, 2)), np.zeros((2, 21), bool))
        np.testing.assert_array_equal(pr.draw_pose(p, w, h), theirs)


def test_official_canvas_size():
    """Official: reference resized to the 1024*576 area at its aspect, sides multiples of 16, drawn
    at 2x. Portrait 60x80 (h/w = 4/3): sqrt(589824*4/3) = 886.8 -> //16 = 55 -> 880;
    sqrt(589824*3/4) = 665.1 -> //16 = 41 -> 656; canvas 1312 x 1760. Landscape 1024x576 -> 2048x1152.
    The example frames shipped upstream (preprocess/output/.../positive/0000.jpg) are 1312x1792,
    i.e. a 656x896 reference: h/w = 896/656 gives sqrt(589824*1.3659) = 897.6 -> 56*16 = 896 and
    sqrt(589824/1.3659) = 657.2 -> 41*16 = 656."""
    assert pr.official_canvas(60, 80) == (1312, 1760)
    assert pr.official_canvas(1024, 576) == (2048, 1152)
    assert pr.official_canvas(656, 896) == (1312, 1792)


def test_render_default_uses_official_canvas(monkeypatch):
    sizes = []
    real = pr.draw_pose
    monkeypatch.setattr(pr, "draw_pose", lambda p, w, h: sizes.append((w, h)) or real(p, w, h))
    seq = pa.PoseSequence([pose_with({1: (0.25, 0.5), 2: (0.75, 0.5)})], 1024, 576)
    out = pr.render(seq, 832, 480)
    assert sizes == [(2048, 1152)] and out.shape == (1, 480, 832, 3)
    r, g, b = out[0, 240, 416]
    assert b > 0.4 and r < 0.1 and g < 0.1


def pil_resize(img, width, height):
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BICUBIC))


@pytest.mark.parametrize(
    "canvas,out",
    [((1536, 1536), (480, 832)), ((2048, 1152), (832, 480)), ((1312, 1760), (480, 832)), ((960, 1664), (480, 832)), ((200, 120), (480, 832)), ((640, 480), (640, 300))],
)
def test_banded_resize_is_pil_resize_bit_for_bit(canvas, out):
    """resize_bicubic (the passes run only where the canvas holds pixels) equals PIL's resize of the
    whole canvas: figures in the middle, touching every edge, one pixel, a full canvas, none."""
    cw, ch = canvas
    rs = np.random.RandomState(cw + ch)
    cases = []
    for _ in range(3):
        img = np.zeros((ch, cw, 3), np.uint8)
        y0, x0 = rs.randint(0, ch - 10), rs.randint(0, cw - 10)
        img[y0 : y0 + rs.randint(1, ch - y0), x0 : x0 + rs.randint(1, cw - x0)] = rs.randint(0, 256, 3)
        img[rs.randint(0, ch, 20), rs.randint(0, cw, 20)] = 255
        cases.append(img)
    edges = np.zeros((ch, cw, 3), np.uint8)
    edges[0, :, 0] = edges[-1, :, 1] = edges[:, 0, 2] = edges[:, -1] = 200
    one = np.zeros((ch, cw, 3), np.uint8)
    one[ch // 3, cw // 5] = (255, 7, 0)
    cases += [edges, one, rs.randint(0, 256, (ch, cw, 3), dtype=np.uint8), np.zeros((ch, cw, 3), np.uint8)]
    for k, img in enumerate(cases):
        full = pil_resize(img, *out)
        part, c0 = pr.resize_bicubic(img, *out)
        mine = np.zeros_like(full)
        if part is not None:
            mine[:, c0 : c0 + part.shape[1]] = part
        np.testing.assert_array_equal(mine, full, err_msg=f"case {k}")


def test_render_equals_draw_then_pil_resize():
    """render (dimmed limb colours, banded resize, thread pool) gives exactly the frames of the
    plain recipe: draw_pose, PIL bicubic resize of the whole canvas, / 255 in float32. Random
    skeletons, some partly off the canvas, one with nothing valid."""
    rs = np.random.RandomState(7)
    frames = []
    for k in range(6):
        body = rs.uniform(-0.2 if k == 2 else 0.1, 1.2 if k == 2 else 0.9, (18, 2))
        valid = rs.uniform(size=18) > 0.2
        hands = rs.uniform(0.05, 0.95, (2, 21, 2))
        hv = rs.uniform(size=(2, 21)) > 0.3
        if k == 4:
            valid[:] = False
            hv[:] = False
        frames.append(pa.Pose(body, valid, hands, hv))
    seq = pa.PoseSequence(frames, 576, 576)
    for w, h, ss in ((480, 832, 0), (832, 480, 0), (160, 96, 2)):
        out = pr.render(seq, w, h, ss)
        cw, ch = pr.official_canvas(576, 576) if ss == 0 else (w * ss, h * ss)
        for f, p in enumerate(frames):
            ref = np.divide(pil_resize(pr.draw_pose(p, cw, ch), w, h), 255.0, dtype=np.float32)
            np.testing.assert_array_equal(out[f], ref, err_msg=f"frame {f} at {w}x{h} supersample {ss}")
    assert not out[4].any()


def test_limbs_drawn_dimmed_equal_dimming_the_canvas():
    """Limbs in their dimmed colours = limbs in full colour, then the whole canvas * 0.6 (the
    official order), on overlapping limbs; the joints drawn afterwards are not dimmed."""
    rs = np.random.RandomState(2)
    for _ in range(5):
        body = rs.uniform(0.3, 0.7, (18, 2))  # crowded: limbs overlap
        p = pa.Pose(body, np.ones(18, bool), np.zeros((2, 21, 2)), np.zeros((2, 21), bool))
        ref = np.zeros((300, 400, 3), np.uint8)
        for i, (a, b) in enumerate(pr.LIMBS):
            xs, ys = body[[a, b], 0] * 400.0, body[[a, b], 1] * 300.0
            length = ((xs[0] - xs[1]) ** 2 + (ys[0] - ys[1]) ** 2) ** 0.5
            angle = np.degrees(np.arctan2(ys[0] - ys[1], xs[0] - xs[1]))
            poly = cv2.ellipse2Poly((int(np.mean(xs)), int(np.mean(ys))), (int(length / 2), 4), int(angle), 0, 360, 1)
            cv2.fillConvexPoly(ref, poly, pr.BODY_COLORS_RGB[i])
        ref = (ref * 0.6).astype(np.uint8)
        for i in range(18):
            cv2.circle(ref, (int(body[i, 0] * 400), int(body[i, 1] * 300)), 4, pr.BODY_COLORS_RGB[i], thickness=-1)
        np.testing.assert_array_equal(pr.draw_pose(p, 400, 300), ref)
