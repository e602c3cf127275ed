import type { AuthSettings } from "../auth/auth-config.js";
import type { ServeConfig } from "../config.js";
import { MailboxActivity, RATE_WINDOW_SECONDS } from "../core/mailbox-activity.js";
import { isMailboxName } from "../core/mailbox-name.js";
import type { PresenceSettings } from "../presence-config.js";
import type { ScheduleSettings } from "../schedule-config.js";
import { SAMPLE_INTERVAL_MS, SAMPLES_KEPT, StatsRecorder, type StatsSources } from "./admin-stats.js";
import type { Access } from "./middleware/access.js";

/** Busiest mailboxes answered at most per request. */
export const MAX_BUSIEST = 100;
/** Candidate mailboxes (tracked or watched) looked at per request, whatever the server holds. */
export const MAX_CANDIDATES = 20_000;
/** Retained messages read per listed mailbox to count them and their bytes; beyond it the count says "at least". */
export const RETAINED_SCAN = 100;

/** What the admin console keeps beside the server: the stats ring and per-mailbox publish rates. */
export interface AdminConsole {
  readonly stats: StatsRecorder;
  readonly activity: MailboxActivity;
  /** The configuration summary (GET /v1/admin/config): no secrets. */
  readonly summary: Record<string, unknown>;
  close(): void;
}

export interface AdminConsoleOptions extends StatsSources {
  readonly config: ServeConfig;
  readonly auth: AuthSettings | undefined;
  readonly presence: PresenceSettings;
  readonly schedule: ScheduleSettings;
}

export function createAdminConsole(options: AdminConsoleOptions): AdminConsole {
  const stats = new StatsRecorder(options);
  const activity = new MailboxActivity(options.store);
  return {
    stats,
    activity,
    summary: configSummary(options),
    close() {
      stats.stop();
      activity.close();
    },
  };
}

/** A URL without its userinfo (credentials) and query (ioredis reads `?password=` too). */
export function redactUrl(url: string): string {
  const scheme = url.indexOf("://");
  const at = url.lastIndexOf("@");
  const bare = scheme !== -1 && at > scheme ? url.slice(0, scheme + 3) + url.slice(at + 1) : url;
  return bare.replace(/[?#].*$/, "");
}

function storeSummary(config: ServeConfig): Record<string, unknown> {
  const retention = {
    messageTtlSeconds: config.messageTtlSeconds,
    maxMessagesPerMailbox: config.maxMessagesPerMailbox,
  };
  if (config.store === "sqlite") {
    return { kind: "sqlite", dataDir: config.dataDir, sync: config.sqliteSync, ...retention };
  }
  if (config.store === "redis") {
    return { kind: "redis", url: redactUrl(config.redisUrl), prefix: config.redisPrefix, ...retention };
  }
  return { kind: "memory", maxMailboxes: config.maxMailboxes, maxStoreBytes: config.maxStoreBytes, ...retention };
}

function authSummary(auth: AuthSettings | undefined, access: Access): Record<string, unknown> {
  if (!access.authOn) {
    return { mode: "off", note: "loopback only: anyone on this machine may publish and read", cors: auth?.corsOrigins };
  }
  const tokens = auth?.tokens;
  return {
    mode: "on",
    reads: access.readsOpen ? "open" : "tokens",
    metrics: access.metricsProtected ? "keys" : "open",
    // Names and rights only: a key's hash is not shown either.
    keys: (auth?.keys ?? []).map((key) => ({
      name: key.name,
      publish: key.publish,
      ...(key.tokens === undefined ? {} : { tokens: key.tokens }),
      ...(key.metrics ? { metrics: true } : {}),
      ...(key.admin ? { admin: true } : {}),
    })),
    tokens:
      tokens === undefined
        ? undefined
        : {
            kind: tokens.key.kind,
            canMint: tokens.key.kind === "hs256" || tokens.key.privateKeyPem !== undefined,
            maxTtlSeconds: tokens.maxTtlSeconds,
            defaultTtlSeconds: tokens.defaultTtlSeconds,
            issuer: tokens.issuer,
            audience: tokens.audience,
          },
    cors: auth?.corsOrigins,
  };
}

function configSummary(options: AdminConsoleOptions): Record<string, unknown> {
  const { config, access } = options;
  const limits = access.limits;
  return {
    process: { node: process.version, pid: process.pid, startedAt: new Date().toISOString() },
    server: {
      host: config.host,
      port: config.port,
      insecure: config.insecure,
      heartbeatSeconds: config.heartbeatSeconds,
      sseRetryMs: config.sseRetryMs,
      maxBodyBytes: config.maxBodyBytes,
      maxQueueBytes: config.maxQueueBytes,
      sendTimeoutSeconds: config.sendTimeoutSeconds,
      drainTimeoutSeconds: config.drainTimeoutSeconds,
      workers: config.workers,
    },
    store: storeSummary(config),
    auth: authSummary(options.auth, access),
    limits: {
      publish: limits.publish,
      streamsPerVisitor: limits.streamsPerVisitor,
      longPollsPerVisitor: limits.longPollsPerVisitor,
      maxConnections: limits.maxConnections,
      connectionsPerAddress: limits.connectionsPerAddress,
      hooksPerVisitor: limits.hooksPerVisitor,
      maxHooksInFlight: limits.maxHooksInFlight,
      trustedProxies: limits.trustedProxies,
    },
    presence: options.presence,
    schedule: options.schedule,
    console: {
      sampleIntervalMs: SAMPLE_INTERVAL_MS,
      samplesKept: SAMPLES_KEPT,
      rateWindowSeconds: RATE_WINDOW_SECONDS,
    },
  };
}

/** One row of "busiest mailboxes". */
export interface MailboxRow {
  readonly mailbox: string;
  /** Live subscribers plus held long-polls on this node. */
  readonly subscribers: number;
  readonly publishesPerSecond: number;
  readonly published: number;
  /** Retained messages and their bytes; `retainedAtLeast` when there were more than RETAINED_SCAN. */
  readonly retained: number;
  readonly bytes: number;
  readonly retainedAtLeast: boolean;
  readonly lastSeq: number;
}

export interface BusiestSources {
  readonly activity: MailboxActivity;
  readonly hub: {
    watcherCount(mailbox: string): number;
    watchedMailboxes(): Iterable<string>;
  };
  readonly store: StatsSources["store"];
}

/**
 * The mailboxes with the most subscribers, then the highest publish rate,
 * among those published to lately or watched now; `query` keeps the names
 * containing it (an exact name is looked up even when neither). Bounded: at
 * most MAX_CANDIDATES names are scored, and only the listed ones are read from
 * the store (RETAINED_SCAN messages each).
 */
export async function busiestMailboxes(sources: BusiestSources, query: string, limit: number): Promise<MailboxRow[]> {
  const needle = query.toLowerCase();
  const candidates = new Set<string>();
  const consider = (names: Iterable<string>) => {
    for (const name of names) {
      if (candidates.size >= MAX_CANDIDATES) return;
      if (needle === "" || name.toLowerCase().includes(needle)) candidates.add(name);
    }
  };
  consider(sources.hub.watchedMailboxes());
  consider(sources.activity.mailboxes());
  if (query !== "" && isMailboxName(query)) candidates.add(query);
  const scored = [...candidates].map((mailbox) => ({
    mailbox,
    subscribers: sources.hub.watcherCount(mailbox),
    rate: sources.activity.rate(mailbox),
  }));
  scored.sort(
    (a, b) =>
      b.subscribers - a.subscribers ||
      b.rate.perSecond - a.rate.perSecond ||
      b.rate.lastAtMs - a.rate.lastAtMs ||
      a.mailbox.localeCompare(b.mailbox),
  );
  const rows = await Promise.all(
    scored.slice(0, limit).map(async ({ mailbox, subscribers, rate }): Promise<MailboxRow | undefined> => {
      const read = await sources.store.read(mailbox, { epoch: "", seq: 0 }, RETAINED_SCAN);
      // An exact name asked for that does not exist, and nobody watches: nothing to show.
      if (read.log === undefined && subscribers === 0 && rate.published === 0) return undefined;
      let bytes = 0;
      for (const message of read.messages) bytes += Buffer.byteLength(message.json);
      return {
        mailbox,
        subscribers,
        publishesPerSecond: rate.perSecond,
        published: rate.published,
        retained: read.messages.length,
        bytes,
        retainedAtLeast: read.messages.length >= RETAINED_SCAN,
        lastSeq: read.log?.lastSeq ?? 0,
      };
    }),
  );
  return rows.filter((row): row is MailboxRow => row !== undefined);
}
