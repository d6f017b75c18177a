/** moto's S3-compatible server (PyPI moto[server], in the venv) on 127.0.0.1 for the S3 tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { s3ConfigFromEnv, type S3Config } from '../../src/job/output.js';
import { freePort } from '../../src/comfy/native.js';

const venvBin = join(process.env.STEADYDANCER_PYTHON ? join(process.env.STEADYDANCER_PYTHON, '..') : join(process.cwd(), '.venv', 'bin'));
export const motoServer = join(venvBin, 'moto_server');

/** Start moto's S3 server on 127.0.0.1 and create a bucket; returns the S3 settings. */
export async function startMoto(): Promise<{ proc: ChildProcess; cfg: S3Config }> {
  const port = await freePort();
  const proc = spawn(motoServer, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  // never leave it behind, even when a hook times out before the test's own cleanup runs
  process.once('exit', () => proc.kill('SIGKILL'));
  const endpoint = `http://127.0.0.1:${port}`;
  // moto's first start imports a lot of Python: give it time on a busy 2-core machine
  let up = false;
  for (const deadline = Date.now() + 120_000; !up && Date.now() < deadline; ) {
    try {
      const r = await fetch(`${endpoint}/`);
      up = r.status < 500;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  if (!up) {
    proc.kill('SIGKILL');
    throw new Error(`moto_server did not answer on ${endpoint} within 120 s`);
  }
  const cfg = s3ConfigFromEnv({ BUCKET_ENDPOINT_URL: `${endpoint}/dance-results`, BUCKET_ACCESS_KEY_ID: 'testing-key', BUCKET_SECRET_ACCESS_KEY: 'testing-secret' })!;
  const c = new S3Client({ endpoint: cfg.endpoint, region: cfg.region, forcePathStyle: true, credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } });
  try {
    await c.send(new CreateBucketCommand({ Bucket: cfg.bucket }));
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  } finally {
    c.destroy();
  }
  return { proc, cfg };
}
