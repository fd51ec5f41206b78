// Broadcasters in, viewers out, with clients nobody here wrote: aiortc
// (PyPI) publishing over WHIP and playing over WHEP, and Debian's ffmpeg
// pushing RTMP, against one sfu on loopback, with real Chromium pages
// through the web client.
// Usage: node ingest.js PATH_TO_SFU PATH_TO_PYTHON (the one with aiortc)
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const path = require('path');
const { sleep, until, getFrom, metric, fpsOver, runner, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, PYTHON] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PORT = Number(process.env.SFU_INGEST_PORT || 18280);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 8 * 60 * 1000;
const CLIENT = path.join(__dirname, 'whip_client.py');

const tests = runner();
const test = tests.test;
let browser;
let server;
const children = new Set();

const watchdog = setTimeout(() => {
  console.error(`watchdog: ingest run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  for (const p of [server, ...children]) {
    if (p && p.exitCode === null) p.kill('SIGKILL');
  }
  const done = () => {
    console.log(`\ningest: ${tests.passed} passed, ${tests.failed} failed`);
    process.exit(code || (tests.failed ? 1 : 0));
  };
  const closing = browser ? browser.close().catch(() => {}) : Promise.resolve();
  Promise.race([closing, sleep(5000)]).then(done);
}

const get = (p) => getFrom(BASE, p);
const page = (room, name) => openPage(browser, `${BASE}/?room=${room}&name=${name}`, name);

// Runs a child with a deadline; resolves { code, lines } (its stdout lines,
// JSON where they parse). Its stderr goes to ours.
function runChild(cmd, args, deadlineMs) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.add(p);
    let out = '';
    p.stdout.on('data', (c) => { out += c; });
    const timer = setTimeout(() => p.kill('SIGKILL'), deadlineMs);
    p.on('exit', (code, sig) => {
      clearTimeout(timer);
      children.delete(p);
      const lines = out.split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l); } catch (_) { return l; } });
      resolve({ code: code === null ? sig : code, lines });
    });
  });
}

const aiortc = (mode, url, seconds) =>
  runChild(PYTHON, [CLIENT, mode, url, '--seconds', String(seconds)], (seconds + 30) * 1000);

async function main() {
  server = spawn(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45000-45199', '--log', process.env.SFU_E2E_LOG || 'warn'],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  await until('server up', async () => (await get('/healthz')).status === 200, 15000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

  await test('WHIP: aiortc publishes over WHIP, a Chromium page decodes it, and DELETE takes it out of the room', async () => {
    const ann = await page('whip', 'ann');
    const pub = aiortc('publish', `${BASE}/whip/whip`, 14);
    const tile = await until('ann shows the WHIP publisher', async () => {
      const s = await ann.page.evaluate(() => window.sfu.remoteStats());
      return Object.values(s).find((e) => /^whip-/.test(e.name) && e.framesDecoded > 0);
    }, 20000);
    const fps = await fpsOver(ann, 4);
    const mine = Object.values(fps).find((e) => e.name === tile.name);
    console.log(`  ann decodes ${tile.name}: ${JSON.stringify(mine)}`);
    if (!mine || mine.fps < 15 || mine.width !== 640) throw new Error(`ann decodes ${JSON.stringify(mine)}, want >= 15 fps at 640 px`);
    const m = (await get('/metrics')).body;
    if (metric(m, 'sfu_http_sessions{endpoint="whip"}') !== 1) throw new Error('metrics: one live WHIP session expected');
    const done = await pub;
    const events = done.lines.map((l) => l.event);
    if (done.code !== 0 || !events.includes('created') || !done.lines.some((l) => l.event === 'deleted' && l.status === 200)) {
      throw new Error(`publisher: ${JSON.stringify(done)}`);
    }
    await until('the tile goes with DELETE', async () => {
      const names = await ann.page.evaluate(() => window.sfu.tiles().map((t) => t.name));
      return !names.includes(tile.name);
    }, 10000);
    await ann.context.close();
  });

  await test('WHEP: aiortc plays a Chromium publisher over WHEP and decodes its video', async () => {
    const bob = await page('whep', 'bob');
    await until('bob publishes', async () => metric((await get('/metrics')).body, 'sfu_worker_producers') >= 2, 15000);
    const played = await aiortc('play', `${BASE}/whep/whep`, 8);
    const res = played.lines.find((l) => l.event === 'played');
    console.log(`  aiortc: ${JSON.stringify(res)}`);
    if (played.code !== 0 || !res || res.frames < 8 * 15 || res.width < 320) {
      throw new Error(`WHEP player: ${JSON.stringify(played)}`);
    }
    await bob.context.close();
  });

  finish(0);
}

main().catch((e) => {
  console.error(e);
  finish(1);
});
