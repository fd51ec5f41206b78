// Helpers shared by the e2e runs (run.js, cluster.js): bounded waits, HTTP
// GETs, and a page's decoding figures. Every wait has a deadline.
'use strict';

const http = require('http');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` every `everyMs` until it returns something truthy (returned),
// or throws after `timeoutMs` naming `desc` and the last value.
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

// GET `base + path` within 3 s: { status, body }.
function getFrom(base, path) {
  return new Promise((resolve, reject) => {
    const req = http.get(base + path, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.setTimeout(3000, () => req.destroy(new Error('timeout')));
  });
}

// The value of the first series of `/metrics` text `body` that starts with
// `series` (a name, with labels if given), summed over every match.
function metric(body, series) {
  return body.split('\n')
    .filter((l) => l.startsWith(series))
    .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}

// Frames per second page `p` decodes of each tile over `seconds`:
// { id: { name, fps, width } }.
async function fpsOver(p, seconds) {
  const stats = () => p.page.evaluate(() => window.sfu.remoteStats());
  const a = await stats();
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const b = await stats();
  const dt = (Date.now() - t0) / 1000;
  const out = {};
  for (const [id, e] of Object.entries(b)) {
    out[id] = { name: e.name, fps: Number(((e.framesDecoded - (a[id] ? a[id].framesDecoded : 0)) / dt).toFixed(1)), width: e.frameWidth };
  }
  return out;
}

// Each page's decoded frame rates over the same `seconds` window, as
// {page name: fpsOver's result}, in up to `tries` windows, until one where
// every video every page decodes is at >= `min` fps: the estimate starts
// low after a join and the layers (frame rate first) climb with it, so a
// steady rate is measured once they have. Prints each window; returns the
// last.
async function steadyFps(pages, min, seconds = 5, tries = 4) {
  let seen = {};
  for (let i = 0; i < tries; i++) {
    const r = await Promise.all(pages.map((p) => fpsOver(p, seconds)));
    seen = Object.fromEntries(pages.map((p, k) => [p.name, r[k]]));
    console.log(`  fps over ${seconds} s: ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, Object.values(v).map((e) => `${e.name} ${e.fps} fps ${e.width} px`)])))}`);
    if (Object.values(seen).every((v) => Object.values(v).every((e) => e.fps >= min))) break;
  }
  return seen;
}

// Counts tests and runs them: `test(name, fn)` prints ok or FAIL with the
// time taken, and rethrows a failure (later scenarios build on earlier
// ones). SFU_E2E_ONLY=text runs only the tests whose names contain it, or
// one of its |-separated parts.
function runner() {
  const r = { passed: 0, failed: 0 };
  r.test = async (name, fn) => {
    const only = process.env.SFU_E2E_ONLY;
    if (only && !only.split('|').some((part) => name.includes(part))) {
      console.log(`skip ${name} (SFU_E2E_ONLY)`);
      return;
    }
    const t0 = Date.now();
    try {
      await fn();
      r.passed++;
      console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      r.failed++;
      console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
      throw e;
    }
  };
  return r;
}

// Chromium's flags for the tests: fake camera and microphone, loopback ICE,
// and nothing that reaches for the network.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

// A new context of `browser` with a page at `url`, its errors logged as
// `name`'s: { name, page, context }.
async function openPage(browser, url, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') console.log(`  [${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${name} pageerror] ${e}`));
  await page.goto(url);
  return { name, page, context };
}

module.exports = {
  sleep, until, getFrom, metric, fpsOver, steadyFps, runner, CHROMIUM_ARGS, openPage,
};
