import type { Context } from '../util/context.js';
import type { OptionDef } from './flags.js';

/** One command's implementation: parse options → call core → print. Returns the exit code. */
export type CommandMain<O = Record<string, unknown>> = (opts: O, ctx: Context, args: string[]) => Promise<number>;

/** A plain string/boolean option as a tuple, or a typed one (parser, choices, required…) as an OptionDef. */
export type OptionSpec = [flags: string, description: string, defaultValue?: string | boolean | string[]] | OptionDef;

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments in commander syntax, e.g. "<file>" or "[dir]". */
  args?: string[];
  options?: OptionSpec[];
  /** Lazy loader of the module whose default export is the CommandMain. */
  load?: () => Promise<{ default: CommandMain<never> }>;
  subcommands?: CommandSpec[];
}
