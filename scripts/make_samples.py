#!/usr/bin/env python3
"""Make the project's sample inputs: a synthetic reference image of a person-like figure and a short
synthetic dance clip of a similar figure (arms and legs swinging, body bobbing).

    python scripts/make_samples.py [OUT_DIR] [--frames 40] [--fps 16] [--size 512]

Writes reference.png and dance.mp4 (H.264, yuv420p, via Debian's ffmpeg). Deterministic: the same
arguments give the same pixels. The committed copies in docker/samples/ were made with the defaults.
"""

import argparse
import math
import subprocess
from pathlib import Path

from PIL import Image, ImageDraw


def limb(d, a, b, w, colour):
    d.line([a, b], fill=colour, width=w)
    r = w // 2
    for p in (a, b):
        d.ellipse([p[0] - r, p[1] - r, p[0] + r, p[1] + r], fill=colour)


def figure(size: int, t: float, background=(200, 214, 230), shirt=(200, 60, 60), skin=(236, 188, 150), trousers=(40, 50, 110)) -> Image.Image:
    """A person-like figure at dance phase t (t=0: standing, arms slightly out)."""
    s = size / 512
    img = Image.new("RGB", (size, size), background)
    d = ImageDraw.Draw(img)
    d.rectangle([0, int(430 * s), size, size], fill=(150, 140, 120))  # floor
    bob = 8 * s * math.sin(2 * math.pi * t * 2)
    cx = size / 2 + 20 * s * math.sin(2 * math.pi * t)
    neck = (cx, 150 * s + bob)
    hip = (cx, 280 * s + bob)
    # legs
    for side, ph in ((-1, 0.0), (1, math.pi)):
        sw = math.sin(2 * math.pi * t + ph)
        knee = (cx + side * 22 * s + 25 * s * sw, 350 * s + bob)
        foot = (cx + side * 30 * s + 35 * s * sw, 425 * s)
        limb(d, (cx + side * 14 * s, hip[1]), knee, int(26 * s), trousers)
        limb(d, knee, foot, int(22 * s), trousers)
    # torso
    d.rounded_rectangle([cx - 42 * s, neck[1] + 5 * s, cx + 42 * s, hip[1] + 10 * s], radius=int(18 * s), fill=shirt)
    # arms
    for side, ph in ((-1, 0.0), (1, math.pi / 2)):
        ang = math.radians(35 + 70 * (0.5 + 0.5 * math.sin(2 * math.pi * t + ph)))
        sh = (cx + side * 40 * s, neck[1] + 18 * s)
        el = (sh[0] + side * 60 * s * math.sin(ang), sh[1] + 60 * s * math.cos(ang) - 10 * s)
        ang2 = ang + math.radians(30 * math.sin(2 * math.pi * t * 2 + ph))
        wr = (el[0] + side * 55 * s * math.sin(ang2), el[1] - 55 * s * math.cos(math.pi - ang2))
        limb(d, sh, el, int(18 * s), shirt)
        limb(d, el, wr, int(15 * s), skin)
    # head
    r = 34 * s
    d.ellipse([cx - r, neck[1] - 2.1 * r, cx + r, neck[1] - 0.1 * r], fill=skin)
    d.ellipse([cx - r, neck[1] - 2.15 * r, cx + r, neck[1] - 1.3 * r], fill=(60, 40, 30))  # hair
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default=str(Path(__file__).resolve().parent.parent / "docker" / "samples"))
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--fps", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    figure(a.size, 0.0, background=(225, 225, 215), shirt=(40, 120, 70)).save(out / "reference.png", optimize=True)
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{a.size}x{a.size}",
        "-r",
        str(a.fps),
        "-i",
        "-",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "30",
        "-preset",
        "slow",
        "-g",
        str(a.fps * 2),
        "-bf",
        "0",
        "-threads",
        "1",
        "-movflags",
        "+faststart",
        str(out / "dance.mp4"),
    ]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    for i in range(a.frames):
        p.stdin.write(figure(a.size, i / a.frames * 2).tobytes())  # two dance cycles
    p.stdin.close()
    if p.wait() != 0:
        raise SystemExit("ffmpeg failed")
    print(f"wrote {out / 'reference.png'} and {out / 'dance.mp4'} ({a.frames} frames at {a.fps} fps)")


if __name__ == "__main__":
    main()
