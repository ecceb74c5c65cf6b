import { describe, expect, it } from 'vitest';
import { parseEndpointAddress } from '../../../src/xds/endpoints';

describe('parseEndpointAddress', () => {
  it.each<[string, string, number]>([
    ['10.0.1.5:50051', '10.0.1.5', 50051],
    ['0.0.0.0:1', '0.0.0.0', 1],
    ['255.255.255.255:65535', '255.255.255.255', 65535],
    ['[::1]:50051', '::1', 50051],
    ['[fe80::1:2]:8080', 'fe80::1:2', 8080],
  ])('accepts the IP literal %s', (address, ip, port) => {
    expect(parseEndpointAddress(address)).toEqual({ ip, port });
  });

  it.each(['localhost:50051', 'example.com:443', 'dispatcher-a:50051', '256.0.0.1:80', '10.0.0:80', ':80', '[]:80'])('refuses %s: the host must be an IP literal', (address) => {
    expect(() => parseEndpointAddress(address)).toThrow(new RangeError(`"${address}": the host must be an IP literal (xDS clients reject names such as localhost)`));
  });

  it.each(['10.0.0.1', '10.0.0.1:', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:http', '10.0.0.1:80.5', ''])('refuses %s: it must be ip:port with a port 1..65535', (address) => {
    expect(() => parseEndpointAddress(address)).toThrow(new RangeError(`"${address}" must be ip:port`));
  });

  // Regression (fixed): any host containing ':' passes as "IPv6" although it is no IP literal;
  // clients then NACK the whole EDS resource. Expected: refused.
  it.each(['dispatcher:a:50051', 'a:b:80'])('refuses %s, a host with colons that is no IPv6 literal', (address) => {
    expect(() => parseEndpointAddress(address)).toThrow(RangeError);
  });

  // Regression (fixed): the port goes through Number(), so hexadecimal, exponent and padded
  // ports are accepted ("0x50" becomes 80). Expected: only decimal digits.
  it.each(['10.0.0.1:0x50', '10.0.0.1:1e2', '10.0.0.1: 80'])('refuses %s, a port that is not plain decimal digits', (address) => {
    expect(() => parseEndpointAddress(address)).toThrow(/must be ip:port/);
  });
});
