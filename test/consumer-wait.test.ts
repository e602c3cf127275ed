import { describe, expect, it } from "vitest";
import { waitForConsumer } from "../src/core/consumer-wait.js";
import type { StreamSink } from "../src/core/delivery.js";

const STALL_MS = 40;

/** A sink whose queue the test moves by hand; whenDrained resolves when told. */
function fakeSink(queued: number) {
  let drain: () => void = () => {};
  const drained = new Promise<void>((resolve) => {
    drain = resolve;
  });
  const state = { queued, drain };
  const sink = {
    bufferedBytes: () => state.queued,
    whenDrained: () => drained,
  } as unknown as StreamSink;
  return { sink, state };
}

describe("waitForConsumer", () => {
  it("gives up on a consumer whose queue does not shrink for the stall time", async () => {
    const { sink } = fakeSink(10_000);
    const started = Date.now();
    expect(await waitForConsumer(sink, STALL_MS)).toBe(false);
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALL_MS - 5);
  });

  it("gives up when the queue only grows (heartbeats behind a reader that stopped)", async () => {
    const { sink, state } = fakeSink(10_000);
    const growing = setInterval(() => {
      state.queued += 10;
    }, 5);
    try {
      expect(await waitForConsumer(sink, STALL_MS)).toBe(false);
    } finally {
      clearInterval(growing);
    }
  });

  it("keeps waiting, past many stall times, for a consumer that reads a little in each", async () => {
    const { sink, state } = fakeSink(10_000);
    const reading = setInterval(() => {
      state.queued -= 100;
    }, STALL_MS / 4);
    setTimeout(() => state.drain(), STALL_MS * 8);
    try {
      expect(await waitForConsumer(sink, STALL_MS)).toBe(true);
      expect(state.queued).toBeLessThan(10_000 - 100 * 20);
    } finally {
      clearInterval(reading);
    }
  });

  it("resolves at once when the queue drains", async () => {
    const { sink, state } = fakeSink(10_000);
    state.drain();
    expect(await waitForConsumer(sink, 60_000)).toBe(true);
  });
});
