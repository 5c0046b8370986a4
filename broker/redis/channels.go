package redis

import (
	"context"
	"strings"
)

// Channels returns the channels some node is subscribed to (PUBSUB
// CHANNELS on the broker's prefix, or on a Cluster PUBSUB SHARDCHANNELS on
// every node), in no particular order.
func (b *Broker) Channels(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pattern := globEscape(b.cfg.Prefix) + ":{*}"
	var names []string
	if b.sharded {
		// Sharded channels are known only to the shard that owns them:
		// ask every node (replicas answer too; duplicates are dropped).
		seen := map[string]bool{}
		for _, node := range b.client.Nodes() {
			list, err := node.Do(ctx, node.B().PubsubShardchannels().Pattern(pattern).Build()).AsStrSlice()
			if err != nil {
				return nil, b.wrap(ctx, "list channels", err)
			}
			for _, name := range list {
				if !seen[name] {
					seen[name] = true
					names = append(names, name)
				}
			}
		}
	} else {
		var err error
		if names, err = b.client.Do(ctx, b.client.B().PubsubChannels().Pattern(pattern).Build()).AsStrSlice(); err != nil {
			return nil, b.wrap(ctx, "list channels", err)
		}
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		if ch, ok := b.channelOf(name); ok {
			out = append(out, ch)
		}
	}
	return out, nil
}

// globEscape escapes the characters a Redis glob pattern gives meaning to.
func globEscape(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
