import { join } from "node:path";

/** Debian's Chromium; .ci/run installs it from apt (never a downloaded browser). */
export const CHROMIUM = "/usr/bin/chromium";

/** Headless and quiet: no sandbox (CI runs as root), no background traffic. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Where browser tests save screenshots (test artifacts, not committed). */
export const SCREENSHOTS = join(import.meta.dirname, "..", "..", "test-results", "screenshots");
