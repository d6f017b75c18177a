/** Small real media made with FFmpeg for the serverless tests (no binary fixtures in git). */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export function ffmpegMissing(): string | undefined {
  try {
    execFileSync('ffprobe', ['-version'], { stdio: 'ignore' });
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'ffmpeg/ffprobe are not installed (apt-get install ffmpeg)';
  }
}

function ff(args: string[]): void {
  execFileSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A synthetic test image (png | jpg | webp | gif) of w×h. */
export function makeImage(dir: string, name: string, w: number, h: number): Buffer {
  const out = join(dir, name);
  ff(['-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=1`, '-frames:v', '1', out]);
  return readFileSync(out);
}

/** A synthetic H.264 mp4 of `frames` frames at `fps`. */
export function makeVideo(dir: string, name: string, w: number, h: number, frames: number, fps = 16): Buffer {
  const out = join(dir, name);
  ff(['-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=${fps}`, '-frames:v', String(frames), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-preset', 'ultrafast', out]);
  return readFileSync(out);
}

export const b64 = (b: Buffer) => b.toString('base64');
export const dataUri = (mime: string, b: Buffer) => `data:${mime};base64,${b.toString('base64')}`;
