// End-to-end tests of how video gives way to a subscriber's tiles and
// bandwidth (called by run.js): tiles out of view paused on the server,
// simulcast and VP8 temporal layers under a capped downlink, and the
// "video paused" badge in a 6-participant room under a tighter cap.
'use strict';

const { sleep, until } = require('./lib');

async function layerTests({
  test, openParticipant, get, tiles, stats, mediaPort, capDownlink, expectReceiving, expectDecoding,
}) {
  await test('a 6-participant room with 4 visible tiles: each page decodes its visible tiles, and the hidden ones are paused on the server', async () => {
    const grid = [];
    for (const n of ['g1', 'g2', 'g3', 'g4', 'g5', 'g6']) grid.push(await openParticipant('e2e-grid', n));
    const paused = () => get('/metrics').then((r) => {
      const m = /^sfu_room_paused_consumers\{room="e2e-grid"[^}]*\} (\d+)$/m.exec(r.body);
      return m ? Number(m[1]) : -1;
    });
    for (const p of grid) {
      await until(`${p.name}: 5 tiles, 4 visible`, async () => (await tiles(p)).length === 5
        && (await p.page.evaluate(() => window.sfu.visibleTiles())).length === 4, 60000);
    }
    // Each page hides one participant's video: 6 consumers paused.
    await until('6 paused consumers in the room', async () => (await paused()) === 6, 20000)
      .catch(async () => { throw new Error(`paused consumers: ${await paused()}`); });
    for (const p of grid) {
      const visible = await p.page.evaluate(() => window.sfu.visibleTiles());
      const first = await until(`${p.name} decodes its 4 visible tiles`, async () => {
        const s = await stats(p);
        return visible.every((id) => s[id] && s[id].framesDecoded > 0) && s;
      }, 60000);
      // Every tile visible throughout keeps decoding within 5 s (a layer
      // switch for a new tile size waits for a keyframe; six browsers share
      // two cores), and no tile hidden throughout does. The speaker moves
      // tiles in and out of view meanwhile: those are not judged.
      const grew = (l, id) => l[id].framesDecoded > (first[id] ? first[id].framesDecoded : 0);
      const still = async () => {
        const now = await p.page.evaluate(() => window.sfu.visibleTiles());
        return visible.filter((id) => now.includes(id));
      };
      const later = await until(`${p.name}: its visible tiles keep decoding`, async () => {
        const l = await stats(p);
        return (await still()).every((id) => l[id] && grew(l, id)) && l;
      }, 5000, 500).catch(async () => stats(p));
      const shown = await still();
      const nowVisible = await p.page.evaluate(() => window.sfu.visibleTiles());
      for (const id of Object.keys(later)) {
        const hiddenThroughout = !visible.includes(id) && !nowVisible.includes(id);
        if ((shown.includes(id) && !grew(later, id)) || (hiddenThroughout && grew(later, id))) {
          throw new Error(`${p.name}: tile ${id} (${visible.includes(id) ? 'visible' : 'hidden'}) frames ${first[id] && first[id].framesDecoded} -> ${later[id].framesDecoded}`);
        }
      }
    }
    for (const p of grid) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await test('simulcast and temporal layers: with cat\'s downlink capped at 300 kbit/s and nobody muted, cat decodes both others at >= 7 fps with <= 2 s frozen, one at >= 15 fps, and bob is unaffected; lifted, cat is back at full size and rate within 15 s, and a small tile gets the small layer', async () => {
    if (process.env.SFU_IN_NETNS !== '1') {
      // nftables must only ever shape a namespace made for the run.
      console.log('  not run: needs the network namespace scripts/e2e.sh makes (root)');
      return;
    }
    const [ann, bob, cat] = [await openParticipant('e2e-sc', 'ann'), await openParticipant('e2e-sc', 'bob'),
      await openParticipant('e2e-sc', 'cat')];
    await expectReceiving(bob, ['ann', 'cat']);
    await expectReceiving(cat, ['ann', 'bob']);
    await expectReceiving(ann, ['bob', 'cat']);
    // Nobody is muted. At 300 kbit/s cat has no room for both others'
    // lowest layers at full frame rate (2 x ~110 kbit/s with headers)
    // besides their audio (2 x ~50): the server gives up frame rate
    // (VP8 temporal layers, the page sends L1T3) before it pauses a video.
    const annId = await ann.page.evaluate(() => window.sfu.id());
    const port = await mediaPort(cat);
    if (!port) throw new Error('no local port for cat');
    const byName = (s) => Object.fromEntries(Object.values(s).map((e) => [e.name, e]));
    const fig = (a, b, secs) => ({
      fps: +((b.framesDecoded - a.framesDecoded) / secs).toFixed(1), frozen: +(b.freezeS - a.freezeS).toFixed(2), width: b.frameWidth,
      freezes: b.freezes - a.freezes, lost: b.videoLost - a.videoLost, packets: b.videoPackets - a.videoPackets,
      plis: b.plis - a.plis, keyframes: b.keyframes - a.keyframes, nacks: b.nacks - a.nacks, rtx: b.retransmitted - a.retransmitted,
    });
    // 300 kbit/s = 37,500 bytes/s on every datagram to cat's port.
    const lift = capDownlink('sc', port, 37500);
    try {
      await sleep(15000);
      const [b0, c0] = [byName(await stats(bob)), byName(await stats(cat))];
      // The width cat decodes ann at, once a second.
      const widths = [];
      // The seconds in which cat's page showed a video paused.
      let pausedSeconds = 0;
      let prev = c0;
      for (let i = 0; i < 20; i++) {
        await sleep(1000);
        const now = byName(await stats(cat));
        widths.push(now.ann.frameWidth);
        if (Object.keys(await cat.page.evaluate(() => window.sfu.pausedTiles())).length) pausedSeconds++;
        if (process.env.SFU_E2E_TRACE) console.log(`  cat ${i + 1} s: ann ${JSON.stringify(fig(prev.ann, now.ann, 1))} bob ${JSON.stringify(fig(prev.bob, now.bob, 1))}`);
        prev = now;
      }
      const [b1, c1] = [byName(await stats(bob)), byName(await stats(cat))];
      const seen = {
        'bob<-ann': fig(b0.ann, b1.ann, 20), 'bob<-cat': fig(b0.cat, b1.cat, 20),
        'cat<-ann': fig(c0.ann, c1.ann, 20), 'cat<-bob': fig(c0.bob, c1.bob, 20),
      };
      const paused = await cat.page.evaluate(() => window.sfu.pausedTiles());
      console.log(`  capped 20 s window: ${JSON.stringify(seen)}; cat's widths of ann: ${widths.join(' ')}; a video paused in ${pausedSeconds} s; paused on cat's page now: ${JSON.stringify(paused)}`);
      for (const k of ['bob<-ann', 'bob<-cat']) {
        if (seen[k].fps < 18 || seen[k].frozen > 2 || seen[k].width < 640) throw new Error(`${k}: ${JSON.stringify(seen[k])}`);
      }
      // Issue 25's figures. The first video's T2 (~110 kbit/s), the
      // second's T1 (10 fps, ~65) and two Opus streams (~100) fill ~95 % of
      // what gets through the cap (the loss ceiling, bwe/loss_ceiling.rs):
      // the second video is on T1, or on T1 with T2's sync frames and back
      // after a try of T2 ran into the cap. A probe above the ceiling
      // empties the policer's bucket; a relief (router/allocation.rs
      // RELIEF) makes room for the resends meanwhile.
      if (pausedSeconds > 2) throw new Error(`a video paused on cat's page in ${pausedSeconds} of 20 s (now: ${JSON.stringify(paused)})`);
      for (const k of ['cat<-ann', 'cat<-bob']) {
        if (seen[k].fps < 7 || seen[k].frozen > 2) throw new Error(`${k}: ${JSON.stringify(seen[k])}`);
      }
      if (Math.max(seen['cat<-ann'].fps, seen['cat<-bob'].fps) < 15) throw new Error(`neither video at >= 15 fps: ${JSON.stringify(seen)}`);
      // A lower layer, but for a try of a higher one now and then.
      const full = widths.filter((w) => w >= 640).length;
      if (full > 4) throw new Error(`cat decodes ann at >= 640 px in ${full} of 20 s despite the cap`);
    } finally {
      lift();
    }
    const lifted = Date.now();
    // cat's stats every 500 ms; back once the last 2 s show both at
    // >= 640 px and >= 18 fps. Issue 25 asks for 15 s. Measured 9.6-10.7 s
    // in 10 runs: the next probe (failed probes back off up to 8 s,
    // bwe/probe.rs), a chain of 2x probes that carries 1.5 s of the loss
    // ceiling's rate beyond it (bwe/loss_ceiling.rs), then the step up at
    // once (allocator::upgrades_wait), a keyframe, and the 2 s this
    // measures over.
    const history = [{ t: Date.now(), s: byName(await stats(cat)) }];
    await until('cat decodes both at >= 640 px and >= 18 fps again', async () => {
      const now = { t: Date.now(), s: byName(await stats(cat)) };
      history.push(now);
      const then = history.filter((h) => now.t - h.t >= 2000).pop();
      return then && ['ann', 'bob'].every((n) => now.s[n] && then.s[n] && now.s[n].frameWidth >= 640
        && fig(then.s[n], now.s[n], (now.t - then.t) / 1000).fps >= 18);
    }, 15000, 500);
    console.log(`  cat back at >= 640 px and >= 18 fps ${((Date.now() - lifted) / 1000).toFixed(1)} s after the cap was lifted`);
    // cat shows ann small (150 px): video-size gets it the 320 px layer.
    await cat.page.evaluate((id) => {
      document.querySelector(`[data-participant="${id}"] video`).style.width = '150px';
      window.dispatchEvent(new Event('resize'));
    }, annId);
    await until('cat decodes ann at the 320 px layer for its 150 px tile', async () => {
      const s = (await stats(cat))[annId];
      return s && s.frameWidth > 0 && s.frameWidth < 640;
    }, 15000, 500);
    // bob shows ann small too: nobody needs her full layer, so her browser
    // is told to stop encoding it (after a 3 s hold), and to start again
    // when bob's tile grows.
    const small = (p, px) => p.page.evaluate(([id, w]) => {
      document.querySelector(`[data-participant="${id}"] video`).style.width = w;
      window.dispatchEvent(new Event('resize'));
    }, [annId, px]);
    await small(bob, '150px');
    const t0 = Date.now();
    await until('ann stops encoding her full layer', async () => {
      const l = await ann.page.evaluate(() => window.sfu.sendingLayers());
      return l.f === false && l.h === true;
    }, 10000, 250);
    console.log(`  ann's full layer stopped ${((Date.now() - t0) / 1000).toFixed(1)} s after the last large tile shrank`);
    await expectDecoding(bob, annId);
    await small(bob, '');
    await until('ann encodes her full layer again', async () => (await ann.page.evaluate(() => window.sfu.sendingLayers())).f === true, 3000, 100);
    await until('bob decodes ann at >= 640 px again', async () => ((await stats(bob))[annId] || {}).frameWidth >= 640, 15000, 500);
    for (const p of [ann, bob, cat]) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });

  await test('a 6-participant room under a 200 kbit/s cap: the videos the server pauses for the capped page show the name and "video paused: low bandwidth" instead of a frozen frame, and come back when the cap is lifted', async () => {
    if (process.env.SFU_IN_NETNS !== '1') {
      console.log('  not run: needs the network namespace scripts/e2e.sh makes (root)');
      return;
    }
    const room = [];
    for (const n of ['v1', 'v2', 'v3', 'v4', 'v5', 'v6']) room.push(await openParticipant('e2e-badge', n));
    const six = room[5];
    await until('v6 shows 5 tiles and decodes the visible ones', async () => {
      if ((await tiles(six)).length !== 5) return false;
      const visible = await six.page.evaluate(() => window.sfu.visibleTiles());
      const s = await stats(six);
      return visible.length > 0 && visible.every((id) => s[id] && s[id].framesDecoded > 0);
    }, 60000);
    const port = await mediaPort(six);
    if (!port) throw new Error('no local port for v6');
    // 200 kbit/s = 25,000 bytes/s to v6: less than the others' audio and
    // their videos' base layers together.
    const lift = capDownlink('vb', port, 25000);
    try {
      const paused = await until('v6 shows a paused video', async () => {
        const p = await six.page.evaluate(() => window.sfu.pausedTiles());
        return Object.keys(p).length > 0 && p;
      }, 40000, 500);
      // Let the pauses settle, then judge a 4 s window: a tile paused
      // throughout shows its name and the reason, its frames do not move,
      // and a tile with no badge is not one the server paused.
      await sleep(3000);
      const p0 = await six.page.evaluate(() => window.sfu.pausedTiles());
      const s0 = await stats(six);
      await sleep(4000);
      const p1 = await six.page.evaluate(() => window.sfu.pausedTiles());
      const s1 = await stats(six);
      const badges = {};
      for (const id of Object.keys(s1)) badges[id] = await six.page.evaluate((i) => window.sfu.badges(i), id);
      console.log(`  v6 paused: first ${JSON.stringify(paused)}; window ${JSON.stringify(Object.keys(p0))} -> ${JSON.stringify(Object.keys(p1))}; badges ${JSON.stringify(badges)}`);
      const throughout = Object.keys(p1).filter((id) => id in p0);
      if (throughout.length === 0) throw new Error('no video paused throughout the window');
      if (throughout.length === 5) throw new Error('every video paused: the first in order keeps its video');
      for (const id of throughout) {
        const name = s1[id].name;
        if (!p1[id].includes(name) || !p1[id].includes('video paused: low bandwidth')) throw new Error(`tile ${id}: note ${JSON.stringify(p1[id])}`);
        if (!badges[id].includes('video paused: low bandwidth')) throw new Error(`tile ${id}: badges ${badges[id]}`);
        const grew = s1[id].framesDecoded - s0[id].framesDecoded;
        if (grew > 2) throw new Error(`tile ${id} is marked paused but decoded ${grew} frames`);
      }
      for (const [id, b] of Object.entries(badges)) {
        if (!(id in p1) && b.includes('video paused')) throw new Error(`tile ${id} has the badge but is not paused`);
      }
    } finally {
      lift();
    }
    const lifted = Date.now();
    await until('v6 shows no paused video and decodes its visible tiles again', async () => {
      if (Object.keys(await six.page.evaluate(() => window.sfu.pausedTiles())).length) return false;
      const visible = await six.page.evaluate(() => window.sfu.visibleTiles());
      const a = await stats(six);
      await sleep(1000);
      const b = await stats(six);
      return visible.every((id) => a[id] && b[id] && b[id].framesDecoded > a[id].framesDecoded);
    }, 60000, 500);
    console.log(`  every video back ${((Date.now() - lifted) / 1000).toFixed(1)} s after the cap was lifted`);
    for (const p of room) await p.context.close();
    await until('sfu_rooms 0', async () => /^sfu_rooms 0$/m.test((await get('/metrics')).body), 40000);
  });
}

module.exports = { layerTests };
