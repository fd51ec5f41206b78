// End-to-end tests of sfu in real headless Chromium, driven through the real
// web client page. Usage: node run.js PATH_TO_SFU_BINARY
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
// Stock Firefox has no Playwright protocol; puppeteer-core drives it over
// WebDriver BiDi.
const puppeteer = require('puppeteer-core');
const { spawn, execFileSync } = require('child_process');

const BIN = process.argv[2];
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const PORT = Number(process.env.SFU_E2E_PORT || 18080);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 10 * 60 * 1000;

let server;
let browser;
let firefox;

const watchdog = setTimeout(() => {
  console.error(`watchdog: e2e run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function finish(code) {
  clearTimeout(watchdog);
  const done = () => {
    if (server && server.exitCode === null) server.kill('SIGKILL');
    console.log(`\ne2e: ${tests.passed} passed, ${tests.failed} failed`);
    process.exit(code || (tests.failed ? 1 : 0));
  };
  const closing = Promise.all([browser, firefox].filter(Boolean).map((b) => b.close().catch(() => {})));
  Promise.race([closing, new Promise((r) => setTimeout(r, 5000))]).then(done);
}

const { sleep, until, getFrom, fpsOver, steadyFps, runner, CHROMIUM_ARGS, openPage } = require('./lib');
const { svcTests } = require('./svc');
const { layerTests } = require('./layers');
const { viewerTests } = require('./viewers');

const get = (path) => getFrom(BASE, path);

const tests = runner();
const test = tests.test;

async function openParticipant(room, name, query = '') {
  return openPage(browser, `${BASE}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${query}`, name);
}

// Debian's Firefox ESR with fake media, driven over WebDriver BiDi, started
// on first use. `media.navigator.permission.fake` makes it gather ICE
// candidates when only `lo` exists; loopback candidates are off by default.
async function openFirefox(room, name, query = '') {
  if (!firefox) {
    firefox = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      headless: true,
      protocolTimeout: 60000,
      extraPrefsFirefox: {
        'media.navigator.streams.fake': true,
        'media.navigator.permission.disabled': true,
        'media.navigator.permission.fake': true,
        'media.peerconnection.ice.loopback': true,
        'media.peerconnection.ice.obfuscate_host_addresses': false,
        'media.autoplay.default': 0,
      },
    });
    console.log(`  firefox: ${await firefox.version()}`);
  }
  const context = await firefox.createBrowserContext();
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warn' || m.type() === 'warning') console.log(`  [${name} console] ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`  [${name} pageerror] ${e}`));
  await page.goto(`${BASE}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${query}`);
  return { name, page, context };
}

// A page with `init` run before the app (to simulate browser conditions).
async function openWith(init, arg, room, name) {
  const context = await browser.newContext();
  await context.addInitScript(init, arg);
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`  [${name} pageerror] ${e}`));
  await page.goto(`${BASE}/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  return { name, page, context };
}

const stats = (p) => p.page.evaluate(() => window.sfu.remoteStats());

// The local UDP port of page `p`'s selected candidate pair (0: none yet).
const mediaPort = (p) => p.page.evaluate(async () => {
  let port = 0;
  const s = await window.sfu.pc().getStats();
  s.forEach((x) => { if (x.type === 'candidate-pair' && x.nominated) port = s.get(x.localCandidateId).port; });
  return port;
});

// Polices every datagram to `port` at `bytesPerSec` (nftables table
// `table`, in the namespace made for the run); returns what lifts it.
function capDownlink(table, port, bytesPerSec) {
  const nft = (...a) => execFileSync('nft', a, { stdio: 'inherit' });
  nft('add', 'table', 'inet', table);
  nft('add', 'chain', 'inet', table, 'in', '{ type filter hook input priority 0; }');
  nft('add', 'rule', 'inet', table, 'in', 'udp', 'dport', String(port), 'limit', 'rate', 'over',
    String(bytesPerSec), 'bytes/second', 'drop');
  return () => nft('delete', 'table', 'inet', table);
}
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
  // Still flowing: every track grows within 5 s (a simulcast consumer's
  // first layer switches, as the publisher's browser starts its upper
  // layers, each wait for a keyframe).
  let later = first;
  const grown = (e, l) => l && l.framesDecoded > e.framesDecoded && l.audioSamples > e.audioSamples;
  const end = Date.now() + 5000;
  do {
    await sleep(500);
    later = await stats(p);
  } while (Date.now() < end && !Object.entries(first).every(([id, e]) => grown(e, later[id])));
  for (const [id, e] of Object.entries(first)) {
    if (!grown(e, later[id])) {
      throw new Error(`${p.name}: media from ${e.name} stopped (${JSON.stringify(e)} -> ${JSON.stringify(later[id])})`);
    }
  }
}

async function main() {
  if (!BIN) throw new Error('usage: node run.js PATH_TO_SFU');
  const extra = (process.env.SFU_E2E_SERVER_ARGS || '').split(' ').filter(Boolean);
  server = spawn(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45000-45099', '--log', process.env.SFU_E2E_LOG || 'info', ...extra],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverLog = '';
  const keep = (out) => (d) => { out.write(d); serverLog += d.toString().replace(/\x1b\[[0-9;]*m/g, ''); };
  server.stdout.on('data', keep(process.stdout));
  server.stderr.on('data', keep(process.stderr));
  server.on('exit', (code, sig) => { if (code !== 0 && sig !== 'SIGTERM') console.log(`server exited: ${code} ${sig}`); });
  await until('server /healthz', async () => (await get('/healthz')).status === 200, 15000);
  const want = process.env.SFU_E2E_EXPECT_BACKEND;
  if (want) {
    await test(`the server runs its workers on ${want}`, async () => {
      const m = /io_backend="?(\w+)/.exec(serverLog);
      if (!m || m[1] !== want) throw new Error(`server log says ${m ? m[1] : 'nothing'} (args ${extra.join(' ')})`);
    });
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
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

  await test('the connection-quality indicator shows a good network on loopback', async () => {
    // It is read every 2 s; a call's first seconds (three encoders starting
    // on two cores) can show one slow STUN round trip, so it must settle on
    // good, not start there.
    let last = null;
    const q = await until('alice\'s quality indicator to settle on good', async () => {
      const v = await alice.page.evaluate(() => window.sfu.quality());
      last = v;
      return v && v.rttMs !== null && v.level === 'good' && v;
    }, 15000).catch(() => { throw new Error(`indicator: ${JSON.stringify(last)}`); });
    if (q.lossPct > 1) throw new Error(`indicator: ${JSON.stringify(q)}`);
    const shown = await alice.page.evaluate(() => ({ hidden: document.getElementById('quality').hidden, text: document.getElementById('quality').textContent }));
    if (shown.hidden || shown.text !== 'Network: good') throw new Error(`shown: ${JSON.stringify(shown)}`);
  });

  await test('active speaker: with the others muted, the unmuted participant is the speaker on every page within 2 s', async () => {
    const everyone = [alice, bob, carol];
    const ids = await Promise.all(everyone.map((p) => p.page.evaluate(() => window.sfu.id())));
    for (const [speaker, i] of [[bob, 1], [carol, 2]]) {
      await Promise.all(everyone.map((p) => p.page.evaluate((m) => window.sfu.setMuted(m), p !== speaker)));
      const t0 = Date.now();
      let seen = [];
      await until(`${ids[i]} as the speaker on all three pages`, async () => {
        seen = await Promise.all(everyone.map((p) => p.page.evaluate(() => [window.sfu.speaker(), window.sfu.speakingTile()])));
        return seen.every(([s, tile]) => s === ids[i] && tile === ids[i]);
      }, 5000).catch(() => { throw new Error(`speaker/tile per page: ${JSON.stringify(seen)}, want ${ids[i]}`); });
      const took = Date.now() - t0;
      if (took > 2000) throw new Error(`took ${took} ms`);
    }
    await Promise.all(everyone.map((p) => p.page.evaluate(() => window.sfu.setMuted(false))));
  });

  await test('a receive-only client written from docs/signaling.md receives everyone\'s video and audio', async () => {
    const viewer = await browser.newContext();
    const page = await viewer.newPage();
    await page.goto(`${BASE}/style.css`);
    // One recvonly audio transceiver, as the protocol document recommends; it
    // never offers video, yet must be sent the others' video.
    const got = await page.evaluate(async ({ room }) => {
      const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      // Play what arrives, as any client would (Chromium decodes audio for a sink).
      pc.ontrack = (e) => {
        const el = document.createElement(e.track.kind === 'audio' ? 'audio' : 'video');
        el.autoplay = true; el.muted = e.track.kind === 'video';
        el.srcObject = new MediaStream([e.track]);
        document.body.appendChild(el);
        el.play().catch(() => {});
      };
      await pc.setLocalDescription(await pc.createOffer());
      const ws = new WebSocket(`ws://${location.host}/ws`);
      const errors = [];
      let chain = Promise.resolve();
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        chain = chain.then(async () => {
          if (m.type === 'answer') await pc.setRemoteDescription({ type: 'answer', sdp: m.sdp });
          if (m.type === 'update') {
            await pc.setRemoteDescription({ type: 'offer', sdp: m.sdp });
            await pc.setLocalDescription(await pc.createAnswer());
            ws.send(JSON.stringify({ type: 'answer', sdp: pc.localDescription.sdp }));
          }
          if (m.type === 'error') errors.push(m.code);
        });
      };
      await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
      ws.send(JSON.stringify({ type: 'join', room, name: 'viewer', sdp: pc.localDescription.sdp }));
      const end = Date.now() + 30000;
      let video = 0; let audio = 0; let streams = new Set();
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 500));
        video = 0; audio = 0; streams = new Set();
        const s = await pc.getStats();
        s.forEach((x) => {
          if (x.type !== 'inbound-rtp') return;
          if (x.kind === 'video' && x.framesDecoded > 0) { video++; }
          if (x.kind === 'audio' && x.totalSamplesReceived > 0) { audio++; }
        });
        if (video >= 2 && audio >= 2) break;
      }
      ws.close(); pc.close();
      return { video, audio, errors };
    }, { room });
    await viewer.close();
    if (got.video < 2 || got.audio < 2 || got.errors.length) throw new Error(`receive-only client got ${JSON.stringify(got)}`);
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

  await test('guests come and go: the m-sections of those who stay are recycled and media still flows', async () => {
    let sizes = [];
    for (let i = 0; i < 4; i++) {
      const guest = await openParticipant(room, `guest${i}`);
      await expectReceiving(alice, ['bob', 'dave', `guest${i}`]);
      sizes.push(await alice.page.evaluate(() => window.sfu.sections()));
      await guest.context.close();
      await until(`alice no longer shows guest${i}`, async () => !(await tiles(alice)).includes(`guest${i}`));
    }
    if (new Set(sizes).size !== 1) throw new Error(`alice's m-sections grew: ${sizes}`);
    await Promise.all([expectReceiving(alice, ['bob', 'dave']), expectReceiving(bob, ['alice', 'dave'])]);
  });

  await test('a client that cannot apply an update says so and gets it again at once', async () => {
    // Frank's browser fails the first server offer it is given.
    const frank = await openWith(() => {
      const orig = RTCPeerConnection.prototype.setRemoteDescription;
      window.__failedOffers = 0;
      RTCPeerConnection.prototype.setRemoteDescription = function (d) {
        if (d && d.type === 'offer' && window.__failedOffers === 0) {
          window.__failedOffers++;
          return Promise.reject(new DOMException('injected failure', 'InvalidAccessError'));
        }
        return orig.apply(this, arguments);
      };
    }, null, room, 'frank');
    const t0 = Date.now();
    await expectReceiving(frank, ['alice', 'bob', 'dave']);
    const took = Date.now() - t0;
    const failed = await frank.page.evaluate(() => window.__failedOffers);
    if (failed !== 1) throw new Error(`the injected failure did not happen (${failed})`);
    // Without update-failed the server would wait for its 10 s offer timeout.
    if (took > 9000) throw new Error(`frank waited ${took} ms: the failure was not reported`);
    await frank.context.close();
    await Promise.all([expectReceiving(alice, ['bob', 'dave']), expectReceiving(bob, ['alice', 'dave'])]);
  });

  await test('the share link leads into the room', async () => {
    const link = await alice.page.evaluate(() => window.sfu.shareLink());
    if (!link.includes(`room=${room}`)) throw new Error(`share link ${link}`);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(link);
    const value = await page.inputValue('#room');
    if (value !== room) throw new Error(`the link opened room ${JSON.stringify(value)}`);
    await page.fill('#name', 'gus');
    await page.click('#join-button');
    const gus = { name: 'gus', page, context: ctx };
    await expectReceiving(gus, ['alice', 'bob', 'dave']);
    await ctx.close();
  });

  await test('a page opened without a secure context says it needs HTTPS and joins to watch', async () => {
    const p = await openWith(() => {
      Object.defineProperty(window, 'isSecureContext', { value: false });
      Object.defineProperty(navigator, 'mediaDevices', { value: undefined });
    }, null, 'e2e-insecure', 'ivy');
    await until('ivy connected', async () => (await p.page.evaluate(() => window.sfu.connectionState())) === 'connected');
    const text = await p.page.evaluate(() => window.sfu.errorText());
    if (!/HTTPS/.test(text)) throw new Error(`banner: ${JSON.stringify(text)}`);
    await p.context.close();
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

  // A room of three for the client features: screen share (the client
  // offers), badges, levels, speaker view, the microphone picker, reconnecting.
  let sa, sb, sc, saId;
  const roomGauge = (room, name) => get('/metrics').then((r) => {
    const m = new RegExp(`^sfu_room_${name}\\{room="${room}"[^}]*\\} (\\d+)$`, 'm').exec(r.body);
    return m ? Number(m[1]) : -1;
  });
  // Waits until `p` decodes video of tile `id` and its frames still grow.
  async function expectDecoding(p, id, minWidth = 1) {
    const first = await until(`${p.name} decodes ${id}`, async () => {
      const s = await stats(p);
      return s[id] && s[id].framesDecoded > 0 && s[id].frameWidth >= minWidth && s[id];
    }, 30000);
    await until(`${p.name}: ${id} keeps decoding`, async () => {
      const s = await stats(p);
      return s[id] && s[id].framesDecoded > first.framesDecoded + 5;
    }, 10000);
    return first;
  }

  await test('screen share: ann shares mid-call with her own offer, bob and cat decode it as an extra tile, it stops, and sharing again reuses the m-section', async () => {
    sa = await openParticipant('e2e-share', 'ann');
    sb = await openParticipant('e2e-share', 'bob');
    sc = await openParticipant('e2e-share', 'cat');
    await Promise.all([expectReceiving(sa, ['bob', 'cat']), expectReceiving(sb, ['ann', 'cat']), expectReceiving(sc, ['ann', 'bob'])]);
    saId = await sa.page.evaluate(() => window.sfu.id());
    const before = await roomGauge('e2e-share', 'producers');
    // getDisplayMedia: Chromium's fake capture (1280x720) through the real button path.
    await sa.page.evaluate(() => window.sfu.startScreenShare());
    for (const p of [sb, sc]) {
      await until(`${p.name} shows ann's screen`, async () => (await tiles(p)).includes('ann (screen)'), 15000);
      const s = await expectDecoding(p, `${saId}-screen`, 640);
      console.log(`  ${p.name} decodes ann's screen at ${s.frameWidth} px`);
    }
    if ((await roomGauge('e2e-share', 'producers')) !== before + 1) throw new Error(`producers ${before} -> ${await roomGauge('e2e-share', 'producers')}`);
    // Cameras and microphones go on.
    const sbId = await sb.page.evaluate(() => window.sfu.id());
    await Promise.all([expectDecoding(sb, saId), expectDecoding(sc, saId), expectDecoding(sa, sbId)]);
    // Speaker view puts the share large.
    await sb.page.evaluate(() => window.sfu.setView('speaker'));
    const main = await sb.page.evaluate(() => window.sfu.mainTile());
    if (main !== `${saId}-screen`) throw new Error(`bob's large tile is ${main}`);
    await sb.page.evaluate(() => window.sfu.setView('grid'));
    // Stop: the tile goes, the producer is closed.
    const sections = await sb.page.evaluate(() => window.sfu.sections());
    await sa.page.evaluate(() => window.sfu.stopScreenShare());
    for (const p of [sb, sc]) {
      await until(`${p.name} no longer shows ann's screen`, async () => !(await tiles(p)).includes('ann (screen)'), 15000);
    }
    await until('the share\'s producer closed', async () => (await roomGauge('e2e-share', 'producers')) === before, 10000);
    // Again: ann's stopped m-section is recycled (hers), bob's closed one is too.
    await sa.page.evaluate(() => window.sfu.startScreenShare());
    for (const p of [sb, sc]) await expectDecoding(p, `${saId}-screen`, 640);
    const annSections = await sa.page.evaluate(() => window.sfu.pc().getTransceivers().length);
    const bobSections = await sb.page.evaluate(() => window.sfu.sections());
    if (bobSections !== sections) throw new Error(`bob's m-sections ${sections} -> ${bobSections}`);
    console.log(`  ann has ${annSections} transceivers after sharing twice`);
    await sa.page.evaluate(() => window.sfu.stopScreenShare());
    await until('bob no longer shows ann\'s screen', async () => !(await tiles(sb)).includes('ann (screen)'), 15000);
  });

  await test('mute and camera-off show as badges on the others\' pages, levels arrive, and the camera comes back', async () => {
    await until('bob gets levels for ann', async () => {
      const l = await sb.page.evaluate(() => window.sfu.levels());
      return l && typeof l[saId] === 'number';
    }, 5000);
    await sa.page.evaluate(() => window.sfu.setMuted(true));
    await sa.page.evaluate(() => window.sfu.setCameraOff(true));
    for (const p of [sb, sc]) {
      await until(`${p.name} shows ann muted with her camera off`, async () => {
        const b = await p.page.evaluate((id) => window.sfu.badges(id), saId);
        return b && b.includes('muted') && b.includes('camera off');
      }, 3000);
    }
    // No frames while the camera is off (not black frames).
    const a = await stats(sb);
    await sleep(1500);
    const b = await stats(sb);
    if (b[saId].framesDecoded - a[saId].framesDecoded > 3) throw new Error(`bob still decodes ann: ${a[saId].framesDecoded} -> ${b[saId].framesDecoded}`);
    await sa.page.evaluate(() => window.sfu.setCameraOff(false));
    await sa.page.evaluate(() => window.sfu.setMuted(false));
    await until('bob shows no badge for ann', async () => (await sb.page.evaluate((id) => window.sfu.badges(id), saId)) === '', 3000);
    await expectDecoding(sb, saId);
  });

  await test('the microphone picker switches the sent track and the others keep hearing', async () => {
    const d = await sa.page.evaluate(() => window.sfu.devices());
    const other = d.mics.find((m) => m !== d.mic);
    if (!other) throw new Error(`one microphone only: ${JSON.stringify(d)}`);
    const before = await sa.page.evaluate(() => window.sfu.pc().getSenders().find((s) => s.track && s.track.kind === 'audio').track.id);
    await sa.page.selectOption('#mic-select', other);
    await until('ann sends the other microphone', async () => {
      const now = await sa.page.evaluate(() => { const s = window.sfu.pc().getSenders().find((x) => x.track && x.track.kind === 'audio'); return s && s.track.id; });
      return now && now !== before;
    }, 5000);
    const first = await stats(sb);
    await until('bob keeps hearing ann', async () => (await stats(sb))[saId].audioSamples > first[saId].audioSamples + 4800, 5000);
  });

  await test('reconnect: cat\'s WebSocket drops; her page says it is reconnecting, rejoins, and everyone sees everyone again', async () => {
    await sc.page.evaluate(() => window.sfu.dropConnection());
    await until('cat says it is reconnecting', async () => /Reconnect/.test(await sc.page.evaluate(() => window.sfu.status())), 3000);
    await until('cat connected again', async () => (await sc.page.evaluate(() => window.sfu.status())) === 'Connected', 20000);
    await Promise.all([expectReceiving(sa, ['bob', 'cat']), expectReceiving(sb, ['ann', 'cat']), expectReceiving(sc, ['ann', 'bob'])]);
    for (const p of [sa, sb, sc]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await test('codecs: a VP9 publisher and an AV1 publisher (setCodecPreferences) are forwarded in their codecs and everyone decodes everyone', async () => {
    const vic = await openParticipant('e2e-codecs', 'vic', '&codec=vp9');
    const ava = await openParticipant('e2e-codecs', 'ava', '&codec=av1');
    const bea = await openParticipant('e2e-codecs', 'bea');
    await Promise.all([expectReceiving(vic, ['ava', 'bea']), expectReceiving(ava, ['bea', 'vic']), expectReceiving(bea, ['ava', 'vic'])]);
    const want = { vic: 'video/VP9', ava: 'video/AV1', bea: 'video/VP8' };
    for (const p of [vic, ava, bea]) {
      const s = await stats(p);
      for (const e of Object.values(s)) {
        if (e.codec !== want[e.name]) throw new Error(`${p.name} decodes ${e.name} in ${e.codec}, want ${want[e.name]}`);
      }
      console.log(`  ${p.name} decodes ${Object.values(s).map((e) => `${e.name} ${e.codec} ${e.frameWidth} px`).join(', ')}`);
    }
    // The AV1 dependency descriptor is negotiated with bea for ava's track.
    const sdp = await bea.page.evaluate(() => window.sfu.pc().remoteDescription.sdp);
    const av1 = sdp.split('m=video').find((m) => / AV1\/90000/.test(m));
    if (!av1 || !av1.includes('dependency-descriptor-rtp-header-extension')) throw new Error('no dependency descriptor offered with AV1');
    for (const p of [vic, ava, bea]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await svcTests({ test, openParticipant, stats, expectReceiving, mediaPort, capDownlink, get });

  // Firefox marks every m-section after the first bundle-only with port 0
  // (RFC 9143 §6): once taken as rejected, so Firefox published no video.
  let fox = {};
  await test('Firefox and Chromium in one room: two Firefox pages (simulcast and not) and two Chromium pages decode every other at >= 15 fps and hear it', async () => {
    fox = {
      cr1: await openParticipant('e2e-fox', 'cr1'),
      cr2: await openParticipant('e2e-fox', 'cr2'),
      ff1: await openFirefox('e2e-fox', 'ff1', '&simulcast=0'),
      ff2: await openFirefox('e2e-fox', 'ff2'),
    };
    const all = Object.values(fox);
    await Promise.all(all.map((p) => expectReceiving(p, all.filter((o) => o !== p).map((o) => o.name))));
    // Once the layers have climbed with the estimate after the joins.
    const seen = await steadyFps(all, 15);
    for (const [who, v] of Object.entries(seen)) {
      for (const e of Object.values(v)) {
        if (e.fps < 15) throw new Error(`${who} decodes ${e.name} at ${e.fps} fps`);
      }
    }
  });

  await test('a Chromium subscriber showing Firefox small gets its low simulcast layer', async () => {
    const { cr1, ff2 } = fox;
    const ffId = await ff2.page.evaluate(() => window.sfu.id());
    const width = (px) => cr1.page.evaluate(([id, w]) => {
      document.querySelector(`[data-participant="${id}"] video`).style.width = w;
      window.dispatchEvent(new Event('resize'));
    }, [ffId, px]);
    // Large first: its full layer reaches a Chromium page too.
    await width('800px');
    await until('cr1 decodes ff2 at >= 640 px in an 800 px tile', async () => ((await stats(cr1))[ffId] || {}).frameWidth >= 640, 20000, 500);
    await width('150px');
    await until('cr1 decodes ff2 at its low layer (< 640 px)', async () => {
      const s = (await stats(cr1))[ffId];
      return s && s.frameWidth > 0 && s.frameWidth < 640;
    }, 15000, 500);
    const s = await expectDecoding(cr1, ffId);
    console.log(`  cr1 decodes ff2's low layer at ${s.frameWidth} px`);
  });

  await test('a Firefox screen share (its own offer) reaches the Chromium pages', async () => {
    const { cr1, cr2, ff1 } = fox;
    const ffId = await ff1.page.evaluate(() => window.sfu.id());
    // Headless Firefox has no screen to capture: a canvas stream stands in
    // for getDisplayMedia's, through the same share path (client offer).
    await ff1.page.evaluate(() => {
      const c = document.createElement('canvas');
      c.width = 1280; c.height = 720;
      const g = c.getContext('2d');
      let n = 0;
      setInterval(() => { g.fillStyle = `hsl(${(n += 7) % 360},60%,50%)`; g.fillRect(0, 0, 1280, 720); g.fillStyle = '#fff'; g.fillRect(n % 1200, 300, 80, 80); }, 66);
      window.__share = 'pending';
      window.sfu.startScreenShare(c.captureStream(15)).then(() => { window.__share = 'ok'; }, (e) => { window.__share = String(e); });
    });
    await until('ff1\'s share negotiated', async () => {
      const r = await ff1.page.evaluate(() => window.__share);
      if (r !== 'ok' && r !== 'pending') throw new Error(`ff1's share failed: ${r}`);
      return r === 'ok';
    }, 20000).catch(async (e) => {
      const why = await ff1.page.evaluate(() => ({ banner: window.sfu.errorText(), signaling: window.sfu.pc().signalingState, local: window.sfu.pc().localDescription.sdp.slice(-1500) }));
      throw new Error(`${e.message}: ${JSON.stringify(why)}`);
    });
    for (const p of [cr1, cr2]) {
      await until(`${p.name} shows ff1's screen`, async () => (await tiles(p)).includes('ff1 (screen)'), 20000);
      const s = await expectDecoding(p, `${ffId}-screen`, 640);
      console.log(`  ${p.name} decodes ff1's screen at ${s.frameWidth} px`);
    }
    await ff1.page.evaluate(() => window.sfu.stopScreenShare());
    for (const p of [cr1, cr2]) {
      await until(`${p.name} no longer shows ff1's screen`, async () => !(await tiles(p)).includes('ff1 (screen)'), 15000);
    }
    for (const p of Object.values(fox)) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await layerTests({
    test, openParticipant, get, tiles, stats, mediaPort, capDownlink, expectReceiving, expectDecoding,
  });

  await viewerTests({
    test, browser, BIN, PORT, stats, expectReceiving,
  });

  await test('SIGTERM shuts the server down cleanly', async () => {
    const exited = new Promise((r) => server.on('exit', (code) => r(code)));
    server.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(15000).then(() => 'timeout')]);
    if (code !== 0) throw new Error(`server exit: ${code}`);
  });
}

main().then(() => finish(0), (e) => { if (!tests.failed) { tests.failed++; console.log(`FAIL setup: ${e && e.stack ? e.stack : e}`); } finish(1); });
