import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Strict mode surfaces every unhandled rejection as a failure (FAULTS.md I4).
    dangerouslyIgnoreUnhandledErrors: false,
  },
});
