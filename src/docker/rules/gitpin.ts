/**
 * Finds git sources in shell text (RUN instructions, docker/*.sh) and says which are not
 * pinned to a full 40-hex commit: `git clone` left at a branch tip, `git checkout` / `reset`
 * of a branch, tag or short hash, `pip install git+URL` without `@<commit>`.
 *
 * Hand-written because no maintained npm package answers "is this git source pinned"; it is a
 * small shell word splitter (quotes, `\`-newline continuations, `&& || ; |` separators), not a
 * full shell parser: a ref it cannot resolve statically is reported as a warning, never
 * silently passed.
 */
export const FULL_COMMIT = /^[0-9a-f]{40}$/;

export interface PinProblem {
  /** 1-based line in the file. */
  line: number;
  severity: 'error' | 'warning';
  message: string;
  hint: string;
}

interface Segment {
  words: string[];
  line: number;
}

/** Split shell text into simple commands with the line each starts on. */
export function shellSegments(text: string, firstLine: number): Segment[] {
  const physical = text.split('\n');
  let joined = '';
  const lineAtChar: number[] = [];
  physical.forEach((l, i) => {
    if (i > 0 && /^\s*#/.test(l)) return; // comment lines inside a continued instruction
    const cont = /\\\s*$/.test(l);
    const body = (cont ? l.replace(/\\\s*$/, '') : l) + (cont ? ' ' : '\n');
    for (let k = 0; k < body.length; k++) lineAtChar.push(firstLine + i);
    joined += body;
  });
  const segs: Segment[] = [];
  let words: string[] = [];
  let cur = '';
  let curStart = -1;
  let segLine = -1;
  let quote: '"' | "'" | null = null;
  const endWord = () => {
    if (cur) words.push(cur);
    cur = '';
  };
  const endSeg = () => {
    endWord();
    if (words.length) segs.push({ words, line: segLine });
    words = [];
    segLine = -1;
  };
  for (let i = 0; i < joined.length; i++) {
    const c = joined[i]!;
    if (quote) {
      if (c === quote) quote = null;
      else cur += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      if (segLine < 0) segLine = lineAtChar[i]!;
      continue;
    }
    if (c === '#' && !cur && (i === 0 || /\s/.test(joined[i - 1]!))) {
      // comment to end of line
      while (i < joined.length && joined[i] !== '\n') i++;
      endSeg();
      continue;
    }
    if (c === '\n' || c === ';' || c === '|' || c === '&' || c === '(' || c === ')' || c === '`') {
      endSeg();
      continue;
    }
    if (/\s/.test(c)) {
      endWord();
      continue;
    }
    if (!cur) curStart = i;
    if (segLine < 0) segLine = lineAtChar[curStart]!;
    cur += c;
  }
  endSeg();
  return segs;
}

const LEADING = new Set(['then', 'do', 'else', 'elif', 'if', 'while', 'until', '!', '{', '}', 'time', 'exec', 'sudo', 'env', 'command']);
const CLONE_VALUE_OPTS = new Set([
  '-b',
  '--branch',
  '--depth',
  '-o',
  '--origin',
  '-c',
  '--config',
  '--reference',
  '--filter',
  '-j',
  '--jobs',
  '--separate-git-dir',
  '--template',
  '--shallow-since',
  '--shallow-exclude',
  '-u',
  '--upload-pack',
  '--reference-if-able',
]);

function commandWords(words: string[]): string[] {
  let i = 0;
  // Also skips a Dockerfile's own `RUN --mount=… --network=…` prefix.
  const skip = (w: string) => LEADING.has(w) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(w) || (i === 0 && /^RUN$/i.test(w)) || /^--(mount|network|security)=/.test(w);
  while (i < words.length && skip(words[i]!)) i++;
  return words.slice(i);
}

export type Resolve = (word: string) => string | null;

/** Pin problems in shell text; `resolve` substitutes build args (null = cannot resolve). */
export function findUnpinnedGit(text: string, firstLine: number, resolve: Resolve): PinProblem[] {
  const problems: PinProblem[] = [];
  const segs = shellSegments(text, firstLine).map((s) => ({ ...s, words: commandWords(s.words) }));
  let pinnedFetch = false;
  const clones: Array<{ url: string; branch: string | null; line: number }> = [];
  let pinnedAfterClone = false;
  let unknownAfterClone = false;

  const classify = (ref: string, line: number, what: string): 'pinned' | 'unknown' | 'bad' => {
    const r = resolve(ref);
    if (r === null) {
      problems.push({
        line,
        severity: 'warning',
        message: `${what} ${ref}: the ref comes from a shell variable and cannot be checked here`,
        hint: 'take the commit from a build arg with a 40-hex default or from docker/custom-nodes.lock.json (checked by LK001)',
      });
      return 'unknown';
    }
    if (FULL_COMMIT.test(r)) return 'pinned';
    if (r === 'FETCH_HEAD' && pinnedFetch) return 'pinned';
    problems.push({
      line,
      severity: 'error',
      message: `${what} "${r}", which is a branch, tag or short hash, not a full 40-hex commit`,
      hint: 'check out a full 40-hex commit (git fetch --depth 1 origin <commit> && git checkout FETCH_HEAD)',
    });
    return 'bad';
  };

  for (const { words, line } of segs) {
    for (const w of words) {
      if (/git\+[a-z]+:\/\//.test(w) || /^git\+/.test(w)) {
        const r = resolve(w) ?? w;
        const m = /@([^@#/]+)(#.*)?$/.exec(r.replace(/^git\+[a-z]+:\/\/[^/]*@/, 'git+x://'));
        if (!m || !FULL_COMMIT.test(m[1]!)) {
          problems.push({
            line,
            severity: 'error',
            message: `pip source ${r} is not pinned to a full commit`,
            hint: 'write git+https://…/repo.git@<40-hex commit>',
          });
        }
      }
    }
    if (!words.length || !/(^|\/)git$/.test(words[0]!)) continue;
    let i = 1;
    while (i < words.length && words[i]!.startsWith('-')) {
      const o = words[i]!;
      i += o === '-C' || o === '-c' ? 2 : 1;
    }
    const sub = words[i];
    const rest = words.slice(i + 1);
    if (sub === 'clone') {
      let branch: string | null = null;
      const pos: string[] = [];
      for (let k = 0; k < rest.length; k++) {
        const w = rest[k]!;
        if (w === '-b' || w === '--branch') branch = rest[++k] ?? null;
        else if (w.startsWith('--branch=')) branch = w.slice(9);
        else if (CLONE_VALUE_OPTS.has(w)) k++;
        else if (!w.startsWith('-')) pos.push(w);
      }
      clones.push({ url: resolve(pos[0] ?? '') ?? pos[0] ?? '?', branch, line });
    } else if (sub === 'checkout' || sub === 'switch' || sub === 'reset') {
      let ref: string | null = null;
      for (let k = 0; k < rest.length; k++) {
        const w = rest[k]!;
        if (w === '--') break;
        if (w === '-b' || w === '-B' || w === '-c' || w === '-C') {
          k++;
          continue;
        }
        if (w.startsWith('-')) continue;
        ref = w;
        break;
      }
      if (ref && ref !== '.') {
        const c = classify(ref, line, `git ${sub}`);
        if (clones.length) {
          if (c === 'pinned') pinnedAfterClone = true;
          if (c === 'unknown') unknownAfterClone = true;
          if (c === 'bad') unknownAfterClone = true; // already reported on this line
        }
      }
    } else if (sub === 'fetch') {
      const pos = rest.filter((w) => !w.startsWith('-'));
      for (const spec of pos.slice(1)) {
        const r = resolve(spec);
        if (r !== null && FULL_COMMIT.test(r)) pinnedFetch = true;
      }
    }
  }
  if (clones.length && !pinnedAfterClone && !unknownAfterClone) {
    for (const c of clones) {
      problems.push({
        line: c.line,
        severity: 'error',
        message: `git clone ${c.url} ${c.branch ? `takes the tip of "${c.branch}"` : 'takes the default branch tip'}, not a pinned commit`,
        hint: 'after cloning, check out a full 40-hex commit (from a build arg default or docker/custom-nodes.lock.json)',
      });
    }
  }
  return problems;
}
