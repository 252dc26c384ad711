package store

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// On Redis Cluster each node's channels have a pubsubShard of their own
// (redis_shard.go); when slots move, a shard's channels follow them here.

// rehome, on Cluster, closes old and puts each of the shard's channels where
// the slot map says its slot is now: those still on this node on a new
// connection, the others on their node's shard. Each resyncs at its
// confirmation. It returns the new connection, or nil when the shard has no
// channel left or stops; the reader then ends.
func (sh *pubsubShard) rehome(ctx context.Context, old *redis.PubSub) *redis.PubSub {
	_ = old.Close()
	w := sh.w
	w.mu.Lock()
	defer w.mu.Unlock()
	sh.mu.Lock()
	if sh.stopping || w.closed {
		sh.mu.Unlock()
		return nil
	}
	names := make([]string, 0, len(sh.names))
	for n := range sh.names {
		names = append(names, n)
	}
	sh.mu.Unlock()
	stay := names[:0:0]
	for _, n := range names {
		node, err := w.cluster.MasterForKey(ctx, n)
		if err != nil || node.Options().Addr == sh.key {
			stay = append(stay, n) // not known elsewhere: try here again
			continue
		}
		sh.moveTo(ctx, w.shard(node.Options().Addr, node), n)
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if len(stay) == 0 && sh.users == 0 {
		// Every channel moved: this shard ends with its reader, which
		// close waits for.
		sh.stopping = true
		if w.shards[sh.key] == sh {
			delete(w.shards, sh.key)
		}
		live := w.retired[:0]
		for _, r := range w.retired {
			select {
			case <-r.done:
			default:
				live = append(live, r)
			}
		}
		w.retired = append(live, sh)
		return nil
	}
	sh.broken = true
	for _, n := range stay {
		sh.unconfirmed[n] = true
	}
	ps := sh.newPubSub(sh.base)
	sh.ps = ps
	if len(stay) > 0 {
		// On failure go-redis keeps the channels and sends them again with
		// the next Receive's connection.
		_ = sh.send(sh.base, ps, stay...)
	}
	return ps
}

// moveTo moves name, its listeners and its waiting Listen calls from sh to
// target, subscribing it there; it resyncs at its confirmation there.
// redisWatcher.mu must be held, and neither shard's mu.
func (sh *pubsubShard) moveTo(ctx context.Context, target *pubsubShard, name string) {
	sh.mu.Lock()
	ls, ws := sh.names[name], sh.waiting[name]
	delete(sh.names, name)
	delete(sh.waiting, name)
	delete(sh.unconfirmed, name)
	sh.users -= len(ls)
	sh.mu.Unlock()
	target.users += len(ls)
	for _, l := range ls {
		l.sh = target
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	had := len(target.names[name]) > 0
	target.names[name] = append(target.names[name], ls...)
	target.waiting[name] = append(target.waiting[name], ws...)
	if had && !target.unconfirmed[name] && len(target.waiting[name]) == len(ws) {
		// Live there already: the moved listeners catch up now.
		for _, c := range ws {
			close(c)
		}
		delete(target.waiting, name)
		for _, l := range ls {
			l.resync()
		}
		return
	}
	target.unconfirmed[name] = true
	if !had && !target.stopping {
		_ = target.subscribe(ctx, name) // a failure is retried by the reader's reconnect
	}
}

// slotOf is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash
// tag (the part between the first '{' and the next '}', when not empty) or
// of the whole key, modulo 16384.
func slotOf(key string) uint16 {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc % 16384
}
