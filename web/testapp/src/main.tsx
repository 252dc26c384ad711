// A page as an app team would write it: relay's client from npm, its types
// found by TypeScript, the plain client and the React hooks side by side.
// The Go test (app/npm_package_test.go) opens it with ?relay=<url>&token=<jwt>
// and reads window.testapp.
import React, { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { Relay, type RelayEvent, type RelayReset, type RelayState } from "@relaydev/relay-client";
import { createRelayHooks } from "@relaydev/relay-client/react";

const params = new URLSearchParams(location.search);
const url = params.get("relay") ?? location.origin;
const token = params.get("token") ?? "";

const { RelayProvider, useRelay, useRelayClient, useNotifications } = createRelayHooks(React);

interface Seen {
  plain: string[];
  resets: RelayReset[];
  hook: string[];
  toasts: string[];
  plainRelay: Relay;
  hookRelay: Relay | null;
}

declare global {
  interface Window {
    testapp: Seen;
  }
}

// State then stream with the plain client: this page has no backend, so its
// "state" is the channel's history (cursor "0"); a real app passes the cursor
// its backend read before reading the state it sent.
const plainRelay = new Relay({ url, token });
const seen: Seen = { plain: [], resets: [], hook: [], toasts: [], plainRelay, hookRelay: null };
window.testapp = seen;
plainRelay.subscribe(
  ["project_1_tickets"],
  (ev: RelayEvent) => {
    if (ev.id) seen.plain.push(ev.id);
  },
  { cursor: "0", onReset: (r) => seen.resets.push(r) },
);

function Status() {
  const relay = useRelayClient();
  seen.hookRelay = relay;
  const { state } = useRelay("project_1_tickets", { onMessage: (ev) => ev.id && seen.hook.push(ev.id) });
  const s: RelayState = state;
  return <p id="status">{s.status}</p>;
}

function Bell() {
  const { notifications, unreadCount } = useNotifications({ onNotification: (n) => seen.toasts.push(String(n.id)) });
  return (
    <section>
      <p id="unread">{unreadCount}</p>
      <ul id="notes">
        {notifications.map((n) => (
          <li key={n.id}>{String((n.data as { title?: string } | undefined)?.title ?? n.type)}</li>
        ))}
      </ul>
    </section>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RelayProvider options={{ url, getToken: async () => token }}>
      <Bell />
      <Status />
    </RelayProvider>
  </StrictMode>,
);
