import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger } from "pino";

export const REDACTED = "[REDACTED]";

/** JSON logs; credentials are censored wherever a logged object might carry them. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "herald" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["token", "key", "authorization", "cookie", "*.token", "*.authorization", "*.cookie", "headers.*"],
        censor: REDACTED,
      },
    },
    destination,
  );
}
