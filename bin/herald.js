#!/usr/bin/env node
// Runs the compiled server in dist/ (`npm run build`; `npm install` in a clone builds it).
// HERALD_FROM_SOURCE=1 runs the TypeScript in src/ through tsx instead, a dev dependency: the test
// suite sets it, so tests always exercise the sources, never a stale dist/.
if (process.env.HERALD_FROM_SOURCE === "1") {
  const { register } = await import("tsx/esm/api");
  register();
  await import("../src/main.ts");
} else {
  // Stack traces name src/*.ts and their lines (dist/*.js.map).
  process.setSourceMapsEnabled(true);
  const main = new URL("../dist/main.js", import.meta.url);
  try {
    await import(main.href);
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" && error.url === main.href) {
      console.error("herald: dist/ is missing; run `npm run build` (or HERALD_FROM_SOURCE=1 to run src/ with tsx)");
      process.exit(1);
    }
    throw error;
  }
}
