// Chat and reactions over WebRTC data channels (docs/signaling.md, "Data
// channels"). The page opens two channels of its own before its join offer:
// `chat` (ordered, reliable) and `reactions` (unordered, at most 2
// retransmissions). The server relays each to everyone else on a channel of
// its own with the same label, and says whose it is in a `data-channel`
// message; until that arrives, a channel's messages wait.
//
// A chat message is JSON {"text": …}; anything else that arrives (a client
// that is not this page) is shown as its text, or as "[N bytes]" if binary.
// A reaction is JSON {"emoji": …}, one of REACTIONS.
'use strict';

const Chat = (() => {
  const REACTIONS = ['👍', '❤️', '😂', '🎉'];
  const REACTION_MS = 3000;
  const MAX_TEXT = 2000; // characters of one message the page sends
  const MAX_SHOWN = 500; // messages kept in the panel
  const $ = (id) => document.getElementById(id);
  const st = {
    chat: null, // our channels
    reactions: null,
    from: new Map(), // server channel id -> participant id (`data-channel`)
    waiting: new Map(), // server channel id -> [[label, data]] before `from` is known
    log: [], // every chat message: { from, name, text, ts, bytes, self }
    binaries: [], // received binary messages: { from, data: Uint8Array }
    unread: 0,
    hooks: null, // { myId, nameOf(id), tileOf(id) }
  };

  // Opens our channels on `pc` (before its offer) and takes the server's.
  function setup(pc, hooks) {
    st.hooks = hooks;
    st.chat = pc.createDataChannel('chat');
    st.reactions = pc.createDataChannel('reactions', { ordered: false, maxRetransmits: 2 });
    st.chat.binaryType = 'arraybuffer';
    pc.ondatachannel = (e) => {
      const ch = e.channel;
      ch.binaryType = 'arraybuffer';
      ch.onmessage = (m) => received(ch.id, ch.label, m.data);
      ch.onclose = () => { st.from.delete(ch.id); st.waiting.delete(ch.id); };
    };
  }

  // The server says channel `id` carries participant `from`'s messages.
  function named(id, from) {
    st.from.set(id, from);
    const held = st.waiting.get(id) || [];
    st.waiting.delete(id);
    for (const [label, data] of held) show(from, label, data);
  }

  function received(id, label, data) {
    const from = st.from.get(id);
    if (from) { show(from, label, data); return; }
    if (!st.waiting.has(id)) st.waiting.set(id, []);
    st.waiting.get(id).push([label, data]);
  }

  function show(from, label, data) {
    if (label === 'reactions') {
      try {
        const r = JSON.parse(data);
        if (REACTIONS.includes(r.emoji)) showReaction(from, r.emoji);
      } catch { /* not a reaction: ignored */ }
      return;
    }
    let text;
    let bytes = null;
    if (typeof data === 'string') {
      try {
        const j = JSON.parse(data);
        text = j && typeof j.text === 'string' ? j.text : data;
      } catch { text = data; }
    } else {
      bytes = new Uint8Array(data);
      st.binaries.push({ from, data: bytes });
      text = `[${bytes.length} bytes]`;
    }
    add({ from, name: st.hooks.nameOf(from), text, ts: Date.now(), bytes: bytes ? bytes.length : null, self: false });
  }

  function add(m) {
    st.log.push(m);
    const list = $('chat-list');
    const li = document.createElement('li');
    li.className = m.self ? 'self' : '';
    const head = document.createElement('div');
    head.className = 'head';
    const nm = document.createElement('span');
    nm.className = 'who';
    nm.textContent = m.self ? 'You' : m.name || m.from;
    const tm = document.createElement('time');
    tm.textContent = new Date(m.ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    head.append(nm, tm);
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = m.text;
    li.append(head, body);
    list.appendChild(li);
    while (list.children.length > MAX_SHOWN) list.firstChild.remove();
    list.scrollTop = list.scrollHeight;
    if (!m.self && $('chat-panel').hidden) {
      st.unread++;
      badge();
    }
  }

  function badge() {
    $('chat-unread').textContent = st.unread > 99 ? '99+' : String(st.unread);
    $('chat-unread').hidden = st.unread === 0;
  }

  function showReaction(from, emoji) {
    const el = st.hooks.tileOf(from);
    if (!el) return;
    const r = document.createElement('div');
    r.className = 'reaction';
    r.textContent = emoji;
    el.appendChild(r);
    setTimeout(() => r.remove(), REACTION_MS);
  }

  // Sends `text` (or raw `data`: a string or bytes, as is) on our chat
  // channel; false when it is not open.
  function send(text, data) {
    if (!st.chat || st.chat.readyState !== 'open') return false;
    if (data !== undefined) { st.chat.send(data); return true; }
    text = String(text).slice(0, MAX_TEXT);
    if (!text.trim()) return false;
    st.chat.send(JSON.stringify({ text }));
    add({ from: st.hooks.myId(), name: 'You', text, ts: Date.now(), bytes: null, self: true });
    return true;
  }

  function react(emoji) {
    if (!REACTIONS.includes(emoji) || !st.reactions || st.reactions.readyState !== 'open') return false;
    st.reactions.send(JSON.stringify({ emoji }));
    showReaction(st.hooks.myId(), emoji);
    return true;
  }

  // A new session: the old channels and names are gone (the log stays).
  function reset() {
    st.chat = null;
    st.reactions = null;
    st.from.clear();
    st.waiting.clear();
  }

  function toggle(open) {
    const panel = $('chat-panel');
    panel.hidden = open === undefined ? !panel.hidden : !open;
    $('toggle-chat').setAttribute('aria-pressed', String(!panel.hidden));
    if (!panel.hidden) {
      st.unread = 0;
      badge();
      $('chat-input').focus();
    }
  }

  function init() {
    $('toggle-chat').onclick = () => toggle();
    $('chat-close').onclick = () => toggle(false);
    $('chat-form').onsubmit = (e) => {
      e.preventDefault();
      if (send($('chat-input').value)) $('chat-input').value = '';
    };
    for (const b of document.querySelectorAll('#reactions button')) b.onclick = () => react(b.textContent);
  }

  return {
    REACTIONS,
    setup,
    named,
    reset,
    send,
    react,
    toggle,
    init,
    // For tests: the log, what a tile shows, and our channels' state.
    log: () => st.log.map(({ from, name, text, bytes, self }) => ({ from, name, text, bytes, self })),
    unread: () => st.unread,
    ready: () => !!st.chat && st.chat.readyState === 'open' && !!st.reactions && st.reactions.readyState === 'open',
    buffered: () => (st.chat ? st.chat.bufferedAmount : 0),
    binaries: () => st.binaries,
  };
})();
