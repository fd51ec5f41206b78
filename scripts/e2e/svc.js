// End-to-end tests of VP9 SVC through the page (called by run.js): one
// stream with spatial and temporal layers, of which each subscriber gets
// what its tile and its bandwidth take.
'use strict';

const { execFileSync } = require('child_process');
const { sleep, until, steadyFps, metric } = require('./lib');

// Sets the width of participant `id`'s video tile on page `p` (a CSS
// length); the page tells the server its new width (`video-size`).
const tileWidth = (p, id, w) => p.page.evaluate(([i, px]) => {
  document.querySelector(`[data-participant="${i}"] video`).style.width = px;
  window.dispatchEvent(new Event('resize'));
}, [id, w]);

// `ctx`: run.js's helpers (test, openParticipant, stats, expectReceiving,
// mediaPort, capDownlink, get).
async function svcTests(ctx) {
  // VP9's K-SVC (what Chromium offers for VP9 conferencing) and AV1's full
  // SVC (layers from the dependency descriptor).
  // The capped subscriber's cap (bit/s) puts its budget between one video's
  // lowest spatial layer at full rate plus the other's at T0, and both at
  // full rate. Measured lowest layers (240x135, 20 fps; kbit/s with
  // headers, T0/T1/all): VP9 L3T3_KEY 56/78/110, AV1 L3T3 35/69/105.
  for (const [codec, mode, cap] of [['vp9', 'L3T3_KEY', 330000], ['av1', 'L3T3', 300000]]) {
    await svcTest(ctx, codec, mode, cap);
  }
  await av1ChainTest(ctx);
}

// AV1's chains with real Chromium packets: the publisher's full-size
// packets (most of its S1 and S2 frames, its keyframes, some of S0's) are
// dropped for 2 s, resends too, so the server gives them up and counts
// the chains they broke. The viewer, stepped down to what still decodes
// meanwhile, is back at 960 px and >= 15 fps within 30 s: nothing keeps
// it below its target once the keyframe comes.
//
// Not asserted: that stepping down shortens the viewer's freeze. Here
// Chromium's own recovery dominates: in 5 runs with the step-down and 5
// without, the viewer froze 3.1-6.2 s (median 5.5) and 2.3-8.3 s (6.8),
// and was back after 7.9-9.0 s and 8.2-10.5 s (issue 25's note).
async function av1ChainTest(ctx) {
  const { test, openParticipant, stats, expectReceiving, mediaPort, get } = ctx;
  await test('AV1 SVC (L3T3): the publisher\'s full-size packets lost for good for 2 s break its chains (counted), and the viewer is back at 960 px and 15 fps within 30 s', async () => {
    if (process.env.SFU_IN_NETNS !== '1') {
      console.log('  not run: needs the network namespace scripts/e2e.sh makes (root)');
      return;
    }
    const room = 'e2e-svc-av1-chains';
    const vic = await openParticipant(room, 'vic', '&codec=av1&svc=L3T3');
    const ful = await openParticipant(room, 'ful', '&role=viewer');
    await expectReceiving(ful, ['vic']);
    const id = await vic.page.evaluate(() => window.sfu.id());
    await tileWidth(ful, id, '1000px');
    const vicOn = async () => Object.values(await stats(ful)).find((e) => e.name === 'vic');
    await until('ful decodes vic at 960 px', async () => (await vicOn())?.frameWidth === 960, 30000, 500);
    await steadyFps([ful], 15);
    const breaks = async () => metric((await get('/metrics')).body, 'sfu_worker_chain_breaks_total');
    const before = await breaks();
    const port = await mediaPort(vic);
    if (!port) throw new Error('no local port for vic');
    // In the namespace scripts/e2e.sh made for the run (checked above).
    const nft = (...a) => execFileSync('nft', a, { stdio: 'inherit' });
    nft('add', 'table', 'inet', 'svcchains');
    nft('add', 'chain', 'inet', 'svcchains', 'in', '{ type filter hook input priority 0; }');
    nft('add', 'rule', 'inet', 'svcchains', 'in', 'udp', 'sport', String(port), 'meta', 'length', '>', '1000', 'drop');
    console.log(`  dropping at ${new Date().toISOString()}`);
    let lifted = false;
    const lift = () => {
      if (lifted) return;
      lifted = true;
      nft('delete', 'table', 'inet', 'svcchains');
      console.log(`  lifted at ${new Date().toISOString()}`);
    };
    // (ms since the drop began, width, frames decoded, s frozen), every
    // 250 ms until the last 2 s are all at 960 px and >= 15 fps.
    const seen = [];
    let back = null;
    try {
      const t0 = Date.now();
      while (back === null && Date.now() - t0 < 30000) {
        if (Date.now() - t0 >= 2000) lift();
        const v = await vicOn();
        seen.push([Date.now() - t0, v.frameWidth, v.framesDecoded, +v.freezeS.toFixed(2)]);
        const now = seen[seen.length - 1];
        const last = seen.filter((x) => x[0] >= now[0] - 2000);
        const fps = (now[2] - last[0][2]) / ((now[0] - last[0][0]) / 1000);
        if (now[0] > 4000 && last.length > 4 && last.every((x) => x[1] === 960) && fps >= 15) back = now[0];
        await sleep(250);
      }
    } finally {
      lift();
    }
    const broken = (await breaks()) - before;
    console.log(`  chains broken: ${broken}; back after ${back} ms; ful<-vic (ms, width, frames, frozen s): ${JSON.stringify(seen)}`);
    if (broken <= 0) throw new Error('no chain broke');
    if (back === null) throw new Error(`ful not back at 960 px and 15 fps: ${JSON.stringify(seen.slice(-8))}`);
    for (const p of [vic, ful]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });
}

async function svcTest(ctx, codec, mode, capBps) {
  const { test, openParticipant, stats, expectReceiving, mediaPort, capDownlink, get } = ctx;
  const room = `e2e-svc-${codec}`;
  await test(`${codec.toUpperCase()} SVC (${mode}, 960x540): a small tile gets the lowest spatial layer (<= 1/4 width), a capped subscriber (${capBps / 1000} kbit/s) both videos at the lowest spatial layer and one at a lower frame rate, and an uncapped one with large tiles every layer`, async () => {
    if (process.env.SFU_IN_NETNS !== '1') {
      // nftables must only ever shape a namespace made for the run.
      console.log('  not run: needs the network namespace scripts/e2e.sh makes (root)');
      return;
    }
    const q = `&codec=${codec}&svc=${mode}`;
    const vic = await openParticipant(room, 'vic', q);
    const val = await openParticipant(room, 'val', q);
    const viewers = [];
    for (const n of ['sam', 'cap', 'ful']) viewers.push(await openParticipant(room, n, '&role=viewer'));
    const [sam, cap, ful] = viewers;
    const sent = (p) => p.page.evaluate(async () => {
      const r = [];
      (await window.sfu.pc().getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') {
          r.push({ mode: s.scalabilityMode, width: s.frameWidth, frames: s.framesEncoded, encoder: s.encoderImplementation });
        }
      });
      return r;
    });
    try {
      for (const p of viewers) await expectReceiving(p, ['val', 'vic']);
    } catch (e) {
      for (const p of [vic, val]) console.log(`  ${p.name} sends ${JSON.stringify(await sent(p))}`);
      for (const p of viewers) console.log(`  ${p.name} receives ${JSON.stringify(await stats(p))}`);
      const m = (await get('/metrics')).body.split('\n').filter((l) => /drop|rtp_forwarded|keyframe/.test(l) && !l.startsWith('#'));
      console.log(`  server: ${m.join('; ')}`);
      throw e;
    }
    // The publishers send what was asked: three spatial layers.
    for (const p of [vic, val]) {
      const out = await sent(p);
      console.log(`  ${p.name} sends ${JSON.stringify(out)}`);
      if (out.length !== 1 || out[0].mode !== mode) throw new Error(`${p.name} sends ${JSON.stringify(out)}`);
    }
    const ids = {
      vic: await vic.page.evaluate(() => window.sfu.id()),
      val: await val.page.evaluate(() => window.sfu.id()),
    };
    const byName = (s) => Object.fromEntries(Object.values(s).map((e) => [e.name, e]));
    // Large tiles on ful, a small one for vic on sam.
    for (const id of Object.values(ids)) await tileWidth(ful, id, '1000px');
    await tileWidth(sam, ids.vic, '120px');
    await until('ful decodes both at 960 px', async () => {
      const s = byName(await stats(ful));
      return s.vic && s.val && s.vic.frameWidth === 960 && s.val.frameWidth === 960;
    }, 30000, 500);
    await until('sam decodes vic at its lowest layer (240 px)', async () => {
      const s = byName(await stats(sam));
      return s.vic && s.vic.frameWidth > 0 && s.vic.frameWidth <= 240;
    }, 30000, 500);
    const full = await steadyFps([ful, sam], 15);
    console.log(`  ful: ${JSON.stringify(full.ful)}; sam: ${JSON.stringify(full.sam)}`);
    for (const [who, v] of Object.entries(full)) {
      for (const e of Object.values(v)) {
        if (e.fps < 15) throw new Error(`${who} decodes ${e.name} at ${e.fps} fps`);
      }
    }
    const small = Object.values(full.sam).find((e) => e.name === 'vic');
    if (!small || small.width > 240) throw new Error(`sam decodes vic at ${JSON.stringify(small)}, want <= 240 px (1/4 of 960)`);

    // cap: two videos and two Opus streams (~100 kbit/s with headers):
    // the server keeps one video at its lowest spatial layer's full rate
    // and gives the other a lower temporal layer. (VP9 at 300 kbit/s sat
    // at T0 and the estimate's overshoot under the policer paused it now
    // and then; AV1 at 330 had room for both at full rate now and then.)
    const port = await mediaPort(cap);
    if (!port) throw new Error('no local port for cap');
    const lift = capDownlink(`svc${codec}`, port, capBps / 8);
    try {
      await sleep(15000);
      const a = byName(await stats(cap));
      const f0 = byName(await stats(ful));
      // Each second's frame rate on cap, for the lower temporal layer.
      const perSecond = { vic: [], val: [] };
      let prev = a;
      for (let i = 0; i < 10; i++) {
        await sleep(1000);
        const now = byName(await stats(cap));
        for (const n of ['vic', 'val']) perSecond[n].push(now[n].framesDecoded - prev[n].framesDecoded);
        prev = now;
      }
      const b = byName(await stats(cap));
      const f1 = byName(await stats(ful));
      const paused = await cap.page.evaluate(() => window.sfu.pausedTiles());
      const fig = (x, y) => ({ fps: +((y.framesDecoded - x.framesDecoded) / 10).toFixed(1), width: y.frameWidth, frozen: +(y.freezeS - x.freezeS).toFixed(2) });
      const seen = { 'cap<-vic': fig(a.vic, b.vic), 'cap<-val': fig(a.val, b.val), 'ful<-vic': fig(f0.vic, f1.vic), 'ful<-val': fig(f0.val, f1.val) };
      console.log(`  capped 10 s window: ${JSON.stringify(seen)}; frames each second: ${JSON.stringify(perSecond)}; paused on cap's page: ${JSON.stringify(paused)}`);
      for (const k of ['cap<-vic', 'cap<-val']) {
        if (seen[k].fps < 3) throw new Error(`${k}: ${JSON.stringify(seen[k])} (paused: ${JSON.stringify(paused)})`);
        if (seen[k].width > 240) throw new Error(`${k}: ${JSON.stringify(seen[k])}, want the lowest spatial layer`);
      }
      // Not asserted: that neither is paused at the end. Under nftables'
      // token bucket the estimate overshoots and loses bursts (issue 25's
      // notes), which can pause the second video for a while; both kept
      // coming over the window (above).
      // A lower temporal layer: one video at 5 or 10 of the camera's 20
      // frames/s (<= 12 in a second; a full-rate one reads 17-23) for at
      // least 3 of the 10 seconds. Not over the whole window: the
      // estimate's overshoot under the policer gives both full rate for
      // seconds at a time (one run read 19.7 and 15.7 fps on average).
      const lowSeconds = perSecond.vic.filter((n, i) => Math.min(n, perSecond.val[i]) <= 12).length;
      if (lowSeconds < 3) throw new Error(`a lower frame rate in ${lowSeconds} of 10 s: ${JSON.stringify(seen)}; ${JSON.stringify(perSecond)}`);
      for (const k of ['ful<-vic', 'ful<-val']) {
        if (seen[k].fps < 15 || seen[k].width !== 960) throw new Error(`${k}: ${JSON.stringify(seen[k])}`);
      }
    } finally {
      lift();
    }
    for (const p of [vic, val, ...viewers]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });
}

module.exports = { svcTests };
