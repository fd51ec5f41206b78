// sfu web client: joins a room over /ws, publishes camera and microphone
// (and a screen share on demand), and shows one tile per remote participant
// and per screen share. Protocol: docs/signaling.md.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  ws: null,
  pc: null,
  local: null,
  myId: null,
  room: null,
  name: null,
  queue: Promise.resolve(),
  tiles: new Map(), // msid stream id (p7, p7-screen) -> { el, video, audio, stream, name }
  people: new Map(), // participant id -> { id, name, audio_muted, video_off, screen }
  pausedVideo: new Map(), // msid stream id -> why the server paused its video (`video-paused`)
  viewers: 0, // viewers in the room (`participants`, `deltas`)
  recent: [], // participant ids, the latest dominant speaker first
  levels: {}, // participant id -> dBov, from `levels`
  view: 'grid', // or 'speaker': the speaker (or a screen share) large
  screen: null, // { stream, track, transceiver } while sharing
  offerJob: null, // { change, screenMids, resolve, reject } while our own offer is under way
  senders: {}, // kind -> RTCRtpSender of the camera and microphone
  videoOff: false,
  reconnect: { attempt: 0, timer: null },
  // The node this page's session is on (its base URL; this page's own
  // origin until a redirect), and the cluster's nodes to reconnect to.
  base: location.origin,
  nodes: [],
  audioBlocked: false,
  quality: null, // { level, rttMs, lossPct, outKbps } from getStats, every 2 s
  qualityTimer: null,
  qualityPrev: null,
};

// The connection-quality indicator: round-trip time of the selected
// candidate pair, the share of incoming packets lost in the last 2 s, and the
// browser's estimate of what it may send.
async function updateQuality() {
  const pc = state.pc;
  if (!pc || pc.connectionState !== 'connected') return;
  let rtt = null; let out = null; let lost = 0; let received = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated) {
      if (s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime * 1000;
      if (s.availableOutgoingBitrate) out = s.availableOutgoingBitrate / 1000;
    }
    if (s.type === 'inbound-rtp') { lost += s.packetsLost || 0; received += s.packetsReceived || 0; }
  });
  const prev = state.qualityPrev || { lost: 0, received: 0 };
  state.qualityPrev = { lost, received };
  const dl = Math.max(0, lost - prev.lost);
  const dr = Math.max(0, received - prev.received);
  const lossPct = dl + dr > 0 ? (100 * dl) / (dl + dr) : 0;
  const level = lossPct < 2 && (rtt === null || rtt < 150) ? 'good'
    : lossPct < 8 && (rtt === null || rtt < 400) ? 'fair' : 'poor';
  state.quality = { level, rttMs: rtt === null ? null : Math.round(rtt), lossPct: +lossPct.toFixed(1), outKbps: out === null ? null : Math.round(out) };
  const q = $('quality');
  q.hidden = false;
  q.dataset.level = level;
  q.textContent = `Network: ${level}`;
  q.title = `round trip ${state.quality.rttMs ?? '?'} ms · ${state.quality.lossPct} % of incoming packets lost · may send ${state.quality.outKbps ?? '?'} kbit/s`;
}

function setStatus(kind, text) {
  $('status').dataset.state = kind;
  $('status-text').textContent = text;
}

function showError(text) {
  $('banner-text').textContent = text;
  $('banner').hidden = false;
}

$('banner-close').onclick = () => { $('banner').hidden = true; };

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

function updateEmptyHint() {
  $('empty-hint').hidden = state.tiles.size > 0;
  layoutTiles();
}

// At most MAX_TILES remote tiles are shown (?tiles=N, default 4): screen
// shares first, then the last speakers (most recent first), then in order of
// arrival. The server is told whose video is hidden, and pauses it for us.
// In speaker view the first of them is shown large.
const MAX_TILES = Math.max(1, Number(new URLSearchParams(location.search).get('tiles')) || 4);
function rankedTiles() {
  const ids = [...state.tiles.keys()];
  const screens = ids.filter((id) => id.endsWith('-screen'));
  const speakers = state.recent.filter((id) => state.tiles.has(id));
  return [...new Set([...screens, ...speakers, ...ids])];
}

function layoutTiles() {
  const ids = [...state.tiles.keys()];
  const ranked = rankedTiles();
  const visible = new Set(ranked.slice(0, MAX_TILES));
  const main = state.view === 'speaker' ? ranked[0] : null;
  $('grid').classList.toggle('speaker-view', state.view === 'speaker');
  for (const [id, t] of state.tiles) {
    t.el.hidden = !visible.has(id);
    t.el.classList.toggle('main', id === main);
    // The large tile comes first.
    if (id === main && $('grid').firstChild !== t.el) $('grid').prepend(t.el);
  }
  const hidden = ids.filter((id) => !visible.has(id)).sort();
  const key = hidden.join(',');
  if (key !== state.hiddenSent && state.myId) {
    state.hiddenSent = key;
    send({ type: 'video-hidden', ids: hidden });
  }
  sendVideoSizes();
}

// The width (device pixels) each shown remote video has, so the server
// forwards no larger simulcast layer than covers it. Sent when a width
// changes by more than 10 %.
function sendVideoSizes() {
  if (!state.myId) return;
  const widths = {};
  for (const [id, t] of state.tiles) {
    if (t.el.hidden) continue;
    const w = Math.round((t.video.clientWidth || t.el.clientWidth) * (window.devicePixelRatio || 1));
    if (w > 0) widths[id] = w;
  }
  const last = state.widthsSent || {};
  const ids = new Set([...Object.keys(widths), ...Object.keys(last)]);
  const changed = [...ids].some((id) => !widths[id] || !last[id] || Math.abs(widths[id] - last[id]) > last[id] / 10);
  if (!changed) return;
  state.widthsSent = widths;
  send({ type: 'video-size', widths });
}
window.addEventListener('resize', () => {
  clearTimeout(state.resizeTimer);
  state.resizeTimer = setTimeout(sendVideoSizes, 300);
});

function ensureTile(id, name) {
  let t = state.tiles.get(id);
  if (!t) {
    const el = document.createElement('figure');
    el.className = id.endsWith('-screen') ? 'tile remote screen' : 'tile remote';
    el.dataset.participant = id;
    const ph = document.createElement('div');
    ph.className = 'placeholder';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays through the <audio> element
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const cap = document.createElement('figcaption');
    const nm = document.createElement('span');
    nm.className = 'name';
    const badges = document.createElement('span');
    badges.className = 'badges';
    const level = document.createElement('span');
    level.className = 'level';
    cap.append(level, nm, badges);
    const paused = document.createElement('div');
    paused.className = 'paused-note';
    paused.hidden = true;
    el.append(ph, paused, video, audio, cap);
    $('grid').appendChild(el);
    t = { el, video, audio, stream: null, name: name || '', nameEl: nm, ph, badgesEl: badges, levelEl: level, pausedEl: paused };
    state.tiles.set(id, t);
  }
  if (name) {
    t.name = name;
    t.nameEl.textContent = name;
    t.ph.textContent = initials(name);
  }
  updateEmptyHint();
  return t;
}

function removeTile(id) {
  const t = state.tiles.get(id);
  if (!t) return;
  t.video.srcObject = null;
  t.audio.srcObject = null;
  t.el.remove();
  state.tiles.delete(id);
  state.pausedVideo.delete(id);
  updateEmptyHint();
}

// Tiles for everyone in the roster but us, and the viewer count.
function renderRoster() {
  const present = new Set();
  for (const p of state.people.values()) {
    if (p.id === state.myId) continue;
    present.add(p.id);
    showBadges(ensureTile(p.id, p.name), p);
    if (p.screen) {
      present.add(p.id + '-screen');
      ensureTile(p.id + '-screen', p.name + ' (screen)');
    }
  }
  for (const id of [...state.tiles.keys()]) if (!present.has(id)) removeTile(id);
  const v = state.viewers || 0;
  $('viewers').hidden = v === 0;
  $('viewers').textContent = v === 1 ? '1 viewer' : v.toLocaleString('en') + ' viewers';
  layoutTiles();
}

// Badges from `participants`: a muted microphone, a camera turned off
// (the tile shows the initials instead of a frozen frame).
function showBadges(t, p) {
  const badges = [];
  if (p.audio_muted) badges.push('muted');
  if (p.video_off) badges.push('camera off');
  t.badgesEl.textContent = badges.join(' · ');
  t.el.classList.toggle('video-off', !!p.video_off);
  t.el.classList.toggle('audio-muted', !!p.audio_muted);
  showPaused(t);
}

// A video the server paused for this page's bandwidth (`video-paused`):
// the name and why, in place of a frozen frame, until `video-resumed`.
const PAUSED_TEXT = { 'low-bandwidth': 'video paused: low bandwidth' };
function showPaused(t) {
  const id = t.el.dataset.participant;
  const reason = state.pausedVideo.get(id);
  const text = reason ? (PAUSED_TEXT[reason] || 'video paused') : '';
  t.el.classList.toggle('video-paused', !!reason);
  t.pausedEl.textContent = reason && t.name ? `${t.name}\n${text}` : text;
  t.pausedEl.hidden = !reason;
  const other = t.badgesEl.textContent.split(' · ').filter((b) => b && !b.startsWith('video paused'));
  if (reason) other.push(text);
  t.badgesEl.textContent = other.join(' · ');
}

// The audio level meter of a tile: dBov (-127 silence … 0 loudest).
function showLevel(el, dbov) {
  const v = Math.max(0, Math.min(1, (dbov + 60) / 50));
  el.style.setProperty('--level', v.toFixed(2));
}

function playAudio(t) {
  t.audio.play().then(() => {}, () => {
    state.audioBlocked = true;
    $('enable-sound').hidden = false;
  });
}

$('enable-sound').onclick = () => {
  for (const t of state.tiles.values()) t.audio.play().catch(() => {});
  $('enable-sound').hidden = true;
};

function attachStream(stream) {
  const t = ensureTile(stream.id, null);
  if (t.stream !== stream) {
    t.stream = stream;
    t.video.srcObject = stream;
    t.audio.srcObject = stream;
  }
  const refresh = () => t.el.classList.toggle('has-video', stream.getVideoTracks().some((v) => v.readyState === 'live'));
  stream.onaddtrack = refresh;
  stream.onremovetrack = refresh;
  refresh();
  playAudio(t);
}

// getUserMedia exists only in a secure context: HTTPS, or http://localhost.
const SECURE = window.isSecureContext && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
const INSECURE_TEXT = 'Camera and microphone need a secure page: open this server over HTTPS '
  + '(start it with --tls-cert and --tls-key) or from localhost. You can still join to watch and listen.';

// `?codec=vp9|av1|h264` puts that video codec first (setCodecPreferences);
// the server forwards the client's first. VP9 and AV1 go as one stream
// (with `&svc=`, a layered one).
const CODEC = (new URLSearchParams(location.search).get('codec') || '').toLowerCase();
// `?role=viewer`: watch mode. No camera or microphone is asked for; the
// server lists this page in no roster, only in the viewer count.
const VIEWER = new URLSearchParams(location.search).get('role') === 'viewer';
// Read once: the address bar is rewritten to the bare share link on join.
const TOKEN = new URLSearchParams(location.search).get('token');
// `?relay=1`: media only through the TURN servers the server names
// (iceTransportPolicy "relay"), to hide this client's addresses or to test.
const RELAY = new URLSearchParams(location.search).get('relay') === '1';
const SIMULCAST = new URLSearchParams(location.search).get('simulcast') !== '0'
  && !['vp9', 'av1'].includes(CODEC);

function preferCodec(transceiver) {
  if (!CODEC || !window.RTCRtpSender || !RTCRtpSender.getCapabilities || !transceiver.setCodecPreferences) return;
  const caps = RTCRtpSender.getCapabilities('video').codecs;
  const want = caps.filter((c) => c.mimeType.toLowerCase() === 'video/' + CODEC
    && !/profile-id=[1-9]|profile=[1-9]|packetization-mode=0/.test(c.sdpFmtpLine || ''));
  if (want.length === 0) { showError(`This browser cannot send ${CODEC}; using its default codec.`); return; }
  transceiver.setCodecPreferences([...want, ...caps.filter((c) => !want.includes(c))]);
}
// The simulcast layers (RFC 8853) for a camera track, lowest first, each
// capped so the layers' rates stay apart (bit/s). As many as Chromium sends
// for the capture size (3 from 960×540, 2 from 480×270), so that the top
// layer is the full picture; none below that.
function simulcastLayers(track) {
  const s = track.getSettings ? track.getSettings() : {};
  const px = (s.width || 0) * (s.height || 0);
  if (px >= 960 * 540) {
    return [
      { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 100000 },
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
    ];
  }
  if (px >= 480 * 270) {
    return [
      { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 100000 },
      { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1200000 },
    ];
  }
  return null;
}

// VP8 simulcast layers each with three temporal layers (`L1T3`,
// W3C webrtc-svc): a subscriber short of bandwidth gets a lower frame rate
// before it loses a video. Without it (a browser that refuses the mode)
// the same layers go without.
const TEMPORAL = (!CODEC || CODEC === 'vp8')
  && new URLSearchParams(location.search).get('temporal') !== '0';
// `&svc=L3T3_KEY` (a W3C webrtc-svc scalability mode) with `&codec=vp9`:
// one stream with spatial and temporal layers; the server forwards each
// subscriber the layers its tile and bandwidth take.
const SVC = ['vp9', 'av1'].includes(CODEC) ? new URLSearchParams(location.search).get('svc') : null;
function addTransceiverLayered(pc, track, init) {
  if (SVC && track.kind === 'video') {
    try {
      return pc.addTransceiver(track, { ...init, sendEncodings: [{ scalabilityMode: SVC }] });
    } catch (e) {
      console.warn(`no ${SVC}:`, e);
    }
  }
  if (TEMPORAL && init.sendEncodings) {
    try {
      return pc.addTransceiver(track, {
        ...init,
        sendEncodings: init.sendEncodings.map((e) => ({ ...e, scalabilityMode: 'L1T3' })),
      });
    } catch (e) {
      console.warn('no temporal layers:', e);
    }
  }
  return pc.addTransceiver(track, init);
}

// The address that leads others into `room` (they choose their own name).
function shareLink(room) {
  return location.origin + location.pathname + '?room=' + encodeURIComponent(room);
}

// Where an encoder publishes into `room`: WHIP on this server, RTMP when
// the server listens for it (GET /ingest says on which port).
function showBroadcastUrls(room) {
  const r = encodeURIComponent(room);
  $('whip-url').textContent = location.origin + '/whip/' + r;
  fetch('/ingest').then((res) => res.json()).then((info) => {
    $('whip-token-hint').hidden = !info.auth;
    $('rtmp-key-hint').hidden = !info.auth;
    if (!info.rtmp_port) return;
    const host = location.hostname.includes(':') ? '[' + location.hostname + ']' : location.hostname;
    $('rtmp-url').textContent = 'rtmp://' + host + ':' + info.rtmp_port + '/live/' + r;
    $('rtmp-row').hidden = false;
  }).catch(() => {});
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

// 30 frames/s where the camera can: with three temporal layers (L1T3) a
// subscriber short of bandwidth still gets 15 or 7.5. With `&svc=`,
// 960×540: an encoder makes no spatial layer under 240 px on the long
// side (libwebrtc), so three layers (240, 480, 960) need that much.
const VIDEO = SVC
  ? { width: 960, height: 540, frameRate: { ideal: 30 } }
  : { width: 640, height: 480, frameRate: { ideal: 30 } };

async function getMedia() {
  if (VIEWER) return new MediaStream();
  if (!SECURE) {
    showError(INSECURE_TEXT);
    return new MediaStream();
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: VIDEO });
  } catch (e) {
    try {
      const s = await navigator.mediaDevices.getUserMedia({ audio: true });
      showError('Camera unavailable (' + e.name + '): joining with microphone only.');
      return s;
    } catch (e2) {
      showError('Camera and microphone unavailable (' + e2.name + '): joining to watch and listen only.');
      return new MediaStream();
    }
  }
}

async function handle(msg) {
  switch (msg.type) {
    case 'answer': {
      state.myId = msg.id;
      // The join offer is applied only now, with the STUN/TURN servers the
      // reply names: ICE gathering starts here, relay candidates included.
      const pc = state.pc;
      pc.setConfiguration(Object.assign(pc.getConfiguration(), {
        iceServers: msg.ice_servers || [],
        iceTransportPolicy: RELAY ? 'relay' : 'all',
      }));
      await pc.setLocalDescription(state.offer);
      await pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      if (state.reconnect.attempt > 0) {
        state.reconnect.attempt = 0;
        $('banner').hidden = true;
      }
      sendMediaState();
      break;
    }
    case 'data-channel':
      Chat.named(msg.id, msg.from);
      break;
    case 'offer-granted': {
      // No update of the server's crosses ours: it sends none until our offer.
      const pc = state.pc;
      const job = state.offerJob;
      try {
        if (job) await job.change(pc);
        await pc.setLocalDescription(await pc.createOffer());
      } catch (e) {
        console.warn('could not make an offer', e);
        if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
        // An offer with no change gives the turn back.
        await pc.setLocalDescription(await pc.createOffer());
      }
      send({ type: 'offer', sdp: pc.localDescription.sdp, screen: job ? job.screenMids() : [] });
      break;
    }
    case 'offer-answer': {
      await state.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
      const job = state.offerJob;
      state.offerJob = null;
      if (job) job.resolve();
      break;
    }
    case 'source-layers': {
      // Simulcast encodings nobody receives: stop encoding them, until
      // someone does again.
      const tr = state.pc && state.pc.getTransceivers().find((t) => t.mid === msg.mid);
      if (!tr || !tr.sender) break;
      const params = tr.sender.getParameters();
      let changed = false;
      for (const e of params.encodings || []) {
        if (e.rid && e.rid in msg.active && e.active !== msg.active[e.rid]) {
          e.active = msg.active[e.rid];
          changed = true;
        }
      }
      if (changed) await tr.sender.setParameters(params).catch((e) => console.warn('setParameters', e));
      break;
    }
    case 'video-paused':
      state.pausedVideo.set(msg.id, msg.reason);
      showPaused(ensureTile(msg.id, null));
      break;
    case 'video-resumed': {
      state.pausedVideo.delete(msg.id);
      const t = state.tiles.get(msg.id);
      if (t) showPaused(t);
      break;
    }
    case 'levels':
      // Those left out are silent.
      state.levels = msg.levels;
      for (const [id, t] of state.tiles) if (!id.endsWith('-screen')) showLevel(t.levelEl, msg.levels[id] ?? -127);
      showLevel($('self-level'), msg.levels[state.myId] ?? -127);
      break;
    case 'update': {
      // The server offers; a failure is reported so it can send the state again.
      const pc = state.pc;
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
      } catch (e) {
        console.warn('could not apply an update', e);
        if (pc.signalingState === 'have-remote-offer') {
          await pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
        }
        send({ type: 'update-failed', message: String(e).slice(0, 500) });
        break;
      }
      send({ type: 'answer', sdp: pc.localDescription.sdp });
      break;
    }
    // The roster: one snapshot at join, then deltas (upserts by id;
    // an unknown id leaving is ignored).
    case 'participants':
      state.people = new Map(msg.participants.map((p) => [p.id, p]));
      state.viewers = msg.viewers || 0;
      renderRoster();
      break;
    case 'deltas':
      for (const e of msg.events) {
        if (e.type === 'participant-joined' || e.type === 'participant-updated') state.people.set(e.participant.id, e.participant);
        else if (e.type === 'participant-left') state.people.delete(e.id);
        else if (e.type === 'viewers') state.viewers = e.count;
      }
      renderRoster();
      break;
    case 'recording':
      // The server records this room: say so while it does.
      state.recording = !!msg.active;
      $('recording').hidden = !state.recording;
      break;
    case 'speaker':
      state.speaker = msg.id;
      state.recent = [msg.id, ...state.recent.filter((id) => id !== msg.id)];
      for (const [id, t] of state.tiles) t.el.classList.toggle('speaking', id === msg.id);
      $('tile-self').classList.toggle('speaking', msg.id === state.myId);
      layoutTiles();
      break;
    case 'left':
      break;
    case 'redirect':
      // This node is full: join on the one it names, at once.
      if (/^https?:\/\//.test(msg.url)) {
        state.base = msg.url.replace(/\/+$/, '');
        closeSession();
        connect().catch((e) => scheduleReconnect('Could not join on another node: ' + e));
      }
      break;
    case 'error': {
      // update-timeout is followed by a fresh update: nothing to show.
      if (msg.code === 'update-timeout') { console.warn(msg.message); break; }
      // Our own offer was not taken: roll it back; the session is unchanged.
      const job = state.offerJob;
      if (job && ['offer-refused', 'offer-timeout', 'offer-not-granted', 'too-many-tracks'].concat(
        msg.code.startsWith('sdp-') ? [msg.code] : []).includes(msg.code)) {
        state.offerJob = null;
        if (state.pc && state.pc.signalingState === 'have-local-offer') {
          await state.pc.setLocalDescription({ type: 'rollback' }).catch(() => {});
        }
        job.reject(new Error(msg.message));
        showError(msg.message + ' [' + msg.code + ']');
        break;
      }
      showError(msg.message + ' [' + msg.code + ']');
      // The session is gone: join again (after a pause) with the same media.
      const lost = ['transport-closed', 'room-failed', 'negotiation-failed', 'server-shutdown', 'idle-timeout'].includes(msg.code);
      if (lost && state.myId) { scheduleReconnect(msg.message); break; }
      if (!state.myId && state.reconnect.attempt > 0) { scheduleReconnect(msg.message); break; }
      if (!state.myId) teardown(false);
      break;
    }
    default:
      console.warn('unknown message', msg);
  }
}

async function join(room, name) {
  $('banner').hidden = true;
  $('join-button').disabled = true;
  state.room = room;
  state.name = name;
  setStatus('connecting', 'Connecting…');
  state.local = await getMedia();
  if (VIEWER) {
    // Watch mode: no self tile, nothing to mute, share or choose.
    $('tile-self').hidden = true;
    for (const id of ['toggle-audio', 'toggle-video', 'toggle-screen', 'toggle-chat', 'reactions']) $(id).hidden = true;
    for (const el of document.querySelectorAll('.device')) el.hidden = true;
  }
  // An empty stream (watching only) would hold the page's load event forever.
  if (state.local.getTracks().length > 0) $('local-video').srcObject = state.local;
  $('self-name').textContent = name + ' (you)';
  $('tile-self').querySelector('.placeholder').textContent = initials(name);
  $('room-title').textContent = 'Room: ' + room;
  const link = shareLink(room);
  $('share-link').href = link;
  $('share-link').textContent = link;
  showBroadcastUrls(room);
  // The address bar leads back into this room too (without this user's name).
  history.replaceState(null, '', '?room=' + encodeURIComponent(room));
  $('join-view').hidden = true;
  $('call-view').hidden = false;
  updateEmptyHint();
  listDevices();
  await connect();
  $('join-button').disabled = false;
}

// One session: a peer connection and a WebSocket that joins with its offer.
// Run again, with the same media, to reconnect.
async function connect() {
  const { room, name } = state;
  // A new session hears `recording` again if the room is still recorded,
  // and of videos paused for it.
  state.recording = false;
  state.pausedVideo.clear();
  for (const t of state.tiles.values()) showPaused(t);
  $('recording').hidden = true;
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  state.pc = pc;
  state.senders = {};
  for (const track of state.local.getTracks()) {
    const init = { direction: 'sendonly', streams: [state.local] };
    // Simulcast: the server forwards each subscriber the layer that fits
    // its bandwidth. `?simulcast=0` sends one stream.
    const layers = track.kind === 'video' && SIMULCAST ? simulcastLayers(track) : null;
    if (layers) init.sendEncodings = layers;
    const tr = addTransceiverLayered(pc, track, init);
    if (track.kind === 'video') preferCodec(tr);
    state.senders[track.kind] = tr.sender;
  }
  if (state.local.getTracks().length === 0) pc.addTransceiver('audio', { direction: 'recvonly' });
  // Chat and reactions (a viewer publishes nothing, data included).
  if (!VIEWER) {
    Chat.setup(pc, {
      myId: () => state.myId,
      nameOf: (id) => (state.people.get(id) || {}).name || id,
      tileOf: (id) => (id === state.myId ? $('tile-self') : (state.tiles.get(id) || {}).el),
    });
  }
  pc.ontrack = (e) => { if (e.streams[0]) attachStream(e.streams[0]); };
  pc.onconnectionstatechange = () => {
    if (state.pc !== pc) return;
    const s = pc.connectionState;
    if (s === 'connected') {
      setStatus('connected', 'Connected');
      if (!state.qualityTimer) state.qualityTimer = setInterval(() => updateQuality().catch(() => {}), 2000);
    }
    else if (s === 'failed') scheduleReconnect('The media connection failed.');
    else if (s === 'disconnected') setStatus('connecting', 'Reconnecting…');
    else if (s === 'connecting' || s === 'new') setStatus('connecting', 'Connecting…');
  };
  // Applied when the answer comes, with the ICE servers it names (above).
  state.offer = await pc.createOffer();
  // Camera off: the sender stays, but sends nothing.
  if (state.videoOff && state.senders.video) await state.senders.video.replaceTrack(null);

  const url = state.base.replace(/^http/, 'ws') + '/ws';
  // The cluster's nodes, to reconnect to one should this one go.
  fetch(state.base + '/nodes').then((r) => r.json()).then((j) => {
    const urls = (j.nodes || []).map((n) => n.url).filter((u) => /^https?:\/\//.test(u));
    if (urls.length) state.nodes = urls;
  }).catch(() => {});
  const ws = new WebSocket(url);
  state.ws = ws;
  state.queue = Promise.resolve();
  ws.onopen = () => {
    state.joinSentAt = performance.now();
    send(Object.assign({ type: 'join', room, name, sdp: state.offer.sdp },
      TOKEN ? { token: TOKEN } : {}, VIEWER ? { role: 'viewer' } : {}));
  };
  ws.onmessage = (ev) => {
    if (state.ws !== ws) return;
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    state.queue = state.queue.then(() => handle(msg)).catch((e) => showError('Signaling failed: ' + e));
  };
  ws.onclose = () => {
    if (state.ws === ws && state.pc) scheduleReconnect('The connection to the server closed.');
  };
}

// Ends the session but keeps the call on screen, then joins again after
// 1, 2, 4 … 15 s, up to RECONNECT_ATTEMPTS times; the status says so.
const RECONNECT_ATTEMPTS = 8;
function scheduleReconnect(why) {
  if (state.reconnect.timer || !state.room) return;
  closeSession();
  const n = ++state.reconnect.attempt;
  if (n > RECONNECT_ATTEMPTS) {
    setStatus('failed', 'Disconnected');
    showError(why + ' Could not reconnect; leave and join again.');
    return;
  }
  const delay = Math.min(15000, 1000 * 2 ** (n - 1));
  // From the second attempt on, try the cluster's other nodes in turn.
  if (n >= 2 && state.nodes.length > 1) {
    const i = state.nodes.indexOf(state.base);
    state.base = state.nodes[(i + 1) % state.nodes.length];
  }
  setStatus('connecting', `Reconnecting in ${Math.round(delay / 1000)} s (attempt ${n} of ${RECONNECT_ATTEMPTS})…`);
  showError(why + ' Reconnecting…');
  state.reconnect.timer = setTimeout(() => {
    state.reconnect.timer = null;
    setStatus('connecting', `Reconnecting (attempt ${n} of ${RECONNECT_ATTEMPTS})…`);
    connect().catch((e) => scheduleReconnect('Could not reconnect: ' + e));
  }, delay);
}

// Closes the WebSocket and the peer connection and forgets the remote tiles
// (the server sends them again after a join); local media stays.
function closeSession() {
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.qualityTimer) { clearInterval(state.qualityTimer); state.qualityTimer = null; }
  Chat.reset();
  if (state.offerJob) { state.offerJob.reject(new Error('disconnected')); state.offerJob = null; }
  if (state.screen) { state.screen.track.onended = null; state.screen.track.stop(); state.screen = null; showSharing(); }
  state.quality = null; state.qualityPrev = null;
  $('quality').hidden = true;
  for (const id of [...state.tiles.keys()]) removeTile(id);
  state.myId = null;
  state.speaker = null;
  state.recent = [];
  state.hiddenSent = undefined;
  state.widthsSent = undefined;
}

function teardown(sendLeave) {
  if (sendLeave) send({ type: 'leave' });
  if (state.reconnect.timer) { clearTimeout(state.reconnect.timer); state.reconnect.timer = null; }
  state.reconnect.attempt = 0;
  closeSession();
  state.room = null;
  if (state.local) { for (const t of state.local.getTracks()) t.stop(); state.local = null; }
  state.videoOff = false;
  $('call-view').hidden = true;
  $('join-view').hidden = false;
  $('room-title').textContent = '';
  if (sendLeave) setStatus('idle', 'Not connected');
}

// Our own offer (docs/signaling.md, "The client offers"): ask for the turn,
// and when the server grants it, apply `change` to the peer connection and
// offer. Resolves once the server's answer is applied.
function requestOffer(change, screenMids) {
  if (!state.pc || !state.myId) return Promise.reject(new Error('not in a call'));
  if (state.offerJob) return Promise.reject(new Error('an offer is already under way'));
  return new Promise((resolve, reject) => {
    state.offerJob = { change, screenMids, resolve, reject };
    send({ type: 'offer-request' });
  });
}

function showSharing() {
  const b = $('toggle-screen');
  b.setAttribute('aria-pressed', String(!!state.screen));
  b.querySelector('span').textContent = state.screen ? 'Stop sharing' : 'Share screen';
}

// Shares the screen as a second video track (one stream, no simulcast; the
// server gives it the room's bandwidth first). `stream` replaces the
// screen picker (for tests).
async function startScreenShare(stream) {
  if (state.screen || !state.pc) return;
  const s = stream || await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
  const track = s.getVideoTracks()[0];
  if ('contentHint' in track) track.contentHint = 'detail';
  const share = { stream: s, track, transceiver: null };
  state.screen = share;
  showSharing();
  track.onended = () => stopScreenShare().catch(() => {});
  try {
    await requestOffer((pc) => {
      share.transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [s] });
    }, () => (share.transceiver && share.transceiver.mid ? [share.transceiver.mid] : []));
  } catch (e) {
    if (state.screen === share) { state.screen = null; track.stop(); showSharing(); }
    throw e;
  }
}

async function stopScreenShare() {
  const share = state.screen;
  if (!share) return;
  state.screen = null;
  showSharing();
  share.track.onended = null;
  share.track.stop();
  if (state.pc && share.transceiver) {
    await requestOffer(() => { share.transceiver.stop(); }, () => []);
  }
}

$('toggle-screen').onclick = () => {
  (state.screen ? stopScreenShare() : startScreenShare()).catch((e) => {
    if (e && e.name !== 'NotAllowedError') showError('Screen share failed: ' + e.message);
  });
};

function sendMediaState() {
  const audio = state.local ? state.local.getAudioTracks() : [];
  send({
    type: 'media-state',
    audio_muted: audio.length > 0 && !audio[0].enabled,
    video_off: state.videoOff,
  });
}

function showSelfBadges() {
  const badges = [];
  if (state.local && !state.local.getAudioTracks().every((t) => t.enabled)) badges.push('muted');
  if (state.videoOff) badges.push('camera off');
  $('self-badges').textContent = badges.join(' · ');
}

function setMuted(muted) {
  const tracks = state.local ? state.local.getAudioTracks() : [];
  if (tracks.length === 0) return;
  for (const t of tracks) t.enabled = !muted;
  const b = $('toggle-audio');
  b.setAttribute('aria-pressed', String(muted));
  b.querySelector('span').textContent = muted ? 'Unmute' : 'Mute';
  showSelfBadges();
  sendMediaState();
}

// Camera off sends no video at all (the sender's track is taken away),
// rather than black frames; the others see a badge.
async function setCameraOff(off) {
  const tracks = state.local ? state.local.getVideoTracks() : [];
  if (tracks.length === 0) return;
  state.videoOff = off;
  for (const t of tracks) t.enabled = !off;
  if (state.senders.video) await state.senders.video.replaceTrack(off ? null : tracks[0]);
  const b = $('toggle-video');
  b.setAttribute('aria-pressed', String(off));
  b.querySelector('span').textContent = off ? 'Camera on' : 'Camera off';
  $('tile-self').classList.toggle('video-off', off);
  showSelfBadges();
  sendMediaState();
}

$('toggle-audio').onclick = () => {
  const tracks = state.local ? state.local.getAudioTracks() : [];
  if (tracks.length) setMuted(tracks[0].enabled);
};
$('toggle-video').onclick = () => { setCameraOff(!state.videoOff).catch((e) => showError('Camera: ' + e)); };
$('toggle-view').onclick = () => {
  state.view = state.view === 'grid' ? 'speaker' : 'grid';
  $('toggle-view').setAttribute('aria-pressed', String(state.view === 'speaker'));
  $('toggle-view').querySelector('span').textContent = state.view === 'grid' ? 'Speaker view' : 'Grid view';
  layoutTiles();
};

// The camera and microphone pickers: the chosen device's track replaces
// the sent one (no renegotiation).
async function listDevices() {
  if (!SECURE || !navigator.mediaDevices.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices().catch(() => []);
  for (const [kind, sel] of [['videoinput', $('camera-select')], ['audioinput', $('mic-select')]]) {
    const current = state.local && (kind === 'videoinput' ? state.local.getVideoTracks() : state.local.getAudioTracks())[0];
    const currentId = current && current.getSettings ? current.getSettings().deviceId : null;
    sel.replaceChildren();
    for (const d of devices.filter((x) => x.kind === kind)) {
      const o = document.createElement('option');
      o.value = d.deviceId;
      o.textContent = d.label || (kind === 'videoinput' ? 'Camera ' : 'Microphone ') + (sel.length + 1);
      o.selected = d.deviceId === currentId;
      sel.appendChild(o);
    }
    sel.disabled = sel.length < 2 || !current;
  }
}

async function switchDevice(kind, deviceId) {
  if (!state.local) return;
  const old = (kind === 'video' ? state.local.getVideoTracks() : state.local.getAudioTracks())[0];
  const constraints = kind === 'video'
    ? { video: Object.assign({ deviceId: { exact: deviceId } }, VIDEO) }
    : { audio: { deviceId: { exact: deviceId } } };
  const s = await navigator.mediaDevices.getUserMedia(constraints);
  const track = s.getTracks()[0];
  if (old) track.enabled = old.enabled;
  const sender = state.senders[kind];
  if (sender && !(kind === 'video' && state.videoOff)) await sender.replaceTrack(track);
  if (old) { state.local.removeTrack(old); old.stop(); }
  state.local.addTrack(track);
  if (kind === 'video') $('local-video').srcObject = state.local;
}

$('camera-select').onchange = (e) => switchDevice('video', e.target.value).catch((err) => showError('Camera: ' + err));
$('mic-select').onchange = (e) => switchDevice('audio', e.target.value).catch((err) => showError('Microphone: ' + err));
if (SECURE && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener('devicechange', () => { if (state.local) listDevices(); });
}

$('leave').onclick = () => teardown(true);
$('copy-link').onclick = async () => {
  const link = $('share-link').href;
  try {
    await navigator.clipboard.writeText(link);
    $('copy-link').textContent = 'Copied';
  } catch {
    window.getSelection().selectAllChildren($('share-link'));
  }
  setTimeout(() => { $('copy-link').textContent = 'Copy'; }, 2000);
};

for (const b of document.querySelectorAll('button.copy')) {
  b.onclick = async () => {
    const el = $(b.dataset.copy);
    try {
      await navigator.clipboard.writeText(el.textContent);
      b.textContent = 'Copied';
    } catch {
      window.getSelection().selectAllChildren(el);
    }
    setTimeout(() => { b.textContent = 'Copy'; }, 2000);
  };
}

$('join-form').onsubmit = (e) => {
  e.preventDefault();
  const room = $('room').value.trim();
  const name = $('name').value.trim();
  if (room && name) join(room, name).catch((err) => showError('Could not join: ' + err));
};

Chat.init();

// Read-only hooks for automated tests and debugging.
window.sfu = {
  // Chat and reactions: the log ({ from, name, text, bytes, self }), send a
  // message (text, or raw `data` as is: a string or bytes), react, the
  // unread count, whether our channels are open, and a reaction a tile shows.
  chat: () => Chat.log(),
  sendChat: (text, data) => Chat.send(text, data),
  react: (emoji) => Chat.react(emoji),
  unread: () => Chat.unread(),
  chatReady: () => Chat.ready(),
  chatBuffered: () => Chat.buffered(),
  openChat: (open) => Chat.toggle(open),
  reactionOn: (id) => {
    const el = id === state.myId ? $('tile-self') : (state.tiles.get(id) || {}).el;
    const r = el && el.querySelector('.reaction');
    return r ? r.textContent : null;
  },
  // SHA-256 (hex) of the i-th binary chat message received, and its sender.
  async binary(i) {
    const b = Chat.binaries()[i];
    if (!b) return null;
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', b.data));
    return { from: b.from, size: b.data.length, sha256: [...d].map((x) => x.toString(16).padStart(2, '0')).join('') };
  },
  id: () => state.myId,
  connectionState: () => (state.pc ? state.pc.connectionState : 'closed'),
  tiles: () => [...state.tiles.entries()].map(([id, t]) => ({ id, name: t.name })),
  // Remote tiles shown (at most ?tiles=N, default 4).
  visibleTiles: () => [...state.tiles.entries()].filter(([, t]) => !t.el.hidden).map(([id]) => id),
  // The dominant speaker's participant id (this one's own id when it speaks).
  speaker: () => state.speaker || null,
  // The tile highlighted as speaking, if any.
  speakingTile: () => {
    const el = document.querySelector('.tile.speaking');
    if (!el) return null;
    return el.id === 'tile-self' ? state.myId : el.dataset.participant;
  },
  // Mutes or unmutes the microphone, as the Mute button does.
  setMuted: (muted) => setMuted(muted),
  // Turns the camera off or on, as the Camera button does.
  setCameraOff: (off) => setCameraOff(off),
  // Starts sharing the screen (`stream`: a stream to share instead of
  // asking the browser), or stops.
  startScreenShare: (stream) => startScreenShare(stream),
  stopScreenShare: () => stopScreenShare(),
  sharing: () => !!state.screen,
  // 'grid' or 'speaker', and the tile shown large in speaker view.
  setView: (v) => { if (v !== state.view) $('toggle-view').click(); },
  mainTile: () => { const el = document.querySelector('.tile.remote.main'); return el ? el.dataset.participant : null; },
  // The badges a remote tile shows ('muted', 'camera off', 'video paused: low bandwidth').
  badges: (id) => { const t = state.tiles.get(id); return t ? t.badgesEl.textContent : null; },
  // The tiles whose video the server paused, with the note each shows (visible only).
  pausedTiles: () => Object.fromEntries([...state.tiles].filter(([, t]) => !t.pausedEl.hidden
    && t.el.classList.contains('video-paused') && getComputedStyle(t.video).visibility === 'hidden')
    .map(([id, t]) => [id, t.pausedEl.textContent])),
  // The camera's simulcast encodings: rid -> active (see source-layers).
  sendingLayers: () => {
    const s = state.senders.video;
    const out = {};
    for (const e of (s ? s.getParameters().encodings : []) || []) if (e.rid) out[e.rid] = e.active !== false;
    return out;
  },
  // Whether the server says the room is being recorded (the REC badge).
  recording: () => !!state.recording && !$('recording').hidden,
  // The last `levels`: participant id -> dBov.
  levels: () => state.levels,
  // The status line ('Connected', 'Reconnecting in 1 s (attempt 1 of 8)…').
  status: () => $('status-text').textContent,
  // The error banner's text ('' when hidden).
  error: () => ($('banner').hidden ? '' : $('banner-text').textContent),
  // The node this session is on (its base URL).
  node: () => state.base,
  // The camera and microphone on offer and the chosen ones.
  devices: () => ({ cameras: [...$('camera-select').options].map((o) => o.value), camera: $('camera-select').value, mics: [...$('mic-select').options].map((o) => o.value), mic: $('mic-select').value }),
  switchDevice: (kind, id) => switchDevice(kind, id),
  // Drops the WebSocket, as a network failure would (to test reconnecting).
  dropConnection: () => { if (state.ws) state.ws.close(); },
  // Per remote participant: decoded video frames, the decoded width (px),
  // seconds frozen, and received audio samples.
  async remoteStats() {
    const out = {};
    if (!state.pc) return out;
    const receivers = state.pc.getReceivers();
    for (const [id, t] of state.tiles) {
      const entry = {
        name: t.name, framesDecoded: 0, audioSamples: 0, frameWidth: 0, freezeS: 0, codec: null,
        videoLost: 0, videoPackets: 0, plis: 0, keyframes: 0, freezes: 0, nacks: 0, retransmitted: 0,
      };
      for (const track of t.stream ? t.stream.getTracks() : []) {
        const r = receivers.find((x) => x.track === track);
        if (!r) continue;
        const stats = await r.getStats();
        stats.forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') {
            const codec = s.codecId && stats.get(s.codecId);
            if (codec) entry.codec = codec.mimeType;
            entry.framesDecoded += s.framesDecoded || 0;
            entry.frameWidth = Math.max(entry.frameWidth, s.frameWidth || 0);
            entry.freezeS += s.totalFreezesDuration || 0;
            entry.freezes += s.freezeCount || 0;
            entry.videoLost += s.packetsLost || 0;
            entry.videoPackets += s.packetsReceived || 0;
            entry.plis += s.pliCount || 0;
            entry.keyframes += s.keyFramesDecoded || 0;
            entry.nacks += s.nackCount || 0;
            entry.retransmitted += s.retransmittedPacketsReceived || 0;
          }
          if (s.kind === 'audio') entry.audioSamples += s.totalSamplesReceived || 0;
        });
      }
      out[id] = entry;
    }
    return out;
  },
  // The peer connection itself, for tests that read getStats() directly.
  pc: () => state.pc,
  // What the connection-quality indicator shows: { level, rttMs, lossPct, outKbps }.
  quality: () => state.quality,
  errorText: () => ($('banner').hidden ? '' : $('banner-text').textContent),
  // m-sections in the current remote description (grows only with live tracks).
  sections: () => (state.pc && state.pc.remoteDescription
    ? state.pc.remoteDescription.sdp.split('\r\n').filter((l) => l.startsWith('m=')).length : 0),
  shareLink: () => $('share-link').href,
  // Milliseconds since the last join message went out (null before one).
  sinceJoin: () => (state.joinSentAt == null ? null : performance.now() - state.joinSentAt),
  // The broadcast URLs the page shows: { whip, rtmp } ('' when not shown).
  broadcastUrls: () => ({ whip: $('whip-url').textContent, rtmp: $('rtmp-row').hidden ? '' : $('rtmp-url').textContent }),
  // The viewer count the page shows (0 when it shows none).
  viewers: () => ($('viewers').hidden ? 0 : state.viewers || 0),
  viewersText: () => ($('viewers').hidden ? '' : $('viewers').textContent),
};

if (!SECURE) showError(INSECURE_TEXT);

const q = new URLSearchParams(location.search);
if (q.get('room')) $('room').value = q.get('room');
if (q.get('name')) $('name').value = q.get('name');
if (q.get('room') && q.get('name')) join(q.get('room'), q.get('name')).catch((err) => showError('Could not join: ' + err));
