import * as grpc from '@grpc/grpc-js';

/**
 * grpc-js logs some request headers as it read them: a header value with a
 * character HTTP/2 allows but gRPC metadata does not (a tab, a non-ASCII
 * letter) is logged at error level, in full: "Failed to add metadata entry
 * authorization: Bearer\t<token>. Metadata string value "Bearer\t<token>"
 * contains illegal characters". Its tracers (GRPC_TRACE) print headers too.
 * A caller could so put a valid token into the dispatcher's or the control
 * plane's log. This logger cuts every grpc-js log line at the first
 * `authorization` it names, so no credential reaches the log whatever the
 * caller sends.
 *
 * Written here because grpc-js has no redaction option; it only lets a
 * process replace its logger (setLogger), which this does, once, keeping
 * grpc-js's own format (a severity letter, then the line, on stderr).
 */
const SECRET_HEADER = /authorization/i;

export function redactCredentials(text: string): string {
  const at = text.search(SECRET_HEADER);
  return at < 0 ? text : `${text.slice(0, at + 'authorization'.length)} [the rest of this line is not shown: it may hold a credential]`;
}

let installed = false;

/** Installs the redacting logger for grpc-js in this process (idempotent). */
export function redactGrpcLogs(): void {
  if (installed) return;
  installed = true;
  const line =
    (severity: string) =>
    (message?: unknown, ...rest: unknown[]): void => {
      const parts = [message, ...rest].map((part) => (typeof part === 'string' ? redactCredentials(part) : part));
      console.error(`${severity} ${String(parts[0] ?? '')}`, ...parts.slice(1));
    };
  grpc.setLogger({ error: line('E'), info: line('I'), debug: line('D') });
}
