#!/usr/bin/env node
// The `keygate` command. Every failure ends as one clear line on stderr and a non-zero exit,
// never a stack trace (set KEYGATE_DEBUG=1 to see one).
import { runCli } from './program.js';

runCli(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keygate: unexpected error: ${(err as Error)?.message ?? String(err)}\n`);
    if (process.env.KEYGATE_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ''}\n`);
    process.exitCode = 1;
  },
);
