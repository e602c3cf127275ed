import type { Hub } from "../core/hub.js";
import type { MessageFields } from "../core/message-input.js";
import type { Publisher } from "../core/publish-command.js";

/** The mailbox `/demo/dashboard?feed=demo` and `/demo/ticker?feed=demo` watch. */
export const DEMO_FEED_MAILBOX = "feed:demo";
export const DEMO_FEED_INTERVAL_MS = 1000;
/** Demo samples expire quickly: they matter only while someone watches. */
const DEMO_SAMPLE_TTL_SECONDS = 300;

/** The server itself: any mailbox, no rate. */
const FEED_PUBLISHER: Publisher = { name: "demo-feed", authorize: () => {}, charge: () => {} };

export interface DemoFeed {
  stop(): void;
}

function step(value: number, spread: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value + (Math.random() - 0.5) * spread));
}

/** One message per metric, keyed by it: `/latest` answers the current value of each, `mode=latest` conflates them. */
function samples(cpu: number, memory: number, requests: number): MessageFields[] {
  const metric = (key: string, value: number, body: string): MessageFields => ({
    key,
    body,
    data: { [key]: value },
    ttl: DEMO_SAMPLE_TTL_SECONDS,
  });
  return [
    metric("cpu", cpu, `cpu ${cpu}%`),
    metric("memory", memory, `memory ${memory}%`),
    metric("requests", requests, `${requests} req/s`),
  ];
}

/**
 * Publishes a sample of each metric to `feed:demo` every interval (one batch, one message per metric), but
 * only while someone is subscribed or long-polling there, so an idle server stores nothing.
 */
export function startDemoFeed(hub: Hub, intervalMs = DEMO_FEED_INTERVAL_MS): DemoFeed {
  let cpu = 35;
  let memory = 60;
  let requests = 400;
  let publishing = false;
  const timer = setInterval(() => {
    if (publishing || hub.draining || hub.watcherCount(DEMO_FEED_MAILBOX) === 0) return;
    cpu = step(cpu, 12, 1, 99);
    memory = step(memory, 4, 20, 95);
    requests = step(requests, 80, 50, 1200);
    const fields = samples(Math.round(cpu), Math.round(memory), Math.round(requests));
    publishing = true;
    hub.publishing
      .publish(
        FEED_PUBLISHER,
        fields.map((sample) => ({ mailbox: DEMO_FEED_MAILBOX, fields: sample })),
      )
      .catch(() => {
        // The store is down or the server drains: skip this sample.
      })
      .finally(() => {
        publishing = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
