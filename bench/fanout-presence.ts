import { runFanout } from "./lib/fanout-scenario.js";
import { ensureFileLimit } from "./lib/report.js";

ensureFileLimit(import.meta.filename);
// The fanout scenario with every subscriber present and watching presence: 10,000 readers is past
// presence.maxMembers, so watchers get joins for the first 1,000 and then a count once a second.
await runFanout({
  scenario: "fanout-presence",
  description: "fanout with presence on: 10,000 named SSE subscribers watching presence, 50 messages",
  subscribers: Number(process.env.BENCH_SUBSCRIBERS ?? 10_000),
  messages: 50,
  minDeliveriesPerSecond: 50_000,
  maxP99Ms: 250,
  settleTimeoutMs: 60_000,
  presence: true,
});
