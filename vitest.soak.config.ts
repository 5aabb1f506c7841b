import { defineConfig } from 'vitest/config';

// `npm run soak` (not part of `npm test`): see the header of test/soak/soak.soak.ts.
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    // The soak runs as long as SOAK_DURATION says; every wait inside it is bounded.
    testTimeout: 0,
    hookTimeout: 180_000,
    // Status lines go straight to stdout while the soak runs.
    disableConsoleIntercept: true,
    reporters: ['dot'],
    // Heap verdict: compare heap used after a full gc.
    execArgv: ['--expose-gc'],
    pool: 'forks',
    fileParallelism: false,
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
