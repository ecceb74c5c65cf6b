import { describe, expect, it } from 'vitest';
import { describeNacosTarget, isNacosUrl, NACOS_DEFAULT_GROUP, parseNacosUrl } from '../../../src/config/nacos-url';

const NO_ENV: NodeJS.ProcessEnv = {};
const EXPECTED_SHAPE = 'expected nacos://host:8848/<dataId>?group=<group>&namespace=<namespace>';

function refusal(url: string, env: NodeJS.ProcessEnv = NO_ENV): Error {
  try {
    parseNacosUrl(url, env);
  } catch (err) {
    return err as Error;
  }
  throw new Error(`${url} was accepted`);
}

describe('parseNacosUrl', () => {
  it('reads host:port, the dataId and the defaults', () => {
    expect(parseNacosUrl('nacos://nacos.internal:9848/zonal-runtime.yaml', NO_ENV)).toEqual({
      servers: ['nacos.internal:9848'],
      dataId: 'zonal-runtime.yaml',
      group: NACOS_DEFAULT_GROUP,
      namespace: '',
      username: undefined,
      password: undefined,
    });
    expect(NACOS_DEFAULT_GROUP).toBe('DEFAULT_GROUP');
  });

  it('uses port 8848 when none is given', () => {
    expect(parseNacosUrl('nacos://10.0.0.5/zonal', NO_ENV).servers).toEqual(['10.0.0.5:8848']);
    expect(parseNacosUrl('nacos://[::1]/zonal', NO_ENV).servers).toEqual(['[::1]:8848']);
  });

  it('reads several hosts, each with its own or the default port', () => {
    expect(parseNacosUrl('nacos://a.example:8848,b.example,c.example:9000/zonal', NO_ENV).servers).toEqual(['a.example:8848', 'b.example:8848', 'c.example:9000']);
  });

  it('reads the group and the namespace', () => {
    const target = parseNacosUrl('nacos://h:8848/zonal.yaml?group=ZONAL&namespace=prod-eu', NO_ENV);
    expect(target).toMatchObject({ dataId: 'zonal.yaml', group: 'ZONAL', namespace: 'prod-eu' });
  });

  it('takes the credentials from the environment passed in', () => {
    const target = parseNacosUrl('nacos://h/zonal', { ZONAL_NACOS_USERNAME: 'zonal', ZONAL_NACOS_PASSWORD: 's3cret' });
    expect(target.username).toBe('zonal');
    expect(target.password).toBe('s3cret');
  });

  it('treats empty credential variables as unset', () => {
    const target = parseNacosUrl('nacos://h/zonal', { ZONAL_NACOS_USERNAME: '', ZONAL_NACOS_PASSWORD: '' });
    expect(target.username).toBeUndefined();
    expect(target.password).toBeUndefined();
  });

  it('refuses credentials in the URL and says where they belong', () => {
    const error = refusal('nacos://zonal:s3cret@h:8848/zonal');
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toContain('credentials do not belong in the URL; set ZONAL_NACOS_USERNAME and ZONAL_NACOS_PASSWORD');
  });

  // The refusal is printed and logged, so it must not repeat the secret it refuses.
  it.each(['nacos://zonal:s3cret@h:8848/zonal', 'nacos://zonal:s3cret@h/zonal?group=G'])('the refusal of %s does not repeat the password', (url) => {
    expect(refusal(url).message).not.toContain('s3cret');
  });

  it.each<[string, string]>([
    ['nacos://h/zonal?grp=G', 'unknown parameter "grp" (group and namespace are known)'],
    ['nacos://h/zonal?group=G&tenant=x', 'unknown parameter "tenant" (group and namespace are known)'],
  ])('refuses the unknown query parameter in %s', (url, why) => {
    const error = refusal(url);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe(`bad Nacos config URL "${url}": ${why}; ${EXPECTED_SHAPE}`);
  });

  it.each<[string, string]>([
    ['nacos://h/', 'the dataId must be letters, digits and . _ : -'],
    ['nacos://h/a/b', 'the dataId must be letters, digits and . _ : -'],
    ['nacos://h/a%20b', 'the dataId must be letters, digits and . _ : -'],
    ['nacos://h/zonal?group=', 'the group must be letters, digits and . _ : -'],
    ['nacos://h/zonal?namespace=a%20b', 'the namespace must be letters, digits and . _ : -'],
    ['http://h:8848/zonal', 'it must start with nacos://'],
    ['nacos://h:8848', 'no host:port before the dataId'],
    ['nacos:///zonal', 'no host:port before the dataId'],
    ['nacos://h:0/zonal', 'port 0 is out of range'],
    ['nacos://h:70000/zonal', 'port 70000 is out of range'],
    ['nacos://a,,b/zonal', '"" is not host or host:port'],
    ['nacos://h_1:8848/zonal', '"h_1:8848" is not host or host:port'],
  ])('refuses %s', (url, why) => {
    const error = refusal(url);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toBe(`bad Nacos config URL "${url}": ${why}; ${EXPECTED_SHAPE}`);
  });

  it('refuses a dataId with a broken %-escape with the same kind of error as any other bad dataId', () => {
    const error = refusal('nacos://h/zonal%zz');
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/^bad Nacos config URL "nacos:\/\/h\/zonal%zz": /);
  });

  it('isNacosUrl tells Nacos URLs from file paths', () => {
    expect(isNacosUrl('nacos://h/zonal')).toBe(true);
    expect(isNacosUrl('/etc/zonal/runtime.yaml')).toBe(false);
    expect(isNacosUrl('NACOS://h/zonal')).toBe(false);
  });
});

describe('describeNacosTarget', () => {
  it('shows servers, dataId, group and namespace', () => {
    const target = parseNacosUrl('nacos://a:8848,b/zonal.yaml?namespace=prod&group=ZONAL', NO_ENV);
    expect(describeNacosTarget(target)).toBe('nacos://a:8848,b:8848/zonal.yaml?group=ZONAL&namespace=prod');
    expect(describeNacosTarget(parseNacosUrl('nacos://a/zonal', NO_ENV))).toBe('nacos://a:8848/zonal?group=DEFAULT_GROUP');
  });

  it('never shows the credentials', () => {
    const target = parseNacosUrl('nacos://a:8848/zonal?group=G&namespace=ns', { ZONAL_NACOS_USERNAME: 'zonal-user', ZONAL_NACOS_PASSWORD: 'pa55word' });
    const shown = describeNacosTarget(target);
    expect(shown).not.toContain('zonal-user');
    expect(shown).not.toContain('pa55word');
    expect(shown).not.toContain('@');
  });

  it('describes a target the parser reads back the same', () => {
    const target = parseNacosUrl('nacos://a:9000,b/zonal.yaml?group=G&namespace=ns', NO_ENV);
    expect(parseNacosUrl(describeNacosTarget(target), NO_ENV)).toEqual(target);
  });
});
