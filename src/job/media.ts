/**
 * Job media: turn an `image` / `video` field (URL, data URI or bare base64) into checked bytes
 * on disk before ComfyUI sees them. Decoding is done by FFmpeg's own tools (ffprobe for the
 * container/stream facts, ffmpeg for a real decode of the pixels) rather than a hand-written
 * header parser: it is the same decoder family ComfyUI's LoadVideo uses (PyAV), it reads PNG,
 * JPEG and WebP as well as every video codec, and it catches truncated or corrupt data.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { safeFetch, FetchLimitError, UnsafeUrlError, type Resolver } from './safe-fetch.js';

/** An error in one input field: the message names the field; the job fails with it. */
export class InputError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'InputError';
  }
}

export interface MediaLimits {
  /** Max bytes of one input (after base64 decoding / download). */
  maxImageBytes: number;
  maxVideoBytes: number;
  /** Download time limit per URL (ms). */
  fetchTimeoutMs: number;
  /** Image sides accepted (pixels). */
  minImageSide: number;
  maxImageSide: number;
  /** Driving video: longest side, frame count, duration. */
  maxVideoSide: number;
  maxVideoFrames: number;
  maxVideoSeconds: number;
}

export const DEFAULT_LIMITS: MediaLimits = {
  maxImageBytes: 25 * 1024 * 1024,
  maxVideoBytes: 200 * 1024 * 1024,
  fetchTimeoutMs: 60_000,
  minImageSide: 64,
  maxImageSide: 4096,
  maxVideoSide: 4096,
  maxVideoFrames: 2000,
  maxVideoSeconds: 120,
};

export interface FetchPolicy {
  resolver?: Resolver;
  /** UNSAFE (tests, local dev): allow private/loopback URLs. */
  allowPrivateNetworks?: boolean;
  signal?: AbortSignal;
}

const DATA_URI = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)?(;[a-z0-9-]+=[^;,]*)*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/\s]+={0,2}\s*$/;

export type MediaKind = 'image' | 'video';

/** Bytes of a field: fetched safely when it is a URL, decoded when it is base64. */
export async function loadSource(field: string, kind: MediaKind, value: string, limits: MediaLimits, policy: FetchPolicy = {}): Promise<Buffer> {
  const maxBytes = kind === 'image' ? limits.maxImageBytes : limits.maxVideoBytes;
  const trimmed = value.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed)) {
    try {
      const r = await safeFetch(trimmed, {
        maxBytes,
        timeoutMs: limits.fetchTimeoutMs,
        accept: kind === 'image' ? ['image/', 'application/octet-stream', 'binary/octet-stream'] : ['video/', 'application/octet-stream', 'binary/octet-stream'],
        resolver: policy.resolver,
        allowPrivateNetworks: policy.allowPrivateNetworks,
        signal: policy.signal,
      });
      return r.bytes;
    } catch (err) {
      if (err instanceof UnsafeUrlError) throw new InputError(field, `URL refused: ${err.message}`);
      if (err instanceof FetchLimitError) throw new InputError(field, `could not download: ${err.message}`);
      throw err;
    }
  }
  let b64 = trimmed;
  const m = DATA_URI.exec(trimmed);
  if (m) {
    const mime = (m[1] ?? '').toLowerCase();
    if (mime && !mime.startsWith(`${kind}/`) && mime !== 'application/octet-stream') throw new InputError(field, `a data URI of type ${mime} was given; an ${kind}/* is expected`);
    b64 = trimmed.slice(m[0].length);
  } else if (trimmed.startsWith('data:')) {
    throw new InputError(field, 'data URIs must be base64-encoded (data:<mime>;base64,<data>)');
  }
  if (!b64) throw new InputError(field, 'is empty');
  // Base64 grows data by 4/3: refuse before decoding something far too large.
  if ((b64.length * 3) / 4 > maxBytes + 4) throw new InputError(field, `is larger than the limit of ${maxBytes} bytes`);
  if (!BASE64.test(b64)) throw new InputError(field, 'is neither an http(s) URL nor valid base64 / a base64 data URI');
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length === 0) throw new InputError(field, 'decodes to zero bytes');
  return bytes;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  nb_frames?: string;
  nb_read_packets?: string;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  duration?: string;
}
interface ProbeResult {
  streams?: ProbeStream[];
  format?: { format_name?: string; duration?: string };
}

async function ffprobe(file: string, extra: string[], signal?: AbortSignal): Promise<ProbeResult | undefined> {
  const r = await execa('ffprobe', ['-v', 'error', '-of', 'json', '-show_streams', '-show_format', ...extra, file], { reject: false, timeout: 60_000, cancelSignal: signal });
  if (r.exitCode !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as ProbeResult;
  } catch {
    return undefined;
  }
}

/** Full decode of the first `frames` video frames; returns FFmpeg's complaint or undefined. */
async function decodeErrors(file: string, frames: number, signal?: AbortSignal): Promise<string | undefined> {
  const r = await execa('ffmpeg', ['-nostdin', '-v', 'error', '-xerror', '-i', file, '-map', '0:v:0', '-frames:v', String(frames), '-f', 'null', '-'], {
    reject: false,
    timeout: 120_000,
    cancelSignal: signal,
  });
  if (r.exitCode !== 0 || r.stderr.trim()) return (r.stderr.trim().split('\n').pop() ?? `ffmpeg exit ${r.exitCode}`).slice(0, 200);
  return undefined;
}

export interface ImageInfo {
  codec: string;
  width: number;
  height: number;
}
export interface VideoInfo {
  codec: string;
  width: number;
  height: number;
  frames: number;
  fps: number;
  seconds: number;
}

const IMAGE_CODECS: Record<string, string> = { png: 'png', mjpeg: 'jpg', webp: 'webp' };

export async function checkImage(field: string, file: string, limits: MediaLimits, signal?: AbortSignal): Promise<ImageInfo> {
  const p = await ffprobe(file, [], signal);
  const v = p?.streams?.find((s) => s.codec_type === 'video');
  if (!p || !v || !v.codec_name) throw new InputError(field, 'is not a readable image (PNG, JPEG or WebP expected)');
  if (!(v.codec_name in IMAGE_CODECS)) throw new InputError(field, `is ${v.codec_name}, not a PNG, JPEG or WebP image`);
  const fmt = p.format?.format_name ?? '';
  if (!/image2|png_pipe|jpeg_pipe|webp_pipe/.test(fmt)) throw new InputError(field, `is a ${fmt || 'unknown'} container, not a still image`);
  const { width = 0, height = 0 } = v;
  if (!width || !height) throw new InputError(field, 'is corrupt (no image dimensions can be read)');
  if (width < limits.minImageSide || height < limits.minImageSide) throw new InputError(field, `is ${width}x${height}; each side must be at least ${limits.minImageSide} px`);
  if (width > limits.maxImageSide || height > limits.maxImageSide) throw new InputError(field, `is ${width}x${height}; each side must be at most ${limits.maxImageSide} px`);
  const bad = await decodeErrors(file, 1, signal);
  if (bad) throw new InputError(field, `is corrupt (the image does not decode: ${bad})`);
  return { codec: v.codec_name, width, height };
}

function rate(r: string | undefined): number {
  if (!r) return 0;
  const [a, b] = r.split('/').map(Number);
  return a && b ? a / b : 0;
}

export async function checkVideo(field: string, file: string, limits: MediaLimits, signal?: AbortSignal): Promise<VideoInfo> {
  const p = await ffprobe(file, ['-count_packets', '-select_streams', 'v:0'], signal);
  const v = p?.streams?.[0];
  if (!p || !v || v.codec_type !== 'video' || !v.codec_name) throw new InputError(field, 'is not a readable video (e.g. MP4/H.264, WebM, MOV expected)');
  const fmt = p.format?.format_name ?? '';
  if (/image2|_pipe$/.test(fmt)) throw new InputError(field, `is a still image (${v.codec_name}), not a video`);
  const { width = 0, height = 0 } = v;
  const frames = Number(v.nb_read_packets ?? v.nb_frames ?? 0);
  const fps = rate(v.avg_frame_rate) || rate(v.r_frame_rate);
  const seconds = Number(p.format?.duration ?? v.duration ?? (fps ? frames / fps : 0));
  if (!frames) throw new InputError(field, 'has no video frames');
  if (width < 16 || height < 16) throw new InputError(field, `is ${width}x${height}, too small`);
  if (Math.max(width, height) > limits.maxVideoSide) throw new InputError(field, `is ${width}x${height}; the longest side may be at most ${limits.maxVideoSide} px`);
  if (frames > limits.maxVideoFrames) throw new InputError(field, `has ${frames} frames; at most ${limits.maxVideoFrames} are accepted (trim the clip)`);
  if (seconds > limits.maxVideoSeconds) throw new InputError(field, `is ${seconds.toFixed(1)} s long; at most ${limits.maxVideoSeconds} s are accepted`);
  const bad = await decodeErrors(file, frames, signal);
  if (bad) throw new InputError(field, `is corrupt (the video does not decode: ${bad})`);
  return { codec: v.codec_name, width, height, frames, fps, seconds };
}

export interface PreparedMedia {
  imagePath: string;
  videoPath: string;
  image: ImageInfo;
  video: VideoInfo;
}

const VIDEO_EXT: Record<string, string> = { h264: 'mp4', hevc: 'mp4', mpeg4: 'mp4', av1: 'mp4', vp8: 'webm', vp9: 'webm' };

/** Load, write and check both inputs of a job into `dir`. */
export async function prepareMedia(input: { image: string; video: string }, dir: string, limits: MediaLimits, policy: FetchPolicy = {}): Promise<PreparedMedia> {
  await mkdir(dir, { recursive: true });
  const [imgBytes, vidBytes] = await Promise.all([loadSource('image', 'image', input.image, limits, policy), loadSource('video', 'video', input.video, limits, policy)]);
  const rawImg = join(dir, 'input-image.bin');
  const rawVid = join(dir, 'input-video.bin');
  await Promise.all([writeFile(rawImg, imgBytes), writeFile(rawVid, vidBytes)]);
  const image = await checkImage('image', rawImg, limits, policy.signal);
  const video = await checkVideo('video', rawVid, limits, policy.signal);
  // Give the files names whose extension matches their content (ComfyUI picks decoders by it):
  // a rename, not a second write of up to 200 MB.
  const imagePath = join(dir, `reference.${IMAGE_CODECS[image.codec] ?? 'png'}`);
  const videoPath = join(dir, `driving.${VIDEO_EXT[video.codec] ?? 'mkv'}`);
  await Promise.all([rename(rawImg, imagePath), rename(rawVid, videoPath)]);
  return { imagePath, videoPath, image, video };
}
