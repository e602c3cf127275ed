import { ConfigError } from "./errors.js";

const USAGE = `Usage: herald <command> [options]

Commands:
  serve     run the Herald server (herald serve --help)
  hook      sign a test webhook delivery (herald hook sign --help)
  key       make a publisher API key (herald key create --help)
  publish   publish a message (herald publish --help)
  tail      print a mailbox's messages as they arrive, resuming by cursor (herald tail --help)
  token     mint a subscriber token through /v1/tokens (herald token --help)
  vapid     make the Web Push key pair and its config section (herald vapid create --help)

Client commands take --url or HERALD_URL (default http://127.0.0.1:8080).
`;

/** Each command loads only what it needs: `herald publish` does not load the server, stores or Redis client. */
const COMMANDS: Readonly<Record<string, (argv: string[]) => Promise<void>>> = {
  serve: async (argv) => (await import("./serve-command.js")).serveCommand(argv),
  hook: async (argv) => (await import("./cli/hook-sign.js")).hookCommand(argv),
  key: async (argv) => (await import("./cli/key-create.js")).keyCommand(argv),
  publish: async (argv) => (await import("./cli/publish-command.js")).publishCommand(argv),
  tail: async (argv) => (await import("./cli/tail-command.js")).tailCommand(argv),
  token: async (argv) => (await import("./cli/token-command.js")).tokenCommand(argv),
  vapid: async (argv) => (await import("./cli/vapid-create.js")).vapidCommand(argv),
};

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    const run = command !== undefined && Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (run) await run(rest);
    else if (command === "--help" || command === "-h" || command === "help") console.log(USAGE);
    else if (command === undefined) {
      // Nothing asked: the usage, but as the failure it is (a script that forgot its command must notice).
      console.error(USAGE);
      process.exitCode = 2;
    } else {
      console.error(`herald: unknown command "${command}"\n\n${USAGE}`);
      process.exitCode = 2;
    }
  } catch (error) {
    // What the operator must fix (a flag, the config file, a data directory another Herald holds): one line.
    if (error instanceof ConfigError) {
      console.error(`herald: ${error.message}`);
      process.exitCode = 2;
      return;
    }
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      console.error(`herald: ${(error as Error).message}`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

await main(process.argv.slice(2));
