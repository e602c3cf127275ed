import WebSocket from "ws";
import {
  type CursorStore,
  fileCursorStore,
  type GapEvent,
  type HeraldMessage,
  type SubscribeFilter,
  type SubscribeOptions,
  subscribe,
  type WebSocketConstructor,
} from "../../client/src/index.js";
import { MAX_FILTER_VALUES } from "../core/message-filter.js";
import { MAX_TAG_LENGTH, MESSAGE_KEY } from "../core/message-input.js";
import { ConfigError } from "../errors.js";
import { describeFailure, fail, flagOrEnv, parseCommand, URL_HELP } from "./remote.js";

export const TAIL_USAGE = `Usage: herald tail <mailbox...> [options]

Prints messages as they arrive, until interrupted. With --cursor-file, each
run resumes exactly where the last one stopped (nothing missed, nothing twice).

Options:
  --cursor C          start after this cursor ("now": only new messages)
  --cursor-file F     read the starting cursor from F and keep it there
  --from-start        with no cursor, print every retained message first (default: only new ones)
  --count N           exit after N messages
  --transport T       auto (SSE, long-poll fallback; default), sse, long-poll or websocket
  --tags A,B          only messages with any of these tags
  --priority N        only messages of priority N (1-5) or higher; no priority counts as 3
  --key K1,K2         only messages with one of these keys
  --latest            when behind (or resuming), only the newest message of each key, and a note
                      of how many older ones were skipped; with --from-start: each key's current value
  --token TOKEN       subscriber token or API key (HERALD_TOKEN)
  --json              one JSON object a line: messages (with their cursor), gaps, conflated
${URL_HELP}
  -h, --help          show this help`;

const TRANSPORTS = ["auto", "sse", "long-poll", "websocket"] as const;

function line(message: HeraldMessage): string {
  const time = message.time.slice(11, 19);
  const key = message.key === undefined ? "" : ` [${message.key}]`;
  const title = message.title ? `${message.title}: ` : "";
  return `${time} ${message.mailbox} #${message.seq}${key} ${title}${message.body ?? ""}`;
}

/** `--tags a,b` (or repeated): the names, or a one-line usage error. */
function names(raw: string[] | undefined, flag: string, valid: (name: string) => boolean, what: string): string[] {
  const list = (raw ?? []).flatMap((value) => value.split(",")).map((name) => name.trim());
  const given = list.filter((name) => name.length > 0);
  if (raw !== undefined && given.length === 0) throw new ConfigError(`--${flag} needs at least one name`);
  const bad = given.find((name) => !valid(name));
  if (bad !== undefined) throw new ConfigError(`--${flag} values are ${what}, got "${bad}"`);
  if (new Set(given).size > MAX_FILTER_VALUES) throw new ConfigError(`--${flag} names at most ${MAX_FILTER_VALUES}`);
  return given;
}

/** The server-side filter the flags ask for; usage errors (exit 2) for values the server would refuse. */
function filterFlags(values: Record<string, unknown>): SubscribeFilter | undefined {
  const filter: SubscribeFilter = {};
  const tags = names(
    values.tags as string[] | undefined,
    "tags",
    (tag) => tag.length <= MAX_TAG_LENGTH,
    `at most ${MAX_TAG_LENGTH} characters`,
  );
  if (tags.length > 0) filter.tags = tags;
  const keys = names(
    values.key as string[] | undefined,
    "key",
    (key) => MESSAGE_KEY.test(key),
    "1-128 characters of A-Z a-z 0-9 _ - . : @ /",
  );
  if (keys.length > 0) filter.key = keys;
  const raw = values.priority as string | undefined;
  if (raw !== undefined) {
    const priority = Number(raw);
    if (raw.trim() === "" || !Number.isInteger(priority) || priority < 1 || priority > 5) {
      throw new ConfigError(`--priority must be a whole number from 1 to 5, got "${raw}"`);
    }
    filter.priority = priority;
  }
  return Object.keys(filter).length === 0 ? undefined : filter;
}

/** Resolves once the subscription ends: interrupted, --count reached, or a fatal error. */
export async function tailCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values, positionals, url, help } = parseCommand(
    argv,
    {
      cursor: { type: "string" },
      "cursor-file": { type: "string" },
      "from-start": { type: "boolean" },
      count: { type: "string" },
      transport: { type: "string" },
      token: { type: "string" },
      json: { type: "boolean" },
      tags: { type: "string", multiple: true },
      priority: { type: "string" },
      key: { type: "string", multiple: true },
      latest: { type: "boolean" },
    },
    env,
  );
  if (help) {
    console.log(TAIL_USAGE);
    return;
  }
  if (positionals.length === 0) throw new ConfigError(`name at least one mailbox\n\n${TAIL_USAGE}`);
  const cursorFile = values["cursor-file"] as string | undefined;
  const cursor = values.cursor as string | undefined;
  if (cursor !== undefined && cursorFile !== undefined)
    throw new ConfigError("use --cursor or --cursor-file, not both");
  const transport = (values.transport as string | undefined) ?? "auto";
  if (!(TRANSPORTS as readonly string[]).includes(transport)) {
    throw new ConfigError(`--transport must be one of ${TRANSPORTS.join(", ")}, got "${transport}"`);
  }
  const rawCount = values.count as string | undefined;
  const count = rawCount === undefined ? undefined : Number(rawCount);
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) {
    throw new ConfigError(`--count must be a whole number above 0, got "${rawCount}"`);
  }
  const token = flagOrEnv(values, "token", env, "HERALD_TOKEN");
  const json = values.json === true;
  const filter = filterFlags(values);

  let pendingSave: Promise<void> | undefined;
  // Where the starting cursor came from, when a person supplied it: a refusal of it must stop tail, not replay everything.
  let supplied = cursor !== undefined && cursor !== "now" ? `--cursor "${cursor}"` : undefined;
  const fileStore = cursorFile === undefined ? undefined : fileCursorStore(cursorFile);
  const store: CursorStore | null = fileStore
    ? {
        load: async (key) => {
          const saved = await fileStore.load(key);
          if (saved !== undefined && saved !== "now") supplied = `the cursor in ${cursorFile} ("${saved}")`;
          return saved;
        },
        save: (key, value) => {
          pendingSave = Promise.resolve(fileStore.save(key, value));
          return pendingSave;
        },
      }
    : null;

  // `herald tail ... | head` closes the pipe: that is the reader being done, not a failure.
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  let printed = 0;
  /** A message or gap arrived, so the cursor in use is one the server issued. */
  let moved = false;
  let lastError = "";
  let stopping = false;
  await new Promise<void>((resolve) => {
    const options: SubscribeOptions = {
      url,
      cursor: cursor ?? (values["from-start"] ? undefined : "now"),
      cursorStore: store,
      transport: transport as SubscribeOptions["transport"],
      ...(filter ? { filter } : {}),
      ...(values.latest ? { mode: "latest" } : {}),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      ...(token === undefined ? {} : { token: () => token }),
    };
    const subscription = subscribe(
      positionals,
      {
        onMessage(message) {
          moved = true;
          console.log(json ? JSON.stringify({ type: "message", ...message }) : line(message));
          printed += 1;
          if (count !== undefined && printed >= count) stop();
        },
        onGap(gap: GapEvent) {
          moved = true;
          const what = gap.gaps.map((g) => `${g.mailbox} (${g.reason})`).join(", ");
          if (json) console.log(JSON.stringify({ type: "gap", ...gap }));
          console.error(
            `herald: gap in ${what}: some messages after the cursor are gone; continuing from the earliest`,
          );
        },
        onConflated(event) {
          if (json) console.log(JSON.stringify({ type: "conflated", ...event }));
          else console.error(`herald: skipped ${event.skipped} older values in ${event.mailbox} (--latest)`);
        },
        onStatus(status) {
          if (status.state === "open") {
            lastError = "";
            console.error(`herald: tailing ${positionals.join(", ")} via ${status.transport}`);
          } else if (status.state === "closed" && !stopping) {
            process.exitCode = 1;
            stop();
          }
        },
        onError(error) {
          if (error.code === "bad_cursor" && supplied !== undefined && !moved) {
            const hint =
              cursorFile === undefined
                ? 'use "now", or --from-start without --cursor'
                : `delete ${cursorFile} to start over`;
            fail(`${supplied} was refused: ${error.message} (HTTP ${error.status}, bad_cursor); ${hint}`);
            stop();
            return;
          }
          const text = describeFailure(error, url);
          if (error.code === "bad_cursor") {
            // A cursor the server issued earlier, now refused: the client starts over and drops repeats by id.
            console.error(`herald: ${text}; starting again from the earliest retained message`);
            return;
          }
          if (error.fatal) {
            // The subscription closes itself after a fatal error; its "closed" status ends the run.
            fail(text);
            return;
          }
          // A server that stays down would print the same line on every retry.
          if (text !== lastError) console.error(`herald: ${text}; retrying`);
          lastError = text;
        },
      },
      options,
    );
    function stop(): void {
      if (stopping) return;
      stopping = true;
      subscription.close();
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      void Promise.resolve(pendingSave).finally(resolve);
    }
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
