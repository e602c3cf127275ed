import { runFanout } from "./lib/fanout-scenario.js";
import { ensureFileLimit } from "./lib/report.js";

ensureFileLimit(import.meta.filename);
await runFanout({
  scenario: "fanout",
  description: "10,000 SSE subscribers on one mailbox, 50 messages published back-to-back",
  subscribers: Number(process.env.BENCH_SUBSCRIBERS ?? 10_000),
  messages: 50,
  minDeliveriesPerSecond: 50_000,
  nchan: "deliveries",
  maxP99Ms: 250,
  settleTimeoutMs: 60_000,
});
