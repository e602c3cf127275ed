import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, type BrowserContextOptions, chromium, type Page } from "playwright-core";

/** Debian's Chromium; .ci/run installs it from apt (never a downloaded browser). */
export const CHROMIUM = "/usr/bin/chromium";

export const HAVE_CHROMIUM = existsSync(CHROMIUM);
/** CI installs Chromium (.ci/run), so a missing one there is a broken setup, not a reason to skip. */
export const IN_CI = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false";

/** A phone as the browser tests emulate it. */
export const PHONE: BrowserContextOptions = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
};

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

/**
 * Closes a page's context when the page closes. The close is not awaited by anyone, and afterAll's
 * browser.close() can overtake it: its "browser has been closed" rejection is expected, not unhandled.
 */
export function closeContextWithPage(page: Page): void {
  page.on(
    "close",
    () =>
      void page
        .context()
        .close()
        .catch(() => {}),
  );
}

/** Debian's Chromium, headless, with the screenshot folder made; a missing Chromium in CI fails the suite. */
export async function launchChromium(): Promise<Browser> {
  if (!HAVE_CHROMIUM) throw new Error(`${CHROMIUM} is missing and CI is set: browser tests must run in CI`);
  await mkdir(SCREENSHOTS, { recursive: true });
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}
