// Debian's node-redis (the `redis` package, v4) against a ringcache cluster, through each
// node's Redis-protocol port: what a Node.js service does with the client it already has.
// Run by test_node_redis.py, which starts the cluster: node node_redis_client.js PORT...
// Prints each failed check; exits 0 if none failed, 1 otherwise.
'use strict';
const { createClient } = require('redis');

async function main() {
  const ports = process.argv.slice(2).map(Number);
  const clients = ports.map((port) =>
    createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false }, name: 'js-test' }));
  const failures = [];
  let checks = 0;
  const check = (what, got, want) => {
    ++checks;
    const g = JSON.stringify(got);
    const w = JSON.stringify(want);
    if (g !== w) failures.push(`${what}: got ${g}, want ${w}`);
  };
  for (const c of clients) {
    c.on('error', (e) => failures.push(`client error: ${e.message}`));
    await c.connect();
  }
  try {
    const [a, b, c] = clients;
    // Written through one node, read through every node.
    const keys = Array.from({ length: 60 }, (_, i) => `js:${i}`);
    for (const k of keys) check(`set ${k}`, await a.set(k, k.toUpperCase()), 'OK');
    for (const cl of clients) {
      check('mGet through a node', await cl.mGet(keys), keys.map((k) => k.toUpperCase()));
    }
    check('get missing', await b.get('js:missing'), null);
    check('set NX on a present key', await c.set('js:0', 'other', { NX: true }), null);
    check('set XX EX', await c.set('js:0', 'new', { XX: true, EX: 100 }), 'OK');
    const ttl = await a.ttl('js:0');
    check('ttl in (98, 100]', ttl > 98 && ttl <= 100, true);
    check('incr', await b.incr('js:n'), 1);
    check('incrBy', await c.incrBy('js:n', 41), 42);
    check('exists', await a.exists(['js:1', 'js:2', 'js:missing']), 2);
    check('del', await b.del(['js:1', 'js:2', 'js:missing']), 2);
    check('getDel', [await a.getDel('js:3'), await b.get('js:3')], ['JS:3', null]);
    check('append', await c.append('js:4', '!'), 5);
    check('getRange', await a.getRange('js:4', 0, 1), 'JS');
    check('type', [await a.type('js:4'), await a.type('js:missing')], ['string', 'none']);
    // Commands issued in one tick go out together (node-redis pipelines them): 200 here,
    // on one connection, so each key's get follows its set.
    const many = [];
    for (let i = 0; i < 100; ++i) many.push(b.set(`js:p${i}`, String(i)));
    for (let i = 0; i < 100; ++i) many.push(b.get(`js:p${i}`));
    const out = await Promise.all(many);
    const want = Array.from({ length: 100 }, (_, i) => String(i));
    check('pipelined sets', out.slice(0, 100).every((r) => r === 'OK'), true);
    check('pipelined gets', out.slice(100), want);
    check('read through another node', await c.mGet(want.map((i) => `js:p${i}`)), want);
    // Errors reject with Redis's message.
    await a.set('js:str', 'abc');
    try {
      await a.incr('js:str');
      failures.push('incr of a string did not reject');
    } catch (e) {
      check('incr error', e.message, 'ERR value is not an integer or out of range');
    }
    // The name given at connect (CLIENT SETNAME), INFO as node-redis returns it.
    check('client name', await c.clientGetName(), 'js-test');
    const info = await b.info('server');
    check('info', /redis_version:7\.0\.0/.test(info), true);
    // node-redis's multi() is MULTI/EXEC: not supported yet, so it must reject and run
    // none of its commands.
    try {
      await a.multi().set('js:tx', '1').incr('js:n').exec();
      failures.push('MULTI/EXEC did not reject');
    } catch (e) {
      console.log(`MULTI/EXEC rejected: ${e.message}`);
    }
    check('nothing of the refused transaction ran', [await b.get('js:tx'), await b.get('js:n')],
          [null, '42']);
  } finally {
    for (const c of clients) await c.quit().catch(() => {});
  }
  for (const f of failures) console.log(`FAIL ${f}`);
  console.log(`node-redis against ${ports.length} nodes: ${checks} checks, ${failures.length} failures`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack}`);
  process.exit(1);
});
