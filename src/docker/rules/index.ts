/** The lint rule registry, in the order findings are checked and reported. */
import type { Rule } from '../lint.js';
import { dockerfileRules } from './dockerfile.js';
import { SC001 } from './secrets.js';
import { LK001 } from './lockfile.js';
import { CP001, CP002 } from './compose.js';
import { SH001 } from './shell.js';
import { WF001, WF002 } from './workflows.js';
import { MD001 } from './manifest.js';

export const rules: Rule[] = [...dockerfileRules, SC001, LK001, CP001, CP002, SH001, MD001, WF001, WF002];
