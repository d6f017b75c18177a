/** The plan's phase ids, in wave order (a module of its own: the CLI's --skip/--only parsers need it at parse time). */
export const PHASE_IDS = ['doctor', 'lint', 'models', 'deps-build', 'build', 'local-test'] as const;
