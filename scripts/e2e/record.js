// Recording and playback against one sfu on loopback, judged with tools
// nobody here wrote: real Chromium pages through the web client publish,
// `sfu record` (the CLI of the recording API) starts and stops, Debian's
// ffprobe/ffmpeg read the muxed files, and Chromium plays them in a
// <video> element.
// Usage: node record.js PATH_TO_SFU RECORDINGS_DIR
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFile } = require('child_process');
const fs = require('fs');
const path = require('path');
const { sleep, until, getFrom, runner, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, DIR] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PORT = Number(process.env.SFU_RECORD_PORT || 18380);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 9 * 60 * 1000;

const tests = runner();
const test = tests.test;
let browser;
let server;

const watchdog = setTimeout(() => {
  console.error(`watchdog: record run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  if (server && server.exitCode === null) server.kill('SIGKILL');
  const done = () => {
    console.log(`\nrecord: ${tests.passed} passed, ${tests.failed} failed`);
    process.exit(code || (tests.failed ? 1 : 0));
  };
  const closing = browser ? browser.close().catch(() => {}) : Promise.resolve();
  Promise.race([closing, sleep(5000)]).then(done);
}

const get = (p) => getFrom(BASE, p);
const page = (room, name, extra = '') => openPage(browser, `${BASE}/?room=${room}&name=${name}${extra}`, name);

// Runs `cmd args` within `ms`: { code, stdout, stderr }.
function run(cmd, args, ms = 60000) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: ms, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code || 1) : 0, stdout, stderr });
    });
  });
}

// `sfu record ARGS` against the server: its JSON answer (throws on failure).
async function record(...args) {
  const r = await run(BIN, ['record', ...args, '--url', BASE], 20000);
  if (r.code !== 0) throw new Error(`sfu record ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Waits until recording `id` of `room` is stopped (muxed); returns it.
async function stopped(room, id) {
  return until(`recording ${id} stopped and muxed`, async () => {
    const list = await record('list', room);
    const rec = list.recordings.find((x) => x.id === id);
    return rec && (rec.state === 'stopped' || rec.state === 'failed') ? rec : null;
  }, 60000, 500);
}

// ffprobe's view of a file: { streams: [...], format: {...} }, frames counted.
async function probe(file) {
  const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
    'stream=codec_name,codec_type,width,height,nb_read_frames:format=duration,format_name', '-of', 'json', file]);
  if (r.code !== 0) throw new Error(`ffprobe ${file}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Frames the page's camera sent so far: the outbound video encoding with
// the largest width (the layer a recording takes).
const framesSent = (p) => p.page.evaluate(async () => {
  let best = { w: -1, n: 0 };
  (await window.sfu.pc().getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video' && (s.frameWidth || 0) > best.w) best = { w: s.frameWidth || 0, n: s.framesSent || 0 };
  });
  return best.n;
});

// Chromium plays `file` in a <video>: it shows a picture, time advances,
// and a seek to the middle lands there and plays on.
async function playsInChromium(file, duration) {
  const context = await browser.newContext();
  const p = await context.newPage();
  try {
    await p.goto(`file://${file}`);
    await p.waitForSelector('video', { timeout: 10000 });
    const start = await p.evaluate(async () => {
      const v = document.querySelector('video');
      v.muted = true;
      await v.play();
      return v.currentTime;
    });
    const playing = await until(`${path.basename(file)} plays`, () => p.evaluate(() => {
      const v = document.querySelector('video');
      return v.videoWidth > 0 && v.currentTime > 1 ? { w: v.videoWidth, t: v.currentTime } : null;
    }), 15000);
    const mid = duration / 2;
    const seek = await p.evaluate((to) => new Promise((resolve) => {
      const v = document.querySelector('video');
      const t = setTimeout(() => resolve({ ok: false, t: v.currentTime }), 8000);
      v.addEventListener('seeked', () => { clearTimeout(t); resolve({ ok: true, t: v.currentTime }); }, { once: true });
      v.currentTime = to;
    }), mid);
    if (!seek.ok || Math.abs(seek.t - mid) > 1) throw new Error(`seek to ${mid} s landed at ${JSON.stringify(seek)}`);
    await until(`${path.basename(file)} plays on after the seek`, () => p.evaluate((from) => {
      const v = document.querySelector('video');
      return !v.paused && v.currentTime > from + 0.5;
    }, seek.t), 8000);
    return { start, ...playing, seekedTo: seek.t };
  } finally {
    await context.close();
  }
}

async function main() {
  server = spawn(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45200-45399', '--recordings-dir', DIR,
    '--log', process.env.SFU_E2E_LOG || 'warn'],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  await until('server up', async () => (await get('/healthz')).status === 200, 15000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });

  await test('Recording a call: 3 Chromium pages for 20 s give one VP8 + Opus WebM each, 20 ± 1 s long, with the frames each sent, that Chromium plays and seeks', async () => {
    const pages = [];
    for (const n of ['ann', 'bob', 'cat']) pages.push(await page('call', n));
    await until('everyone decodes everyone', async () => {
      for (const p of pages) {
        const s = Object.values(await p.page.evaluate(() => window.sfu.remoteStats()));
        if (s.filter((e) => e.framesDecoded > 0).length < 2) return false;
      }
      return true;
    }, 30000);
    const ids = await Promise.all(pages.map((p) => p.page.evaluate(() => window.sfu.id())));
    const sent0 = await Promise.all(pages.map(framesSent));
    const rec = await record('start', 'call');
    await sleep(20000);
    const sent1 = await Promise.all(pages.map(framesSent));
    await record('stop', 'call', rec.id);
    const done = await stopped('call', rec.id);
    if (done.state !== 'stopped' || done.outputs.length !== 3) throw new Error(`recording: ${JSON.stringify(done)}`);
    for (const [i, p] of pages.entries()) {
      const out = done.outputs.find((o) => o.participant === ids[i]);
      if (!out) throw new Error(`no file for ${p.name} (${ids[i]}): ${JSON.stringify(done.outputs)}`);
      const file = path.join(done.dir, out.file);
      const info = await probe(file);
      const v = info.streams.find((s) => s.codec_type === 'video');
      const a = info.streams.find((s) => s.codec_type === 'audio');
      const dur = Number(info.format.duration);
      const sent = sent1[i] - sent0[i];
      const frames = Number(v && v.nb_read_frames);
      console.log(`  ${p.name}: ${out.file} ${v && v.codec_name} ${v && v.width}x${v && v.height} + ${a && a.codec_name}, ${dur.toFixed(2)} s, ${frames} frames (sent ${sent})`);
      if (!v || v.codec_name !== 'vp8' || !a || a.codec_name !== 'opus') throw new Error(`codecs: ${JSON.stringify(info.streams)}`);
      if (Math.abs(dur - 20) > 1) throw new Error(`duration ${dur} s, want 20 ± 1`);
      if (Math.abs(frames - sent) > 0.1 * sent) throw new Error(`${frames} frames in the file, ${sent} sent: more than 10 % apart`);
      const play = await playsInChromium(file, dur);
      console.log(`  ${p.name}: Chromium plays ${JSON.stringify(play)}`);
    }
    for (const p of pages) await p.context.close();
  });
}

main().then(() => finish(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  finish(1);
});
