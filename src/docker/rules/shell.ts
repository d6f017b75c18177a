/** SH001: shellcheck (Debian's package) on docker/*.sh. */
import { join } from 'node:path';
import type { Rule } from '../lint.js';

interface ShellcheckComment {
  file: string;
  line: number;
  column: number;
  level: 'error' | 'warning' | 'info' | 'style';
  code: number;
  message: string;
}

export const SH001: Rule = {
  id: 'SH001',
  title: 'shellcheck finds nothing in docker/**/*.sh (error/warning fail; info/style warn)',
  severity: 'error',
  async check(ctx) {
    const scripts = ctx.list('docker', '.sh', true);
    if (!scripts.length) return [];
    if (!ctx.external) return { skipped: '--no-external' };
    const r = await ctx.run('shellcheck', ['--format=json1', '--severity=style', '--external-sources', ...scripts.map((s) => join(ctx.root, s))], { cwd: ctx.root, timeoutMs: 60_000 });
    if (r.notFound) return { skipped: 'shellcheck is not installed (apt-get install shellcheck; scripts/ensure-tools.sh does it)' };
    let parsed: { comments: ShellcheckComment[] };
    try {
      parsed = JSON.parse(r.stdout) as { comments: ShellcheckComment[] };
    } catch {
      return [{ file: scripts[0]!, line: 1, message: `shellcheck failed: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? `exit ${r.exitCode}`}`, hint: 'run shellcheck on the script by hand' }];
    }
    return parsed.comments.map((c) => ({
      file: c.file.startsWith(ctx.root) ? c.file.slice(ctx.root.length + 1) : c.file,
      line: c.line,
      column: c.column,
      severity: c.level === 'error' || c.level === 'warning' ? ('error' as const) : ('warning' as const),
      message: `SC${c.code} (${c.level}): ${c.message}`,
      hint: `see https://www.shellcheck.net/wiki/SC${c.code}`,
    }));
  },
};
