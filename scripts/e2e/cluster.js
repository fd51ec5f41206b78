// A room across three nodes: a real redis-server and three sfu nodes A, B
// and C on loopback (each its own HTTP port and RTC ports), tested with
// sfu-load and real Chromium pages through the web client. The relay tree
// has one edge per node (--relay-fanout 1), so it is A → B → C and losing
// B makes C attach to A again.
// Usage: node cluster.js PATH_TO_SFU PATH_TO_SFU_LOAD
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { sleep, until, getFrom, metric, fpsOver, runner, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, LOAD] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const REDIS_PORT = Number(process.env.SFU_CLUSTER_REDIS_PORT || 16480);
const REDIS = `redis://127.0.0.1:${REDIS_PORT}`;
const WATCHDOG_MS = 8 * 60 * 1000;
const NODES = {
  a: { port: 18181, rtc: '46000-46199' },
  b: { port: 18182, rtc: '46200-46399' },
  c: { port: 18183, rtc: '46400-46599' },
};
const base = (id) => `http://127.0.0.1:${NODES[id].port}`;
const ws = (id) => `ws://127.0.0.1:${NODES[id].port}/ws`;

const tests = runner();
const test = tests.test;
let browser;
let redis;
const procs = {};

const watchdog = setTimeout(() => {
  console.error(`watchdog: cluster run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  for (const p of [...Object.values(procs), redis]) {
    if (p && p.exitCode === null) p.kill('SIGKILL');
  }
  const done = () => {
    console.log(`\ncluster: ${tests.passed} passed, ${tests.failed} failed`);
    process.exit(code || (tests.failed ? 1 : 0));
  };
  const closing = browser ? browser.close().catch(() => {}) : Promise.resolve();
  Promise.race([closing, sleep(5000)]).then(done);
}

function startRedis() {
  redis = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'ignore', 'inherit'] });
}

async function stopRedis() {
  const r = redis;
  r.kill('SIGKILL');
  await until('redis-server exited', async () => r.exitCode !== null || r.signalCode !== null, 5000, 50);
}

function startNode(id) {
  const n = NODES[id];
  const p = spawn(BIN, ['--http-listen', `127.0.0.1:${n.port}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', n.rtc, '--cores', '1', '--log', process.env.SFU_E2E_LOG || 'warn',
    '--redis', REDIS, '--node-id', id, '--relay-fanout', '1',
    '--max-messages-per-second-per-ip', '100000', '--max-joins-per-minute-per-ip', '100000'],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  p.on('exit', (code, sig) => { if (code !== 0 && sig !== 'SIGKILL' && sig !== 'SIGTERM') console.log(`node ${id} exited: ${code} ${sig}`); });
  procs[id] = p;
}

// Node `id` registered and sees `count` nodes.
const sees = (id, count) => until(`node ${id} sees ${count} nodes`, async () => {
  const m = (await getFrom(base(id), '/metrics')).body;
  return metric(m, 'sfu_directory_up') === 1 && metric(m, 'sfu_nodes') === count;
}, 20000);

function openOn(node, room, name) {
  return openPage(browser, `${base(node)}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`, name);
}

// Page `p` shows tiles of `names` (at least) and decodes each at >=
// `minFps` (over 4 s).
async function decodes(p, names, minFps) {
  const tiles = () => p.page.evaluate(() => window.sfu.tiles().map((t) => t.name));
  const want = [...names].sort();
  await until(`${p.name} shows ${want}`, async () => {
    const shown = await tiles();
    return want.every((n) => shown.includes(n));
  }, 30000);
  let last;
  await until(`${p.name} decodes ${want} at >= ${minFps} fps`, async () => {
    last = await fpsOver(p, 4);
    const got = Object.values(last);
    return want.every((n) => got.some((e) => e.name === n && e.fps >= minFps));
  }, 40000, 0).catch((e) => { throw new Error(`${e.message}; fps: ${JSON.stringify(last)}`); });
}

// Page `p`, whose node `dead` died, joined again on another node by itself.
async function rejoinedElsewhere(p, dead) {
  const node = await until(`${p.name} joined again on a live node`, async () => {
    const [id, at] = await p.page.evaluate(() => [window.sfu.id(), window.sfu.node()]);
    return id && at !== base(dead) && at;
  }, 40000);
  console.log(`  ${p.name} is on ${node} now`);
}

function runLoad(args) {
  const out = path.join(os.tmpdir(), `sfu-cluster-load-${process.pid}.json`);
  const p = spawn(LOAD, [...args, '--json', out, '--cpu', '-1'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const done = new Promise((resolve, reject) => {
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error('sfu-load did not finish in 90 s')); }, 90000);
    p.on('exit', (code) => {
      clearTimeout(t);
      if (code !== 0) return reject(new Error(`sfu-load exited ${code}`));
      resolve(JSON.parse(fs.readFileSync(out, 'utf8')));
    });
  });
  return { done };
}

async function main() {
  if (!BIN || !LOAD) throw new Error('usage: node cluster.js PATH_TO_SFU PATH_TO_SFU_LOAD');
  startRedis();
  for (const id of ['a', 'b', 'c']) startNode(id);
  for (const id of ['a', 'b', 'c']) await sees(id, 3);

  await test('sfu-load: 1 publisher on A, 60 subscribers over A, B and C: all 61 join, loss <= 1 %, and B and C forward through relays', async () => {
    const run = runLoad(['--server', [ws('a'), ws('b'), ws('c')].join(','), '--publishers', '1',
      '--subscribers', '60', '--duration', '10', '--video-kbps', '300', '--ramp', '2']);
    // Mid-run: B and C take the publisher through a relay and forward to
    // subscribers of their own.
    await sleep(7000);
    for (const id of ['b', 'c']) {
      const m = (await getFrom(base(id), '/metrics')).body;
      const relayIn = metric(m, 'sfu_relay_packets_in_total');
      const consumers = metric(m, 'sfu_worker_consumers');
      console.log(`  node ${id}: relay packets in ${relayIn}, consumers ${consumers}`);
      if (!(relayIn > 100)) throw new Error(`node ${id}: sfu_relay_packets_in_total ${relayIn}`);
      if (!(consumers >= 19)) throw new Error(`node ${id}: sfu_worker_consumers ${consumers}`);
    }
    const s = await run.done;
    console.log(`  joined ${s.joined}, loss ${(100 * s.loss_ratio).toFixed(2)} %, forwarded ${s.forwarded_packets}`);
    if (s.joined !== 61) throw new Error(`joined ${s.joined}: ${JSON.stringify(s.join_failures)}`);
    if (s.loss_ratio > 0.01) throw new Error(`loss ${s.loss_ratio}`);
  });

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
  });
  const room = 'cluster-e2e';
  let ann, bob, cat;

  await test('Chromium on A, B and C in one room: each decodes the other two (A → B → C relays)', async () => {
    ann = await openOn('a', room, 'ann');
    await until('ann joined', async () => ann.page.evaluate(() => window.sfu.id()), 15000);
    bob = await openOn('b', room, 'bob');
    await until('bob joined', async () => bob.page.evaluate(() => window.sfu.id()), 15000);
    cat = await openOn('c', room, 'cat');
    await Promise.all([
      decodes(ann, ['bob', 'cat'], 10),
      decodes(bob, ['ann', 'cat'], 10),
      decodes(cat, ['ann', 'bob'], 10),
    ]);
  });

  await test('across nodes: ann mutes on A and bob (B) and cat (C) see it; 3 viewers on C are counted on every page', async () => {
    await ann.page.evaluate(() => window.sfu.setMuted(true));
    const badgeOf = (p, name) => p.page.evaluate((n) => {
      const t = window.sfu.tiles().find((x) => x.name === n);
      return t ? window.sfu.badges(t.id) : null;
    }, name);
    for (const p of [bob, cat]) {
      await until(`${p.name} sees ann muted`, async () => /muted/.test(await badgeOf(p, 'ann') || ''), 10000);
    }
    await ann.page.evaluate(() => window.sfu.setMuted(false));
    const run = runLoad(['--server', ws('c'), '--room', room, '--publishers', '0', '--subscribers', '3',
      '--duration', '8', '--ramp', '1']);
    const viewers = (p) => p.page.evaluate(() => { const el = document.getElementById('viewers'); return el.hidden ? '' : el.textContent; });
    for (const p of [ann, bob, cat]) {
      await until(`${p.name} shows 3 viewers`, async () => (await viewers(p)) === '3 viewers', 15000);
    }
    const s = await run.done;
    if (s.joined !== 3) throw new Error(`viewers joined: ${s.joined}`);
    for (const p of [ann, bob, cat]) {
      await until(`${p.name} shows no viewer again`, async () => (await viewers(p)) === '', 15000);
    }
  });

  await test('node B killed (SIGKILL): C attaches to A again, and 10 s later ann and cat decode each other at >= 15 fps', async () => {
    procs.b.kill('SIGKILL');
    const t0 = Date.now();
    await sleep(10000);
    await Promise.all([decodes(ann, ['cat'], 15), decodes(cat, ['ann'], 15)]);
    console.log(`  recovered within ${((Date.now() - t0) / 1000).toFixed(1)} s of the kill`);
  });

  await test('bob, whose node died, reconnects on another node by itself, and everyone sees everyone again', async () => {
    await rejoinedElsewhere(bob, 'b');
    await Promise.all([
      decodes(ann, ['bob', 'cat'], 10),
      decodes(bob, ['ann', 'cat'], 10),
      decodes(cat, ['ann', 'bob'], 10),
    ]);
    await bob.context.close();
  });

  let dan;
  await test('Redis stopped for 10 s: the call goes on, and a join of the room on a node that does not hold it gets directory-unavailable', async () => {
    startNode('b'); // B again, empty: it holds no room
    await sees('b', 3);
    await stopRedis();
    const t0 = Date.now();
    dan = await openOn('b', room, 'dan');
    await until('dan is told directory-unavailable', async () => /directory-unavailable/.test(await dan.page.evaluate(() => window.sfu.error())), 15000);
    await Promise.all([decodes(ann, ['cat'], 15), decodes(cat, ['ann'], 15)]);
    await sleep(Math.max(0, 10000 - (Date.now() - t0)));
    await Promise.all([decodes(ann, ['cat'], 15), decodes(cat, ['ann'], 15)]);
  });

  await test('Redis back (empty): the nodes register again and a new join on B decodes ann and cat', async () => {
    startRedis();
    for (const id of ['a', 'b', 'c']) await sees(id, 3);
    await dan.context.close();
    dan = await openOn('b', room, 'dan');
    await decodes(dan, ['ann', 'cat'], 10);
    await Promise.all([decodes(ann, ['cat', 'dan'], 10), decodes(cat, ['ann', 'dan'], 10)]);
  });

  await test('the origin A killed (SIGKILL): an edge takes the room over, ann reconnects on a live node by herself, and ann, cat and dan decode each other', async () => {
    procs.a.kill('SIGKILL');
    const t0 = Date.now();
    await rejoinedElsewhere(ann, 'a');
    await Promise.all([
      decodes(ann, ['cat', 'dan'], 10),
      decodes(cat, ['ann', 'dan'], 10),
      decodes(dan, ['ann', 'cat'], 10),
    ]);
    console.log(`  everyone decodes everyone ${((Date.now() - t0) / 1000).toFixed(1)} s after the kill`);
  });
}

main().then(() => finish(0), (e) => { console.error(e && e.stack ? e.stack : e); finish(1); });
