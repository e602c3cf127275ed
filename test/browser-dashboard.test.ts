import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningHerald } from "../src/server.js";
import { publishBatch } from "./helpers/batch.js";
import { closeContextWithPage, HAVE_CHROMIUM, IN_CI, launchChromium, PHONE, SCREENSHOTS } from "./helpers/chromium.js";
import { publish } from "./helpers/clients.js";
import { startTestServer } from "./helpers/server.js";

const DESKTOP: BrowserContextOptions = { viewport: { width: 1200, height: 800 } };

/** A dashboard page and everything that went wrong on it: console errors, page errors, failed responses. */
interface Dashboard {
  readonly page: Page;
  readonly problems: string[];
  /** Every request the page made, as URLs. */
  readonly requests: URL[];
}

/** A random walk like the demo feed's, for charts that look like a real service. */
function sampler(): () => { cpu: number; memory: number; requests: number } {
  let cpu = 35;
  let memory = 60;
  let requests = 400;
  const step = (value: number, spread: number, min: number, max: number) =>
    Math.min(max, Math.max(min, value + (Math.random() - 0.5) * spread));
  return () => {
    cpu = step(cpu, 12, 1, 99);
    memory = step(memory, 3, 20, 95);
    requests = step(requests, 60, 50, 1200);
    return { cpu: Math.round(cpu), memory: Math.round(memory), requests: Math.round(requests) };
  };
}

/** One sample of each metric as the demo feed publishes it: a message per metric, keyed by its name. */
function keyedSample(data: { cpu: number; memory: number; requests: number }): Record<string, unknown>[] {
  return [
    { key: "cpu", body: `cpu ${data.cpu}%`, data: { cpu: data.cpu } },
    { key: "memory", body: `memory ${data.memory}%`, data: { memory: data.memory } },
    { key: "requests", body: `${data.requests} req/s`, data: { requests: data.requests } },
  ];
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("dashboard demo in Chromium", () => {
  let herald: RunningHerald;
  let browser: Browser;

  beforeAll(async () => {
    herald = await startTestServer();
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await herald?.shutdown();
  });

  /** The dashboard in a context of its own (no connection shared with other tabs), live. */
  async function openDashboard(query: string, options: BrowserContextOptions = DESKTOP): Promise<Dashboard> {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: URL[] = [];
    page.on("request", (request) => requests.push(new URL(request.url())));
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("response", (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${new URL(response.url()).pathname}`);
    });
    closeContextWithPage(page);
    await page.goto(`${herald.url}/demo/dashboard?${query}`);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    return { page, problems, requests };
  }

  function chart(page: Page, field: string) {
    return page.locator(`.chart[data-field="${field}"]`);
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(SCREENSHOTS, `dashboard-${name}.png`) });
  }

  /** Whether the page scrolls sideways (it must not, at any width). */
  function overflowsSideways(page: Page): Promise<boolean> {
    return page.evaluate(() => document.documentElement.scrollWidth > document.documentElement.clientWidth);
  }

  it("waits with an explanation, then draws time-series charts with fixed scales, units and hover values", async () => {
    const desktop = await openDashboard("feed=first");
    const phone = await openDashboard("feed=first", PHONE);
    for (const { page } of [desktop, phone]) {
      await expect(page.locator("#empty").isVisible()).resolves.toBe(true);
      expect(await page.locator("#empty .empty-title").textContent()).toBe("Waiting for the first sample…");
      expect(await page.locator("#empty-mailbox").textContent()).toBe("feed:first");
      expect(await page.locator("#empty-curl").textContent()).toContain("/v1/mailboxes/feed:first/messages");
      expect(await page.locator("#charts canvas").count()).toBe(0);
      // The window is there from the start, even with no points yet.
      expect(await page.locator("#charts").getAttribute("data-window")).toBe("120");
    }
    await screenshot(desktop.page, "empty-desktop");
    await screenshot(phone.page, "empty-phone");

    const samples = [
      { cpu: 58, memory: 61, requests: 420 },
      { cpu: 60, memory: 62, requests: 455 },
    ];
    for (const data of samples) {
      await sleep(300);
      await publish(herald.url, "feed:first", {
        body: `cpu ${data.cpu}% · memory ${data.memory}% · ${data.requests} req/s`,
        data,
      });
    }
    for (const { page } of [desktop, phone]) {
      await chart(page, "cpu").locator("canvas").first().waitFor({ timeout: 15_000 });
      await expect.poll(() => chart(page, "requests").getAttribute("data-points")).toBe("2");
      expect(await page.locator("#empty").isVisible()).toBe(false);
      expect(await page.locator("#caption").textContent()).toBe("cpu 60% · memory 62% · 455 req/s");
      // Percentages on a fixed 0–100 scale (58→60 is a small step, not a full-height spike) …
      for (const field of ["cpu", "memory"]) {
        expect(await chart(page, field).getAttribute("data-y-min")).toBe("0");
        expect(await chart(page, field).getAttribute("data-y-max")).toBe("100");
        expect(await chart(page, field).locator(".chart-unit").textContent()).toBe("%");
      }
      // … a rate from zero to a round number above it, and every x axis the whole window, not the points so far.
      expect(await chart(page, "requests").getAttribute("data-y-min")).toBe("0");
      expect(await chart(page, "requests").getAttribute("data-y-max")).toBe("500");
      expect(await chart(page, "requests").locator(".chart-unit").textContent()).toBe("req/s");
      for (const field of ["cpu", "memory", "requests"]) {
        expect(await chart(page, field).getAttribute("data-x-span")).toBe("120");
      }
      expect(await chart(page, "cpu").locator(".value").textContent()).toBe("60%");
      expect(await chart(page, "requests").locator(".value").textContent()).toBe("455 req/s");
    }

    // Hovering shows the value under the cursor, in this chart and in the others (cursors are synced).
    const plot = chart(desktop.page, "cpu").locator(".u-over");
    const box = await plot.boundingBox();
    if (!box) throw new Error("the cpu chart has no plot area");
    // (Both samples are within a pixel of each other in a 2-minute window: the cursor picks either.)
    await desktop.page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const hover = chart(desktop.page, "cpu").locator(".hover");
    await hover.waitFor({ state: "visible" });
    const hovered = Number(await hover.getAttribute("data-value"));
    const sample = samples.find((candidate) => candidate.cpu === hovered);
    if (!sample) throw new Error(`the hover shows ${hovered}, not a cpu value published`);
    expect(await hover.textContent()).toMatch(new RegExp(`^${sample.cpu}%\\s*\\d`));
    const requestsHover = chart(desktop.page, "requests").locator(".hover");
    await requestsHover.waitFor({ state: "visible" });
    expect(await requestsHover.getAttribute("data-value")).toBe(String(sample.requests));
    expect(await requestsHover.textContent()).toMatch(new RegExp(`^${sample.requests} req/s\\s*\\d`));
    await screenshot(desktop.page, "hover-desktop");

    // A new sample moves the readout and adds a point.
    await publish(herald.url, "feed:first", { body: "cpu 77%", data: { cpu: 77 } });
    for (const { page } of [desktop, phone]) {
      await expect.poll(() => chart(page, "cpu").getAttribute("data-last")).toBe("77");
      expect(await chart(page, "cpu").getAttribute("data-points")).toBe("3");
      expect(await chart(page, "cpu").locator(".value").textContent()).toBe("77%");
      expect(await page.locator("#messages .body").allTextContents()).toEqual([
        "cpu 77%",
        "cpu 60% · memory 62% · 455 req/s",
        "cpu 58% · memory 61% · 420 req/s",
      ]);
    }

    // At phone width the charts fit the screen: nothing scrolls sideways, each canvas fits its card.
    expect(await overflowsSideways(phone.page)).toBe(false);
    const widths = await phone.page.locator(".chart").evaluateAll((cards) =>
      cards.map((card) => ({
        card: card.clientWidth,
        plot: (card.querySelector(".uplot") as HTMLElement).offsetWidth,
      })),
    );
    for (const { card, plot } of widths) expect(plot).toBeLessThanOrEqual(card);
    // And they follow the container when it changes (rotating a phone, resizing a window).
    const firstWidth = widths[0]?.plot ?? 0;
    expect(firstWidth).toBeGreaterThan(0);
    await phone.page.setViewportSize({ width: 375, height: 812 });
    await expect
      .poll(() =>
        phone.page
          .locator(".chart .uplot")
          .first()
          .evaluate((plotElement) => (plotElement as HTMLElement).offsetWidth),
      )
      .toBeLessThan(firstWidth);
    expect(await overflowsSideways(phone.page)).toBe(false);

    expect(desktop.problems).toEqual([]);
    expect(phone.problems).toEqual([]);
    await desktop.page.close();
    await phone.page.close();
  });

  it("keeps up with 20 updates a second: every update drawn, at most one redraw per chart per frame", async () => {
    const { page, problems } = await openDashboard("feed=rate");
    const next = sampler();
    const count = 60;
    const started = Date.now();
    for (let i = 1; i <= count; i++) {
      await sleep(Math.max(0, started + i * 50 - Date.now()));
      await publish(herald.url, "feed:rate", { body: `sample ${i}`, data: { ...next(), n: i } });
    }
    const charts = page.locator("#charts");
    await expect.poll(() => charts.getAttribute("data-drawn"), { timeout: 10_000 }).toBe(String(count));
    expect(await charts.getAttribute("data-updates")).toBe(String(count));
    for (const field of ["cpu", "memory", "requests", "n"]) {
      expect(await chart(page, field).getAttribute("data-points")).toBe(String(count));
    }
    expect(await chart(page, "n").getAttribute("data-last")).toBe(String(count));
    expect(await chart(page, "n").locator(".value").textContent()).toBe(String(count));
    const bodies = await page.locator("#messages .body").allTextContents();
    expect(bodies).toHaveLength(50);
    expect(bodies[0]).toBe(`sample ${count}`);
    expect(bodies[49]).toBe(`sample ${count - 49}`);
    // Redraws are batched into animation frames: no chart was given data more often than frames ran.
    // Draws are read before frames: a frame may run between the reads, and counts only grow.
    const draws: number[] = [];
    for (const field of ["cpu", "memory", "requests", "n"]) {
      draws.push(Number(await chart(page, field).getAttribute("data-draws")));
    }
    const frames = Number(await charts.getAttribute("data-frames"));
    for (const count of draws) expect(count).toBeLessThanOrEqual(frames);
    console.info(
      `dashboard at 20/s: ${count} updates in ${Date.now() - started} ms, ${frames} frames, ` +
        `longest wait from arrival to draw ${await charts.getAttribute("data-max-lag-ms")} ms`,
    );
    expect(problems).toEqual([]);
    await page.close();
  });

  it("looks finished when busy, at desktop and phone width, light and dark", async () => {
    const next = sampler();
    let publishing = true;
    const publisher = (async () => {
      while (publishing) {
        const data = next();
        await publish(herald.url, "feed:busy", {
          body: `cpu ${data.cpu}% · memory ${data.memory}% · ${data.requests} req/s`,
          data,
        });
        await sleep(50);
      }
    })();
    try {
      // Pages opened after a while are handed what the feed retained, then follow it live.
      await sleep(6_000);
      const desktop = await openDashboard("feed=busy&window=30");
      const phone = await openDashboard("feed=busy&window=30", PHONE);
      const dark = await openDashboard("feed=busy&window=30", { ...DESKTOP, colorScheme: "dark" });
      const pages = [
        { name: "busy-desktop", dashboard: desktop },
        { name: "busy-phone", dashboard: phone },
        { name: "busy-dark", dashboard: dark },
      ];
      for (const { dashboard } of pages) {
        await expect
          .poll(async () => Number(await chart(dashboard.page, "requests").getAttribute("data-points")), {
            timeout: 10_000,
          })
          .toBeGreaterThan(100);
        expect(await dashboard.page.locator('.window-picker [aria-pressed="true"]').textContent()).toBe("30 s");
        expect(await chart(dashboard.page, "cpu").getAttribute("data-x-span")).toBe("30");
      }
      expect(
        await dark.page.evaluate(() => getComputedStyle(document.body).getPropertyValue("--series-1").trim()),
      ).toBe("#8da2ff");
      for (const { name, dashboard } of pages) await screenshot(dashboard.page, name);

      // The picker changes the window of every chart.
      const page = desktop.page;
      await page.getByRole("button", { name: "2 min" }).click();
      await expect.poll(() => chart(page, "memory").getAttribute("data-x-span")).toBe("120");
      expect(new URL(page.url()).searchParams.get("window")).toBe("120");

      // Switching the system to dark mode redraws the charts in dark colours, and they stay live.
      const drawsBefore = Number(await chart(page, "cpu").getAttribute("data-draws"));
      await page.emulateMedia({ colorScheme: "dark" });
      await expect
        .poll(() => page.evaluate(() => getComputedStyle(document.body).getPropertyValue("--series-1").trim()))
        .toBe("#8da2ff");
      await expect
        .poll(async () => Number(await chart(page, "cpu").getAttribute("data-draws")))
        .toBeGreaterThan(drawsBefore + 5);
      expect(await page.locator(".chart canvas").count()).toBe(3);

      for (const { dashboard } of pages) {
        expect(dashboard.problems).toEqual([]);
        await dashboard.page.close();
      }
    } finally {
      publishing = false;
      await publisher;
    }
  }, 60_000);

  it("shows each key's current value at load from /latest, then follows in latest mode and says what it skipped", async () => {
    const mailbox = "feed:keyed";
    await publishBatch(herald.url, mailbox, keyedSample({ cpu: 30, memory: 60, requests: 300 }));
    await publishBatch(herald.url, mailbox, keyedSample({ cpu: 41, memory: 63, requests: 380 }));
    const snapshot = (await (await fetch(`${herald.url}/v1/mailboxes/${mailbox}/latest`)).json()) as {
      cursor: string;
    };
    const { page, problems, requests } = await openDashboard("feed=keyed");
    const charts = page.locator("#charts");

    // The current values are there at once, from the snapshot, with nothing new published.
    await expect.poll(() => chart(page, "requests").locator(".value").textContent()).toBe("380 req/s");
    expect(await chart(page, "cpu").locator(".value").textContent()).toBe("41%");
    expect(await chart(page, "memory").locator(".value").textContent()).toBe("63%");
    expect(await chart(page, "cpu").getAttribute("data-points")).toBe("1");
    expect(await charts.getAttribute("data-snapshot")).toBe("3");
    expect(await charts.getAttribute("data-updates")).toBe("3");
    expect(await page.locator("#caption").textContent()).toBe("cpu 41% · memory 63% · 380 req/s");
    expect(await page.locator("#empty").isVisible()).toBe(false);
    // One snapshot, then a latest-mode stream from its cursor (so nothing of it comes again).
    const api = requests.filter((url) => url.pathname.startsWith("/v1/"));
    expect(api.map((url) => url.pathname)).toEqual([
      `/v1/mailboxes/${encodeURIComponent(mailbox)}/latest`,
      "/v1/events",
    ]);
    expect(api[1]?.searchParams.get("mode")).toBe("latest");
    expect(api[1]?.searchParams.get("cursor")).toBe(snapshot.cursor);

    // Live values arrive as they are published.
    await publishBatch(herald.url, mailbox, keyedSample({ cpu: 55, memory: 64, requests: 410 }));
    await expect.poll(() => chart(page, "cpu").locator(".value").textContent()).toBe("55%");
    await expect.poll(() => chart(page, "requests").getAttribute("data-points")).toBe("2");
    expect(await charts.getAttribute("data-updates")).toBe("6");
    expect(await page.locator("#skipped").isVisible()).toBe(false);

    // Cut off while ten samples of each metric go by: back, the page gets the newest of each, and says so.
    await page.route("**/v1/events?*", (route) => route.abort().catch(() => {}));
    herald.connections.endAll("draining");
    await page.locator('#status[data-state="connecting"]').waitFor();
    for (let i = 1; i <= 10; i++) {
      await publishBatch(herald.url, mailbox, keyedSample({ cpu: 60 + i, memory: 65, requests: 400 + i }));
    }
    await page.unrouteAll({ behavior: "ignoreErrors" });
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => charts.getAttribute("data-skipped"), { timeout: 15_000 }).toBe("27");
    await expect.poll(() => chart(page, "cpu").locator(".value").textContent()).toBe("70%");
    expect(await chart(page, "requests").locator(".value").textContent()).toBe("410 req/s");
    expect(await chart(page, "cpu").getAttribute("data-points")).toBe("3");
    expect(await charts.getAttribute("data-updates")).toBe("9");
    const skipped = page.locator("#skipped");
    expect(await skipped.isVisible()).toBe(true);
    expect(await skipped.textContent()).toBe("Skipped 27 stale updates");
    await screenshot(page, "latest-desktop");
    await page.setViewportSize(PHONE.viewport ?? { width: 390, height: 844 });
    expect(await skipped.isVisible()).toBe(true);
    expect(await overflowsSideways(page)).toBe(false);
    await screenshot(page, "latest-phone");

    // And it stays live.
    await publishBatch(herald.url, mailbox, keyedSample({ cpu: 12, memory: 66, requests: 420 }));
    await expect.poll(() => chart(page, "cpu").locator(".value").textContent()).toBe("12%");
    expect(await chart(page, "cpu").getAttribute("data-points")).toBe("4");
    // The blocked reconnects are the only failures: Chromium logs each aborted request.
    expect(problems.filter((problem) => !problem.includes("net::ERR_FAILED"))).toEqual([]);
    await page.close();
  });
});
