// Recording and playback against one sfu on loopback, judged with tools
// nobody here wrote: real Chromium pages through the web client publish,
// `sfu record` (the CLI of the recording API) starts and stops, Debian's
// ffprobe/ffmpeg read the muxed files, and Chromium plays them in a
// <video> element.
// Usage: node record.js PATH_TO_SFU RECORDINGS_DIR SMALL_TMPFS_DIR
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFile } = require('child_process');
const fs = require('fs');
const path = require('path');
const { sleep, until, getFrom, fpsOver, runner, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, DIR, FULL] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PORT = Number(process.env.SFU_RECORD_PORT || 18380);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 9 * 60 * 1000;

const tests = runner();
const test = tests.test;
let browser;
let server;
let strict;

const watchdog = setTimeout(() => {
  console.error(`watchdog: record run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  for (const p of [server, strict]) if (p && p.exitCode === null) p.kill('SIGKILL');
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

// `sfu record ARGS` against the server (or `opts.base`, with `opts.token`):
// its JSON answer (throws on failure).
async function record(...args) {
  const opts = typeof args[args.length - 1] === 'object' ? args.pop() : {};
  const extra = opts.token ? ['--token', opts.token] : [];
  const r = await run(BIN, ['record', ...args, '--url', opts.base || BASE, ...extra], 20000);
  if (r.code !== 0) throw new Error(`sfu record ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Waits until recording `id` of `room` is stopped (muxed); returns it.
async function stopped(room, id, opts = {}) {
  return until(`recording ${id} stopped and muxed`, async () => {
    const list = await record('list', room, opts);
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
// Frames each video encoding (by SSRC) sent so far.
const framesSent = (p) => p.page.evaluate(async () => {
  const sent = {};
  (await window.sfu.pc().getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') sent[s.ssrc] = s.framesSent || 0;
  });
  return sent;
});

// The frames the camera gave between two framesSent: the most any one
// encoding sent. The recorder takes the widest encoding there is, and the
// publisher may stop or thin its widest one for a while (Chromium's CPU
// adaptation under load), which then leaves the recording on a narrower
// one that sent more.
const framesBetween = (from, to) => Math.max(0, ...Object.entries(to).map(([ssrc, n]) => n - (from[ssrc] || 0)));

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

  await test('Recording a call: 3 Chromium pages for 20 s (one turns its camera off and mutes for 3 s) give one VP8 + Opus WebM each, 20 ± 1 s long, with the frames each sent, that Chromium plays and seeks', async () => {
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
    await until('every page shows REC', async () => (await Promise.all(pages.map((p) => p.page.evaluate(() => window.sfu.recording())))).every(Boolean), 5000);
    // ann turns her camera off and mutes for 3 s mid-recording: her file
    // stays one file, as long as the others'.
    await sleep(6000);
    await pages[0].page.evaluate(async () => { await window.sfu.setCameraOff(true); window.sfu.setMuted(true); });
    await sleep(3000);
    await pages[0].page.evaluate(async () => { await window.sfu.setCameraOff(false); window.sfu.setMuted(false); });
    await sleep(11000);
    const sent1 = await Promise.all(pages.map(framesSent));
    await record('stop', 'call', rec.id);
    await until('REC goes away', async () => (await Promise.all(pages.map((p) => p.page.evaluate(() => window.sfu.recording())))).every((r) => !r), 5000);
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
      const sent = framesBetween(sent0[i], sent1[i]);
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

  await test('H.264: one participant of a room (sfu record start --participant) with &codec=h264 is recorded to an MP4 that ffprobe reads and Chromium plays', async () => {
    const dan = await page('h264', 'dan', '&codec=h264');
    const eve = await page('h264', 'eve');
    const id = await until('dan has an id', () => dan.page.evaluate(() => window.sfu.id()), 15000);
    await until('eve decodes dan', async () => Object.values(await eve.page.evaluate(() => window.sfu.remoteStats()))
      .some((e) => e.framesDecoded > 0 && /H264/i.test(e.codec || '')), 20000);
    const rec = await record('start', 'h264', '--participant', id);
    await sleep(8000);
    await record('stop', 'h264', rec.id);
    const done = await stopped('h264', rec.id);
    if (done.outputs.length !== 1 || done.outputs[0].container !== 'mp4') throw new Error(`outputs: ${JSON.stringify(done.outputs)}`);
    const file = path.join(done.dir, done.outputs[0].file);
    const info = await probe(file);
    const v = info.streams.find((x) => x.codec_type === 'video');
    const a = info.streams.find((x) => x.codec_type === 'audio');
    const dur = Number(info.format.duration);
    console.log(`  ${done.outputs[0].file}: ${info.format.format_name} ${v && v.codec_name} ${v && v.width}x${v && v.height} (${v && v.nb_read_frames} frames) + ${a && a.codec_name}, ${dur.toFixed(2)} s`);
    if (!v || v.codec_name !== 'h264' || !a || a.codec_name !== 'opus' || Math.abs(dur - 8) > 1) throw new Error(`ffprobe: ${JSON.stringify(info)}`);
    console.log(`  Chromium plays ${JSON.stringify(await playsInChromium(file, dur))}`);
    await dan.context.close();
    await eve.context.close();
  });

  await test('VP9 and AV1: publishers with &codec=vp9 and &codec=av1 are recorded to WebMs that ffprobe reads as vp9 and av1 and Chromium plays', async () => {
    const vic = await page('codecs', 'vic', '&codec=vp9');
    const ava = await page('codecs', 'ava', '&codec=av1');
    await until('each decodes the other', async () => {
      for (const p of [vic, ava]) {
        const s = Object.values(await p.page.evaluate(() => window.sfu.remoteStats()));
        if (!s.some((e) => e.framesDecoded > 0)) return false;
      }
      return true;
    }, 20000);
    const rec = await record('start', 'codecs');
    await sleep(8000);
    await record('stop', 'codecs', rec.id);
    const done = await stopped('codecs', rec.id);
    const want = { [await vic.page.evaluate(() => window.sfu.id())]: 'vp9', [await ava.page.evaluate(() => window.sfu.id())]: 'av1' };
    for (const out of done.outputs) {
      const file = path.join(done.dir, out.file);
      const info = await probe(file);
      const v = info.streams.find((x) => x.codec_type === 'video');
      const dur = Number(info.format.duration);
      console.log(`  ${out.name}: ${out.file} ${v && v.codec_name} ${v && v.width}x${v && v.height} (${v && v.nb_read_frames} frames), ${dur.toFixed(2)} s`);
      if (!v || v.codec_name !== want[out.participant] || Number(v.nb_read_frames) < 8 * 10 || Math.abs(dur - 8) > 1) {
        throw new Error(`${out.file}: ${JSON.stringify(info)}`);
      }
      console.log(`  Chromium plays ${JSON.stringify(await playsInChromium(file, dur))}`);
    }
    if (done.outputs.length !== 2) throw new Error(`outputs: ${JSON.stringify(done.outputs)}`);
    await vic.context.close();
    await ava.context.close();
  });

  await test('A/V sync: a publisher whose camera flashes and microphone beeps at the same instants is recorded; in the WebM the flashes and beeps are within 80 ms', async () => {
    const context = await browser.newContext();
    // The camera: a canvas, white for 200 ms every second, black between;
    // the microphone: a 1 kHz tone over the same 200 ms. Both from the
    // AudioContext's clock, so the marks are made at the same instants.
    await context.addInitScript(() => {
      navigator.mediaDevices.getUserMedia = async () => {
        const ac = new AudioContext();
        await ac.resume();
        const canvas = document.createElement('canvas');
        canvas.width = 640;
        canvas.height = 480;
        const g = canvas.getContext('2d');
        const dest = ac.createMediaStreamDestination();
        const osc = ac.createOscillator();
        osc.frequency.value = 1000;
        const gain = ac.createGain();
        gain.gain.value = 0;
        osc.connect(gain).connect(dest);
        osc.start();
        const t0 = Math.ceil(ac.currentTime) + 1;
        for (let k = 0; k < 120; k++) {
          gain.gain.setValueAtTime(0.8, t0 + k);
          gain.gain.setValueAtTime(0, t0 + k + 0.2);
        }
        const draw = () => {
          const t = ac.currentTime - t0;
          g.fillStyle = t >= 0 && (t % 1) < 0.2 ? '#fff' : '#000';
          g.fillRect(0, 0, 640, 480);
        };
        setInterval(draw, 4);
        const video = canvas.captureStream(30).getVideoTracks()[0];
        return new MediaStream([video, dest.stream.getAudioTracks()[0]]);
      };
    });
    const p = await context.newPage();
    p.on('pageerror', (e) => console.log(`  [sync pageerror] ${e}`));
    await p.goto(`${BASE}/?room=sync&name=sync&simulcast=0`);
    const id = await until('the publisher joined', () => p.evaluate(() => window.sfu.id()), 15000);
    await sleep(3000);
    const rec = await record('start', 'sync', '--participant', id);
    await sleep(12000);
    await record('stop', 'sync', rec.id);
    const done = await stopped('sync', rec.id);
    const file = path.join(done.dir, done.outputs[0].file);
    // Flash onsets: frames whose mean luma jumps over 128.
    const yr = await run('ffprobe', ['-v', 'error', '-f', 'lavfi', '-i', `movie=${file},signalstats`,
      '-show_entries', 'frame=pts_time:frame_tags=lavfi.signalstats.YAVG', '-of', 'csv=p=0']);
    const flashes = [];
    let prev = 0;
    for (const line of yr.stdout.split('\n')) {
      const [t, y] = line.split(',').map(Number);
      if (!Number.isFinite(t) || !Number.isFinite(y)) continue;
      if (y > 128 && prev <= 128) flashes.push(t);
      prev = y;
    }
    // Beep onsets: where silence ends.
    const ar = await run('ffmpeg', ['-hide_banner', '-nostats', '-i', file, '-vn', '-af', 'silencedetect=noise=-30dB:d=0.3', '-f', 'null', '-']);
    const beeps = [...ar.stderr.matchAll(/silence_end: ([0-9.]+)/g)].map((m) => Number(m[1]));
    const offsets = flashes.map((f) => beeps.reduce((best, b) => (Math.abs(b - f) < Math.abs(best) ? b - f : best), Infinity))
      .filter((d) => Math.abs(d) < 0.5);
    const ms = offsets.map((d) => Math.round(d * 1000));
    console.log(`  ${flashes.length} flashes, ${beeps.length} beeps; audio - video per mark (ms): ${ms.join(' ')}`);
    if (ms.length < 6) throw new Error(`too few marks matched: flashes ${JSON.stringify(flashes)} beeps ${JSON.stringify(beeps)}`);
    const sorted = [...ms].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)];
    if (Math.abs(median) > 80 || ms.filter((x) => Math.abs(x) > 80).length > ms.length / 5) {
      throw new Error(`audio and video marks apart: median ${median} ms, ${JSON.stringify(ms)}`);
    }
    await context.close();
  });

  await test('Playback: the call recording played into a new room: a Chromium page there decodes its video at the source rate and hears its audio, a late joiner starts at once, and stopping takes it out', async () => {
    const call = (await record('list', 'call')).recordings[0];
    const out = call.outputs[0];
    const rel = `call/${call.id}/${out.file}`;
    const src = await probe(path.join(call.dir, out.file));
    const sv = src.streams.find((x) => x.codec_type === 'video');
    const rate = Number(sv.nb_read_frames) / Number(src.format.duration);
    const viewer = await page('replay', 'viewer');
    await until('viewer connected', () => viewer.page.evaluate(() => window.sfu.connectionState() === 'connected'), 15000);
    const r = await run(BIN, ['play', rel, '--room', 'replay', '--loop', '--name', `${out.name} (recorded)`, '--url', BASE]);
    if (r.code !== 0) throw new Error(`sfu play: ${r.stderr}`);
    const pb = JSON.parse(r.stdout);
    // By the tile's id: its media can come before its name does.
    const [tileId] = await until('the viewer decodes the playback', async () => Object.entries(await viewer.page.evaluate(() => window.sfu.remoteStats()))
      .find(([, e]) => e.framesDecoded > 0 && e.audioSamples > 0), 15000);
    const fps = (await fpsOver(viewer, 5))[tileId];
    console.log(`  ${rel} (${rate.toFixed(1)} fps in the file) as ${fps && fps.name}: the viewer decodes ${JSON.stringify(fps)}`);
    if (!fps || fps.fps < Math.min(25, rate) * 0.9) throw new Error(`the viewer decodes ${JSON.stringify(fps)}; the file has ${rate.toFixed(1)} fps`);
    if (fps.name !== `${out.name} (recorded)`) throw new Error(`the playback's tile is named ${JSON.stringify(fps.name)}, not "${out.name} (recorded)"`);
    const audio = async () => (await viewer.page.evaluate(() => window.sfu.remoteStats()))[tileId].audioSamples;
    const a0 = await audio();
    await sleep(1000);
    const a1 = await audio();
    if (a1 - a0 < 24000) throw new Error(`audio: ${a1 - a0} samples in 1 s`);
    const late = await page('replay', 'late');
    const t0 = Date.now();
    await until('the late joiner decodes the playback', async () => Object.values(await late.page.evaluate(() => window.sfu.remoteStats()))
      .some((e) => e.framesDecoded > 0), 10000, 100);
    console.log(`  a late joiner decodes its first frame after ${Date.now() - t0} ms`);
    const stop = await run(BIN, ['play', '--room', 'replay', '--stop', pb.id, '--url', BASE]);
    if (stop.code !== 0) throw new Error(`sfu play --stop: ${stop.stderr}`);
    await until('the playback leaves the room', async () => {
      const ids = await viewer.page.evaluate(() => window.sfu.tiles().map((t) => t.id));
      return !ids.includes(tileId);
    }, 10000);
    const list = JSON.parse((await run(BIN, ['play', '--room', 'replay', '--url', BASE])).stdout);
    console.log(`  playback: ${JSON.stringify(list.playbacks[0])}`);
    if (list.playbacks[0].state !== 'stopped') throw new Error('the playback is not stopped');
    await viewer.context.close();
    await late.context.close();
  });

  await test('Bad input: a full disk (a 512 KiB tmpfs) fails the recording with an error while the room forwards >= 18 fps; a ../ room name, a room that does not exist, a missing admin token and garbage or truncated files get clear errors', async () => {
    const port = PORT + 1;
    const base = `http://127.0.0.1:${port}`;
    const secret = 'record-e2e-secret-record-e2e-secret';
    strict = spawn(BIN, ['--http-listen', `127.0.0.1:${port}`, '--announced-ip', '127.0.0.1',
      '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45400-45499', '--recordings-dir', FULL, '--auth-secret', secret,
      '--log', process.env.SFU_E2E_LOG || 'warn'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
    await until('second server up', async () => (await getFrom(base, '/healthz')).status === 200, 15000);
    const mint = async (...args) => {
      const r = await run(BIN, ['token', ...args, '--auth-secret', secret]);
      if (r.code !== 0) throw new Error(`sfu token: ${r.stderr}`);
      return r.stdout.trim();
    };
    const admin = await mint('--admin');
    const join = async (name) => openPage(browser, `${base}/?room=full&name=${name}&token=${await mint('--room', 'full', '--identity', name)}`, name);
    const pub = await join('pub');
    const viewer = await join('viewer');
    await until('viewer decodes pub', async () => Object.values(await viewer.page.evaluate(() => window.sfu.remoteStats()))
      .some((e) => e.framesDecoded > 0), 20000);
    const rec = await record('start', 'full', { base, token: admin });
    const failed = await until('the recording fails on the full disk', async () => {
      const r = (await record('list', 'full', { base, token: admin })).recordings.find((x) => x.id === rec.id);
      return r && r.state === 'failed' ? r : null;
    }, 60000, 500);
    console.log(`  failed: ${failed.error} (${failed.bytes} bytes, ${failed.dropped} packets dropped)`);
    if (!/No space left/.test(failed.error || '')) throw new Error(`error: ${failed.error}`);
    const stats = () => viewer.page.evaluate(() => window.sfu.remoteStats());
    const a = Object.values(await stats())[0];
    await sleep(5000);
    const b = Object.values(await stats())[0];
    const fps = (b.framesDecoded - a.framesDecoded) / 5;
    console.log(`  the viewer decodes ${fps.toFixed(1)} fps after the failure`);
    if (fps < 18) throw new Error(`forwarding slowed to ${fps} fps`);
    const m = (await getFrom(base, '/metrics')).body;
    if (!/sfu_recordings_failed_total 1/.test(m)) throw new Error('metrics: sfu_recordings_failed_total 1 expected');

    // Each bad request: a clear error, nothing else touched.
    const refused = async (args, want) => {
      const r = await run(BIN, args);
      console.log(`  sfu ${args.slice(0, 3).join(' ')}…: exit ${r.code}: ${r.stderr.trim()}`);
      if (r.code === 0 || !want.test(r.stderr)) throw new Error(`want ${want}, got exit ${r.code}: ${r.stderr}`);
    };
    await refused(['record', 'start', '../etc', '--url', base, '--token', admin], /must be a directory name/);
    await refused(['record', 'start', 'no-such-room', '--url', base, '--token', admin], /404.*no room "no-such-room"/);
    await refused(['record', 'start', 'full', '--url', base], /401.*requires an admin token/);
    const junk = path.join(DIR, 'junk');
    fs.mkdirSync(junk, { recursive: true });
    fs.writeFileSync(path.join(junk, 'p1-video-1.sfurec'), Buffer.from('this is not a recording at all'));
    await refused(['recording', 'mux', junk], /not a recording file/);
    await refused(['play', 'junk/p1-video-1.sfurec', '--room', 'x', '--url', BASE], /422.*not a WebM or MP4 file/);
    await refused(['play', '../../etc/passwd', '--room', 'x', '--url', BASE], /404.*not a file under the recordings directory/);
    // A track file cut short (a crash) still muxes, up to its last whole record.
    const call = (await record('list', 'call')).recordings[0];
    const cut = path.join(DIR, 'cut');
    fs.mkdirSync(cut, { recursive: true });
    for (const t of call.tracks.filter((x) => x.participant === call.tracks[0].participant)) {
      const bytes = fs.readFileSync(path.join(call.dir, t.file));
      fs.writeFileSync(path.join(cut, t.file), bytes.subarray(0, Math.floor(bytes.length / 2) + 7));
    }
    const r = await run(BIN, ['recording', 'mux', cut]);
    if (r.code !== 0) throw new Error(`mux of cut files: ${r.stderr}`);
    const report = JSON.parse(r.stdout);
    console.log(`  cut files mux to ${JSON.stringify(report.outputs.map((o) => [o.file, o.duration_ms]))}, notes ${JSON.stringify(report.notes)}`);
    if (report.outputs.length !== 1 || report.outputs[0].duration_ms < 5000 || report.notes.length === 0) throw new Error('cut files: one shorter file and a note expected');
    await pub.context.close();
    await viewer.context.close();
  });
}

main().then(() => finish(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  finish(1);
});
