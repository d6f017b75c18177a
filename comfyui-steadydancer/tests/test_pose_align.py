"""Alignment and negative-pose augmentation maths on synthetic keypoints, against values worked
out by hand from the official definitions (preprocess/pose_align.py, utils_aug.py)."""

import random
import sys
import types

import numpy as np
import pytest

from pack_loader import pack_module

pa = pack_module("pose_align")
Pose, PoseSequence = pa.Pose, pa.PoseSequence


def make_pose(points: dict, hands=None, face=None) -> Pose:
    body = np.zeros((18, 2))
    valid = np.zeros(18, bool)
    for i, xy in points.items():
        body[i] = xy
        valid[i] = True
    h = np.zeros((2, 21, 2))
    hv = np.zeros((2, 21), bool)
    for (side, j), xy in (hands or {}).items():
        h[side, j] = xy
        hv[side, j] = True
    f = np.zeros((68, 2))
    fv = np.zeros(68, bool)
    for j, xy in (face or {}).items():
        f[j] = xy
        fv[j] = True
    return Pose(body, valid, h, hv, f, fv)


# First driving frame F, in aspect space (x already multiplied by the video's W/H).
F_ASPECT = {
    0: (0.5, 0.2),
    1: (0.5, 0.3),
    14: (0.48, 0.2),
    16: (0.46, 0.2),
    15: (0.52, 0.2),
    17: (0.54, 0.2),
    2: (0.4, 0.3),
    5: (0.6, 0.3),
    3: (0.4, 0.4),
    4: (0.4, 0.5),
    6: (0.6, 0.4),
    7: (0.6, 0.5),
    8: (0.45, 0.6),
    11: (0.55, 0.6),
    9: (0.45, 0.7),
    10: (0.45, 0.8),
    12: (0.55, 0.7),
    13: (0.55, 0.8),
}
# Reference person R, in aspect space.
R_ASPECT = {
    0: (1.0, 0.05),
    1: (1.0, 0.25),
    14: (0.97, 0.05),
    16: (0.94, 0.05),
    15: (1.05, 0.05),
    17: (1.10, 0.05),
    2: (0.85, 0.25),
    5: (1.15, 0.25),
    3: (0.85, 0.45),
    4: (0.85, 0.75),
    6: (1.15, 0.35),
    7: (1.15, 0.45),
    8: (0.95, 0.7),
    11: (1.05, 0.7),
    9: (0.95, 0.9),
    10: (0.95, 1.0),
    12: (1.05, 0.8),
    13: (1.05, 0.9),
}
VIDEO_W, VIDEO_H = 200, 100  # video aspect 2
REF_W, REF_H = 300, 150  # a 2:1 reference image; the official resize makes it 1072x528
REF_ASPECT = 1072 / 528  # the aspect the alignment uses (official_reference_size)


def to_norm(points, aspect):
    return {i: (x / aspect, y) for i, (x, y) in points.items()}


def test_scales_by_hand():
    """Scale factors |segment in R| / |segment in F| (aspect space):

    neck 0-1: R 0.20 / F 0.10 = 2.0
    face left 16-14 + 14-0: R 0.03+0.03 / F 0.02+0.02 = 1.5
    face right 17-15 + 15-0: R 0.05+0.05 / F 0.02+0.02 = 2.5
    shoulder 2-5: R 0.30 / F 0.20 = 1.5
    upper arm: mean(2-3: 0.20/0.10, 5-6: 0.10/0.10) = mean(2, 1) = 1.5
    lower arm: mean(3-4: 0.30/0.10, 6-7: 0.10/0.10) = mean(3, 1) = 2.0
    hand: (upper arm + lower arm) / 2 = 1.75 (the official finger loop runs 0 times)
    body length, neck to hip midpoint: R |(1.0,0.25)-(1.0,0.7)| = 0.45 / F 0.30 = 1.5
    upper leg: mean(8-9: 0.20/0.10, 11-12: 0.10/0.10) = 1.5
    lower leg: mean(9-10: 0.10/0.10, 12-13: 0.10/0.10) = 1.0
    """
    s = pa.body_part_scales(make_pose(R_ASPECT), make_pose(F_ASPECT))
    expected = dict(
        scale_neck=2.0,
        scale_face_left=1.5,
        scale_face_right=2.5,
        scale_shoulder=1.5,
        scale_arm_upper=1.5,
        scale_arm_lower=2.0,
        scale_hand=1.75,
        scale_body_len=1.5,
        scale_leg_upper=1.5,
        scale_leg_lower=1.0,
    )
    assert s.keys() == expected.keys()
    for k, v in expected.items():
        assert s[k] == pytest.approx(v, abs=1e-12), k


def test_align_sequence_by_hand():
    """Frame P = F with the right arm raised: elbow 3 at (0.3, 0.3), wrist 4 at (0.3, 0.2);
    right-hand (hands[1]) point 8 at (0.3, 0.15), point 0 on the wrist; left-hand (hands[0])
    point 4 at (0.65, 0.5); a face point at (0.5, 0.25). All in aspect space of the video.

    Chain about the fixed neck (0.5, 0.3), each child = new parent + scale * original offset:
      2' = (0.5,0.3) + 1.5*(-0.1, 0)   = (0.35, 0.3)
      3' = 2' + 1.5*(0.3-0.4, 0)      = (0.20, 0.3)
      4' = 3' + 2.0*(0, 0.2-0.3)      = (0.20, 0.1)
      hands[1][8]' = 4' + 1.75*(0, -0.05) = (0.20, 0.0125)
      0' = (0.5,0.3) + 2.0*(0, -0.1)   = (0.5, 0.1)
      16' = 0' + 1.5*(-0.04, 0) = (0.44, 0.1);  17' = 0' + 2.5*(0.04, 0) = (0.60, 0.1)
      5' = (0.65, 0.3); 6' = 5' + 1.5*(0, 0.1) = (0.65, 0.45); 7' = 6' + 2.0*(0, 0.1) = (0.65, 0.65)
      hands[0][4]' = 7' + 1.75*(0.05, 0) = (0.7375, 0.65)
      8' = (0.5,0.3) + 1.5*(-0.05, 0.3) = (0.425, 0.75); 9' = 8' + 1.5*(0, 0.1) = (0.425, 0.9)
      10' = 9' + 1.0*(0, 0.1) = (0.425, 1.0)
      face: not rescaled.
    Shift by neck(R) - neck(F) = (1.0,0.25) - (0.5,0.3) = (0.5, -0.05):
      neck (1.0, 0.25); 4 (0.70, 0.05); hands[1][8] (0.70, -0.0375); 0 (1.0, 0.05);
      16 (0.94, 0.05); 17 (1.10, 0.05); 7 (1.15, 0.6); hands[0][4] (1.2375, 0.6);
      10 (0.925, 0.95); face point (1.0, 0.2);
    then x / the reference aspect, which is that of the official resize of the 300x150 image,
    1072x528 (not 2).
    """
    P = dict(F_ASPECT)
    P[3] = (0.3, 0.3)
    P[4] = (0.3, 0.2)
    hands = {(1, 0): (0.3, 0.2), (1, 8): (0.3, 0.15), (0, 0): (0.6, 0.5), (0, 4): (0.65, 0.5)}
    va = VIDEO_W / VIDEO_H
    f_pose = make_pose(to_norm(F_ASPECT, va))
    p_pose = make_pose(to_norm(P, va), {k: (x / va, y) for k, (x, y) in hands.items()}, {30: (0.5 / va, 0.25)})
    ref = make_pose(to_norm(R_ASPECT, REF_ASPECT))
    seq = PoseSequence([f_pose, p_pose], VIDEO_W, VIDEO_H)
    out = pa.align_sequence(ref, (REF_W, REF_H), seq, align_frame=0)
    assert (out.width, out.height) == (REF_W, REF_H) and len(out) == 2
    a = out.frames[1]
    exp = {1: (1.0, 0.25), 4: (0.70, 0.05), 0: (1.0, 0.05), 16: (0.94, 0.05), 17: (1.10, 0.05), 7: (1.15, 0.6), 10: (0.925, 0.95)}
    a_ = np.array([REF_ASPECT, 1.0])
    for i, xy in exp.items():
        np.testing.assert_allclose(a.body[i], np.array(xy) / a_, atol=1e-12, err_msg=f"body {i}")
    np.testing.assert_allclose(a.hands[1, 8], np.array((0.70, -0.0375)) / a_, atol=1e-12)
    np.testing.assert_allclose(a.hands[0, 4], np.array((1.2375, 0.6)) / a_, atol=1e-12)
    np.testing.assert_allclose(a.face[30], np.array((1.0, 0.2)) / a_, atol=1e-12)
    # validity masks travel unchanged
    assert a.body_valid.all() and a.hands_valid[1, 8] and not a.hands_valid[1, 5]
    # the align frame's neck lands on the reference neck
    np.testing.assert_allclose(out.frames[0].body[1], (1.0 / REF_ASPECT, 0.25), atol=1e-12)


def test_low_score_body_points_still_set_the_scales():
    """The official detector keeps the coordinates of low-score body points (its subset marks them
    -1 for drawing only), so they take part in the scale estimation: marking the elbows and ears
    undetected changes no scale."""
    f = make_pose(F_ASPECT)
    f.body_valid[[3, 6, 16, 17]] = False
    r = make_pose(R_ASPECT)
    r.body_valid[[14, 9]] = False
    assert pa.body_part_scales(r, f) == pa.body_part_scales(make_pose(R_ASPECT), make_pose(F_ASPECT))


def test_zero_length_segments_follow_official_rules():
    """Ear 16 and eye 14 of F on its nose 0: face-left path 0 in F, 0.06 in R -> infinite -> the
    mean of the other nine scales; ear 17 and eye 15 on the nose in both R and F -> 0/0 -> 1.
    Mean of the nine: (2.0 + 1.0 + 1.5 + 1.5 + 2.0 + 1.75 + 1.5 + 1.5 + 1.0) / 9 = 13.75 / 9."""
    f = dict(F_ASPECT)
    f[16] = f[14] = f[15] = f[17] = f[0]
    r = dict(R_ASPECT)
    r[15] = r[17] = r[0]
    s = pa.body_part_scales(make_pose(r), make_pose(f))
    assert s["scale_face_right"] == 1.0
    assert s["scale_face_left"] == pytest.approx(13.75 / 9, abs=1e-12)
    assert s["scale_neck"] == pytest.approx(2.0)
    degenerate = make_pose({i: (0.5, 0.5) for i in range(18)})
    with pytest.raises(ValueError, match="degenerate"):
        pa.body_part_scales(make_pose(R_ASPECT), degenerate)


def test_align_bad_inputs():
    ref = make_pose(to_norm(R_ASPECT, 2))
    seq = PoseSequence([make_pose(F_ASPECT)], 100, 100)
    with pytest.raises(ValueError, match="empty"):
        pa.align_sequence(ref, (100, 50), PoseSequence([], 100, 100))
    with pytest.raises(ValueError, match="align_frame 3"):
        pa.align_sequence(ref, (100, 50), seq, align_frame=3)
    with pytest.raises(ValueError, match="reference image"):
        pa.align_sequence(Pose.empty(), (100, 50), seq)
    with pytest.raises(ValueError, match="driving frame 0"):
        pa.align_sequence(ref, (100, 50), PoseSequence([Pose.empty()], 100, 100))
    with pytest.raises(ValueError, match="positive"):
        pa.align_sequence(ref, (0, 50), seq)
    with pytest.raises(ValueError, match="positive"):
        PoseSequence([], 0, 10)


def test_augment_pose_by_hand():
    """aspect 0.5, scale 1.2; neck (0.5, 0.4), nose (0.5, 0.3), wrist 4 (0.3, 0.6),
    hand point (0.3, 0.65), face point (0.5, 0.28):
      x *= 0.5 then *= 1.2: neck -> (0.3, 0.48); back = (0.5,0.4) - (0.3,0.48) = (0.2, -0.08)
      nose  (0.25,0.3)*1.2 + back = (0.5, 0.28)
      wrist (0.15,0.6)*1.2 + back = (0.38, 0.64)
      hand  (0.15,0.65)*1.2 + back = (0.38, 0.70)
      face is only translated: (0.5,0.28) + back = (0.7, 0.2)
    """
    p = make_pose({1: (0.5, 0.4), 0: (0.5, 0.3), 4: (0.3, 0.6)}, {(1, 3): (0.3, 0.65)}, {5: (0.5, 0.28)})
    q = pa.augment_pose(p, aspect=0.5, scale=1.2)
    np.testing.assert_allclose(q.body[1], (0.5, 0.4), atol=1e-12)
    np.testing.assert_allclose(q.body[0], (0.5, 0.28), atol=1e-12)
    np.testing.assert_allclose(q.body[4], (0.38, 0.64), atol=1e-12)
    np.testing.assert_allclose(q.hands[1, 3], (0.38, 0.70), atol=1e-12)
    np.testing.assert_allclose(q.face[5], (0.7, 0.2), atol=1e-12)
    np.testing.assert_allclose(p.body[0], (0.5, 0.3))  # input untouched


def test_augment_sequence_draws_per_frame_in_official_order():
    """Nose 0.1 right of the neck and wrist 4 0.1 below it: after augmentation the nose offset is
    0.1*aspect*scale in x and the wrist offset 0.1*scale in y, so each frame's draw can be read
    back. The draws must follow Python's random in the official order per frame
    (offset_x, offset_y, scale, aspect), seeded."""
    base = make_pose({1: (0.5, 0.5), 0: (0.6, 0.5), 4: (0.5, 0.6)})
    seq = PoseSequence([base] * 5, 64, 64)
    out = pa.augment_sequence(seq, seed=1234)
    rng = random.Random(1234)
    seen = set()
    for f in out.frames:
        rng.random(), rng.random()
        s_exp = 0.7 + 0.6 * rng.random()
        a_exp = 0.6 + 0.8 * rng.random()
        scale = (f.body[4, 1] - f.body[1, 1]) / 0.1
        aspect = (f.body[0, 0] - f.body[1, 0]) / (0.1 * scale)
        assert 0.7 <= scale <= 1.3 and 0.6 <= aspect <= 1.4
        assert scale == pytest.approx(s_exp, abs=1e-9) and aspect == pytest.approx(a_exp, abs=1e-9)
        seen.add(round(scale, 9))
    assert len(seen) == 5  # a new draw for every frame ("diff", not "same")
    again = pa.augment_sequence(seq, seed=1234)
    for a, b in zip(out.frames, again.frames):
        np.testing.assert_array_equal(a.body, b.body)
    with pytest.raises(ValueError, match="scale_range"):
        pa.augment_sequence(seq, 0, scale_range=(1.3, 0.7))


def test_augment_matches_official_utils_aug(official_source):
    """Parity with the official pose_aug_diff (run from the source cache) on the same seed."""
    sys.path.insert(0, str(official_source / "preprocess"))
    try:
        import utils_aug  # noqa: official module, run as an oracle only
    finally:
        sys.path.pop(0)
    rs = np.random.RandomState(0)
    body = rs.uniform(0.1, 0.9, (18, 2))
    hands = rs.uniform(0.1, 0.9, (2, 21, 2))
    faces = rs.uniform(0.1, 0.9, (1, 68, 2))
    ours = pa.augment_sequence(PoseSequence([Pose(body, np.ones(18, bool), hands, np.ones((2, 21), bool), faces[0], np.ones(68, bool))] * 3, 10, 10), seed=7)
    random.seed(7)
    for f in range(3):
        pose = {"bodies": {"candidate": body.copy(), "subset": np.arange(18)[None].astype(float)}, "hands": hands.copy(), "faces": faces.copy()}
        off = utils_aug.pose_aug_diff(pose, size=(10, 10), offset=((-0.2, 0.2), (-0.2, 0.2)), scale=(0.7, 1.3), aspect_ratio_range=(0.6, 1.4))
        np.testing.assert_allclose(ours.frames[f].body, off["bodies"]["candidate"], atol=1e-12)
        np.testing.assert_allclose(ours.frames[f].hands, off["hands"], atol=1e-12)
        np.testing.assert_allclose(ours.frames[f].face, off["faces"][0], atol=1e-12)


def test_align_pose_matches_official_align_img(official_source, monkeypatch):
    """Per-frame limb rescaling equals the official align_img (run from the source cache; its
    module-level moviepy import, unused by align_img, is satisfied by an empty module) on random
    keypoints and random scales, in aspect space with a 2:1 video. Tolerance 1e-6: upstream passes
    each rotation centre through cv2.getRotationMatrix2D, whose centre is a float32 Point2f, so its
    results carry float32 rounding of the centres (~1e-8 here); ours are float64 throughout."""
    for name in ("moviepy", "moviepy.video", "moviepy.video.io", "moviepy.video.io.ImageSequenceClip"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.syspath_prepend(str(official_source / "preprocess"))
    import importlib

    official = importlib.import_module("pose_align")
    assert official.__file__.startswith(str(official_source))
    rs = np.random.RandomState(11)
    body = rs.uniform(0.1, 0.9, (18, 2))
    hands = rs.uniform(0.1, 0.9, (2, 21, 2))
    faces = rs.uniform(0.1, 0.9, (1, 68, 2))
    scales = {k: float(rs.uniform(0.5, 2.0)) for k in pa.SCALE_NAMES}
    pose_ori = {"bodies": {"candidate": body.copy(), "subset": np.arange(18)[None].astype(float)}, "hands": hands.copy(), "faces": faces.copy()}
    img = np.zeros((50, 100, 3), np.uint8)  # W/H = 2
    theirs = official.align_img(img, pose_ori, dict(scales), 1024, 720)
    ours = pa.align_pose(Pose(body, np.ones(18, bool), hands, np.ones((2, 21), bool), faces[0], np.ones(68, bool)).scaled_x(2.0), scales)
    np.testing.assert_allclose(ours.body, theirs["bodies"]["candidate"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.hands, theirs["hands"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.face, theirs["faces"][0], rtol=0, atol=1e-6)
    assert not np.allclose(ours.body, body * [2.0, 1.0], atol=1e-3)  # the rescaling did something
