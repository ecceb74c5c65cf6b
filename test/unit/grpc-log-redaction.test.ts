import { describe, expect, it } from 'vitest';
import { redactCredentials } from '../../src/security/grpc-log-redaction';

describe('redactCredentials (grpc-js log lines)', () => {
  it('cuts a line at the first authorization it names, in any case, so neither copy of the value shows', () => {
    const line = 'Failed to add metadata entry authorization: Bearer\tsecret-token-123. Metadata string value "Bearer\tsecret-token-123" contains illegal characters';
    const out = redactCredentials(line);
    expect(out).not.toContain('secret-token-123');
    expect(out.startsWith('Failed to add metadata entry authorization')).toBe(true);
    expect(redactCredentials('headers: {"Authorization":"Bearer abc-secret"}')).not.toContain('abc-secret');
  });

  it('leaves a line without it as it is', () => {
    expect(redactCredentials('Failed to add metadata entry x-trace: é')).toBe('Failed to add metadata entry x-trace: é');
  });
});
