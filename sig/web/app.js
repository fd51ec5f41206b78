// sfu web client: joins a room over /ws, publishes camera and microphone,
// and shows one tile per remote participant. Protocol: docs/signaling.md.
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
  tiles: new Map(), // participant id -> { el, video, audio, stream, name }
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

// At most MAX_TILES remote tiles are shown (?tiles=N, default 4), the
// speaker first, then in order of arrival; the server is told whose video
// is hidden, and pauses it for us.
const MAX_TILES = Math.max(1, Number(new URLSearchParams(location.search).get('tiles')) || 4);
function layoutTiles() {
  const ids = [...state.tiles.keys()];
  const ranked = state.speaker && state.tiles.has(state.speaker)
    ? [state.speaker, ...ids.filter((id) => id !== state.speaker)] : ids;
  const visible = new Set(ranked.slice(0, MAX_TILES));
  for (const [id, t] of state.tiles) t.el.hidden = !visible.has(id);
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
    el.className = 'tile remote';
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
    cap.appendChild(nm);
    el.append(ph, video, audio, cap);
    $('grid').appendChild(el);
    t = { el, video, audio, stream: null, name: name || '', nameEl: nm, ph };
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
  updateEmptyHint();
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

const SIMULCAST = new URLSearchParams(location.search).get('simulcast') !== '0';
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

// The address that leads others into `room` (they choose their own name).
function shareLink(room) {
  return location.origin + location.pathname + '?room=' + encodeURIComponent(room);
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
}

async function getMedia() {
  if (!SECURE) {
    showError(INSECURE_TEXT);
    return new MediaStream();
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
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
    case 'answer':
      state.myId = msg.id;
      await state.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
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
    case 'participants': {
      const present = new Set();
      for (const p of msg.participants) {
        if (p.id === state.myId) continue;
        present.add(p.id);
        ensureTile(p.id, p.name);
      }
      for (const id of [...state.tiles.keys()]) if (!present.has(id)) removeTile(id);
      break;
    }
    case 'speaker':
      state.speaker = msg.id;
      for (const [id, t] of state.tiles) t.el.classList.toggle('speaking', id === msg.id);
      $('tile-self').classList.toggle('speaking', msg.id === state.myId);
      layoutTiles();
      break;
    case 'left':
      break;
    case 'error': {
      // update-timeout is followed by a fresh update: nothing to show.
      if (msg.code === 'update-timeout') { console.warn(msg.message); break; }
      showError(msg.message + ' [' + msg.code + ']');
      const fatal = ['transport-closed', 'room-failed', 'negotiation-failed'].includes(msg.code);
      if (fatal || msg.code === 'server-shutdown') {
        setStatus('failed', msg.code === 'server-shutdown' ? 'Server stopped' : 'Connection lost');
      }
      if (!state.myId || fatal) teardown(false);
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
  // An empty stream (watching only) would hold the page's load event forever.
  if (state.local.getTracks().length > 0) $('local-video').srcObject = state.local;
  $('self-name').textContent = name + ' (you)';
  $('room-title').textContent = 'Room: ' + room;
  const link = shareLink(room);
  $('share-link').href = link;
  $('share-link').textContent = link;
  // The address bar leads back into this room too (without this user's name).
  history.replaceState(null, '', '?room=' + encodeURIComponent(room));
  $('join-view').hidden = true;
  $('call-view').hidden = false;
  updateEmptyHint();

  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  state.pc = pc;
  for (const track of state.local.getTracks()) {
    const init = { direction: 'sendonly', streams: [state.local] };
    // Simulcast: the server forwards each subscriber the layer that fits
    // its bandwidth. `?simulcast=0` sends one stream.
    const layers = track.kind === 'video' && SIMULCAST ? simulcastLayers(track) : null;
    if (layers) init.sendEncodings = layers;
    pc.addTransceiver(track, init);
  }
  if (state.local.getTracks().length === 0) pc.addTransceiver('audio', { direction: 'recvonly' });
  pc.ontrack = (e) => { if (e.streams[0]) attachStream(e.streams[0]); };
  pc.onconnectionstatechange = () => {
    const s = pc.connectionState;
    if (s === 'connected') {
      setStatus('connected', 'Connected');
      if (!state.qualityTimer) state.qualityTimer = setInterval(() => updateQuality().catch(() => {}), 2000);
    }
    else if (s === 'failed') { setStatus('failed', 'Connection failed'); showError('The media connection failed.'); }
    else if (s === 'disconnected') setStatus('connecting', 'Reconnecting…');
    else if (s === 'connecting' || s === 'new') setStatus('connecting', 'Connecting…');
  };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);

  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const ws = new WebSocket(url);
  state.ws = ws;
  const token = new URLSearchParams(location.search).get('token');
  ws.onopen = () => send(Object.assign({ type: 'join', room, name, sdp: pc.localDescription.sdp }, token ? { token } : {}));
  ws.onmessage = (ev) => {
    let msg;
    try { msg = JSON.parse(ev.data); } catch { return; }
    state.queue = state.queue.then(() => handle(msg)).catch((e) => showError('Signaling failed: ' + e));
  };
  ws.onclose = () => {
    if (state.ws === ws && state.pc) {
      setStatus('failed', 'Disconnected');
      showError('The connection to the server closed.');
    }
  };
  $('join-button').disabled = false;
}

function teardown(sendLeave) {
  if (sendLeave) send({ type: 'leave' });
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  if (state.pc) { state.pc.close(); state.pc = null; }
  if (state.qualityTimer) { clearInterval(state.qualityTimer); state.qualityTimer = null; }
  state.quality = null; state.qualityPrev = null;
  $('quality').hidden = true;
  if (state.local) { for (const t of state.local.getTracks()) t.stop(); state.local = null; }
  for (const id of [...state.tiles.keys()]) removeTile(id);
  state.myId = null;
  state.speaker = null;
  state.hiddenSent = undefined;
  state.widthsSent = undefined;
  $('call-view').hidden = true;
  $('join-view').hidden = false;
  $('room-title').textContent = '';
  if (sendLeave) setStatus('idle', 'Not connected');
}

function toggle(kind, button, onLabel, offLabel) {
  if (!state.local) return;
  const tracks = kind === 'audio' ? state.local.getAudioTracks() : state.local.getVideoTracks();
  if (tracks.length === 0) return;
  const enabled = !tracks[0].enabled;
  for (const t of tracks) t.enabled = enabled;
  button.setAttribute('aria-pressed', String(!enabled));
  button.querySelector('span').textContent = enabled ? onLabel : offLabel;
  const badges = [];
  if (!state.local.getAudioTracks().every((t) => t.enabled)) badges.push('muted');
  if (!state.local.getVideoTracks().every((t) => t.enabled)) badges.push('camera off');
  $('self-badges').textContent = badges.join(' · ');
}

$('toggle-audio').onclick = (e) => toggle('audio', e.currentTarget, 'Mute', 'Unmute');
$('toggle-video').onclick = (e) => toggle('video', e.currentTarget, 'Camera off', 'Camera on');
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

$('join-form').onsubmit = (e) => {
  e.preventDefault();
  const room = $('room').value.trim();
  const name = $('name').value.trim();
  if (room && name) join(room, name).catch((err) => showError('Could not join: ' + err));
};

// Read-only hooks for automated tests and debugging.
window.sfu = {
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
  setMuted: (muted) => {
    const b = $('toggle-audio');
    const tracks = state.local ? state.local.getAudioTracks() : [];
    if (tracks.length && tracks[0].enabled === muted) b.click();
  },
  // Per remote participant: decoded video frames, the decoded width (px),
  // seconds frozen, and received audio samples.
  async remoteStats() {
    const out = {};
    if (!state.pc) return out;
    const receivers = state.pc.getReceivers();
    for (const [id, t] of state.tiles) {
      const entry = { name: t.name, framesDecoded: 0, audioSamples: 0, frameWidth: 0, freezeS: 0 };
      for (const track of t.stream ? t.stream.getTracks() : []) {
        const r = receivers.find((x) => x.track === track);
        if (!r) continue;
        const stats = await r.getStats();
        stats.forEach((s) => {
          if (s.type !== 'inbound-rtp') return;
          if (s.kind === 'video') {
            entry.framesDecoded += s.framesDecoded || 0;
            entry.frameWidth = Math.max(entry.frameWidth, s.frameWidth || 0);
            entry.freezeS += s.totalFreezesDuration || 0;
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
};

if (!SECURE) showError(INSECURE_TEXT);

const q = new URLSearchParams(location.search);
if (q.get('room')) $('room').value = q.get('room');
if (q.get('name')) $('name').value = q.get('name');
if (q.get('room') && q.get('name')) join(q.get('room'), q.get('name')).catch((err) => showError('Could not join: ' + err));
