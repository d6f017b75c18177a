/**
 * runpod-python, pinned in comfyui-steadydancer/requirements-dev.txt, as the oracle of the
 * serverless contract tests. Upgrading the pin is one line there plus `make venv` and a run of
 * test/integration/runpod-contract.test.ts and runpod-endpoint.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { projectRoot } from '../../src/util/paths.js';
import { testPython } from './sources.js';

/** The version the requirements file pins (`runpod==X`). */
export function pinnedRunpodVersion(): string {
  const m = /^runpod==(\S+)$/m.exec(readFileSync(join(projectRoot(), 'comfyui-steadydancer', 'requirements-dev.txt'), 'utf8'));
  if (!m) throw new Error('comfyui-steadydancer/requirements-dev.txt pins no runpod==<version>');
  return m[1]!;
}

/** Why runpod-python cannot run here, or undefined (it must be the pinned version). */
export function runpodPythonSkipReason(): string | undefined {
  const py = testPython();
  if (!py) return 'no Python venv (.venv or STEADYDANCER_PYTHON); run `make venv`';
  let got: string;
  try {
    got = execFileSync(py, ['-c', 'import runpod; print(runpod.__version__)'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return `runpod-python is not installed in ${py}; run \`python3 -m uv pip install --python ${py} runpod==${pinnedRunpodVersion()}\` (or \`make venv\`)`;
  }
  if (got !== pinnedRunpodVersion()) return `the venv has runpod ${got}, the requirements pin ${pinnedRunpodVersion()}; reinstall it`;
  return undefined;
}
