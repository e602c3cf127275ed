import { growingLru } from "../util/growing-lru.js";
import type { VisitorId } from "./visitor.js";

export interface RateSettings {
  /** Tokens added per second. */
  readonly rate: number;
  /** Bucket size: the most requests allowed at once after a quiet spell. */
  readonly burst: number;
}

export type TakeResult = { readonly ok: true } | { readonly ok: false; readonly retryAfterSeconds: number };

/** A token bucket per visitor. */
export interface RateLimiter {
  take(visitor: VisitorId): TakeResult;
}

/**
 * Visitors whose buckets are remembered. The least recently seen beyond it is
 * forgotten, which only ever hands that visitor a full bucket early: bounded
 * memory costs a little generosity, never a wrong refusal.
 */
export const MAX_TRACKED_VISITORS = 100_000;

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export function createRateLimiter(
  settings: RateSettings,
  now: () => number = Date.now,
  maxVisitors = MAX_TRACKED_VISITORS,
): RateLimiter {
  const buckets = growingLru<VisitorId, Bucket>(maxVisitors);
  return {
    take(visitor) {
      const time = now();
      let bucket = buckets.get(visitor);
      if (bucket === undefined) {
        bucket = { tokens: settings.burst, updatedAt: time };
        buckets.set(visitor, bucket);
      } else {
        bucket.tokens = Math.min(settings.burst, bucket.tokens + ((time - bucket.updatedAt) / 1000) * settings.rate);
        bucket.updatedAt = time;
      }
      if (bucket.tokens >= 1) {
        bucket.tokens -= 1;
        return { ok: true };
      }
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / settings.rate)) };
    },
  };
}

/**
 * Counts held slots (open streams, long-polls in flight) per visitor and in
 * total. A visitor's entry exists only while it holds a slot, so memory is
 * bounded by the global cap.
 */
export interface SlotLimiter {
  /** A release function (idempotent), or the reason there is no room. */
  acquire(visitor: VisitorId): (() => void) | "visitor-full" | "server-full";
  readonly total: number;
}

/** `perVisitor` undefined means no per-visitor cap. */
export function createSlotLimiter(
  perVisitor: number | undefined,
  global: () => { total: number; max: number },
): SlotLimiter {
  const held = new Map<VisitorId, number>();
  let total = 0;
  return {
    get total() {
      return total;
    },
    acquire(visitor) {
      const mine = held.get(visitor) ?? 0;
      if (perVisitor !== undefined && mine >= perVisitor) return "visitor-full";
      const server = global();
      if (server.total >= server.max) return "server-full";
      held.set(visitor, mine + 1);
      total += 1;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        total -= 1;
        const left = (held.get(visitor) ?? 1) - 1;
        if (left === 0) held.delete(visitor);
        else held.set(visitor, left);
      };
    },
  };
}

export interface ConnectionLimitSettings {
  /** Streams plus long-polls held at once over the whole server; beyond it, 503. */
  readonly maxConnections: number;
  readonly streamsPerVisitor: number | undefined;
  readonly longPollsPerVisitor: number | undefined;
}

/** Per-visitor caps on streams and on long-polls, under one global cap on both together. */
export interface ConnectionLimits {
  readonly streams: SlotLimiter;
  readonly longPolls: SlotLimiter;
  readonly maxConnections: number;
}

export function createConnectionLimits(settings: ConnectionLimitSettings): ConnectionLimits {
  const global = () => ({ total: streams.total + longPolls.total, max: settings.maxConnections });
  const streams = createSlotLimiter(settings.streamsPerVisitor, global);
  const longPolls = createSlotLimiter(settings.longPollsPerVisitor, global);
  return { streams, longPolls, maxConnections: settings.maxConnections };
}
