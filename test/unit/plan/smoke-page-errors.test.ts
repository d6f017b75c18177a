/**
 * The browser check's known-benign page errors (src/plan/smoke.ts BENIGN_PAGE_ERRORS): each entry
 * has its reason, and the one we keep is checked against its causes in the real code — the pinned
 * frontend's core key binding and the pinned ComfyUI-KJNodes extension that binds the same key.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BENIGN_PAGE_ERRORS, classifyPageErrors } from '../../../src/plan/smoke.js';
import { loadLock, lockPath } from '../../../src/docker/lock.js';
import { sourcesDir } from '../../../src/util/paths.js';
import { needs } from '../../helpers/skips.js';

const KEY_MSG = 'Keybinding on f already exists on Workspace.ToggleFocusMode';
const ID_MSG = "Cannot read properties of undefined (reading 'id')";
// as Chromium reported it from ComfyUI's page (frontend 1.27.10), first frames
const ID_STACK = `TypeError: ${ID_MSG}
    at onChange (http://127.0.0.1:43703/assets/index-BKeTeXLp.js:328532:44)
    at Proxy.set (http://127.0.0.1:43703/assets/index-BKeTeXLp.js:328550:5)
    at Proxy.wrappedAction (http://127.0.0.1:43703/assets/index-BKeTeXLp.js:30132:18)
    at Object.onChange (http://127.0.0.1:43703/assets/GraphView-CIE4Y1aC.js:10793:28)
    at onChange (http://127.0.0.1:43703/assets/index-BKeTeXLp.js:328530:13)
    at Proxy.addSetting (http://127.0.0.1:43703/assets/index-BKeTeXLp.js:328609:5)`;

describe('browser check: page errors and error toasts', () => {
  it('fails on every page error that is not on the known-benign list', () => {
    const r = classifyPageErrors([KEY_MSG, "TypeError: Cannot read properties of undefined (reading 'widgets')", '  ', 'Keybinding on g already exists on Comfy.Something']);
    expect(r.benign).toEqual([{ message: KEY_MSG, reason: BENIGN_PAGE_ERRORS[0]!.reason }]);
    expect(r.bad).toEqual(["TypeError: Cannot read properties of undefined (reading 'widgets')", 'Keybinding on g already exists on Comfy.Something']);
  });

  it('recognises a benign message inside a multi-line error (message + stack)', () => {
    expect(classifyPageErrors([`Error: x\n${KEY_MSG}`]).bad).toEqual([]);
    expect(classifyPageErrors([`${KEY_MSG} (and more)`]).bad).toHaveLength(1);
  });

  it('a message too generic on its own is benign only with its stack (the frontend registering a setting)', () => {
    expect(classifyPageErrors([{ message: ID_MSG, stack: ID_STACK }]).bad).toEqual([]);
    expect(classifyPageErrors([{ message: ID_MSG, stack: ID_STACK }]).benign[0]!.reason).toMatch(/Comfy\.Canvas\.NavigationMode/);
    // the same message from anywhere else (e.g. a node pack's widget code) fails the check
    expect(classifyPageErrors([{ message: ID_MSG, stack: `TypeError: ${ID_MSG}\n    at nodeCreated (http://x/extensions/pack/widget.js:10:5)` }]).bad).toEqual([ID_MSG]);
    expect(classifyPageErrors([ID_MSG]).bad).toEqual([ID_MSG]);
  });

  it('every benign entry says why it is harmless', () => {
    for (const b of BENIGN_PAGE_ERRORS) expect(b.reason.length).toBeGreaterThan(60);
  });
});

const kj = loadLock(lockPath(process.cwd())).nodes.find((n) => n.name === 'ComfyUI-KJNodes');
const kjDir = kj ? join(sourcesDir(), `${kj.name}@${kj.commit}`) : undefined;
const frontend = join(process.cwd(), '.venv', 'lib');
const skip = needs(
  'benign key-binding error against the real frontend and KJNodes',
  !kjDir || !existsSync(kjDir)
    ? `ComfyUI-KJNodes is not in the source cache (${kjDir ?? 'not in the lock'})`
    : !existsSync(frontend)
      ? 'no .venv (make venv): the frontend package is in it'
      : undefined,
);

describe.skipIf(skip)('the benign key-binding error has the causes its reason names', () => {
  it('KJNodes binds f on the canvas and the pinned frontend binds f to Workspace.ToggleFocusMode, and refuses a second binding with this message', () => {
    const fill = readFileSync(join(kjDir!, 'web', 'js', 'fillconnect.js'), 'utf8');
    expect(fill).toMatch(/keybindings:\s*\[\s*\{\s*commandId:\s*"KJNodes\.fillConnectSelected",\s*combo:\s*\{\s*key:\s*"f"\s*\}/);
    const py = readdirSync(frontend).find((d) => d.startsWith('python'))!;
    const assets = join(frontend, py, 'site-packages', 'comfyui_frontend_package', 'static', 'assets');
    const maps = readdirSync(assets).filter((f) => f.endsWith('.js.map'));
    let core = false;
    let thrower = false;
    for (const m of maps) {
      const text = readFileSync(join(assets, m), 'utf8');
      if (/combo: \{\\n\s+key: 'f'\\n\s+\},\\n\s+commandId: 'Workspace\.ToggleFocusMode'/.test(text)) core = true;
      if (text.includes('Keybinding on ${keybinding.combo} already exists on ${')) thrower = true;
    }
    expect(core, 'the frontend binds f to Workspace.ToggleFocusMode').toBe(true);
    // and the setting bug: NavigationMode (registered first) sets LeftMouseClickBehavior from its onChange
    const bundles = readdirSync(assets)
      .filter((f) => f.endsWith('.js'))
      .map((f) => readFileSync(join(assets, f), 'utf8'));
    const settings = bundles.find((t) => t.includes('id: "Comfy.Canvas.NavigationMode"'))!;
    expect(settings, 'a bundle registers Comfy.Canvas.NavigationMode').toBeDefined();
    const nav = settings.indexOf('id: "Comfy.Canvas.NavigationMode"');
    expect(settings.indexOf('id: "Comfy.Canvas.LeftMouseClickBehavior"')).toBeGreaterThan(nav);
    expect(settings.slice(nav, settings.indexOf('id: "Comfy.Canvas.LeftMouseClickBehavior"'))).toMatch(/onChange:[\s\S]*settingStore\.set\("Comfy\.Canvas\.LeftMouseClickBehavior"/);
    expect(thrower, 'the frontend throws "Keybinding on <combo> already exists on <command>"').toBe(true);
    expect(classifyPageErrors([KEY_MSG]).bad).toEqual([]);
  });
});
