import type { Context } from "hono";
import type { AppDeps, HeraldEnv } from "../deps.js";

/** GET /healthz: the process answers. */
export function health(c: Context<HeraldEnv>): Response {
  return c.json({ status: "ok" });
}

/** GET /readyz: 503 while draining or while the store cannot take appends, so a balancer sends traffic elsewhere. */
export function readiness(c: Context<HeraldEnv>, deps: AppDeps): Response {
  if (deps.hub.draining) return c.json({ status: "draining" }, 503);
  if (!deps.store.ready()) return c.json({ status: "store-unavailable" }, 503);
  return c.json({ status: "ready" });
}

/** GET /metrics: Prometheus text. With auth on it needs a key with the "metrics" right, unless auth.metrics is "open". */
export async function metricsRoute(c: Context<HeraldEnv>, deps: AppDeps): Promise<Response> {
  if (deps.access.metricsProtected) deps.access.keyWithRight(c, "metrics");
  const { registry } = deps.metrics;
  const text = await deps.metrics.exposition();
  return c.body(text, 200, { "Content-Type": registry.contentType, "Cache-Control": "no-store" });
}
