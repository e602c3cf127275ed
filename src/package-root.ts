/**
 * Set to `true` by the build (scripts/build.ts, esbuild `define`); not defined at all when tsx runs
 * the TypeScript sources.
 */
declare const HERALD_BUILT: boolean | undefined;

/** Whether this is the compiled server in dist/ rather than src/ run through tsx. */
export const BUILT = typeof HERALD_BUILT !== "undefined" && HERALD_BUILT;

/**
 * The package's root folder (package.json, demo/, dist/), as a URL ending in "/". This file is
 * src/package-root.ts, and the build writes every chunk straight into dist/, so both are one level
 * below the root, in a clone and in an installed package alike.
 */
export const PACKAGE_ROOT = new URL("../", import.meta.url);
