import { HeraldClientError, type HeraldMessage, type MessageFields, publish } from "../../client/src/index.js";
import { ConfigError } from "../errors.js";
import { describeFailure, fail, flagOrEnv, parseCommand, URL_HELP } from "./remote.js";

export const PUBLISH_USAGE = `Usage: herald publish <mailbox> [text] [options]

Publishes one message; prints "mailbox #seq id" (or the stored message with --json).
With --delay or --at it is scheduled instead; prints "mailbox scheduled for TIME id".
Use "-" as the text to read it from stdin.

Options:
  --title T           the message title
  --priority N        1 (lowest) to 5 (highest)
  --tag T             a tag; repeat for several
  --data JSON         any JSON value, e.g. '{"cpu":42}'
  --ttl SECONDS       how long the message is kept
  --key K             the message's key: /latest and mode=latest keep the newest message per key
  --idempotency-key K retrying with the same idempotency key stores the message once
  --delay D           deliver it later: seconds, or a duration such as 90s, 30m, 2h, 1d (at most 7 days)
  --at TIME           deliver it at an RFC 3339 time, e.g. 2030-01-31T09:00:00Z
  --api-key KEY       credential sent as Authorization: Bearer (HERALD_API_KEY; a token also works)
  --json              print the stored message as JSON
${URL_HELP}
  -h, --help          show this help`;

/** Text read from stdin for "-"; a message body beyond this is refused by the server anyway. */
const MAX_STDIN_BYTES = 1024 * 1024;

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Buffer).length;
    if (total > MAX_STDIN_BYTES) throw new ConfigError(`stdin is larger than ${MAX_STDIN_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8").replace(/\n$/, "");
}

function number(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw === "" || !Number.isFinite(value)) throw new ConfigError(`--${flag} must be a number, got "${raw}"`);
  return value;
}

export async function publishCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values, positionals, url, help } = parseCommand(
    argv,
    {
      title: { type: "string" },
      priority: { type: "string" },
      tag: { type: "string", multiple: true },
      data: { type: "string" },
      ttl: { type: "string" },
      key: { type: "string" },
      "idempotency-key": { type: "string" },
      delay: { type: "string" },
      at: { type: "string" },
      "api-key": { type: "string" },
      json: { type: "boolean" },
    },
    env,
  );
  if (help) {
    console.log(PUBLISH_USAGE);
    return;
  }
  const [mailbox, text, ...extra] = positionals;
  if (mailbox === undefined) throw new ConfigError(`name a mailbox\n\n${PUBLISH_USAGE}`);
  if (extra.length > 0) throw new ConfigError(`unexpected arguments: ${extra.join(" ")} (quote the text)`);
  const message: MessageFields = {};
  const body = text === "-" ? await readStdin() : text;
  if (body !== undefined) message.body = body;
  if (values.title !== undefined) message.title = values.title as string;
  const priority = number(values.priority as string | undefined, "priority");
  if (priority !== undefined) message.priority = priority;
  const ttl = number(values.ttl as string | undefined, "ttl");
  if (ttl !== undefined) message.ttl = ttl;
  if (values.tag !== undefined) message.tags = values.tag as string[];
  if (values.key !== undefined) message.key = values.key as string;
  if (values.data !== undefined) {
    try {
      message.data = JSON.parse(values.data as string);
    } catch {
      throw new ConfigError(`--data must be JSON, got ${JSON.stringify(values.data)}`);
    }
  }
  if (values.delay !== undefined && values.at !== undefined) throw new ConfigError("give --delay or --at, not both");
  // Not message fields: the server takes them out of the published object and schedules it.
  const when = values.delay !== undefined ? { delay: values.delay } : values.at !== undefined ? { at: values.at } : {};
  const apiKey = flagOrEnv(values, "api-key", env, "HERALD_API_KEY");
  const idempotencyKey = values["idempotency-key"] as string | undefined;
  // The server answers 200, not 201, when the idempotency key was seen: the message was stored before.
  let status = 0;
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    status = response.status;
    return response;
  };
  try {
    const stored: HeraldMessage & { scheduledFor?: string } = await publish(
      mailbox,
      { ...message, ...when },
      {
        url,
        fetch: recordingFetch,
        ...(apiKey === undefined ? {} : { token: () => apiKey }),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      },
    );
    if (values.json) console.log(JSON.stringify(stored));
    else if (stored.scheduledFor !== undefined) {
      const again =
        status === 200 ? ` (already scheduled under --idempotency-key ${idempotencyKey}; not scheduled again)` : "";
      console.log(`${stored.mailbox} scheduled for ${stored.scheduledFor} ${stored.id}${again}`);
    } else if (status === 200) {
      console.log(
        `${stored.mailbox} #${stored.seq} ${stored.id} (already stored under --idempotency-key ${idempotencyKey}; not stored again)`,
      );
    } else console.log(`${stored.mailbox} #${stored.seq} ${stored.id}`);
  } catch (error) {
    fail(
      error instanceof HeraldClientError && error.status === 401
        ? `${describeFailure(error, url)}; pass --api-key or set HERALD_API_KEY`
        : describeFailure(error, url),
    );
  }
}
