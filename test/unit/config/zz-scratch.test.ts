import { it } from 'vitest';
import { parseNacosUrl } from '../../../src/config/nacos-url';
it('x', () => {
  for (const u of ['nacos://user:s3cret@h:8848/id', 'nacos://user:pa/ss@h/id', 'nacos://h/bad%zz', 'nacos://h/%E0%A4%A', 'nacos://h/a%20b', 'nacos://h/id?group=', 'nacos://h/id?namespace=ns&x=1', 'nacos://[::1]/id', 'nacos://[::1]:9000/id','nacos://h:0/id','nacos://h:70000/id','nacos://h/','nacos://h/id#frag','nacos://h/id?group=a&group=b', 'nacos://h:8848', 'nacos:///id', 'nacos://h/id?password=x']) {
    try { console.log(u, JSON.stringify(parseNacosUrl(u, {}))); } catch (e) { console.log(u, '=>', (e as Error).name, (e as Error).message); }
  }
});
