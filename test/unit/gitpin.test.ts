import { describe, expect, it } from 'vitest';
import { findUnpinnedGit, shellSegments } from '../../src/docker/rules/gitpin.js';
import { secretLikeName, imageTag } from '../../src/docker/rules/dockerfile.js';
import { substitute } from '../../src/docker/dockerfile.js';

const C = 'a125cd84b054a57729b5eecab930ca9408719832';
const args = new Map<string, string | null>([
  ['COMFYUI_REF', C],
  ['BRANCH', 'main'],
  ['NOVAL', null],
]);
const resolve = (w: string) => substitute(w, args);
const problems = (text: string) => findUnpinnedGit(text, 1, resolve).map((p) => `${p.line}:${p.severity}`);

describe('git pin analysis', () => {
  it('accepts the pinned patterns', () => {
    expect(problems(`RUN git clone https://x/ComfyUI.git /c && git -C /c checkout "\${COMFYUI_REF}"`)).toEqual([]);
    expect(problems(`RUN git clone --depth 1 --branch master https://x/a.git /a \\\n  && cd /a && git fetch --depth 1 origin ${C} && git checkout FETCH_HEAD`)).toEqual([]);
    expect(problems(`RUN git init && git remote add origin https://x/a.git && git fetch origin ${C} && git reset --hard FETCH_HEAD`)).toEqual([]);
    expect(problems(`RUN pip install "git+https://github.com/x/y.git@${C}#egg=y"`)).toEqual([]);
    expect(problems(`RUN --mount=type=cache,target=/root/.cache git clone https://x/a.git /a && git -C /a checkout ${C}`)).toEqual([]);
    expect(problems('RUN echo "git clone is mentioned in a string" && true')).toEqual([]);
    expect(problems('RUN git checkout -- file.txt')).toEqual([]);
  });

  it('flags clones at a branch tip, branch/short checkouts, FETCH_HEAD of a branch, unpinned git+ URLs', () => {
    expect(problems('RUN git clone https://x/a.git /a')).toEqual(['1:error']);
    expect(problems('RUN git clone -b "${BRANCH}" https://x/a.git /a')).toEqual(['1:error']);
    expect(problems('RUN git clone https://x/a.git /a && \\\n    git -C /a checkout ${BRANCH}')).toEqual(['2:error']);
    expect(problems('RUN git fetch origin main && git checkout FETCH_HEAD')).toEqual(['1:error']);
    expect(problems('RUN git checkout a125cd8')).toEqual(['1:error']);
    expect(problems('RUN uv pip install git+https://github.com/x/y.git')).toEqual(['1:error']);
    expect(problems('RUN uv pip install git+https://user@github.com/x/y.git@v1.0')).toEqual(['1:error']);
  });

  it('a ref it cannot resolve is a warning, not a silent pass', () => {
    expect(problems('RUN git clone https://x/a.git /a && git -C /a checkout "$commit"')).toEqual(['1:warning']);
    expect(problems('RUN git checkout ${NOVAL}')).toEqual(['1:warning']);
  });

  it('reports the physical line of each command in a continued RUN, ignoring comment lines', () => {
    const segs = shellSegments('RUN a \\\n# comment\n  && b \\\n  && c', 10);
    expect(segs.map((s) => [s.words[0], s.line])).toEqual([
      ['RUN', 10],
      ['b', 12],
      ['c', 13],
    ]);
  });
});

describe('helpers', () => {
  it('secret-looking names', () => {
    for (const n of ['HF_TOKEN', 'AWS_SECRET_ACCESS_KEY', 'BUCKET_SECRET_ACCESS_KEY', 'DB_PASSWORD', 'RUNPOD_API_KEY', 'hf-token', 'BUCKET_ACCESS_KEY_ID']) expect(secretLikeName(n)).toBe(true);
    for (const n of ['PUBLIC_KEY', 'TOKENIZERS_PARALLELISM', 'KEYRING_PROVIDER', 'HF_HUB_ENABLE_HF_TRANSFER', 'MONKEY', 'HF_TOKEN_PATH', 'SSH_KEY_FILE']) expect(secretLikeName(n)).toBe(false);
  });

  it('image tags', () => {
    expect(imageTag('nvidia/cuda:12.8.1-runtime-ubuntu24.04')).toEqual({ tag: '12.8.1-runtime-ubuntu24.04', digest: false });
    expect(imageTag('localhost:5000/base')).toEqual({ tag: null, digest: false });
    expect(imageTag('ubuntu@sha256:abc')).toEqual({ tag: null, digest: true });
  });

  it('substitutes ${VAR}, ${VAR:-x}, $VAR; null when unresolvable', () => {
    const v = new Map<string, string | null>([
      ['A', 'x'],
      ['E', ''],
    ]);
    expect(substitute('${A}/$A', v)).toBe('x/x');
    expect(substitute('${E:-d}', v)).toBe('d');
    expect(substitute('${B:-d}', v)).toBe('d');
    expect(substitute('${B}', v)).toBeNull();
  });
});
