import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allSources, loadLock, lockPath, parseLock, selectPacks } from '../../../src/docker/lock.js';
import { ActionableError } from '../../../src/util/errors.js';

const repoLock = () => loadLock(lockPath(process.cwd()));

describe('custom-nodes.lock.json', () => {
  it('the repository lock parses, pins ComfyUI and the five packs by full commit', () => {
    const lock = repoLock();
    expect(lock.comfyui.commit).toBe('a125cd84b054a57729b5eecab930ca9408719832');
    expect(lock.nodes.map((n) => n.name)).toEqual(['ComfyUI-WanVideoWrapper', 'ComfyUI-KJNodes', 'ComfyUI-VideoHelperSuite', 'ComfyUI-WanAnimatePreprocess', 'comfyui_controlnet_aux']);
    for (const s of allSources(lock)) expect(s.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(lock.references[0]?.name).toBe('SteadyDancer');
    expect(lock.nodes.every((n) => n.requirements === true)).toBe(true);
  });

  const base = () => JSON.parse(readFileSync(lockPath(process.cwd()), 'utf8')) as Record<string, any>;
  const err = (text: string) => {
    try {
      parseLock(text, 'x.json');
    } catch (e) {
      expect(e).toBeInstanceOf(ActionableError);
      return (e as ActionableError).message;
    }
    throw new Error('no error');
  };

  it('rejects a short commit, naming the JSON path', () => {
    const l = base();
    l.nodes[1].commit = '3f20054';
    expect(err(JSON.stringify(l))).toMatch(/nodes\.1\.commit: must be a full 40-hex git commit/);
  });
  it('rejects a branch name as commit', () => {
    const l = base();
    l.comfyui.commit = 'master';
    expect(err(JSON.stringify(l))).toMatch(/comfyui\.commit/);
  });
  it('rejects duplicate pack names and unsafe names', () => {
    const l = base();
    l.nodes.push({ ...l.nodes[0] });
    expect(err(JSON.stringify(l))).toMatch(/duplicate node pack name "ComfyUI-WanVideoWrapper"/);
    const m = base();
    m.nodes[0].name = '../evil';
    expect(err(JSON.stringify(m))).toMatch(/nodes\.0\.name: must be a plain directory name/);
  });
  it('rejects bad JSON and a wrong version', () => {
    expect(err('{')).toMatch(/x\.json: not valid JSON/);
    const l = base();
    l.version = 2;
    expect(err(JSON.stringify(l))).toMatch(/version/);
  });
  it('selects packs: all, none, a list; unknown names are a usage error listing the valid ones', () => {
    const lock = repoLock();
    expect(selectPacks(lock, 'all').omitted).toEqual([]);
    expect(selectPacks(lock, 'none').selected).toEqual([]);
    const r = selectPacks(lock, 'ComfyUI-KJNodes, comfyui_controlnet_aux');
    expect(r.selected.map((n) => n.name)).toEqual(['ComfyUI-KJNodes', 'comfyui_controlnet_aux']);
    expect(r.omitted).toHaveLength(3);
    try {
      selectPacks(lock, 'ComfyUI-KJNodes,Nope');
      throw new Error('no error');
    } catch (e) {
      expect((e as ActionableError).exitCode).toBe(2);
      expect((e as ActionableError).message).toBe('unknown node pack(s): Nope');
      expect((e as ActionableError).hint).toMatch(/ComfyUI-VideoHelperSuite/);
    }
  });
});
