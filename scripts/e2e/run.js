// End-to-end tests of sfu in real headless Chromium, driven through the real
// web client page. Usage: node run.js PATH_TO_SFU_BINARY
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const http = require('http');

const BIN = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PORT = Number(process.env.SFU_E2E_PORT || 18080);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 8 * 60 * 1000;

let passed = 0;
let failed = 0;
let server;
let browser;

const watchdog = setTimeout(() => {
  console.error(`watchdog: e2e run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  const done = () => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    console.log(`\ne2e: ${passed} passed, ${failed} failed`);
    process.exit(code || (failed ? 1 : 0));
  };
  const closing = browser ? browser.close().catch(() => {}) : Promise.resolve();
  Promise.race([closing, new Promise((r) => setTimeout(r, 5000))]).then(done);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(desc, fn, timeoutMs = 20000, everyMs = 250) {
  const end = Date.now() + timeoutMs;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for: ${desc} (last: ${JSON.stringify(String(last))})`);
}

function get(path) {
  return new Promise((resolve, reject) => {
    const req = http.get(BASE + path, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
  });
}

async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
    throw e; // later scenarios build on earlier ones
  }
}

async function openParticipant(room, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${name} pageerror] ${e}`));
  await page.goto(`${BASE}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  return { name, page, context };
}

const stats = (p) => p.page.evaluate(() => window.sfu.remoteStats());
const tiles = (p) => p.page.evaluate(() => window.sfu.tiles().map((t) => t.name).sort());

// Waits until `p` shows exactly `names` and decodes video and receives audio
// from each of them, with frames still growing.
async function expectReceiving(p, names) {
  const want = [...names].sort();
  await until(`${p.name} shows tiles ${want}`, async () => JSON.stringify(await tiles(p)) === JSON.stringify(want));
  const first = await until(`${p.name} decodes video and audio from ${want}`, async () => {
    const s = await stats(p);
    const byName = Object.values(s);
    const ok = want.every((n) => byName.some((e) => e.name === n && e.framesDecoded > 0 && e.audioSamples > 0));
    return ok && s;
  }, 30000);
  await sleep(1500);
  const later = await stats(p);
  for (const [id, e] of Object.entries(first)) {
    const l = later[id];
    if (!l || !(l.framesDecoded > e.framesDecoded) || !(l.audioSamples > e.audioSamples)) {
      throw new Error(`${p.name}: media from ${e.name} stopped (${JSON.stringify(e)} -> ${JSON.stringify(l)})`);
    }
  }
}

async function main() {
  if (!BIN) throw new Error('usage: node run.js PATH_TO_SFU');
  server = spawn(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45000-45099', '--log', 'info'], { stdio: ['ignore', 'inherit', 'inherit'] });
  server.on('exit', (code, sig) => { if (code !== 0 && sig !== 'SIGTERM') console.log(`server exited: ${code} ${sig}`); });
  await until('server /healthz', async () => (await get('/healthz')).status === 200, 15000);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });

  const room = 'e2e-a';
  let alice, bob, carol, dave, erin;

  await test('three participants join one room and each decodes video and hears audio from both others', async () => {
    alice = await openParticipant(room, 'alice');
    bob = await openParticipant(room, 'bob');
    carol = await openParticipant(room, 'carol');
    await Promise.all([
      expectReceiving(alice, ['bob', 'carol']),
      expectReceiving(bob, ['alice', 'carol']),
      expectReceiving(carol, ['alice', 'bob']),
    ]);
  });

  await test('bad signaling input gets error messages and the call goes on', async () => {
    const mallory = await openParticipant('lobby-mallory', 'mallory-probe');
    const codes = await mallory.page.evaluate(async (sdpNoFp) => {
      const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
      const got = [];
      ws.onmessage = (e) => got.push(JSON.parse(e.data));
      await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
      const sends = ['{not json', '{"type":"explode"}', JSON.stringify({ type: 'join', room: 'e2e-a', name: 'm', sdp: sdpNoFp }),
        JSON.stringify({ type: 'join', room: 'x'.repeat(65), name: 'm', sdp: 'v=0' }), 'x'.repeat(70000),
        JSON.stringify({ type: 'answer', sdp: 'v=0' })];
      for (const s of sends) ws.send(s);
      const end = Date.now() + 5000;
      while (got.length < sends.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      ws.close();
      return got.map((m) => m.code);
    }, await alice.page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('audio');
      const o = await pc.createOffer();
      pc.close();
      return o.sdp.split('\r\n').filter((l) => !l.startsWith('a=fingerprint')).join('\r\n');
    }));
    const want = ['bad-json', 'unknown-type', 'sdp-no-fingerprint', 'bad-room', 'message-too-large', 'not-joined'];
    if (JSON.stringify(codes) !== JSON.stringify(want)) throw new Error(`error codes ${JSON.stringify(codes)} != ${JSON.stringify(want)}`);
    await mallory.context.close();
    await expectReceiving(alice, ['bob', 'carol']);
  });

  await test('one leaves: the others lose its tile and keep decoding', async () => {
    await carol.page.click('#leave');
    await until('carol sees the join form again', () => carol.page.isVisible('#join-form'));
    await Promise.all([expectReceiving(alice, ['bob']), expectReceiving(bob, ['alice'])]);
    await carol.context.close();
  });

  await test('a fourth joins afterwards and everyone sees everyone', async () => {
    dave = await openParticipant(room, 'dave');
    await Promise.all([
      expectReceiving(alice, ['bob', 'dave']),
      expectReceiving(bob, ['alice', 'dave']),
      expectReceiving(dave, ['alice', 'bob']),
    ]);
  });

  await test('a participant in a second room receives nothing from the first', async () => {
    erin = await openParticipant('e2e-b', 'erin');
    await until('erin connected', async () => (await erin.page.evaluate(() => window.sfu.connectionState())) === 'connected');
    await sleep(3000);
    const t = await tiles(erin);
    const s = await stats(erin);
    if (t.length !== 0 || Object.keys(s).length !== 0) throw new Error(`erin sees ${JSON.stringify(t)} ${JSON.stringify(s)}`);
    const inbound = await erin.page.evaluate(async () => {
      let n = 0;
      const pcStats = await window.sfu.remoteStats();
      n += Object.keys(pcStats).length;
      return n;
    });
    if (inbound !== 0) throw new Error('erin received media');
    for (const p of [alice, bob, dave]) {
      const names = await tiles(p);
      if (names.includes('erin')) throw new Error(`${p.name} sees erin`);
    }
    const m = (await get('/metrics')).body;
    if (!/^sfu_rooms 2$/m.test(m)) throw new Error('metrics: expected sfu_rooms 2');
    if (!/^sfu_participants 4$/m.test(m)) throw new Error('metrics: expected sfu_participants 4');
  });

  await test('everyone leaves: rooms close', async () => {
    for (const p of [alice, bob, dave, erin]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await test('SIGTERM shuts the server down cleanly', async () => {
    const exited = new Promise((r) => server.on('exit', (code) => r(code)));
    server.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(15000).then(() => 'timeout')]);
    if (code !== 0) throw new Error(`server exit: ${code}`);
  });
}

main().then(() => finish(0), (e) => { if (!failed) { failed++; console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`); } finish(1); });
