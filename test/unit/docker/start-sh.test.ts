/**
 * docker/start.sh's decisions, run by bash itself: the script is sourced (main does not run)
 * and its functions are called with a fake nvidia-smi on PATH and a recorded image.json.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const START = join(process.cwd(), 'docker', 'start.sh');

function sandbox(opts: { cc?: string; attention?: Record<string, unknown> }) {
  const dir = mkdtempSync(join(tmpdir(), 'sd-start-'));
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  if (opts.cc !== undefined) {
    writeFileSync(join(bin, 'nvidia-smi'), `#!/bin/sh\necho "${opts.cc}"\n`);
    chmodSync(join(bin, 'nvidia-smi'), 0o755);
  }
  const home = join(dir, 'home');
  mkdirSync(home);
  if (opts.attention) writeFileSync(join(home, 'image.json'), JSON.stringify({ attention: opts.attention }));
  return { dir, bin, home };
}

function call(fn: string, s: ReturnType<typeof sandbox>, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-c', `source "${START}"; ${fn}`], {
    encoding: 'utf8',
    env: { PATH: `${s.bin}:/usr/bin:/bin`, STEADYDANCER_HOME: s.home, PYTHON: 'python3', HOME: s.dir, ...env },
  }).trim();
}

const ALL = { sdpa: true, xformers: '0.0.32', flash_attn: '2.8.3', sageattention: '2.2.0' };
const XF = { sdpa: true, xformers: '0.0.32', flash_attn: null, sageattention: null };

describe('start.sh attention choice by GPU', () => {
  it('reads the compute capability from nvidia-smi', () => {
    expect(call('gpu_compute_capability', sandbox({ cc: '9.0' }))).toBe('9.0');
  });
  it('no GPU (no nvidia-smi, torch sees none): --cpu', () => {
    const s = sandbox({ attention: XF });
    expect(call('gpu_compute_capability', s)).toBe('');
    expect(call('attention_flag ""', s)).toBe('--cpu');
  });
  it('Hopper/Ada/Ampere prefer SageAttention, then flash-attn, then xformers (no flag), then SDPA', () => {
    expect(call('attention_flag 9.0', sandbox({ attention: ALL }))).toBe('--use-sage-attention');
    expect(call('attention_flag 8.9', sandbox({ attention: { ...ALL, sageattention: null } }))).toBe('--use-flash-attention');
    expect(call('attention_flag 8.0', sandbox({ attention: XF }))).toBe('');
    expect(call('attention_flag 8.6', sandbox({ attention: { sdpa: true } }))).toBe('--use-pytorch-cross-attention');
  });
  it('Blackwell: SageAttention when built, else SDPA (never flash-attn 2 / xformers)', () => {
    expect(call('attention_flag 12.0', sandbox({ attention: ALL }))).toBe('--use-sage-attention');
    expect(call('attention_flag 10.0', sandbox({ attention: { ...ALL, sageattention: null } }))).toBe('--use-pytorch-cross-attention');
  });
  it('older GPUs get SDPA; ATTENTION_BACKEND overrides', () => {
    expect(call('attention_flag 7.5', sandbox({ attention: ALL }))).toBe('--use-pytorch-cross-attention');
    expect(call('attention_flag 9.0', sandbox({ attention: ALL }), { ATTENTION_BACKEND: 'pytorch' })).toBe('--use-pytorch-cross-attention');
    expect(call('attention_flag ""', sandbox({ attention: ALL }), { ATTENTION_BACKEND: 'flash' })).toBe('--use-flash-attention');
  });
  it("fa3 / fa3_fp8 are the pack's (Wan blocks): ComfyUI keeps SDPA, and the pack sees the variable", () => {
    for (const v of ['fa3', 'fa3_fp8']) {
      expect(call('attention_flag 9.0', sandbox({ attention: ALL }), { ATTENTION_BACKEND: v })).toBe('--use-pytorch-cross-attention');
    }
    // exported, also when it defaulted: the node pack's "auto" reads it from ComfyUI's environment
    expect(call('printenv ATTENTION_BACKEND', sandbox({}), { ATTENTION_BACKEND: 'fa3_fp8' })).toBe('fa3_fp8');
    expect(call('printenv ATTENTION_BACKEND', sandbox({}))).toBe('auto');
    const err = execFileSync('bash', ['-c', `source "${START}"; attention_flag 9.0 2>&1 >/dev/null`], {
      encoding: 'utf8',
      env: { PATH: '/usr/bin:/bin', ATTENTION_BACKEND: 'flash3', PYTHON: 'python3' },
    });
    expect(err).toContain('unknown ATTENTION_BACKEND=flash3 (auto|sage|fa3|fa3_fp8|flash|xformers|pytorch)');
  });
});

describe('start.sh models dir and command line', () => {
  it('MODELS_DIR: explicit value wins, else the image folder when no volume exists', () => {
    const s = sandbox({});
    expect(call('resolve_models_dir', s, { MODELS_DIR: '/data/m' })).toBe('/data/m');
    // /runpod-volume and /workspace do not exist on this test machine
    expect(call('resolve_models_dir', s, { COMFYUI_DIR: '/opt/ComfyUI' })).toBe('/opt/ComfyUI/models');
  });
  it('builds the ComfyUI command: port, --cpu without GPU, a config block for a custom MODELS_DIR, COMFYUI_ARGS split', () => {
    const s = sandbox({ attention: XF });
    const out = call('comfyui_command 127.0.0.1 /data/models; printf "%s\\n" "${COMFY_CMD[@]}"; cat /tmp/steadydancer-models-dir.yaml', s, {
      COMFYUI_DIR: '/opt/ComfyUI',
      COMFYUI_PORT: '9999',
      COMFYUI_ARGS: '--preview-method auto --verbose',
    });
    const lines = out.split('\n');
    expect(lines.slice(0, 12)).toEqual([
      'python3',
      '/opt/ComfyUI/main.py',
      '--listen',
      '127.0.0.1',
      '--port',
      '9999',
      '--cpu',
      '--disable-api-nodes',
      '--extra-model-paths-config',
      '/tmp/steadydancer-models-dir.yaml',
      '--preview-method',
      'auto',
    ]);
    expect(out).toContain('  base_path: /data/models');
    expect(out).toContain('  detection: detection');
  });
  it('API nodes off unless COMFYUI_API_NODES=true', () => {
    const s = sandbox({ attention: XF });
    const env = { COMFYUI_DIR: '/opt/ComfyUI', COMFYUI_PORT: '9999' };
    const cmd = (e: Record<string, string>) => call('comfyui_command 127.0.0.1 /opt/ComfyUI/models 2>/dev/null; printf "%s\\n" "${COMFY_CMD[@]}"', s, { ...env, ...e }).split('\n');
    expect(cmd({})).toContain('--disable-api-nodes');
    expect(cmd({ COMFYUI_API_NODES: 'true' })).not.toContain('--disable-api-nodes');
  });
  it('MODELS_PREFETCH=true prefetches the models in the background with the toolkit (variant, dest, jobs, after ComfyUI answers); unset or false does not', () => {
    const s = sandbox({});
    mkdirSync(join(s.home, 'bin'));
    writeFileSync(join(s.home, 'bin', 'steadydancer.js'), '');
    writeFileSync(join(s.bin, 'fake-node'), `#!/bin/sh\nshift\necho "$@" > "${s.dir}/prefetch"\necho report-on-stdout\n`);
    chmodSync(join(s.bin, 'fake-node'), 0o755);
    // wait: the background job has finished before the file is read; its stdout went to stderr
    const out = call(`prefetch_models "${s.dir}/models" 2>/dev/null; wait`, s, { NODE: 'fake-node', STEADYDANCER_VARIANT: 'fp16', PREFETCH_JOBS: '4', COMFYUI_PORT: '9999', MODELS_PREFETCH: 'true' });
    expect(out).toBe('');
    expect(readFileSync(join(s.dir, 'prefetch'), 'utf8').trim()).toBe(`models prefetch --variant fp16 --dest ${s.dir}/models --jobs 4 --after-comfy http://127.0.0.1:9999`);
    rmSync(join(s.dir, 'prefetch'));
    call(`prefetch_models "${s.dir}/models" 2>/dev/null; wait`, s, { NODE: 'fake-node', MODELS_PREFETCH: 'false' });
    expect(existsSync(join(s.dir, 'prefetch'))).toBe(false);
    call(`prefetch_models "${s.dir}/models" 2>/dev/null; wait`, s, { NODE: 'fake-node' }); // the default: off
    expect(existsSync(join(s.dir, 'prefetch'))).toBe(false);
    // no toolkit: one log line, nothing started
    rmSync(join(s.home, 'bin', 'steadydancer.js'));
    expect(
      execFileSync('bash', ['-c', `source "${START}"; prefetch_models /m; wait`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: `${s.bin}:/usr/bin:/bin`, STEADYDANCER_HOME: s.home, NODE: 'fake-node' },
      }),
    ).toBe('');
    expect(existsSync(join(s.dir, 'prefetch'))).toBe(false);
  });
  it("keeps torch.compile's cache with the models (TORCHINDUCTOR_CACHE_DIR), unless set", () => {
    const s = sandbox({ attention: XF });
    const env = { COMFYUI_DIR: '/opt/ComfyUI', COMFYUI_PORT: '9999' };
    expect(call('comfyui_command 127.0.0.1 /data/models 2>/dev/null; echo "$TORCHINDUCTOR_CACHE_DIR"', s, env)).toBe('/data/models/.cache/torchinductor');
    expect(call('comfyui_command 127.0.0.1 /data/models 2>/dev/null; printenv TORCHINDUCTOR_CACHE_DIR', s, { ...env, TORCHINDUCTOR_CACHE_DIR: '/x' })).toBe('/x');
  });
  it('ENABLE_STEADYDANCER=true runs download_models.sh with --variant, --dest and --jobs', () => {
    const s = sandbox({});
    mkdirSync(join(s.home, 'docker'));
    const script = join(s.home, 'docker', 'download_models.sh');
    // --check reports "missing" (exit 1); the download call records its arguments
    writeFileSync(script, `#!/bin/sh\ncase "$*" in *--check*) echo "$@" >> "${s.dir}/checks"; exit 1;; esac\necho "$@" > "${s.dir}/args"\n`);
    chmodSync(script, 0o755);
    call(`ensure_models "${s.dir}/models"`, s, { ENABLE_STEADYDANCER: 'true', STEADYDANCER_VARIANT: 'fp16' });
    expect(readFileSync(join(s.dir, 'checks'), 'utf8').trim()).toBe(`--variant fp16 --dest ${s.dir}/models --check`);
    expect(readFileSync(join(s.dir, 'args'), 'utf8').trim()).toBe(`--variant fp16 --dest ${s.dir}/models --jobs 4`);
    // complete: --check succeeds and nothing is downloaded
    writeFileSync(script, `#!/bin/sh\ncase "$*" in *--check*) exit 0;; esac\necho download > "${s.dir}/args2"\n`);
    call(`ensure_models "${s.dir}/models"`, s, { ENABLE_STEADYDANCER: 'true' });
    expect(existsSync(join(s.dir, 'args2'))).toBe(false);
    // a failing download is logged and tolerated unless STEADYDANCER_REQUIRE_MODELS=true
    writeFileSync(script, '#!/bin/sh\nexit 3\n');
    expect(() => call(`ensure_models "${s.dir}/m2"`, s, { ENABLE_STEADYDANCER: 'true' })).not.toThrow();
    expect(() => call(`ensure_models "${s.dir}/m3"`, s, { ENABLE_STEADYDANCER: 'true', STEADYDANCER_REQUIRE_MODELS: 'true' })).toThrow();
  });
  it('no STEADYDANCER_VARIANT: no --variant of its own (the toolkit decides: what the folder holds verified, else the manifest default)', () => {
    const s = sandbox({});
    mkdirSync(join(s.home, 'docker'));
    const script = join(s.home, 'docker', 'download_models.sh');
    writeFileSync(script, `#!/bin/sh\ncase "$*" in *--check*) echo "$@" >> "${s.dir}/checks"; exit 1;; esac\necho "$@" > "${s.dir}/args"\n`);
    chmodSync(script, 0o755);
    call(`ensure_models "${s.dir}/models"`, s, { ENABLE_STEADYDANCER: 'true' });
    expect(readFileSync(join(s.dir, 'checks'), 'utf8').trim()).toBe(`--dest ${s.dir}/models --check`);
    expect(readFileSync(join(s.dir, 'args'), 'utf8').trim()).toBe(`--dest ${s.dir}/models --jobs 4`);
  });
  it('each mode exports the MODELS_DIR it chose, so the worker/API decide the job variant on the folder ComfyUI reads', () => {
    const s = sandbox({});
    // run_api up to the point it starts the API: NODE is a stand-in that prints what it was given
    writeFileSync(join(s.bin, 'fake-node'), '#!/bin/sh\necho "MODELS_DIR=$MODELS_DIR"\n');
    chmodSync(join(s.bin, 'fake-node'), 0o755);
    const env = { NODE: 'fake-node', COMFYUI_DIR: s.dir, STEADYDANCER_MODE: 'api', MODELS_DIR: '' };
    const chosen = call('resolve_models_dir', s, env); // the volume when this host has one, else the image folder
    expect(chosen).not.toBe('');
    expect(call('run_api', s, env)).toBe(`MODELS_DIR=${chosen}`);
  });
  it('rejects an unknown mode with exit 2', () => {
    const s = sandbox({});
    let code = 0;
    try {
      execFileSync('bash', [START], { env: { PATH: '/usr/bin:/bin', STEADYDANCER_MODE: 'bogus', STEADYDANCER_HOME: s.home }, stdio: 'pipe' });
    } catch (e) {
      code = (e as { status: number }).status;
    }
    expect(code).toBe(2);
  });
});

describe('start.sh signal forwarding', () => {
  it('forwards SIGTERM to the child and exits with the child status', async () => {
    const s = sandbox({});
    const child = spawn('bash', ['-c', `source "${START}"; run_forwarding bash -c 'trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done'`], {
      env: { PATH: '/usr/bin:/bin', STEADYDANCER_HOME: s.home },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += String(d)));
    child.stderr.on('data', (d) => (err += String(d)));
    await new Promise((r) => setTimeout(r, 700));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code).toBe(7);
    expect(out).toContain('got-term');
    expect(err).toMatch(/received SIGTERM: forwarding to ComfyUI/);
  });
});
