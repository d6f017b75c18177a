/**
 * docker/build/install_sources.py (runs inside the image build) run here by python3 on a
 * temporary lock, staged folder and git repository: staged copies, clones at the pinned
 * commit, the requirement rewrites and the manifest.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const SCRIPT = join(process.cwd(), 'docker', 'build', 'install_sources.py');
const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' };
const git = (cwd: string, ...a: string[]) => execFileSync('git', a, { cwd, encoding: 'utf8', env: gitEnv }).trim();

let dir: string;
let lock: string;
let upstreamCommit: string;
let oldCommit: string;
const stagedCommit = 'a'.repeat(40);

function py(...args: string[]): { code: number; out: string } {
  try {
    return { code: 0, out: execFileSync('python3', [SCRIPT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, out: `${x.stdout}${x.stderr}` };
  }
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sd-install-'));
  const up = join(dir, 'upstream');
  mkdirSync(up);
  git(up, 'init', '-q');
  writeFileSync(join(up, 'requirements.txt'), 'numpy\n');
  git(up, 'add', '.');
  git(up, 'commit', '-qm', 'old');
  oldCommit = git(up, 'rev-parse', 'HEAD');
  writeFileSync(join(up, 'requirements.txt'), ['opencv-python>=4.8', 'torch', 'onnx  # comment', 'git+https://github.com/x/y.git', '-e .', ''].join('\n'));
  git(up, 'commit', '-qam', 'new');
  upstreamCommit = git(up, 'rev-parse', 'HEAD');
  git(up, 'checkout', '-q', oldCommit); // HEAD elsewhere: the clone must check out the pin itself

  const staged = join(dir, 'staged', `Staged@${stagedCommit}`);
  mkdirSync(staged, { recursive: true });
  writeFileSync(join(staged, '__init__.py'), '');
  writeFileSync(join(staged, 'requirements.txt'), 'opencv-python-headless\nscipy\n');
  writeFileSync(join(staged, '.steadydancer-source.json'), JSON.stringify({ commit: stagedCommit, missing: ['big.png'] }));
  const comfy = join(dir, 'staged', `ComfyUI@${'c'.repeat(40)}`);
  mkdirSync(comfy);
  writeFileSync(join(comfy, 'main.py'), '');

  lock = join(dir, 'lock.json');
  writeFileSync(
    lock,
    JSON.stringify({
      version: 1,
      comfyui: { name: 'ComfyUI', repo: up, commit: 'c'.repeat(40) },
      nodes: [
        { name: 'Staged', repo: 'https://example.invalid/x.git', commit: stagedCommit },
        { name: 'Cloned', repo: up, commit: upstreamCommit },
        { name: 'NoReqs', repo: up, commit: upstreamCommit, requirements: false },
      ],
    }),
  );
});

describe('install_sources.py', () => {
  it('installs staged packs as copies and clones the others at their pinned commit; rewrites requirements', () => {
    const dest = join(dir, 'custom_nodes');
    const r = py('packs', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', dest, '--requirements-out', join(dir, 'req.txt'), '--manifest', join(dir, 'packs.json'));
    expect(r.code).toBe(0);
    expect(existsSync(join(dest, 'Staged', '__init__.py'))).toBe(true);
    expect(existsSync(join(dest, 'Staged', '.steadydancer-source.json'))).toBe(false);
    expect(readFileSync(join(dest, 'Cloned', 'requirements.txt'), 'utf8')).toContain('opencv-python>=4.8');
    expect(existsSync(join(dest, 'Cloned', '.git'))).toBe(false);
    const req = readFileSync(join(dir, 'req.txt'), 'utf8').split('\n').filter(Boolean);
    // NoReqs (requirements: false) contributes nothing; torch and URL/option lines dropped
    expect(req).toEqual(['# Staged', 'opencv-python-headless', 'scipy', '# Cloned', 'opencv-python-headless', 'onnx']);
    const m = JSON.parse(readFileSync(join(dir, 'packs.json'), 'utf8')) as { installed: Array<{ name: string; from: string; missingFiles: number }>; requirementNotes: string[] };
    expect(m.installed.map((i) => [i.name, i.from])).toEqual([
      ['Staged', 'cache'],
      ['Cloned', 'clone'],
      ['NoReqs', 'clone'],
    ]);
    expect(m.installed[0]!.missingFiles).toBe(1);
    expect(m.requirementNotes).toEqual([
      "Cloned: 'opencv-python>=4.8' -> opencv-python-headless",
      "Cloned: 'torch' left to the image's own pin",
      "Cloned: dropped 'git+https://github.com/x/y.git' (URL/option requirement)",
      "Cloned: dropped '-e .' (URL/option requirement)",
    ]);
  });

  it('a selection records the omitted packs; an unknown name fails naming the known ones', () => {
    const r = py('packs', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', join(dir, 'cn2'), '--select', 'Staged', '--manifest', join(dir, 'p2.json'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('omitted node packs: Cloned, NoReqs');
    const m = JSON.parse(readFileSync(join(dir, 'p2.json'), 'utf8')) as { omitted: Array<{ name: string }> };
    expect(m.omitted.map((o) => o.name)).toEqual(['Cloned', 'NoReqs']);
    const bad = py('packs', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', join(dir, 'cn3'), '--select', 'Nope');
    expect(bad.code).not.toBe(0);
    expect(bad.out).toMatch(/NODE_PACKS names unknown pack\(s\) \['Nope'\]/);
  });

  it('ComfyUI: staged copy; a short COMFYUI_REF and a commit the repo lacks are refused', () => {
    expect(py('comfyui', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', join(dir, 'ComfyUI')).code).toBe(0);
    expect(existsSync(join(dir, 'ComfyUI', 'main.py'))).toBe(true);
    const short = py('comfyui', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', join(dir, 'C2'), '--comfyui-ref', 'abc123');
    expect(short.code).not.toBe(0);
    expect(short.out).toContain('COMFYUI_REF must be a full 40-hex commit');
    const absent = py('comfyui', '--lock', lock, '--staged', join(dir, 'staged'), '--dest', join(dir, 'C3'), '--comfyui-ref', 'd'.repeat(40));
    expect(absent.code).not.toBe(0);
  });

  it('a staged copy whose provenance names another commit is refused', () => {
    const other = join(dir, 'staged2', `Staged@${stagedCommit}`);
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, '.steadydancer-source.json'), JSON.stringify({ commit: 'b'.repeat(40) }));
    const r = py('packs', '--lock', lock, '--staged', join(dir, 'staged2'), '--dest', join(dir, 'cn4'), '--select', 'Staged');
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/the lock pins a{40}/);
  });
});
