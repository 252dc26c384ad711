// react.js: React hooks over relay.js, close to the ones the app used with
// Django Channels (WebSocketProvider, useWebSocket, useNotifications), on one
// connection for the whole page. React (18 or later) is a peer dependency,
// never bundled: a page without a bundler cannot `import "react"` unless an
// import map says where React is, so this module takes React from you.
//
//   // with a bundler, or an import map that maps "react":
//   import React from "react";
//   import { createRelayHooks } from "https://relay.example.com/react.js";
//   export const { RelayProvider, useRelay, useNotifications, usePresence } = createRelayHooks(React);
//
//   // with React loaded as a global (UMD <script>): the named exports bind
//   // to globalThis.React on first use
//   import { RelayProvider, useRelay } from "https://relay.example.com/react.js";
//
// Types: react.d.ts.

import { Relay } from "./relay.js";
import { NotificationsStore, PresenceStore } from "./relay-stores.js";

/**
 * createRelayHooks returns the provider and hooks bound to the React you
 * pass. Call it once per app (each call makes its own context).
 */
export function createRelayHooks(React) {
  if (!React || typeof React.createContext !== "function") throw new TypeError("createRelayHooks(React): pass the React module");
  const { createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } = React;
  if (typeof useSyncExternalStore !== "function") throw new TypeError("react.js needs React 18 or later (useSyncExternalStore)");
  const RelayContext = createContext(null);

  /**
   * RelayProvider gives its children one Relay: `client` (yours, which you
   * close) or one made from `options` (closed when the provider unmounts).
   */
  function RelayProvider({ client, options, children }) {
    const own = useRef(null);
    if (!client && !own.current) own.current = { relay: new Relay(options), timer: null };
    const relay = client || own.current.relay;
    useEffect(() => {
      const o = own.current;
      if (client || !o) return undefined;
      // StrictMode unmounts and remounts at once: close only if no remount follows.
      if (o.timer) clearTimeout(o.timer);
      return () => {
        o.timer = setTimeout(() => o.relay.close(), 0);
      };
    }, [client]);
    return createElement(RelayContext.Provider, { value: relay }, children);
  }

  /** useRelayClient returns the provider's Relay. */
  function useRelayClient() {
    const relay = useContext(RelayContext);
    if (!relay) throw new Error("relay hooks must be used inside <RelayProvider>");
    return relay;
  }

  /** useRelayState is the connection state: {status, transport, nextAttemptAt, error, role, …}. */
  function useRelayState() {
    const relay = useRelayClient();
    const subscribe = useCallback((cb) => relay.on("state", cb), [relay]);
    return useSyncExternalStore(subscribe, () => relay.state, () => relay.state);
  }

  /**
   * useRelay subscribes the component to channels on the page's connection:
   * {state, lastMessage, send, isConnected}. onMessage sees every event of
   * those channels (the latest callback is used; changing it does not
   * resubscribe).
   */
  function useRelay(channels, { onMessage } = {}) {
    const relay = useRelayClient();
    const state = useRelayState();
    const [lastMessage, setLastMessage] = useState(null);
    const handler = useRef(onMessage);
    useEffect(() => {
      handler.current = onMessage;
    });
    const key = [].concat(channels || []).filter(Boolean).join("\n");
    useEffect(() => {
      if (!key) return undefined;
      return relay.subscribe(key.split("\n"), (msg) => {
        setLastMessage(msg);
        if (handler.current) handler.current(msg);
      });
    }, [relay, key]);
    const send = useCallback((msg) => relay.send(msg), [relay]);
    return { state, lastMessage, send, isConnected: state.status === "open" };
  }

  // useStore runs a relay-stores.js store for the component's lifetime.
  function useStore(make, deps) {
    const store = useMemo(make, deps); // eslint-disable-line react-hooks/exhaustive-deps
    useEffect(() => {
      store.start();
      return () => store.close();
    }, [store]);
    return [store, useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot)];
  }

  /**
   * useNotifications is the user's notifications: {notifications,
   * unreadCount, loading, error, more, markAsRead, markAllAsRead, loadMore,
   * refetch}. userId defaults to the token's subject; onNotification is
   * called for each new live one (show a toast there).
   */
  function useNotifications({ userId, limit = 20, onNotification } = {}) {
    const relay = useRelayClient();
    const cb = useRef(onNotification);
    useEffect(() => {
      cb.current = onNotification;
    });
    const [store, snap] = useStore(
      () => new NotificationsStore(relay, { userId, limit, onNotification: (n) => cb.current && cb.current(n) }),
      [relay, userId, limit],
    );
    const markAsRead = useCallback((ids) => store.markAsRead(ids), [store]);
    const markAllAsRead = useCallback(() => store.markAllAsRead(), [store]);
    const loadMore = useCallback(() => store.loadMore(), [store]);
    const refetch = useCallback(() => store.refetch(), [store]);
    return { ...snap, markAsRead, markAllAsRead, loadMore, refetch };
  }

  /**
   * usePresence is who is online in a project: {users, viewing (ticket id
   * -> users), typing (ticket id -> users), loaded, setViewing, setTyping}.
   * Using it makes the user online there.
   */
  function usePresence(projectId, { typingTimeout } = {}) {
    const relay = useRelayClient();
    const [store, snap] = useStore(() => new PresenceStore(relay, { projectId, typingTimeout }), [relay, projectId, typingTimeout]);
    const setViewing = useCallback((ticketId) => store.setViewing(ticketId), [store]);
    const setTyping = useCallback((ticketId, isTyping = true) => store.setTyping(ticketId, isTyping), [store]);
    return { ...snap, setViewing, setTyping };
  }

  return { RelayContext, RelayProvider, useRelayClient, useRelayState, useRelay, useNotifications, usePresence };
}

// The named exports below bind to globalThis.React on first use, for pages
// that load React as a global.
let bound = null;
function hooks() {
  if (!bound) {
    const React = globalThis.React;
    if (!React) throw new Error("react.js: load React as a global first, or use createRelayHooks(React)");
    bound = createRelayHooks(React);
  }
  return bound;
}

export function RelayProvider(props) {
  return hooks().RelayProvider(props);
}
export function useRelayClient() {
  return hooks().useRelayClient();
}
export function useRelayState() {
  return hooks().useRelayState();
}
export function useRelay(channels, options) {
  return hooks().useRelay(channels, options);
}
export function useNotifications(options) {
  return hooks().useNotifications(options);
}
export function usePresence(projectId, options) {
  return hooks().usePresence(projectId, options);
}
