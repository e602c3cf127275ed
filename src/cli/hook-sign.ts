import { parseArgs } from "node:util";
import { argumentError, ConfigError } from "../errors.js";
import { SIGNERS } from "../hooks/signers.js";
import { HOOK_SCHEMES, type HookScheme, secretProblem } from "../hooks/verifiers.js";

export const HOOK_USAGE = `Usage: herald hook sign --scheme SCHEME (--secret S | --secret-env NAME) [options] < payload.json

Prints the headers a sender would attach to the payload read from stdin, one
"Name: value" per line, ready for curl -H. The payload is signed byte for byte.

Options:
  --scheme SCHEME     ${HOOK_SCHEMES.join(", ")}
  --secret S          the hook's secret (whsec_... for Stripe and Standard Webhooks)
  --secret-env NAME   read the secret from this environment variable instead
  --id ID             delivery id to send (github, standard-webhooks; default: random)
  --timestamp UNIX    signing time in seconds (stripe, standard-webhooks; default: now)
  --header NAME       signature header (hmac-sha256; default X-Signature)
  -h, --help          show this help`;

/** Payloads signed from stdin; anything bigger is not a webhook. */
export const MAX_SIGN_INPUT_BYTES = 25 * 1024 * 1024;

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of process.stdin) {
    total += (chunk as Buffer).length;
    if (total > MAX_SIGN_INPUT_BYTES) throw new ConfigError(`the payload is larger than ${MAX_SIGN_INPUT_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Checks `argv` (after `hook sign`) before any input is read, and returns
 * what turns a body into header lines; throws ConfigError on bad usage.
 */
export function parseSignArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  now = Date.now(),
): (body: Buffer) => string[] {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        scheme: { type: "string" },
        secret: { type: "string" },
        "secret-env": { type: "string" },
        id: { type: "string" },
        timestamp: { type: "string" },
        header: { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw argumentError(error);
  }
  const scheme = values.scheme as string | undefined;
  if (scheme === undefined || !HOOK_SCHEMES.includes(scheme as HookScheme)) {
    throw new ConfigError(`--scheme must be one of ${HOOK_SCHEMES.join(", ")}`);
  }
  const secretEnv = values["secret-env"] as string | undefined;
  const secret = secretEnv === undefined ? (values.secret as string | undefined) : env[secretEnv];
  if (secret === undefined || secret === "") {
    throw new ConfigError(secretEnv === undefined ? "--secret or --secret-env is required" : `${secretEnv} is not set`);
  }
  const problem = secretProblem(scheme as HookScheme, secret);
  if (problem !== undefined) throw new ConfigError(`the secret ${problem}`);
  const timestamp = values.timestamp as string | undefined;
  if (timestamp !== undefined && !/^\d{1,12}$/.test(timestamp)) {
    throw new ConfigError("--timestamp must be Unix seconds");
  }
  return (body) => {
    const headers = SIGNERS[scheme as HookScheme]({
      secret,
      body,
      nowSeconds: timestamp === undefined ? Math.floor(now / 1000) : Number(timestamp),
      id: values.id as string | undefined,
      header: values.header as string | undefined,
    });
    return ["Content-Type: application/json", ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  };
}

/** `herald hook <subcommand>`. */
export async function hookCommand(argv: readonly string[]): Promise<void> {
  const [subcommand, ...rest] = argv;
  if (subcommand === undefined || subcommand === "--help" || subcommand === "-h" || rest.includes("--help")) {
    console.log(HOOK_USAGE);
    return;
  }
  if (subcommand !== "sign") throw new ConfigError(`unknown hook command "${subcommand}"\n\n${HOOK_USAGE}`);
  const sign = parseSignArgs(rest, process.env);
  const lines = sign(await readStdin());
  process.stdout.write(`${lines.join("\n")}\n`);
}
