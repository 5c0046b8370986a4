package memory

import "time"

// cleanup frees expired history and idle streams every CleanupInterval
// until Close. Start runs it; Close waits for it to return.
func (b *Broker) cleanup() {
	t := time.NewTicker(b.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-b.quit:
			return
		case <-t.C:
			b.sweep(b.cfg.Now().UnixNano())
		}
	}
}

// sweep drops expired publications from every stream and forgets streams
// that are idle at now. It locks one shard at a time, and a shard only
// briefly: streams are examined under their own lock.
func (b *Broker) sweep(now int64) {
	ttl := int64(b.cfg.StreamTTL)
	var streams, idle []*stream
	for i := range b.shards {
		select {
		case <-b.quit:
			return
		default:
		}
		sh := &b.shards[i]
		streams, idle = streams[:0], idle[:0]
		sh.mu.RLock()
		for _, s := range sh.streams {
			streams = append(streams, s)
		}
		sh.mu.RUnlock()
		for _, s := range streams {
			s.mu.Lock()
			s.expire(now)
			s.keys.expire(now)
			if s.idle(now, ttl) {
				idle = append(idle, s)
			}
			s.mu.Unlock()
		}
		if len(idle) == 0 {
			continue
		}
		sh.mu.Lock()
		for _, s := range idle {
			s.mu.Lock()
			if !s.dropped && s.idle(now, ttl) { // a publisher may have come by
				s.dropped = true
				delete(sh.streams, s.channel)
			}
			s.mu.Unlock()
		}
		sh.mu.Unlock()
	}
}
