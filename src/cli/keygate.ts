#!/usr/bin/env node
// The `keygate` command. Every failure ends as one clear line on stderr and a non-zero exit,
// never a stack trace (set KEYGATE_DEBUG=1 to see one).
import module from 'node:module';

// Every command is a process start-up, most of it compiling keygate's and its libraries'
// modules. Node 22+ can keep the compiled code on disk (in the system's temporary folder,
// NODE_COMPILE_CACHE to choose another); where it cannot write, or on Node 20, nothing changes.
// The program is imported after this, so that the cache covers it.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
const { runCli } = await import('./program.js');

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
