import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { composeBuildArgs, packLabels, parseBuildArgs, parseComfyImports, STANDIN_ARGS, verifiedLabels, type BuildOptions } from '../../../src/docker/build.js';
import { loadLock, lockPath, selectPacks } from '../../../src/docker/lock.js';
import { ActionableError } from '../../../src/util/errors.js';
import { memoryLogger } from '../../../src/util/logger.js';
import { needs } from '../../helpers/skips.js';

const lock = loadLock(lockPath(process.cwd()));
const opts = (o: Partial<BuildOptions>): BuildOptions => ({ root: '.', tag: 't', engineBin: 'docker', logPath: 'x.log', env: {}, logger: memoryLogger(), ...o });

describe('build flags → build args', () => {
  it('parses K=V, keeps "=" inside values, later flags win', () => {
    expect(parseBuildArgs(['A=1', 'URL=http://x/?a=b', 'A=2'])).toEqual({ A: '2', URL: 'http://x/?a=b' });
  });
  it('rejects malformed pairs and secret-looking names', () => {
    expect(() => parseBuildArgs(['NOEQUALS'])).toThrow('--build-arg "NOEQUALS" is not K=V');
    try {
      parseBuildArgs(['HF_TOKEN=hf_abc']);
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(ActionableError);
      expect((e as ActionableError).code).toBe('E_SECRET_ARG');
      expect((e as ActionableError).message).not.toContain('hf_abc');
    }
    // the same names as lint's DF006: a secret's location is not a secret; an SSH public key neither
    expect(() => parseBuildArgs(['AWS_SECRET_ACCESS_KEY=x'])).toThrow(/looks like a secret/);
    expect(() => parseBuildArgs(['DB_PASSWORD=x'])).toThrow(/looks like a secret/);
    expect(parseBuildArgs(['HF_TOKEN_PATH=/run/secrets/hf', 'PUBLIC_KEY=ssh-ed25519 AAAA'])).toEqual({ HF_TOKEN_PATH: '/run/secrets/hf', PUBLIC_KEY: 'ssh-ed25519 AAAA' });
  });
  it('stand-in, variant, bake and packs become build args; user args override', () => {
    const sel = selectPacks(lock, 'ComfyUI-KJNodes,ComfyUI-VideoHelperSuite').selected;
    const a = composeBuildArgs(opts({ standin: true, variant: 'fp16', bake: true, buildArgs: { PYTHON_VERSION: '3.12' } }), sel, lock);
    expect(a).toMatchObject({
      ...STANDIN_ARGS,
      PYTHON_VERSION: '3.12',
      STEADYDANCER_VARIANT: 'fp16',
      BAKE_STEADYDANCER: 'true',
      NODE_PACKS: 'ComfyUI-KJNodes,ComfyUI-VideoHelperSuite',
      COMFYUI_REF: lock.comfyui.commit,
    });
    expect(composeBuildArgs(opts({}), lock.nodes, lock).NODE_PACKS).toBe('all');
    expect(composeBuildArgs(opts({}), [], lock).NODE_PACKS).toBe('none');
  });
  it('labels carry each pack commit and the omitted packs', () => {
    const { selected, omitted } = selectPacks(lock, 'ComfyUI-KJNodes');
    const l = packLabels(
      lock,
      selected,
      omitted.map((o) => ({ name: o.name, commit: o.commit, reason: 'x' })),
    );
    expect(l['org.steadydancer.pack.ComfyUI-KJNodes']).toBe('3f20054214fec9f9234fd3841ae6f1e4287948f6');
    expect(l['org.steadydancer.packs-omitted']).toBe('ComfyUI-WanVideoWrapper,ComfyUI-VideoHelperSuite,ComfyUI-WanAnimatePreprocess,comfyui_controlnet_aux');
    expect(l['org.steadydancer.comfyui']).toBe(lock.comfyui.commit);
  });
});

describe('ComfyUI --quick-test-for-ci output (recorded in the built image)', () => {
  const out = readFileSync(join(process.cwd(), 'test/fixtures/build/quick-test-ok.log'), 'utf8');
  const packs = ['ComfyUI-KJNodes', 'ComfyUI-VideoHelperSuite', 'ComfyUI-WanAnimatePreprocess', 'comfyui_controlnet_aux'];
  it('every pack loaded; KJNodes feature groups that need a newer ComfyUI are noted', () => {
    const r = parseComfyImports(out, packs);
    expect(r.ok).toBe(true);
    expect(r.importFailed).toEqual([]);
    expect(r.packs.every((p) => p.loaded)).toBe(true);
    expect(r.auxFailures.some((a) => a.startsWith('KJNodes MiniMax nodes: No module named'))).toBe(true);
  });
  it('an IMPORT FAILED line and a pack that never appears both fail', () => {
    const broken = out.replace(/^( +[\d.]+ seconds): (\/opt\/ComfyUI\/custom_nodes\/ComfyUI-KJNodes)$/m, '$1 (IMPORT FAILED): $2');
    const r = parseComfyImports(broken, [...packs, 'ComfyUI-WanVideoWrapper']);
    expect(r.ok).toBe(false);
    expect(r.importFailed).toEqual(['ComfyUI-KJNodes']);
    expect(r.packs.find((p) => p.name === 'ComfyUI-WanVideoWrapper')?.loaded).toBe(false);
  });
});

describe('image labels from what the verification found', () => {
  it('flash-attn requested but absent in the image (its wheel could not be had): the label says false', () => {
    const info = { attention: { sdpa: true, xformers: '0.0.32', flash_attn: null, sageattention: null }, flashAttnStatus: 'absent: no prebuilt wheel (download failed)' };
    expect(verifiedLabels(info)).toEqual({
      'org.steadydancer.attention': 'sdpa,xformers',
      'org.steadydancer.flash-attn': 'false',
      'org.steadydancer.sageattn': 'false',
      'org.steadydancer.fa3': 'false',
      'org.steadydancer.xformers': 'true',
    });
  });

  it('a backend that imports is true, with every usable one in attention', () => {
    expect(verifiedLabels({ attention: { sdpa: true, xformers: null, flash_attn: '2.8.3', sageattention: '1.0.6', fa3: '0.0.3' } })).toMatchObject({
      'org.steadydancer.attention': 'sdpa,flash_attn,sageattention,fa3',
      'org.steadydancer.flash-attn': 'true',
      'org.steadydancer.sageattn': 'true',
      'org.steadydancer.fa3': 'true',
    });
  });

  it('no image.json to go by: no attention labels at all (never the build arguments)', () => {
    expect(verifiedLabels(undefined)).toBeUndefined();
    expect(verifiedLabels({ python: '3.12' })).toBeUndefined();
    expect(verifiedLabels({ attention: ['sdpa'] })).toBeUndefined();
  });

  it('the Dockerfile labels only the request; the verified names are left to the build', () => {
    const df = readFileSync(join(process.cwd(), 'docker', 'Dockerfile'), 'utf8');
    expect(df).toContain('org.steadydancer.flash-attn.requested="${ENABLE_FLASH_ATTN}"');
    expect(df).not.toMatch(/org\.steadydancer\.(flash-attn|sageattn|fa3)="/);
  });

  const py = join(process.cwd(), '.venv', 'bin', 'python');
  const noPy = needs('image labels from image_info.py on the venv', existsSync(py) ? undefined : `no Python venv at ${py} (make venv)`);
  it.skipIf(noPy)(
    "labels what docker/build/image_info.py reports on this host's venv (the same collector the image runs)",
    () => {
      const info = JSON.parse(execFileSync(py, [join(process.cwd(), 'docker', 'build', 'image_info.py'), '--print'], { encoding: 'utf8', timeout: 120_000 })) as { attention: Record<string, unknown> };
      const l = verifiedLabels(info)!;
      expect(l['org.steadydancer.flash-attn']).toBe(String(info.attention.flash_attn !== null));
      expect(l['org.steadydancer.attention']!.split(',')).toEqual(
        Object.entries(info.attention)
          .filter(([, v]) => v !== null && v !== false)
          .map(([k]) => k),
      );
    },
    120_000,
  );
});
