/** Reads a dispatcher's admin port: `/config` (the runtime config in force) and `/readyz`. */
import * as http from 'node:http';

export interface AdminAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** GET http://<address><path>; rejects after `timeoutMs`. */
export function getJson(address: string, path: string, timeoutMs = 1_000): Promise<AdminAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get(`http://${address}${path}`, { timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
