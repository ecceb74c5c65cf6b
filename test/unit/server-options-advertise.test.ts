import { describe, expect, it } from 'vitest';
import { compileServerOptions } from '../../src/app/server-options';

describe('--advertise-address, when the dispatcher registers with a control plane', () => {
  it('must be an IP literal and a port, IPv6 in brackets: refused at start, not at every heartbeat', () => {
    const registering = { registerWith: '127.0.0.1:18000' };
    expect(() => compileServerOptions({ ...registering, advertiseAddress: 'fd00::5:50051' })).toThrow(/advertiseAddress: "fd00::5:50051" must be ip:port; an IPv6 address goes in brackets, as \[fd00::5\]:50051/);
    expect(() => compileServerOptions({ ...registering, advertiseAddress: 'zonal-0.zonal:50051' })).toThrow(/the host must be an IP literal/);
    expect(compileServerOptions({ ...registering, advertiseAddress: '[fd00::5]:50051' }).advertiseAddress).toBe('[fd00::5]:50051');
    expect(compileServerOptions({ ...registering, advertiseAddress: '10.1.2.3:50051' }).advertiseAddress).toBe('10.1.2.3:50051');
  });

  it('is not checked when nothing registers it', () => {
    expect(compileServerOptions({ registerWith: 'off', xdsAddress: '', advertiseAddress: 'zonal-0.zonal:50051' }).advertiseAddress).toBe('zonal-0.zonal:50051');
  });
});
