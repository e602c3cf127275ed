import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Suites start real servers and child processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // bin/herald.js runs src/ through tsx, not dist/: tests spawn it, and a stale build must not matter.
    env: { HERALD_FROM_SOURCE: "1" },
  },
});
