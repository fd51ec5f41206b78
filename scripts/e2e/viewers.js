// End-to-end test of a watched room (called by run.js): 300 sfu-load
// viewers join a room of three Chromium pages, on a server of its own.
'use strict';

const { spawn } = require('child_process');
const { sleep, until, getFrom, steadyFps } = require('./lib');

async function viewerTests({
  test, browser, BIN, PORT, stats, expectReceiving,
}) {
  await test('300 sfu-load viewers join a room of three Chromium pages at 100/s: every page keeps >= 15 fps and <= 1 s frozen per video, and shows the viewer count', async () => {
    // A server of its own: all 300 come from 127.0.0.1, over the default
    // per-address signaling limits.
    const port = PORT + 1;
    const base = `http://127.0.0.1:${port}`;
    const srv = spawn(BIN, ['--http-listen', `127.0.0.1:${port}`, '--announced-ip', '127.0.0.1',
      '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45100-45199', '--log', 'warn',
      '--max-messages-per-second-per-ip', '100000', '--max-joins-per-minute-per-ip', '100000'],
    { stdio: ['ignore', 'inherit', 'inherit'] });
    const load = require('path').join(require('path').dirname(BIN), 'sfu-load');
    let loadProc;
    try {
      const health = async () => (await getFrom(base, '/healthz')).status === 200;
      await until('the second server answers /healthz', health, 15000);
      const open = async (name) => {
        const context = await browser.newContext();
        const page = await context.newPage();
        page.on('pageerror', (e) => console.log(`  [${name} pageerror] ${e}`));
        await page.goto(`${base}/?room=e2e-watched&name=${name}`);
        return { name, page, context };
      };
      const pages = [await open('w1'), await open('w2'), await open('w3')];
      await Promise.all(pages.map((p) => expectReceiving(p, pages.filter((o) => o !== p).map((o) => o.name))));
      // The room at its steady rate first (the allocation climbs each
      // video's temporal layers after a join): what is measured is what
      // the viewers' joins take from it.
      await steadyFps(pages, 18, 3, 5);
      const before = await Promise.all(pages.map((p) => stats(p)));
      const t0 = Date.now();
      // 300 viewers at 100/s, watching for 8 s after the ramp.
      loadProc = spawn(load, ['--server', `ws://127.0.0.1:${port}/ws`, '--room', 'e2e-watched', '--rooms', '1',
        '--publishers', '0', '--subscribers', '300', '--role', 'viewer', '--ramp', '3', '--duration', '8',
        '--cpu', '-1', '--verify-every', '1000000', '--json', '/tmp/sfu-e2e-viewers.json'],
      { stdio: ['ignore', 'ignore', 'inherit'] });
      const loadDone = new Promise((r) => loadProc.on('exit', (code) => r(code)));
      await until('every page shows 300 viewers', async () => {
        const texts = await Promise.all(pages.map((p) => p.page.evaluate(() => window.sfu.viewersText())));
        return texts.every((t) => t === '300 viewers') && texts;
      }, 20000, 250);
      await sleep(Math.max(0, 6000 - (Date.now() - t0)));
      const after = await Promise.all(pages.map((p) => stats(p)));
      const dt = (Date.now() - t0) / 1000;
      const seen = [];
      const failures = [];
      pages.forEach((p, i) => {
        for (const [id, e] of Object.entries(after[i])) {
          const b = before[i][id] || { framesDecoded: 0, freezeS: 0 };
          const fps = (e.framesDecoded - b.framesDecoded) / dt;
          const frozen = e.freezeS - b.freezeS;
          seen.push(`${p.name}<-${e.name} ${fps.toFixed(1)} fps ${frozen.toFixed(2)} s frozen`);
          if (fps < 15) failures.push(`${p.name} decodes ${e.name} at ${fps.toFixed(1)} fps while viewers join`);
          if (frozen > 1) failures.push(`${p.name}: ${e.name} froze ${frozen.toFixed(2)} s while viewers join`);
        }
      });
      // Every figure first: one publisher low on both pages is its
      // encoder, one page low on both is that page.
      console.log(`  over ${dt.toFixed(1)} s of joins: ${seen.join(', ')}`);
      if (failures.length) throw new Error(failures.join('; '));
      const code = await Promise.race([loadDone, sleep(40000).then(() => 'timeout')]);
      if (code !== 0) throw new Error(`sfu-load exited ${code}`);
      const summary = JSON.parse(require('fs').readFileSync('/tmp/sfu-e2e-viewers.json', 'utf8'));
      console.log(`  sfu-load: ${summary.joined} joined, join p50 ${summary.join_latency_p50_ms.toFixed(1)} ms, p99 ${summary.join_latency_p99_ms.toFixed(1)} ms, ${summary.join_rate_per_second.toFixed(0)} joins/s, largest message ${summary.largest_signaling_message_bytes} B`);
      if (summary.joined !== 300 || summary.join_failures.length) throw new Error(`viewers: ${JSON.stringify(summary.join_failures.slice(0, 3))}`);
      if (summary.forwarded_packets === 0) throw new Error('the viewers received no media');
      await until('the pages show the viewers gone', async () => {
        const texts = await Promise.all(pages.map((p) => p.page.evaluate(() => window.sfu.viewersText())));
        return texts.every((t) => t === '') && texts;
      }, 10000, 250);
      for (const p of pages) await p.context.close();
    } finally {
      if (loadProc && loadProc.exitCode === null) loadProc.kill('SIGKILL');
      srv.kill('SIGTERM');
    }
  });
}

module.exports = { viewerTests };
