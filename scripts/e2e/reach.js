// Reach, end to end against one sfu on loopback: data channels between
// Chromium pages (through the web client) and an aiortc client (PyPI, not
// our code); ICE over TCP when UDP is blocked; TURN through Debian's coturn.
// Usage: node reach.js PATH_TO_SFU WORK_DIR
// Every wait is bounded; a watchdog ends the run if anything hangs.
'use strict';

const { chromium } = require('playwright-core');
const { spawn, execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');
const { sleep, until, getFrom, metric, fpsOver, runner, CHROMIUM_ARGS, openPage } = require('./lib');

const [BIN, DIR] = process.argv.slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/lib/chromium/chromium';
const PYTHON = process.env.SFU_E2E_PYTHON || path.join(__dirname, '../../target/e2e-venv/bin/python');
const PORT = Number(process.env.SFU_REACH_PORT || 18480);
const BASE = `http://127.0.0.1:${PORT}`;
const WATCHDOG_MS = 9 * 60 * 1000;

// The ICE-TCP test's second server listens on SERVER_IP (a veth end in
// this namespace); its client browser runs in namespace NS at CLIENT_IP,
// whose UDP to the server's RTC ports nftables drops.
const NS = 'sfu-reach-client';
const SERVER_IP = '10.77.0.1';
const CLIENT_IP = '10.77.0.2';
const TCP_PORT = PORT + 1;
const TCP_BASE = `http://${SERVER_IP}:${TCP_PORT}`;
const RTC_UDP = '45600-45699';
// Camera and microphone need a secure context: the second server's origin
// is not localhost, so Chromium is told to treat it as one.
const BROWSER_ARGS = [...CHROMIUM_ARGS, `--unsafely-treat-insecure-origin-as-secure=${TCP_BASE}`];

// coturn (Debian's) for the TURN test, on loopback, with use-auth-secret.
const TURN_PORT = 34780;
const TURN_SECRET = 'reach-test-secret';

const tests = runner();
const test = tests.test;
let browser;
const children = [];

const watchdog = setTimeout(() => {
  console.error(`watchdog: reach run exceeded ${WATCHDOG_MS / 1000}s`);
  finish(1);
}, WATCHDOG_MS);

function sh(cmd, args, quiet) {
  execFileSync(cmd, args, { stdio: quiet ? 'ignore' : 'inherit' });
}

function cleanupNetwork() {
  try { sh('nft', ['delete', 'table', 'inet', 'reach'], true); } catch { /* none */ }
  try { sh('ip', ['netns', 'del', NS], true); } catch { /* none */ }
}

// A second network namespace joined to this one by a veth pair: the ICE-TCP
// test's client browser lives there, so its UDP alone can be dropped.
function setupClientNamespace() {
  if (!process.env.SFU_IN_NETNS) {
    throw new Error('the ICE-TCP test adds a network namespace and nftables rules: run it through scripts/reach.sh, in a namespace of its own');
  }
  cleanupNetwork();
  sh('ip', ['netns', 'add', NS]);
  sh('ip', ['link', 'add', 'rv0', 'type', 'veth', 'peer', 'name', 'rv1', 'netns', NS]);
  sh('ip', ['addr', 'add', `${SERVER_IP}/24`, 'dev', 'rv0']);
  sh('ip', ['link', 'set', 'rv0', 'up']);
  for (const args of [['addr', 'add', `${CLIENT_IP}/24`, 'dev', 'rv1'], ['link', 'set', 'rv1', 'up'], ['link', 'set', 'lo', 'up']]) {
    sh('ip', ['netns', 'exec', NS, 'ip', ...args]);
  }
  const wrapper = path.join(DIR, 'chromium-in-ns');
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${NS} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  return wrapper;
}

// nftables drops all UDP between the client namespace and the server's RTC ports.
function blockUdp() {
  sh('nft', ['add', 'table', 'inet', 'reach']);
  sh('nft', ['add', 'chain', 'inet', 'reach', 'in', '{ type filter hook input priority 0; }']);
  sh('nft', ['add', 'chain', 'inet', 'reach', 'out', '{ type filter hook output priority 0; }']);
  sh('nft', ['add', 'rule', 'inet', 'reach', 'in', 'ip', 'saddr', CLIENT_IP, 'udp', 'dport', RTC_UDP, 'drop']);
  sh('nft', ['add', 'rule', 'inet', 'reach', 'out', 'ip', 'daddr', CLIENT_IP, 'udp', 'sport', RTC_UDP, 'drop']);
}

// The protocols of the page's selected ICE candidate pair (getStats).
const selectedPath = (p) => p.page.evaluate(async () => {
  const pc = window.sfu.pc();
  if (!pc) return null;
  const st = await pc.getStats();
  let pair = null;
  st.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = st.get(s.selectedCandidatePairId); });
  if (!pair) return null;
  const l = st.get(pair.localCandidateId);
  const r = st.get(pair.remoteCandidateId);
  return { local: l.protocol, remote: r.protocol, tcpType: l.tcpType || null, localType: l.candidateType, remoteType: r.candidateType, remotePort: r.port };
});

function finish(code) {
  clearTimeout(watchdog);
  cleanupNetwork();
  for (const p of children) if (p.exitCode === null) p.kill('SIGKILL');
  const done = () => {
    console.log(`\nreach: ${tests.passed} passed, ${tests.failed} failed`);
    process.exit(code || (tests.failed ? 1 : 0));
  };
  const closing = browser ? browser.close().catch(() => {}) : Promise.resolve();
  Promise.race([closing, sleep(5000)]).then(done);
}

const get = (p) => getFrom(BASE, p);
const page = (room, name, extra = '') => openPage(browser, `${BASE}/?room=${room}&name=${name}${extra}`, name);

// Starts `cmd args`, kept to be killed at the end; its output lines go to
// `onLine` (and its stderr to ours).
function start(cmd, args, onLine) {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  let buf = '';
  p.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (onLine) onLine(line);
    }
  });
  return p;
}

// The page sends `n` chat messages "`name` i" at about `rate` per second,
// keeping its channel's queue under 256 KiB.
const sendMany = (p, name, n, rate) => p.page.evaluate(async ([name, n, rate]) => {
  for (let i = 0; i < n; i++) {
    while (window.sfu.chatBuffered() > 256 * 1024) await new Promise((r) => setTimeout(r, 5));
    if (!window.sfu.sendChat(`${name} ${i}`)) throw new Error(`chat channel not open at ${i}`);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 10000 / rate));
  }
}, [name, n, rate]);

// What page `p` got from participant `from`: the texts, in order.
const textsFrom = async (p, from) => (await p.page.evaluate(() => window.sfu.chat()))
  .filter((m) => !m.self && m.from === from && m.bytes === null).map((m) => m.text);

// Throws unless `texts` holds exactly "`name` 0" … "`name` n-1", in order.
function inOrder(texts, name, n, where) {
  const want = Array.from({ length: n }, (_, i) => `${name} ${i}`);
  const got = texts.filter((t) => t.startsWith(`${name} `));
  if (got.length !== n) throw new Error(`${where}: ${got.length} of ${n} messages from ${name}`);
  for (let i = 0; i < n; i++) {
    if (got[i] !== want[i]) throw new Error(`${where}: message ${i} from ${name} is ${JSON.stringify(got[i])}`);
  }
}

async function main() {
  fs.mkdirSync(DIR, { recursive: true });
  const server = start(BIN, ['--http-listen', `127.0.0.1:${PORT}`, '--announced-ip', '127.0.0.1',
    '--rtc-listen-ip', '127.0.0.1', '--rtc-ports', '45500-45599', '--log', process.env.SFU_E2E_LOG || 'warn',
    '--ice-servers', `[{urls = ["turn:127.0.0.1:${TURN_PORT}?transport=udp"], secret = "${TURN_SECRET}"}]`]);
  server.stdout.pipe(process.stdout);
  await until('server up', async () => (await get('/healthz')).status === 200, 15000);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });

  await test('Chat: two Chromium pages and an aiortc client send 1,000 messages each; every other participant gets them complete and in order, a 200 KiB binary arrives intact, a late joiner gets what is sent after it joined, and the page shows the chat and a reaction', async () => {
    const N = 1000;
    const ready = path.join(DIR, 'py-ready');
    const go = path.join(DIR, 'go');
    for (const f of [ready, go]) fs.rmSync(f, { force: true });
    let pyDone = null;
    const py = start(PYTHON, [path.join(__dirname, 'dc_client.py'), `ws://127.0.0.1:${PORT}/ws`, 'chat', 'py',
      '--send', String(N), '--rate', '100', '--after-ready', ready, '--go-file', go, '--seconds', '35'], (line) => {
      const ev = JSON.parse(line);
      if (ev.event === 'done') pyDone = ev;
      else if (ev.event !== 'joined' && ev.event !== 'ready') console.log(`  [py] ${line}`);
    });
    const [ann, bob] = [await page('chat', 'ann'), await page('chat', 'bob')];
    await until('both pages and aiortc have their channels open', async () => fs.existsSync(ready)
      && (await ann.page.evaluate(() => window.sfu.chatReady())) && bob.page.evaluate(() => window.sfu.chatReady()), 30000);
    const ids = { ann: await ann.page.evaluate(() => window.sfu.id()), bob: await bob.page.evaluate(() => window.sfu.id()) };
    // Everyone's relayed channels are named before the count starts.
    await ann.page.evaluate(() => window.sfu.sendChat('hello from ann'));
    await bob.page.evaluate(() => window.sfu.sendChat('hello from bob'));
    await until('the pages see each other\'s hello', async () => (await textsFrom(bob, ids.ann)).includes('hello from ann')
      && (await textsFrom(ann, ids.bob)).includes('hello from bob'), 10000);
    fs.writeFileSync(go, '');
    const t0 = Date.now();
    await Promise.all([sendMany(ann, 'ann', N, 100), sendMany(bob, 'bob', N, 100)]);
    const senders = async (p) => {
      const log = await p.page.evaluate(() => window.sfu.chat());
      const byFrom = {};
      for (const m of log.filter((x) => !x.self)) (byFrom[m.from] = byFrom[m.from] || []).push(m.text);
      return byFrom;
    };
    let counts = {};
    await until('every page has 1,000 from each other sender', async () => {
      let all = true;
      for (const [p, me, others] of [[ann, 'ann', ['bob', 'py']], [bob, 'bob', ['ann', 'py']]]) {
        const texts = Object.values(await senders(p)).flat();
        for (const o of others) {
          const n = texts.filter((t) => t.startsWith(`${o} `)).length;
          counts[`${me}<-${o}`] = n;
          if (n < N && o === 'py') {
            const have = new Set(texts.filter((t) => t.startsWith('py ')).map((t) => Number(t.slice(3))));
            counts[`${me}-missing`] = [...Array(N).keys()].filter((i) => !have.has(i)).slice(0, 12).join(',');
          }
          if (n < N) all = false;
        }
      }
      return all;
    }, 60000, 500).catch(async (e) => {
      const drops = (await get('/metrics')).body.split('\n').filter((l) => l.startsWith('sfu_datachannel'));
      throw new Error(`${e.message}; counts ${JSON.stringify(counts)}; ${drops.join('; ')}`);
    });
    console.log(`  3 x ${N} messages relayed in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const [p, me] of [[ann, 'ann'], [bob, 'bob']]) {
      const by = await senders(p);
      for (const [who, texts] of Object.entries(by)) {
        for (const o of ['ann', 'bob', 'py']) if (o !== me && texts.some((t) => t.startsWith(`${o} `))) inOrder(texts, o, N, `${me} (from ${who})`);
      }
    }

    // A 200 KiB binary message from ann.
    const expected = await ann.page.evaluate(async () => {
      const b = new Uint8Array(200 * 1024);
      for (let i = 0; i < b.length; i++) b[i] = (i * 31 + 7) & 0xff;
      if (!window.sfu.sendChat(null, b)) throw new Error('not sent');
      const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b));
      return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
    });
    const got = await until('bob gets the 200 KiB binary', () => bob.page.evaluate(() => window.sfu.binary(0)), 15000);
    if (got.size !== 200 * 1024 || got.sha256 !== expected || got.from !== ids.ann) throw new Error(`binary: ${JSON.stringify(got)}`);

    // The page shows it: names, texts, the unread count; and a reaction
    // over the sender's tile for 3 s.
    const dom = await bob.page.evaluate(() => ({
      items: [...document.querySelectorAll('#chat-list li')].slice(-3).map((li) => li.querySelector('.who').textContent + ': ' + li.querySelector('.text').textContent),
      unread: document.getElementById('chat-unread').textContent,
      badge: !document.getElementById('chat-unread').hidden,
    }));
    if (!dom.badge || Number(dom.unread.replace('+', '')) < 99) throw new Error(`unread badge: ${JSON.stringify(dom)}`);
    if (!dom.items.some((t) => t === 'ann: [204800 bytes]')) throw new Error(`chat list: ${JSON.stringify(dom.items)}`);
    await bob.page.evaluate(() => window.sfu.openChat(true));
    if (await bob.page.evaluate(() => window.sfu.unread()) !== 0) throw new Error('opening the chat did not clear the badge');
    await bob.page.fill('#chat-input', 'typed by bob');
    await bob.page.press('#chat-input', 'Enter');
    await until('ann sees what bob typed (Enter sends)', async () => (await textsFrom(ann, ids.bob)).includes('typed by bob'), 5000);
    const shown = await ann.page.evaluate(() => [...document.querySelectorAll('#chat-list li')].map((li) => li.querySelector('.who').textContent + ': ' + li.querySelector('.text').textContent));
    if (!shown.includes('bob: typed by bob')) throw new Error(`ann's chat list: ${JSON.stringify(shown.slice(-3))}`);
    await ann.page.click('#reactions button:has-text("🎉")');
    await until('bob sees 🎉 over ann\'s tile', async () => (await bob.page.evaluate((id) => window.sfu.reactionOn(id), ids.ann)) === '🎉', 5000);
    await sleep(3500);
    if (await bob.page.evaluate((id) => window.sfu.reactionOn(id), ids.ann)) throw new Error('the reaction stayed over 3 s');

    // aiortc got both pages' 1,000 in order, and the binary.
    await until('aiortc finishes', async () => pyDone, 60000, 500);
    const pyGot = pyDone.from;
    inOrder((pyGot[ids.ann] || {}).texts || [], 'ann', N, 'aiortc');
    inOrder((pyGot[ids.bob] || {}).texts || [], 'bob', N, 'aiortc');
    const pyBin = ((pyGot[ids.ann] || {}).binaries || [])[0];
    if (!pyBin || pyBin.sha256 !== expected) throw new Error(`aiortc binary: ${JSON.stringify(pyBin)}`);

    // A late joiner gets the open channels and what is sent after.
    const cat = await page('chat', 'cat');
    await until('cat\'s channels open', () => cat.page.evaluate(() => window.sfu.chatReady()), 20000);
    await sleep(500);
    await Promise.all([sendMany(ann, 'late-ann', 10, 100), sendMany(bob, 'late-bob', 10, 100)]);
    await until('cat gets the 10 + 10 sent after it joined', async () => (await textsFrom(cat, ids.ann)).length >= 10
      && (await textsFrom(cat, ids.bob)).length >= 10, 10000);
    inOrder(await textsFrom(cat, ids.ann), 'late-ann', 10, 'cat');
    inOrder(await textsFrom(cat, ids.bob), 'late-bob', 10, 'cat');
    const m = (await get('/metrics')).body;
    console.log(`  metrics: in ${metric(m, 'sfu_datachannel_messages_in_total')}, out ${metric(m, 'sfu_datachannel_messages_out_total')}, dropped ${metric(m, 'sfu_datachannel_dropped_total')}`);
    for (const p of [ann, bob, cat]) await p.context.close();
  });

  await test('TURN: Debian\'s coturn on loopback with use-auth-secret; a page with iceTransportPolicy "relay" gets credentials minted from the secret in its join reply, reaches the server through coturn and decodes the others', async () => {
    const turnLog = [];
    const turn = start('turnserver', ['-n', '--listening-ip=127.0.0.1', `--listening-port=${TURN_PORT}`, '--relay-ip=127.0.0.1',
      '--min-port=49200', '--max-port=49299', '--use-auth-secret', `--static-auth-secret=${TURN_SECRET}`, '--realm=sfu.test',
      // coturn refuses to relay to 127.0.0.1 unless told: test only.
      '--allow-loopback-peers', '--no-tls', '--no-dtls', '--no-cli', '--fingerprint', '--log-file=stdout', '--simple-log', '-v'],
    (line) => turnLog.push(line));
    try {
      await sleep(1000);
      if (turn.exitCode !== null) throw new Error(`turnserver exited: ${turnLog.slice(-5).join(' | ')}`);
      const pubs = [];
      for (const n of ['ann', 'bob']) pubs.push(await page('turn', n));
      const cat = await page('turn', 'cat', '&relay=1');
      await until('cat connects through TURN', async () => (await cat.page.evaluate(() => window.sfu.connectionState())) === 'connected', 30000);
      const sel = await until('a selected pair', () => selectedPath(cat), 10000);
      console.log(`  relayed: selected pair ${JSON.stringify(sel)}`);
      if (sel.localType !== 'relay') throw new Error(`not through TURN: ${JSON.stringify(sel)}`);
      const fps = await until('cat decodes both at >= 15 fps through TURN', async () => {
        const s = await fpsOver(cat, 4);
        return Object.values(s).filter((e) => e.fps >= 15).length >= 2 ? s : null;
      }, 30000, 500);
      console.log(`  through TURN: ${JSON.stringify(fps)}`);
      const allocated = turnLog.filter((l) => /ALLOCATE processed, success/.test(l)).length;
      console.log(`  coturn: ${allocated} allocation(s) with the minted credentials`);
      if (allocated < 1) throw new Error(`coturn logged no successful allocation: ${turnLog.slice(-5).join(' | ')}`);
      for (const p of [...pubs, cat]) await p.context.close();
    } finally {
      turn.kill('SIGTERM');
    }
  });

  await test('ICE-TCP: with nftables dropping all UDP between a Chromium page and the server\'s RTC ports, the page joins over TCP (a passive candidate) and decodes the others at >= 15 fps; without the block the same page uses UDP', async () => {
    const wrapper = setupClientNamespace();
    const server2 = start(BIN, ['--http-listen', `${SERVER_IP}:${TCP_PORT}`, '--announced-ip', SERVER_IP,
      '--rtc-listen-ip', SERVER_IP, '--rtc-ports', RTC_UDP, '--rtc-tcp-port', '45700', '--log', process.env.SFU_E2E_LOG || 'warn']);
    server2.stdout.pipe(process.stdout);
    await until('second server up', async () => (await getFrom(TCP_BASE, '/healthz')).status === 200, 15000);
    const nsBrowser = await chromium.launch({ executablePath: wrapper, args: BROWSER_ARGS });
    try {
      blockUdp();
      const pubs = [];
      for (const n of ['ann', 'bob']) pubs.push(await openPage(browser, `${TCP_BASE}/?room=tcp&name=${n}`, n));
      const cat = await openPage(nsBrowser, `${TCP_BASE}/?room=tcp&name=cat`, 'cat');
      const decodes = async (p, n, fps) => {
        const s = await fpsOver(p, 4);
        if (process.env.SFU_E2E_DEBUG) {
          console.log(`  ${p.name}: ${JSON.stringify(s)}`);
          const m = (await getFrom(TCP_BASE, '/metrics')).body.split('\n').filter((l) => /^sfu_worker_(packets_out|rtp_forwarded|tcp_|send_errors|paused|consumers)/.test(l));
          console.log(m.join(' | '));
          console.log(JSON.stringify(await p.page.evaluate(async () => { const o = []; (await window.sfu.pc().getStats()).forEach((x) => { if (x.type === 'inbound-rtp') o.push([x.kind, x.packetsReceived, x.bytesReceived]); }); return o; })));
        }
        const good = Object.values(s).filter((e) => e.fps >= fps);
        return good.length >= n ? s : null;
      };
      await until('cat connects', async () => (await cat.page.evaluate(() => window.sfu.connectionState())) === 'connected', 30000);
      const over = await selectedPath(cat);
      console.log(`  UDP blocked: selected pair ${JSON.stringify(over)}`);
      if (!over || over.local !== 'tcp' || over.remote !== 'tcp' || over.remoteType !== 'host') throw new Error(`not over TCP: ${JSON.stringify(over)}`);
      const fps = await until('cat decodes both at >= 15 fps over TCP', () => decodes(cat, 2, 15), 30000, 500);
      console.log(`  over TCP: ${JSON.stringify(fps)}`);
      const m = (await getFrom(TCP_BASE, '/metrics')).body;
      if (metric(m, 'sfu_worker_tcp_connections') < 1) throw new Error('no ICE-TCP connection in /metrics');
      // The block lifted, the same page joins again: UDP wins.
      sh('nft', ['delete', 'table', 'inet', 'reach']);
      await cat.page.goto(`${TCP_BASE}/?room=tcp&name=cat`);
      await until('cat connects again', async () => (await cat.page.evaluate(() => window.sfu.connectionState())) === 'connected', 30000);
      const udp = await until('a selected pair', () => selectedPath(cat), 10000);
      console.log(`  UDP open: selected pair ${JSON.stringify(udp)}`);
      if (udp.local !== 'udp' || udp.remote !== 'udp') throw new Error(`UDP did not win: ${JSON.stringify(udp)}`);
      await until('cat decodes both over UDP', () => decodes(cat, 2, 15), 30000, 500);
      for (const p of [...pubs, cat]) await p.context.close();
    } finally {
      await nsBrowser.close().catch(() => {});
      server2.kill('SIGTERM');
    }
  });

  finish(0);
}

main().catch((e) => {
  console.error(e);
  finish(1);
});
