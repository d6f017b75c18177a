/**
 * docker/start.sh's pod / serverless / api modes, run for real with stand-ins for node, python
 * and sshd that record the command lines they were given (no GPU, no ComfyUI needed).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/util/paths.js';

const START = join(projectRoot(), 'docker', 'start.sh');
let dir: string;
let recorder: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-start-'));
  recorder = join(dir, 'record.sh');
  // Writes its own name and arguments, one per line, to $RECORD_DIR/<name>.args
  writeFileSync(
    recorder,
    '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$RECORD_DIR/$(basename "$0").args"\nprintf "%s" "${STEADYDANCER_TEXT_CACHE-(unset)}" > "$RECORD_DIR/$(basename "$0").textcache"\nexit 0\n',
  );
  chmodSync(recorder, 0o755);
  for (const name of ['fake-node', 'fake-python', 'fake-sshd']) {
    execFileSync('ln', ['-sf', recorder, join(dir, name)]);
  }
  mkdirSync(join(dir, 'comfy'), { recursive: true });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(env: Record<string, string>) {
  const rec = mkdtempSync(join(dir, 'rec-'));
  const r = spawnSync('bash', [START], {
    env: {
      PATH: process.env.PATH,
      RECORD_DIR: rec,
      NODE: join(dir, 'fake-node'),
      // gpu detection asks python for torch; the recorder prints nothing, so: no GPU → --cpu
      PYTHON: join(dir, 'fake-python'),
      COMFYUI_DIR: join(dir, 'comfy'),
      STEADYDANCER_HOME: '/opt/steadydancer',
      MODELS_DIR: join(dir, 'models'),
      ...env,
    },
    encoding: 'utf8',
  });
  const read = (name: string) =>
    existsSync(join(rec, `${name}.args`))
      ? readFileSync(join(rec, `${name}.args`), 'utf8')
          .trim()
          .split('\n')
      : undefined;
  const textCache = (name: string) => (existsSync(join(rec, `${name}.textcache`)) ? readFileSync(join(rec, `${name}.textcache`), 'utf8') : undefined);
  return { status: r.status, stderr: r.stderr, node: read('fake-node'), python: read('fake-python'), sshd: read('fake-sshd'), textCache };
}

describe('start.sh modes', () => {
  it('serverless: the worker in front of a ComfyUI bound to 127.0.0.1', () => {
    const r = run({ STEADYDANCER_MODE: 'serverless' });
    expect(r.status).toBe(0);
    expect(r.node).toBeDefined();
    const args = r.node!;
    expect(args.slice(0, 4)).toEqual(['/opt/steadydancer/bin/steadydancer.js', 'worker', '--comfy-url', 'http://127.0.0.1:8188']);
    const comfy = args.slice(args.indexOf('--') + 1);
    expect(comfy[1]).toBe(join(dir, 'comfy', 'main.py'));
    expect(comfy.slice(2, 6)).toEqual(['--listen', '127.0.0.1', '--port', '8188']);
    expect(comfy).toContain('--cpu');
    expect(r.stderr).toMatch(/mode serverless/);
  });

  it('serverless is the default when RunPod sets RUNPOD_WEBHOOK_GET_JOB', () => {
    const r = run({ RUNPOD_WEBHOOK_GET_JOB: 'https://api.runpod.ai/v2/x/job-take/$ID' });
    expect(r.node?.[1]).toBe('worker');
  });

  it('pod: ComfyUI on 0.0.0.0 (the UI), no worker; sshd only with PUBLIC_KEY', () => {
    const plain = run({});
    expect(plain.status).toBe(0);
    expect(plain.node).toBeUndefined();
    expect(plain.sshd).toBeUndefined();
    // the recorder stands in for python: its last call is ComfyUI's main.py
    expect(plain.python?.slice(0, 5)).toEqual([join(dir, 'comfy', 'main.py'), '--listen', '0.0.0.0', '--port', '8188']);

    const sshDir = join(dir, 'ssh');
    const withKey = run({ PUBLIC_KEY: 'ssh-ed25519 AAAAC3Nza test@example', SSHD: join(dir, 'fake-sshd'), SSH_DIR: sshDir });
    expect(withKey.status).toBe(0);
    expect(withKey.sshd).toEqual(['-o', 'PasswordAuthentication=no', '-o', 'PermitRootLogin=prohibit-password']);
    expect(readFileSync(join(sshDir, 'authorized_keys'), 'utf8')).toContain('ssh-ed25519 AAAAC3Nza test@example');
  });

  it('pod with PUBLIC_KEY but no sshd says so and still starts ComfyUI', () => {
    const r = run({ PUBLIC_KEY: 'ssh-ed25519 AAAA x', SSHD: join(dir, 'no-such-sshd'), SSH_DIR: join(dir, 'ssh2') });
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/no sshd/);
    expect(r.python?.[0]).toBe(join(dir, 'comfy', 'main.py'));
  });

  it('api: the local API server on API_PORT in front of ComfyUI', () => {
    const r = run({ STEADYDANCER_MODE: 'api', API_PORT: '8010' });
    expect(r.node?.slice(0, 7)).toEqual(['/opt/steadydancer/bin/steadydancer.js', 'serve', '--host', '0.0.0.0', '--port', '8010', '--comfy-url']);
  });

  it('ComfyUI (and the worker in front of it) get the text cache on the models volume unless it is set', () => {
    const pod = run({});
    expect(pod.textCache('fake-python')).toBe(join(dir, 'models', 'text_cache'));
    const sls = run({ STEADYDANCER_MODE: 'serverless' });
    expect(sls.textCache('fake-node')).toBe(join(dir, 'models', 'text_cache'));
    const own = run({ STEADYDANCER_TEXT_CACHE: '/cache/prompts' });
    expect(own.textCache('fake-python')).toBe('/cache/prompts');
  });

  it('an unknown mode is an error naming the known ones', () => {
    const r = run({ STEADYDANCER_MODE: 'bogus' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/known: pod, serverless, api/);
  });
});
