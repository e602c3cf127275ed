import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Hub } from "../core/hub.js";
import type { WebPush } from "../push/web-push.js";
import type { MailboxStore } from "../store/mailbox-store.js";
import type { Access } from "./middleware/access.js";
import type { ConnectionRegistry } from "./transports/connection.js";

/** What /metrics reads at scrape time; nothing is counted twice on the hot path. */
export interface MetricsSources {
  readonly hub: Hub;
  readonly store: MailboxStore;
  readonly connections: ConnectionRegistry;
  readonly access: Access;
  /** Web Push, when configured: its counters and queue are exported too. */
  readonly push?: WebPush | undefined;
}

/** How the workers sharing a port answer /metrics for all of them. */
export interface MetricsSharing {
  /** Called once with this process's registry, so that a scrape on any worker can read it. */
  share(local: Registry): void;
  /** Every worker's metrics added up, as Prometheus text. */
  gather(): Promise<string>;
}

export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text /metrics answers: this process's, or every worker's added up. */
  exposition(): Promise<string>;
  /** Seconds from a publish request's arrival to its stored answer. */
  observePublish(seconds: number): void;
}

/** Publish latency buckets, in seconds: sub-millisecond memory writes to multi-second store stalls. */
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A counter whose value is read from a source at scrape time. */
function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * Counters and connection gauges add up over workers; store-wide gauges
 * (every worker reads the same Redis) take the largest reading instead.
 */
export function createMetrics(sources: MetricsSources, sharing?: MetricsSharing): Metrics {
  const { hub, store, connections, access } = sources;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "herald_" });
  new Gauge({
    name: "herald_connections",
    help: "Open streaming connections and long-polls in flight, by transport",
    labelNames: ["transport"],
    registers: [registry],
    collect() {
      for (const kind of ["sse", "ndjson", "ws"] as const) this.set({ transport: kind }, connections.count(kind));
      this.set({ transport: "long-poll" }, access.connections.longPolls.total);
    },
  });
  new Gauge({
    name: "herald_max_connections",
    help: "Streams plus long-polls allowed at once before new ones get 503",
    registers: [registry],
    collect() {
      this.set(access.connections.maxConnections);
    },
  });
  mirroredCounter(registry, "herald_published_total", "Messages stored by publishes", () => hub.counters.published);
  mirroredCounter(registry, "herald_delivered_total", "Messages written to subscribers", () => hub.counters.delivered);
  mirroredCounter(registry, "herald_gaps_total", "Gap signals sent to subscribers", () => hub.counters.gaps);
  mirroredCounter(
    registry,
    "herald_slow_consumers_cut_total",
    "Subscribers disconnected for not keeping up",
    () => hub.counters.slowConsumersCut,
  );
  mirroredCounter(
    registry,
    "herald_server_full_total",
    "Streams and long-polls refused with 503 because the server was full",
    () => access.counters.serverFull,
  );
  new Counter({
    name: "herald_auth_failures_total",
    help: "Requests refused for missing or invalid credentials (unauthorized) or scope (forbidden)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(access.counters.authFailures)) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: "herald_rate_limited_total",
    help: "Requests refused with 429, by limit",
    labelNames: ["limit"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [limit, count] of Object.entries(access.counters.rateLimited)) this.inc({ limit }, count);
    },
  });
  new Gauge({
    name: "herald_store_mailboxes",
    aggregator: "max",
    help: "Mailboxes held by the store",
    registers: [registry],
    collect() {
      this.set(store.stats().mailboxes);
    },
  });
  new Gauge({
    name: "herald_store_messages",
    aggregator: "max",
    help: "Messages retained by the store",
    registers: [registry],
    collect() {
      this.set(store.stats().messages);
    },
  });
  new Gauge({
    name: "herald_store_bytes",
    aggregator: "max",
    help: "Bytes of messages retained by the store",
    registers: [registry],
    collect() {
      this.set(store.stats().bytes);
    },
  });
  new Gauge({
    name: "herald_scheduled_pending",
    aggregator: "max",
    help: "Scheduled messages waiting for their time (every node's, on Redis)",
    registers: [registry],
    async collect() {
      // A store that cannot answer leaves the gauge out of this scrape rather than failing it.
      const pending = await hub.scheduled.pending().catch(() => undefined);
      if (pending !== undefined) this.set(pending);
    },
  });
  if (sources.push !== undefined) pushMetrics(registry, sources.push);
  sharing?.share(registry);
  const publishSeconds = new Histogram({
    name: "herald_publish_duration_seconds",
    help: "From a publish request's arrival to its answer, once the store has written the message",
    buckets: PUBLISH_BUCKETS,
    registers: [registry],
  });
  return {
    registry,
    exposition: () => (sharing === undefined ? registry.metrics() : sharing.gather()),
    observePublish: (seconds) => publishSeconds.observe(seconds),
  };
}

function pushMetrics(registry: Registry, push: WebPush): void {
  const { counters } = push;
  mirroredCounter(registry, "herald_push_sent_total", "Web Push messages a push service accepted", () => counters.sent);
  mirroredCounter(
    registry,
    "herald_push_failed_total",
    "Web Push messages given up: refused, out of attempts, expired, or dropped on a full queue",
    () => counters.failed,
  );
  mirroredCounter(
    registry,
    "herald_push_subscriptions_removed_total",
    "Push subscriptions deleted because their push service answered 404 or 410",
    () => counters.removed,
  );
  mirroredCounter(
    registry,
    "herald_push_retries_total",
    "Web Push attempts repeated after 429, 5xx, 413, a timeout or a network error",
    () => counters.retried,
  );
  mirroredCounter(
    registry,
    "herald_push_dropped_total",
    "Web Push messages not queued because push.maxQueue was reached",
    () => counters.dropped,
  );
  new Gauge({
    name: "herald_push_queued",
    help: "Web Push messages waiting to be sent or retried on this node",
    registers: [registry],
    collect() {
      this.set(push.queued());
    },
  });
  new Gauge({
    name: "herald_push_in_flight",
    help: "Web Push messages sent and not yet answered on this node (at most push.concurrency)",
    registers: [registry],
    collect() {
      this.set(push.inFlight());
    },
  });
  new Gauge({
    name: "herald_push_subscriptions",
    aggregator: "max",
    help: "Push subscriptions (every node's, on Redis)",
    registers: [registry],
    async collect() {
      const count = await push.subscriptions.count().catch(() => undefined);
      if (count !== undefined) this.set(count);
    },
  });
}
