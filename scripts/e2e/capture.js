// Captures real RTP from Chromium for the unit tests in testdata/rtp/:
// one page publishes through the web client with the given query (its
// scalability mode), `sfu record` records it, and the first frames of the
// video track's recording (from its first keyframe, up to a size bound)
// are kept as a .sfurec file (sig/src/recording/file.rs: a JSON header,
// then records of plain RTP). The payloads are the browser's own; the
// server's consumer rewrote the RTP header only (SSRC, sequence number,
// timestamp, extensions).
// Usage: node capture.js PATH_TO_SFU RECORDINGS_DIR OUT_FILE QUERY [MAX_BYTES]
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFile } = require('child_process');
const fs = require('fs');
const path = require('path');
const { sleep, until, getFrom, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, DIR, OUT, QUERY, MAX] = process.argv.slice(2);
const MAX_BYTES = Number(MAX || 120000);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PORT = Number(process.env.SFU_CAPTURE_PORT || 18390);
const BASE = `http://127.0.0.1:${PORT}`;

let server;
let browser;
const watchdog = setTimeout(() => { console.error('capture: timed out'); done(1); }, 120000);
function done(code) {
  clearTimeout(watchdog);
  if (server && server.exitCode === null) server.kill('SIGKILL');
  Promise.race([browser ? browser.close().catch(() => {}) : Promise.resolve(), sleep(5000)])
    .then(() => process.exit(code));
}

function run(cmd, args) {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
  });
}

// The records of a .sfurec file: { header (bytes), records: [{kind, at, data}] }.
function parse(buf) {
  if (buf.subarray(0, 8).toString('latin1') !== 'SFUREC\x00\x01') throw new Error('not a recording');
  const hlen = buf.readUInt32BE(8);
  const header = buf.subarray(0, 12 + hlen);
  const records = [];
  let at = 12 + hlen;
  while (at + 11 <= buf.length) {
    const len = buf.readUInt16BE(at + 9);
    if (at + 11 + len > buf.length) break;
    records.push({ raw: buf.subarray(at, at + 11 + len), kind: buf[at], data: buf.subarray(at + 11, at + 11 + len) });
    at += 11 + len;
  }
  return { header, records };
}

(async () => {
  server = spawn(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45500-45599', '--recordings-dir', DIR, '--log', 'warn'],
  { stdio: ['ignore', 'inherit', 'inherit'] });
  await until('server up', async () => (await getFrom(BASE, '/healthz')).status === 200, 15000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const p = await openPage(browser, `${BASE}/?room=capture&name=cap${QUERY}`, 'cap');
  await until('joined', async () => !!(await p.page.evaluate(() => window.sfu.id())), 20000);
  // Let the encoder settle on its layers first.
  await sleep(4000);
  const r = await run(BIN, ['record', 'start', 'capture', '--url', BASE]);
  if (r.code) throw new Error(`record start: ${r.stderr}`);
  const rec = JSON.parse(r.stdout);
  await sleep(4000);
  await run(BIN, ['record', 'stop', 'capture', rec.id, '--url', BASE]);
  const dir = await until('the recording is written', async () => {
    const d = path.resolve(DIR, 'capture', rec.id);
    return fs.existsSync(d) && fs.readdirSync(d).some((f) => f.includes('-video-') && f.endsWith('.sfurec')) && d;
  }, 20000);
  const file = fs.readdirSync(dir).find((f) => f.includes('-video-') && f.endsWith('.sfurec'));
  const { header, records } = parse(fs.readFileSync(path.join(dir, file)));
  // RTP only, up to MAX_BYTES.
  const kept = [];
  let bytes = header.length;
  for (const x of records) {
    if (x.kind !== 1) continue;
    if (bytes + x.raw.length > MAX_BYTES) break;
    kept.push(x.raw);
    bytes += x.raw.length;
  }
  fs.writeFileSync(OUT, Buffer.concat([header, ...kept]));
  console.log(`capture: ${kept.length} RTP packets of ${records.length} records, ${bytes} bytes -> ${OUT}`);
  done(0);
})().catch((e) => { console.error(`capture: ${e && e.stack ? e.stack : e}`); done(1); });
