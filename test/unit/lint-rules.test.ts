import { mkdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runLint } from '../../src/docker/lint.js';
import { rules } from '../../src/docker/rules/index.js';
import { realRunner, type Runner } from '../../src/system/exec.js';
import { probeCompose } from '../../src/docker/probe.js';
import { runCli } from '../../src/cli.js';
import { needs } from '../helpers/skips.js';
import { buildTree, FAKE_HF_TOKEN, fixtureExpect, ruleFixtures } from '../helpers/lint.js';
import { manifestView } from '../../src/docker/manifest-bridge.js';
import { captureCli } from '../helpers/cli.js';

const compose = await probeCompose(realRunner);
const shellcheck = (await realRunner('shellcheck', ['--version'])).exitCode === 0;
const trees: string[] = [];
const tree = (overlay?: string) => {
  const t = buildTree(overlay);
  trees.push(t);
  return t;
};
afterAll(() => {
  for (const t of trees) rmSync(t, { recursive: true, force: true });
});

const capture = () => captureCli({});

describe('lint: the good baseline', () => {
  it('passes every rule with no finding at all', async () => {
    const r = await runLint(rules, { root: tree(), run: realRunner, manifest: manifestView });
    expect(r.findings).toEqual([]);
    expect(r.ok).toBe(true);
    // every rule either ran or says why it could not
    expect(r.rules.map((x) => x.id)).toEqual(rules.map((x) => x.id));
    for (const x of r.rules) if (x.status === 'skipped') expect(x.reason).toBeTruthy();
  });

  it('every rule has a fixture that breaks it', () => {
    expect(ruleFixtures()).toEqual(rules.map((r) => r.id).sort());
  });
});

describe('lint: each rule fires on its fixture, and only it', () => {
  for (const rule of ruleFixtures()) {
    const exp = fixtureExpect(rule);
    const missing =
      exp.needs === 'compose' && !compose.command
        ? 'neither `docker compose` nor `docker-compose` is installed'
        : exp.needs === 'shellcheck' && !shellcheck
          ? 'shellcheck is not installed (scripts/ensure-tools.sh installs it)'
          : undefined;
    const skip = needs(`lint rule ${rule}`, missing);
    it.skipIf(skip)(`${rule}: ${exp.why}`, async () => {
      const r = await runLint(rules, { root: tree(rule), run: realRunner, external: exp.external ?? true, manifest: manifestView });
      expect(r.findings.map((f) => f.rule)).toEqual(exp.findings.map(() => rule));
      expect(r.findings.map((f) => ({ file: f.file, line: f.line }))).toEqual(exp.findings);
      expect(r.ok).toBe(false);
      for (const f of r.findings) {
        expect(f.severity).toBe('error');
        expect(f.message.length).toBeGreaterThan(10);
        expect(f.hint.length).toBeGreaterThan(10);
      }
      expect(r.rules.find((x) => x.id === rule)?.errors).toBe(exp.findings.length);
    });
  }
});

describe('lint: details', () => {
  it('SC001 never prints the token it found', async () => {
    const root = tree('SC001');
    expect(readFileSync(join(root, 'docker', 'notes.env'), 'utf8')).toContain(`HF_TOKEN=${FAKE_HF_TOKEN}`);
    const r = await runLint(rules, { root, run: realRunner, only: ['SC001'] });
    expect(r.findings).toHaveLength(1);
    expect(JSON.stringify(r)).not.toContain(FAKE_HF_TOKEN);
    expect(r.findings[0]!.message).toContain('Hugging Face token');
  });

  it('DF006: a secret-named ARG without a default is a warning, which does not fail lint', async () => {
    const root = tree();
    const df = join(root, 'docker', 'Dockerfile');
    writeFileSync(df, readFileSync(df, 'utf8').replace('ARG ENABLE_OPENMMLAB=false\n', 'ARG ENABLE_OPENMMLAB=false\nARG HF_TOKEN\n'));
    const r = await runLint(rules, { root, run: realRunner, external: false, manifest: manifestView });
    expect(r.findings).toMatchObject([{ rule: 'DF006', severity: 'warning', line: 8 }]);
    expect(r.ok).toBe(true);
  });

  it('DF004: a ref from a shell variable is a warning that says it cannot be checked', async () => {
    const root = tree();
    const df = join(root, 'docker', 'Dockerfile');
    writeFileSync(df, readFileSync(df, 'utf8').replace('git -C /opt/ComfyUI checkout "${COMFYUI_REF}"', 'ref=$(cat /ref) && git -C /opt/ComfyUI checkout "$ref"'));
    const r = await runLint(rules, { root, run: realRunner, only: ['DF004'] });
    expect(r.findings).toMatchObject([{ rule: 'DF004', severity: 'warning', line: 11 }]);
    expect(r.findings[0]!.message).toMatch(/cannot be checked/);
  });

  it('WF002 is skipped, with the reason, when there is no model manifest', async () => {
    const root = tree('WF002');
    rmSync(join(root, 'docker', 'models.json'));
    const r = await runLint(rules, { root, run: realRunner, only: ['WF002'], manifest: manifestView });
    expect(r.rules).toEqual([expect.objectContaining({ id: 'WF002', status: 'skipped', reason: expect.stringMatching(/manifest/) })]);
  });

  it('--no-external skips CP002 and SH001 with that reason', async () => {
    const r = await runLint(rules, { root: tree('SH001'), run: realRunner, external: false, manifest: manifestView });
    expect(r.ok).toBe(true);
    for (const id of ['CP002', 'SH001']) expect(r.rules.find((x) => x.id === id)).toMatchObject({ status: 'skipped', reason: '--no-external' });
  });

  it('a missing Dockerfile is one DF001 error; the other Dockerfile rules say why they skipped', async () => {
    const root = tree();
    rmSync(join(root, 'docker', 'Dockerfile'));
    const r = await runLint(rules, { root, run: realRunner, external: false, manifest: manifestView });
    expect(r.findings).toMatchObject([{ rule: 'DF001', file: 'docker/Dockerfile', line: 1, message: 'docker/Dockerfile is missing' }]);
    expect(r.rules.filter((x) => x.status === 'skipped').map((x) => x.id)).toEqual(expect.arrayContaining(['DF002', 'DF003', 'DF005', 'DF006']));
  });

  it('LK001 names the line of a JSON syntax error', async () => {
    const root = tree();
    writeFileSync(join(root, 'docker', 'custom-nodes.lock.json'), '{\n  "version": 1,\n  "comfyui": {,\n}\n');
    const r = await runLint(rules, { root, run: realRunner, only: ['LK001'] });
    expect(r.findings).toMatchObject([{ rule: 'LK001', line: 3 }]);
    expect(r.findings[0]!.message).toMatch(/not valid JSON/);
  });

  it('CP001 and CP002 check override files too (docker-compose.<name>.yml), with the main file', async () => {
    const root = tree();
    writeFileSync(join(root, 'docker', 'docker-compose.gpu.yml'), 'services:\n  comfyui:\n    runtime: nvidia\n    gpus_all: true\n');
    const r = await runLint(rules, { root, run: realRunner, only: ['CP001', 'CP002'] });
    expect(r.findings.filter((f) => f.rule === 'CP001')).toMatchObject([{ file: 'docker/docker-compose.gpu.yml', line: 4, message: 'services.comfyui: unknown key "gpus_all"' }]);
    // CP002 runs Compose itself: without one it says it skipped, it never passes silently
    if (compose.command) expect(r.findings.filter((f) => f.rule === 'CP002')).toMatchObject([{ file: 'docker/docker-compose.gpu.yml' }]);
    else expect(r.rules.find((x) => x.id === 'CP002')).toMatchObject({ status: 'skipped', reason: expect.stringMatching(/compose/i) });
  });

  it.skipIf(needs('lint SH001 in subfolders', shellcheck ? undefined : 'shellcheck is not installed'))('SH001 and DF004 also read scripts in subfolders of docker/', async () => {
    const root = tree();
    mkdirSync(join(root, 'docker', 'build'));
    writeFileSync(join(root, 'docker', 'build', 'get.sh'), '#!/bin/sh\nset -eu\ngit clone https://x/a.git /a\nunused=1\n');
    const r = await runLint(rules, { root, run: realRunner, only: ['SH001', 'DF004'] });
    expect(r.findings.map((f) => `${f.rule} ${f.file}:${f.line}`)).toEqual(['DF004 docker/build/get.sh:3', 'SH001 docker/build/get.sh:4']);
  });

  it('CP002 asks every installed client: Compose v2 and docker-compose 1.29 (v2 answered from a recording: it is not installable here)', async () => {
    const root = tree();
    const calls: string[] = [];
    const run: Runner = async (file, args, opts) => {
      calls.push([file, ...args].join(' '));
      if (file === 'docker' && args[0] === 'compose' && args[1] === 'version') return { exitCode: 0, stdout: 'Docker Compose version v2.29.1\n', stderr: '', notFound: false };
      if (file === 'docker' && args.at(-2) === 'config') {
        return { exitCode: 15, stdout: '', stderr: "services.comfyui.deploy.resources.reservations.devices.0 additional properties 'x' not allowed\n", notFound: false };
      }
      return realRunner(file, args, opts);
    };
    const r = await runLint(rules, { root, run, only: ['CP002'] });
    expect(calls.filter((c) => c.endsWith('config -q')).map((c) => c.split(' -f')[0])).toEqual(compose.command ? ['docker compose', 'docker-compose'] : ['docker compose']);
    expect(r.findings).toMatchObject([{ rule: 'CP002', file: 'docker/docker-compose.yml', line: 22 }]);
    expect(r.findings[0]!.message).toMatch(/^docker compose 2\.29\.1 -f docker-compose\.yml config -q: services\.comfyui\.deploy/);
  });

  it('CP001 names the line of a YAML syntax error', async () => {
    const root = tree();
    writeFileSync(join(root, 'docker', 'docker-compose.yml'), 'services:\n  a:\n    image: x\n   bad: [\n');
    const r = await runLint(rules, { root, run: realRunner, only: ['CP001'] });
    expect(r.findings.length).toBeGreaterThan(0);
    expect(r.findings[0]).toMatchObject({ rule: 'CP001' });
    expect(r.findings[0]!.message).toMatch(/^YAML:/);
    expect(r.findings[0]!.line).toBeGreaterThanOrEqual(4);
  });
});

describe('steadydancer lint (CLI)', () => {
  it('exits 0 on the good tree and 1 with the rule ids in --json on a broken one', async () => {
    const good = capture();
    expect(await runCli(['lint', tree(), '--no-external'], good.io)).toBe(0);
    expect(good.out.join('\n')).toMatch(/passed/);
    const bad = capture();
    expect(await runCli(['lint', tree('DF005'), '--json', '--no-external'], bad.io)).toBe(1);
    const doc = JSON.parse(bad.out.join('\n')) as { ok: boolean; findings: Array<{ rule: string; file: string; line: number; hint: string }> };
    expect(doc.ok).toBe(false);
    expect(doc.findings.map((f) => `${f.rule} ${f.file}:${f.line}`)).toEqual(['DF005 docker/Dockerfile:4', 'DF005 docker/Dockerfile:19']);
  });

  it('human output shows file:line, severity, rule id, message and the fix', async () => {
    const c = capture();
    expect(await runCli(['lint', tree('LK001'), '--no-external'], c.io)).toBe(1);
    const text = c.out.join('\n');
    expect(text).toMatch(/^docker\/custom-nodes\.lock\.json:18 {2}error {2}LK001 {2}nodes\.1\.commit: must be a full 40-hex/m);
    expect(text).toMatch(/^ {4}fix: replace it with the full 40-hex commit/m);
  });

  it('--rule limits the rules; an unknown rule id is a usage error (exit 2)', async () => {
    const c = capture();
    expect(await runCli(['lint', tree('DF005'), '--rule', 'DF002', '--json'], c.io)).toBe(0);
    expect((JSON.parse(c.out.join('\n')) as { rules: unknown[] }).rules).toHaveLength(1);
    const u = capture();
    expect(await runCli(['lint', tree(), '--rule', 'XX999'], u.io)).toBe(2);
    expect(u.err.join('')).toMatch(/unknown rule id\(s\): XX999/);
  });

  it('a folder without docker/ is a usage error that says what to pass', async () => {
    const c = capture();
    expect(await runCli(['lint', '/nonexistent-sd-lint'], c.io)).toBe(2);
    expect(c.err.join('')).toMatch(/has no docker\/ folder/);
  });
});
