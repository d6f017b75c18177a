/**
 * The job result: `{video: {type: "base64" | "s3_url", data, mime}, seed, timings}`.
 *
 * RunPod rejects results over its payload limits (10 MB through /run, 20 MB through /runsync,
 * measured on the serialized JSON body). The video goes to S3 whenever a bucket is configured,
 * and must go there when its base64 form would not fit; with no bucket then, the job FAILS with
 * an error saying what to configure — never an oversized result the platform drops.
 */
import { PutObjectCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

export const RUN_LIMIT_BYTES = 10 * 1024 * 1024;
export const RUNSYNC_LIMIT_BYTES = 20 * 1024 * 1024;

export interface S3Config {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  region: string;
  /** Presigned GET URL lifetime in seconds (default 7 days, the SigV4 maximum). */
  urlExpiresIn: number;
}

/**
 * S3 settings from the environment (the names RunPod's own upload helper uses), or undefined
 * when no bucket is configured. The bucket is BUCKET_NAME, else the first path segment of
 * BUCKET_ENDPOINT_URL (https://host/bucket), else the first label of a virtual-hosted
 * endpoint (https://bucket.s3.region.amazonaws.com).
 */
export function s3ConfigFromEnv(env: NodeJS.ProcessEnv): S3Config | undefined {
  const raw = env.BUCKET_ENDPOINT_URL;
  if (!raw) return undefined;
  const accessKeyId = env.BUCKET_ACCESS_KEY_ID;
  const secretAccessKey = env.BUCKET_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) throw new Error('BUCKET_ENDPOINT_URL is set but BUCKET_ACCESS_KEY_ID / BUCKET_SECRET_ACCESS_KEY are not');
  const u = new URL(raw);
  const pathBucket = u.pathname.split('/').filter(Boolean)[0];
  let bucket = env.BUCKET_NAME || pathBucket;
  let endpoint = `${u.protocol}//${u.host}`;
  if (!bucket) {
    const [first, ...rest] = u.hostname.split('.');
    if (!first || rest.length < 2) throw new Error('cannot tell the bucket from BUCKET_ENDPOINT_URL: set BUCKET_NAME');
    bucket = first;
    endpoint = `${u.protocol}//${rest.join('.')}${u.port ? `:${u.port}` : ''}`;
  }
  const region = env.BUCKET_REGION || env.AWS_REGION || /s3[.-]([a-z0-9-]+)\.amazonaws/.exec(u.hostname)?.[1] || 'us-east-1';
  return { endpoint, accessKeyId, secretAccessKey, bucket, region, urlExpiresIn: Number(env.BUCKET_URL_EXPIRES_IN || 7 * 24 * 3600) };
}

export async function uploadToS3(cfg: S3Config, key: string, body: Buffer, contentType: string): Promise<string> {
  const client = new S3Client({
    endpoint: cfg.endpoint,
    region: cfg.region,
    forcePathStyle: true,
    credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
  });
  try {
    await client.send(new PutObjectCommand({ Bucket: cfg.bucket, Key: key, Body: body, ContentType: contentType }));
    return await getSignedUrl(client, new GetObjectCommand({ Bucket: cfg.bucket, Key: key }), { expiresIn: cfg.urlExpiresIn });
  } finally {
    client.destroy();
  }
}

export interface DanceOutput {
  video: { type: 'base64' | 's3_url'; data: string; mime: 'video/mp4' };
  seed: number;
  /** The parameters as run: frames after the 4n+1 rounding, context windows, what was rounded. */
  ran?: { frames: number; windows: number; adjusted: string[] };
  timings: Record<string, number>;
}

export class OutputTooLargeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputTooLargeError';
  }
}

/** Bytes of the JSON body RunPod would carry for this output (as the worker posts it). */
export function serializedSize(output: unknown): number {
  return Buffer.byteLength(JSON.stringify({ output }), 'utf8');
}

export interface BuildOutputOptions {
  jobId: string;
  /** The payload limit that applies (RUN_LIMIT_BYTES unless the job is known to be runsync). */
  limitBytes: number;
  s3?: S3Config;
}

export async function buildOutput(mp4: Buffer, meta: { seed: number; timings: Record<string, number>; ran?: DanceOutput['ran'] }, opts: BuildOutputOptions): Promise<DanceOutput> {
  const ran = meta.ran ? { ran: meta.ran } : {};
  if (opts.s3) {
    const started = Date.now();
    const url = await uploadToS3(opts.s3, `${opts.jobId}/steadydancer.mp4`, mp4, 'video/mp4');
    return { video: { type: 's3_url', data: url, mime: 'video/mp4' }, seed: meta.seed, ...ran, timings: { ...meta.timings, upload_ms: Date.now() - started } };
  }
  const out: DanceOutput = { video: { type: 'base64', data: mp4.toString('base64'), mime: 'video/mp4' }, seed: meta.seed, ...ran, timings: meta.timings };
  const size = serializedSize(out);
  if (size > opts.limitBytes) {
    const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
    throw new OutputTooLargeError(
      `the result is ${mb(size)} MB as base64 JSON, over RunPod's ${mb(opts.limitBytes)} MB payload limit; ` +
        'configure S3 (BUCKET_ENDPOINT_URL, BUCKET_ACCESS_KEY_ID, BUCKET_SECRET_ACCESS_KEY, optional BUCKET_NAME) so the video is uploaded, or ask for fewer frames / a smaller size',
    );
  }
  return out;
}
