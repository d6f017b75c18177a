/** Rules on docker/Dockerfile: DF001–DF006. */
import { validate } from 'dockerfile-utils';
import { DOCKERFILE, type LintContext, type Rule } from '../lint.js';
import { substitute, type ParsedDockerfile } from '../dockerfile.js';
import { FULL_COMMIT, findUnpinnedGit } from './gitpin.js';

export const REQUIRED_ARGS = ['BASE_IMAGE', 'COMFYUI_REF', 'BAKE_STEADYDANCER', 'STEADYDANCER_VARIANT', 'ENABLE_FLASH_ATTN', 'ENABLE_OPENMMLAB'];
export const REQUIRED_ENV = ['ENABLE_STEADYDANCER', 'STEADYDANCER_VARIANT'];

const noDockerfile = { skipped: `${DOCKERFILE} is missing (reported by DF001)` };

function withDockerfile(ctx: LintContext): ParsedDockerfile | null {
  return ctx.dockerfile();
}

export const DF001: Rule = {
  id: 'DF001',
  title: 'Dockerfile parses without error-level diagnostics (dockerfile-utils)',
  severity: 'error',
  async check(ctx) {
    const text = ctx.read(DOCKERFILE);
    if (text === null) {
      return [{ file: DOCKERFILE, line: 1, message: 'docker/Dockerfile is missing', hint: 'the image is defined by docker/Dockerfile: restore it' }];
    }
    return validate(text).map((d) => ({
      file: DOCKERFILE,
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
      severity: d.severity === 1 ? ('error' as const) : ('warning' as const),
      message: `${d.message}${d.code !== undefined ? ` (dockerfile-utils ${d.code})` : ''}`,
      hint: 'fix the instruction as the message says (see https://docs.docker.com/reference/dockerfile/)',
    }));
  },
};

export const DF002: Rule = {
  id: 'DF002',
  title: `required build args with defaults (${REQUIRED_ARGS.join(', ')})`,
  severity: 'error',
  async check(ctx) {
    const df = withDockerfile(ctx);
    if (!df) return noDockerfile;
    const out = [];
    for (const name of REQUIRED_ARGS) {
      const decls = df.args.filter((a) => a.name === name);
      if (!decls.length) {
        out.push({ file: DOCKERFILE, line: 1, message: `build arg ${name} is not declared`, hint: `declare \`ARG ${name}=<default>\`${name === 'BASE_IMAGE' ? ' before the first FROM' : ''}` });
        continue;
      }
      if (name === 'BASE_IMAGE' && !decls.some((d) => d.global)) {
        out.push({ file: DOCKERFILE, line: decls[0]!.line, message: 'BASE_IMAGE is declared inside a stage, so FROM cannot use it', hint: 'move `ARG BASE_IMAGE=<image>` before the first FROM' });
        continue;
      }
      if (!decls.some((d) => d.value !== null && d.value !== '')) {
        out.push({ file: DOCKERFILE, line: decls[0]!.line, message: `build arg ${name} has no default`, hint: `give it a default: \`ARG ${name}=<value>\`` });
      }
    }
    return out;
  },
};

/** ENV of the final stage, following `FROM <earlier stage>` chains (ENV is inherited). */
function finalStageEnv(df: ParsedDockerfile): Set<string> {
  const names = new Set<string>();
  let stage: number | undefined = df.finalStage;
  const seen = new Set<number>();
  while (stage !== undefined && !seen.has(stage)) {
    seen.add(stage);
    for (const e of df.envs) if (e.stage === stage) names.add(e.name);
    const from = df.froms.find((f) => f.stage === stage);
    const parent = from ? df.froms.find((f) => f.stage < stage! && f.stageName && f.stageName.toLowerCase() === from.raw.toLowerCase()) : undefined;
    stage = parent?.stage;
  }
  return names;
}

export const DF003: Rule = {
  id: 'DF003',
  title: `required runtime ENV in the final image (${REQUIRED_ENV.join(', ')})`,
  severity: 'error',
  async check(ctx) {
    const df = withDockerfile(ctx);
    if (!df) return noDockerfile;
    const have = finalStageEnv(df);
    const lastFrom = df.froms[df.froms.length - 1];
    return REQUIRED_ENV.filter((n) => !have.has(n)).map((n) => ({
      file: DOCKERFILE,
      line: lastFrom?.line ?? 1,
      message: `runtime ENV ${n} is not set in the final stage`,
      hint: `add \`ENV ${n}=\${${n}}\` (or a literal default) to the final stage so start.sh and users can override it`,
    }));
  },
};

function argResolver(df: ParsedDockerfile, line: number) {
  const vars = new Map<string, string | null>();
  for (const a of df.args) if (a.line <= line) vars.set(a.name, a.value);
  return (w: string) => substitute(w, vars);
}

export const DF004: Rule = {
  id: 'DF004',
  title: 'every git source in the Dockerfile and docker/**/*.sh is pinned to a full 40-hex commit',
  severity: 'error',
  async check(ctx) {
    const df = withDockerfile(ctx);
    const out = [];
    if (df) {
      const lines = df.text.split('\n');
      for (const ins of df.ast.getInstructions()) {
        const kw = ins.getKeyword();
        const r = ins.getRange();
        const start = r.start.line + 1;
        if (kw === 'RUN') {
          const raw = lines.slice(r.start.line, r.end.line + 1).join('\n');
          for (const p of findUnpinnedGit(raw, start, argResolver(df, start))) out.push({ file: DOCKERFILE, ...p });
        } else if (kw === 'ADD') {
          for (const a of ins.getArguments()) {
            const v = substitute(a.getValue(), new Map(df.args.filter((x) => x.line <= start).map((x) => [x.name, x.value]))) ?? a.getValue();
            if (!/^(https?:\/\/|git@|ssh:\/\/)/.test(v) || !/(\.git(#|$)|^git@)/.test(v)) continue;
            const ref = v.includes('#') ? v.slice(v.indexOf('#') + 1).split(':')[0]! : '';
            if (!FULL_COMMIT.test(ref)) {
              out.push({ file: DOCKERFILE, line: start, message: `ADD of git source ${v} is not pinned to a full commit`, hint: 'append #<40-hex commit> to the git URL' });
            }
          }
        }
      }
      for (const a of df.args) {
        if (!/_(REF|COMMIT|SHA)$/.test(a.name) || a.value === null) continue;
        if (!FULL_COMMIT.test(a.value)) {
          out.push({ file: DOCKERFILE, line: a.line, message: `build arg ${a.name} defaults to "${a.value}", not a full 40-hex commit`, hint: `set \`ARG ${a.name}=<40-hex commit>\`` });
        }
      }
    }
    for (const sh of ctx.list('docker', '.sh', true)) {
      const text = ctx.read(sh) ?? '';
      for (const p of findUnpinnedGit(text, 1, (w) => (/\$/.test(w) ? null : w))) out.push({ file: sh, ...p });
    }
    return out;
  },
};

/** "repo/name:tag" → tag (null when untagged); digests count as pinned. */
export function imageTag(image: string): { tag: string | null; digest: boolean } {
  if (image.includes('@sha256:')) return { tag: null, digest: true };
  const last = image.slice(image.lastIndexOf('/') + 1);
  const i = last.indexOf(':');
  return { tag: i >= 0 ? last.slice(i + 1) : null, digest: false };
}

export const DF005: Rule = {
  id: 'DF005',
  title: 'no :latest or untagged base image (ARG-resolved FROM lines too)',
  severity: 'error',
  async check(ctx) {
    const df = withDockerfile(ctx);
    if (!df) return noDockerfile;
    const out = [];
    for (const f of df.froms) {
      const earlier = df.froms.filter((g) => g.stage < f.stage && g.stageName).map((g) => g.stageName!.toLowerCase());
      if (earlier.includes(f.raw.toLowerCase()) || f.raw === 'scratch') continue;
      if (f.resolved === null) {
        out.push({
          file: DOCKERFILE,
          line: f.line,
          message: `FROM ${f.raw}: a build arg it uses has no default before the first FROM`,
          hint: 'declare the arg with a tagged default before the first FROM',
        });
        continue;
      }
      if (earlier.includes(f.resolved.toLowerCase())) continue;
      const { tag, digest } = imageTag(f.resolved);
      if (digest) continue;
      const shown = f.raw === f.resolved ? f.raw : `${f.raw} (= ${f.resolved})`;
      if (tag === null)
        out.push({
          file: DOCKERFILE,
          line: f.line,
          message: `base image ${shown} has no tag (that means :latest)`,
          hint: 'pin a versioned tag (e.g. nvidia/cuda:12.8.1-runtime-ubuntu24.04) or a digest',
        });
      else if (tag === 'latest') out.push({ file: DOCKERFILE, line: f.line, message: `base image ${shown} uses :latest`, hint: 'pin a versioned tag or a digest: :latest changes under you' });
    }
    return out;
  },
};

const SECRET_WORDS = new Set(['TOKEN', 'SECRET', 'PASSWORD', 'PASSWD', 'APIKEY', 'KEY', 'CREDENTIALS']);

/** A variable name that looks like it holds a secret (HF_TOKEN, AWS_SECRET_ACCESS_KEY, …). */
export function secretLikeName(name: string): boolean {
  const parts = name.toUpperCase().split(/[_\-.]/);
  if (parts.includes('PUBLIC')) return false; // an SSH public key is not a secret
  // HF_TOKEN_PATH, SSH_KEY_FILE, …: where a secret is read from, not the secret
  if (['PATH', 'FILE', 'DIR', 'ID'].includes(parts[parts.length - 1]!) && !parts.includes('ACCESS')) return false;
  return parts.some((p) => SECRET_WORDS.has(p));
}

export const DF006: Rule = {
  id: 'DF006',
  title: 'no secret-looking ARG or ENV (TOKEN / SECRET / PASSWORD / KEY)',
  severity: 'error',
  async check(ctx) {
    const df = withDockerfile(ctx);
    if (!df) return noDockerfile;
    const out = [];
    const hint = 'never pass secrets as ARG/ENV (they stay in the image history): use `RUN --mount=type=secret,id=hf_token` at build time and the container environment at run time';
    for (const a of df.args) {
      if (!secretLikeName(a.name)) continue;
      if (a.value) out.push({ file: DOCKERFILE, line: a.line, message: `ARG ${a.name} carries a default value that looks like a secret`, hint });
      else
        out.push({
          file: DOCKERFILE,
          line: a.line,
          severity: 'warning' as const,
          message: `ARG ${a.name} looks like a secret: a value passed with --build-arg is recorded in the image history`,
          hint,
        });
    }
    for (const e of df.envs) {
      if (secretLikeName(e.name) && e.value) out.push({ file: DOCKERFILE, line: e.line, message: `ENV ${e.name} bakes a secret-looking value into the image`, hint });
    }
    return out;
  },
};

export const dockerfileRules = [DF001, DF002, DF003, DF004, DF005, DF006];
