import { parseArgs } from "node:util";
import { type ApiKeyEntry, generateKey, hashKey, isScopePattern, MAX_PATTERNS } from "../auth/keys.js";
import { argumentError, ConfigError } from "../errors.js";

export const KEY_USAGE = `Usage: herald key create --name NAME --publish PATTERN [--publish PATTERN ...]
                         [--tokens | --token-mailboxes PATTERN ...] [--metrics] [--admin] [--json]

Makes a publisher API key. The key is printed once; only its hash goes into the
config file, under "auth": {"keys": [...]}. Send it as Authorization: Bearer <key>.

Options:
  --name NAME         a label for logs and metrics (1-64 characters)
  --publish PATTERN   mailboxes the key may publish to; * is a wildcard (user:*, room:*)
  --tokens            the key may mint subscriber tokens (POST /v1/tokens) that read
                      within its --publish patterns
  --token-mailboxes PATTERN
                      the key may mint tokens that read within these patterns
                      (repeatable; instead of --tokens)
  --metrics           the key may read /metrics (which then needs such a key)
  --admin             the key may open the admin console (/admin), and from it read
                      and publish to every mailbox
  --json              print one object {"key": ..., "entry": {...}}
  -h, --help          show this help`;

export interface CreatedKey {
  readonly key: string;
  readonly entry: Omit<ApiKeyEntry, "tokens" | "metrics" | "admin"> & {
    tokens?: true | string[];
    metrics?: true;
    admin?: true;
  };
}

/** Checks `argv` (after `key create`) and makes the key; throws ConfigError on bad usage. */
export function createKeyFromArgs(argv: readonly string[]): CreatedKey {
  let values: {
    name?: string;
    publish?: string[];
    tokens?: boolean;
    "token-mailboxes"?: string[];
    metrics?: boolean;
    admin?: boolean;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        name: { type: "string" },
        publish: { type: "string", multiple: true },
        tokens: { type: "boolean" },
        "token-mailboxes": { type: "string", multiple: true },
        metrics: { type: "boolean" },
        admin: { type: "boolean" },
        json: { type: "boolean" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw argumentError(error);
  }
  const { name, publish = [], "token-mailboxes": tokenMailboxes } = values;
  // Every missing flag at once, so a first attempt is not followed by a second failure.
  const missing: string[] = [];
  if (name === undefined) missing.push("--name NAME");
  if (publish.length === 0 && !values.tokens && tokenMailboxes === undefined && !values.metrics && !values.admin) {
    missing.push(
      "at least one --publish PATTERN (or --token-mailboxes / --metrics / --admin: a key with no rights is useless)",
    );
  }
  if (missing.length > 0) throw new ConfigError(`key create needs ${missing.join(" and ")}`);
  if (name === undefined || name.length === 0 || name.length > 64)
    throw new ConfigError("--name must be 1-64 characters");
  if (values.tokens && tokenMailboxes !== undefined)
    throw new ConfigError("give --tokens or --token-mailboxes, not both");
  if (values.tokens && publish.length === 0) {
    throw new ConfigError("--tokens grants reading within the --publish patterns; without any, use --token-mailboxes");
  }
  checkPatterns(publish, "--publish");
  checkPatterns(tokenMailboxes ?? [], "--token-mailboxes");
  const key = generateKey();
  return {
    key,
    entry: {
      name,
      hash: hashKey(key),
      publish,
      ...(values.tokens ? { tokens: true as const } : {}),
      ...(tokenMailboxes === undefined ? {} : { tokens: tokenMailboxes }),
      ...(values.metrics ? { metrics: true as const } : {}),
      ...(values.admin ? { admin: true as const } : {}),
    },
  };
}

function checkPatterns(patterns: readonly string[], flag: string): void {
  if (patterns.length > MAX_PATTERNS) throw new ConfigError(`at most ${MAX_PATTERNS} ${flag} patterns`);
  const bad = patterns.find((pattern) => !isScopePattern(pattern));
  if (bad !== undefined) {
    throw new ConfigError(`${flag} "${bad}" is not a mailbox pattern (A-Z a-z 0-9 _ - . : @ and * wildcards)`);
  }
}

/** `herald key create ...` */
export async function keyCommand(argv: readonly string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || rest.includes("--help") || rest.includes("-h")) {
    console.log(KEY_USAGE);
    return;
  }
  if (sub !== "create") throw new ConfigError(`unknown key command "${sub}"; try: herald key create --help`);
  const created = createKeyFromArgs(rest);
  if (rest.includes("--json")) {
    console.log(JSON.stringify(created));
    return;
  }
  console.log(`Key (shown once; store it as a secret):\n  ${created.key}\n`);
  console.log(`Add this entry to "auth": {"keys": [...]} in the config file:\n  ${JSON.stringify(created.entry)}`);
}
