// relay-share.js: one connection for all the tabs of a browser. Browsers
// open at most 6 HTTP/1.1 connections per origin across every tab; with
// share, one tab (the leader, elected with the Web Locks API) holds the
// connection for the channels of every tab, and passes what it receives to
// the others over a BroadcastChannel. When the leader tab closes, the browser
// releases its lock, another tab takes it and resumes from the cursor it has
// followed, so nothing is lost or doubled.
//
// Messages on the BroadcastChannel ({t: …}):
//   hello {tab, channels}   a follower's channels (again every PEER_REFRESH ms)
//   bye {tab}               a tab leaves
//   leader {tab}            a tab became leader: followers say hello again
//   msg {msg, cursor, channels} / reset {reset, cursor, channels} / state {state, positions}
//   send {tab, id, msg} -> sent {id, ok, error}: a follower's WebSocket-only action

const PEER_REFRESH = 10000; // followers re-announce themselves this often
const PEER_EXPIRY = 35000; // a tab not heard of for this long is gone (crashed without bye)
const FORWARD_TIMEOUT = 5000;

/**
 * startSharing makes relay one tab of the group `key`; null when the browser
 * lacks BroadcastChannel or Web Locks (relay then connects by itself).
 */
export function startSharing(relay, key, env) {
  if (typeof env.BroadcastChannel !== "function" || !env.locks || typeof env.locks.request !== "function") return null;
  return new TabShare(relay, key, env);
}

class TabShare {
  constructor(relay, key, env) {
    this.role = "follower";
    this.tab = Math.random().toString(36).slice(2) + Date.now().toString(36);
    this._relay = relay;
    this._env = env;
    this._peers = new Map(); // tab -> {channels, seen}
    this._pending = new Map(); // forwarded sends awaiting the leader's answer
    this._seq = 0;
    this._bc = new env.BroadcastChannel("relay-share:" + key);
    this._bc.onmessage = (e) => this._receive(e.data);
    this._abort = typeof AbortController === "function" ? new AbortController() : null;
    const opts = this._abort ? { signal: this._abort.signal } : {};
    env.locks
      .request("relay-leader:" + key, opts, () => {
        if (this.role === "closed") return undefined;
        return new Promise((release) => {
          this._release = release;
          this._lead();
        });
      })
      .catch(() => {}); // aborted by close()
    this._timer = setInterval(() => this._tick(), PEER_REFRESH);
    this._onHide = () => this._post({ t: "bye", tab: this.tab });
    if (typeof globalThis.addEventListener === "function") globalThis.addEventListener("pagehide", this._onHide);
    relay._followerState({ ...relay.state, status: "connecting", transport: null }, null);
  }

  // _lead makes this tab the leader: it connects for every tab's channels.
  _lead() {
    this.role = "leader";
    this._post({ t: "leader", tab: this.tab });
    this._relay._setExtraChannels(this._peerChannels());
    this._relay._queueSync();
  }

  _peerChannels() {
    const out = [];
    for (const p of this._peers.values()) for (const ch of p.channels) if (!out.includes(ch)) out.push(ch);
    return out;
  }

  _receive(m) {
    if (!m || typeof m !== "object" || this.role === "closed") return;
    const relay = this._relay;
    switch (m.t) {
      case "hello":
        this._peers.set(m.tab, { channels: m.channels || [], seen: Date.now() });
        if (this.role === "leader") {
          relay._setExtraChannels(this._peerChannels());
          this._post({ t: "state", state: relay.state, positions: { ...relay._positions } });
        }
        return;
      case "bye":
        this._peers.delete(m.tab);
        if (this.role === "leader") relay._setExtraChannels(this._peerChannels());
        return;
      case "leader":
        this.announce(relay.channels);
        return;
      case "send":
        if (this.role !== "leader") return;
        relay.send(m.msg).then(
          () => this._post({ t: "sent", id: m.id, ok: true }),
          (err) => this._post({ t: "sent", id: m.id, ok: false, error: String((err && err.message) || err) }),
        );
        return;
      case "sent": {
        const p = this._pending.get(m.id);
        if (p) p(m);
        return;
      }
    }
    if (this.role !== "follower") return;
    switch (m.t) {
      case "msg":
        return relay._receive(m.msg, m.cursor, m.channels || []);
      case "reset":
        return relay._reset(m.reset, m.cursor, m.channels || []);
      case "state":
        return relay._followerState(m.state, m.positions);
    }
  }

  // announce tells the leader (and every tab, for later elections) this tab's channels.
  announce(channels) {
    this._post({ t: "hello", tab: this.tab, channels });
  }

  // relay passes what the leader's connection received to the other tabs.
  relay(m) {
    this._post(m);
  }

  // forward asks the leader to send a WebSocket-only action.
  forward(msg) {
    const id = this.tab + ":" + ++this._seq;
    return new Promise((resolve, reject) => {
      const timer = this._env.setTimeout(() => {
        this._pending.delete(id);
        reject(new Error("no leader tab answered within " + FORWARD_TIMEOUT / 1000 + " s"));
      }, FORWARD_TIMEOUT);
      this._pending.set(id, (ans) => {
        this._env.clearTimeout(timer);
        this._pending.delete(id);
        if (ans.ok) resolve(null);
        else reject(new Error(ans.error));
      });
      this._post({ t: "send", tab: this.tab, id, msg });
    });
  }

  _tick() {
    const now = Date.now();
    let changed = false;
    for (const [tab, p] of this._peers) {
      if (now - p.seen > PEER_EXPIRY) {
        this._peers.delete(tab);
        changed = true;
      }
    }
    if (this.role === "leader" && changed) this._relay._setExtraChannels(this._peerChannels());
    if (this.role === "follower") this.announce(this._relay.channels);
  }

  _post(m) {
    try {
      this._bc.postMessage(m);
    } catch {
      // closed
    }
  }

  close() {
    if (this.role === "closed") return;
    this._post({ t: "bye", tab: this.tab });
    this.role = "closed";
    clearInterval(this._timer);
    if (typeof globalThis.removeEventListener === "function") globalThis.removeEventListener("pagehide", this._onHide);
    if (this._release) this._release();
    if (this._abort) this._abort.abort();
    this._bc.close();
  }
}
